// rope_2d against its formula in float64 (specs/diffusiongemma.md §3.2): the first half of each head
// rotates by the patch's x position, the second by its y, pairs (i, i + D/4) within a half with
// inv_freq[i] = theta^(−2i / (D/2)); norms are preserved.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace optiq {
namespace {

TEST(Rope2d, MatchesFormulaPerHalf) {
  TestKernels kern(1);
  const int64_t T = 3, H = 2, D = 16, half = D / 2, quarter = D / 4;
  const float theta = 100.f;
  const std::vector<int64_t> px = {0, 5, 2}, py = {7, 0, 3};
  std::vector<float> x(T * H * D);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7f * static_cast<float>(i)) + 0.1f;
  std::vector<float> got = x;
  rope_2d(got.data(), T, H, D, px.data(), py.data(), theta, kern.ctx);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t part = 0; part < 2; ++part) {
        const float* r = x.data() + (t * H + h) * D + part * half;
        const float* g = got.data() + (t * H + h) * D + part * half;
        const double pos = static_cast<double>(part == 0 ? px[t] : py[t]);
        double n0 = 0, n1 = 0;
        for (int64_t i = 0; i < quarter; ++i) {
          const double a = pos * std::pow(double(theta), -2.0 * double(i) / double(half));
          ASSERT_NEAR(g[i], r[i] * std::cos(a) - r[i + quarter] * std::sin(a), 2e-5) << "t " << t << " part " << part;
          ASSERT_NEAR(g[i + quarter], r[i + quarter] * std::cos(a) + r[i] * std::sin(a), 2e-5);
          n0 += double(r[i]) * r[i] + double(r[i + quarter]) * r[i + quarter];
          n1 += double(g[i]) * g[i] + double(g[i + quarter]) * g[i + quarter];
        }
        EXPECT_NEAR(n1, n0, 1e-4 * n0);
      }
}

}  // namespace
}  // namespace optiq
