// gelu_tanh against known values, and its gated forms: the fused [T, 2F] rows the experts use and the
// seam's gelu_tanh_mul (which may alias its inputs).
#include "kernels/gelu.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace optiq {
namespace {

TEST(Gelu, TanhApproximationValues) {
  EXPECT_FLOAT_EQ(gelu_tanh(0.f), 0.f);
  EXPECT_NEAR(gelu_tanh(1.f), 0.841192f, 1e-6);
  EXPECT_NEAR(gelu_tanh(-2.f), -0.045402f, 1e-6);
  std::vector<float> gu{1.f, -2.f, 3.f, 0.5f};  // one row, F = 2: gate (1, −2), up (3, 0.5)
  std::vector<float> o(2);
  gelu_tanh_mul_fused(o.data(), gu.data(), 1, 2);
  EXPECT_NEAR(o[0], 0.841192f * 3.f, 1e-5);
  EXPECT_NEAR(o[1], -0.045402f * 0.5f, 1e-6);
}

TEST(Gelu, GatedMulInPlace) {
  TestKernels kern(1);
  std::vector<float> g{1.f, -2.f, 0.f, 4.f}, u{3.f, 0.5f, 7.f, -1.f};
  gelu_tanh_mul(g.data(), g.data(), u.data(), 4, kern.ctx);  // out aliases gate
  EXPECT_NEAR(g[0], 0.841192f * 3.f, 1e-5);
  EXPECT_NEAR(g[1], -0.045402f * 0.5f, 1e-6);
  EXPECT_EQ(g[2], 0.f);
  EXPECT_NEAR(g[3], -gelu_tanh(4.f), 1e-6);
}

}  // namespace
}  // namespace optiq
