// lora_add (kernels/lora.cpp) against its double-precision reference on odd sizes, every compiled
// Highway target this CPU supports; row invariance (a T-row call equals T one-row calls bit for bit,
// on one thread or several). Tolerance 1e-5 of the magnitude Σ|terms|: the SIMD version only
// reassociates fp32 sums of at most n_in + rank terms.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <hwy/targets.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tests/kernels/kernel_test_util.h"

namespace optiq {
namespace {

struct Case {
  int64_t T, K, r, N;
};

// Σ over terms of |scale · x·a·b| per output: the scale of the rounding error.
std::vector<double> magnitude(const std::vector<float>& x, const std::vector<float>& a, const std::vector<float>& b,
                              const Case& c, float scale) {
  std::vector<double> m(static_cast<size_t>(c.T * c.N));
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t n = 0; n < c.N; ++n) {
      double s = 0;
      for (int64_t j = 0; j < c.r; ++j) {
        double u = 0;
        for (int64_t k = 0; k < c.K; ++k) u += std::fabs(x[t * c.K + k] * a[k * c.r + j]);
        s += u * std::fabs(b[j * c.N + n]);
      }
      m[t * c.N + n] = std::fabs(scale) * s;
    }
  return m;
}

TEST(Lora, MatchesReferenceOnEveryTarget) {
  const Case cases[] = {{1, 64, 8, 96}, {3, 37, 5, 19}, {7, 130, 16, 33}, {33, 64, 4, 100}, {5, 1, 1, 1}, {2, 200, 3, 7}};
  for (const Case& c : cases) {
    const float scale = 1.7f;
    auto x = randn(c.T * c.K, 1), a = randn(c.K * c.r, 2, 0.2f), b = randn(c.r * c.N, 3, 0.5f);
    auto base = randn(c.T * c.N, 4);
    std::vector<float> ref = base;
    lora_add_reference(ref.data(), x.data(), c.T, a.data(), b.data(), c.K, c.r, c.N, scale);
    const auto mag = magnitude(x, a, b, c, scale);
    for (int64_t tgt : hwy::SupportedAndGeneratedTargets()) {
      hwy::SetSupportedTargetsForTest(tgt);
      for (int threads : {1, 3}) {
        TestKernels k(threads);
        std::vector<float> got = base;
        lora_add(got.data(), x.data(), c.T, a.data(), b.data(), c.K, c.r, c.N, scale, k.ctx);
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], ref[i], 1e-5 * mag[i] + 1e-6 * std::fabs(ref[i]) + 1e-7)
              << hwy::TargetName(tgt) << " T " << c.T << " K " << c.K << " r " << c.r << " N " << c.N << " at " << i;
      }
      hwy::SetSupportedTargetsForTest(0);
    }
  }
}

TEST(Lora, RowsEqualOneRowCallsBitForBit) {
  // Big enough to be split across the pool (and to use the 4-row tiles with a remainder).
  const int64_t T = 203, K = 257, r = 6, N = 301;
  auto x = randn(T * K, 5), a = randn(K * r, 6, 0.1f), b = randn(r * N, 7, 0.1f), base = randn(T * N, 8);
  TestKernels many(4), one(1);
  std::vector<float> all = base;
  lora_add(all.data(), x.data(), T, a.data(), b.data(), K, r, N, 2.f, many.ctx);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float> row(base.begin() + t * N, base.begin() + (t + 1) * N);
    lora_add(row.data(), x.data() + t * K, 1, a.data(), b.data(), K, r, N, 2.f, one.ctx);
    for (int64_t n = 0; n < N; ++n) ASSERT_EQ(all[t * N + n], row[n]) << "row " << t << " col " << n;
  }
}

TEST(Lora, ZeroBLeavesOutputUnchanged) {
  const int64_t T = 4, K = 48, r = 8, N = 40;
  auto x = randn(T * K, 9), a = randn(K * r, 10), base = randn(T * N, 11);
  std::vector<float> b(r * N, 0.f), got = base;
  TestKernels k(2);
  lora_add(got.data(), x.data(), T, a.data(), b.data(), K, r, N, 20.f, k.ctx);
  EXPECT_EQ(got, base);
}

}  // namespace
}  // namespace optiq
