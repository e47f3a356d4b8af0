#include "kernels/kernels.h"

#include <cmath>
#include <vector>

namespace optiq {

void rope_2d(float* x, int64_t T, int64_t H, int64_t D, const int64_t* pos_x, const int64_t* pos_y, float theta,
             const KernelContext&) {
  const int64_t half = D / 2, quarter = D / 4;
  std::vector<float> inv(static_cast<size_t>(quarter)), cs(static_cast<size_t>(2 * quarter)),
      sn(static_cast<size_t>(2 * quarter));
  for (int64_t i = 0; i < quarter; ++i)
    inv[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(half));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < quarter; ++i) {
      const float ax = static_cast<float>(pos_x[t]) * inv[i], ay = static_cast<float>(pos_y[t]) * inv[i];
      cs[i] = std::cos(ax);
      sn[i] = std::sin(ax);
      cs[quarter + i] = std::cos(ay);
      sn[quarter + i] = std::sin(ay);
    }
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t part = 0; part < 2; ++part) {
        float* r = x + (t * H + h) * D + part * half;
        const float* c = cs.data() + part * quarter;
        const float* s = sn.data() + part * quarter;
        for (int64_t i = 0; i < quarter; ++i) {
          const float a = r[i], b = r[i + quarter];
          r[i] = a * c[i] - b * s[i];
          r[i + quarter] = b * c[i] + a * s[i];
        }
      }
    }
  }
}

}  // namespace optiq
