// attention_gemm against the row kernel attention_rows() on random inputs and key ranges.
#include "kernels/attention_gemm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "decode/rng.h"
#include "kernels/ops.h"
#include "tests/kernels/kernel_test_util.h"

namespace optiq {
namespace {

void check(int64_t T, int64_t H, int64_t Hkv, int64_t D, int64_t S, int range_kind, uint64_t seed) {
  SplitMix64 r(seed);
  std::vector<float> q(T * H * D), k(S * Hkv * D), v(S * Hkv * D), a(T * H * D), b(T * H * D);
  for (auto& x : q) x = static_cast<float>(r.uniform() * 2 - 1);
  for (auto& x : k) x = static_cast<float>(r.uniform() * 2 - 1);
  for (auto& x : v) x = static_cast<float>(r.uniform() * 2 - 1);
  std::vector<int64_t> kb(T), ke(T);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = S - T + t;
    switch (range_kind) {
      case 0: kb[t] = 0, ke[t] = S; break;                                    // full
      case 1: kb[t] = 0, ke[t] = pos + 1; break;                              // causal
      case 2: kb[t] = std::max<int64_t>(0, pos - 6), ke[t] = pos + 1; break;  // sliding
      default: kb[t] = static_cast<int64_t>(r.next() % S), ke[t] = kb[t] + static_cast<int64_t>(r.next() % 4); break;
    }
    ke[t] = std::min(ke[t], S);
  }
  TestKernels kern(2);
  attention_rows(a.data(), q.data(), k.data(), v.data(), T, H, Hkv, D, kb.data(), ke.data(), 0.7f, kern.ctx);
  attention_gemm(b.data(), q.data(), k.data(), v.data(), T, H, Hkv, D, kb.data(), ke.data(), 0.7f, kern.ctx);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 2e-5) << "T " << T << " kind " << range_kind << " at " << i;
}

TEST(AttentionGemm, MatchesReferenceOnRandomRanges) {
  for (int kind = 0; kind < 4; ++kind) {
    check(37, 4, 2, 16, 53, kind, 1 + kind);
    check(5, 8, 1, 24, 5, kind, 10 + kind);
    check(64, 2, 2, 72, 64, kind, 20 + kind);
  }
}

}  // namespace
}  // namespace optiq
