#include "kernels/gelu.h"
#include "kernels/kernels.h"

#include <cmath>

namespace optiq {

float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

void gelu_tanh_mul(float* out, const float* gate, const float* up, int64_t n, const KernelContext&) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh(gate[i]) * up[i];
}

void gelu_tanh_mul_fused(float* out, const float* gu, int64_t T, int64_t F) {
  // Row t of `out` starts at t·F <= t·2F, so in-place use never overwrites unread input.
  for (int64_t t = 0; t < T; ++t) {
    const float* g = gu + t * 2 * F;
    const float* u = g + F;
    float* o = out + t * F;
    for (int64_t f = 0; f < F; ++f) o[f] = gelu_tanh(g[f]) * u[f];
  }
}

}  // namespace optiq
