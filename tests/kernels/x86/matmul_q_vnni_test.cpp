// The AVX-512 VNNI matmul (the decode path on Zen 4/5, Ice Lake and later) against the float64 oracle and the portable
// kernel. Skipped, saying so, on CPUs without AVX-512 VNNI.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/x86/matmul_q_vnni.h"
#include "tests/kernels/matmul_q_test_util.h"

namespace optiq {
namespace {

TEST(MatmulQVnni, MatchesOracle) {
  OPTIQ_SKIP_UNLESS_CPU(vnni_available(), "AVX-512 VNNI");
  TestKernels one(1);
  for_each_oracle_case([&](const QWeight& q, const std::vector<float>& x, const std::vector<double>& ref,
                           const std::vector<float>& wdeq, int64_t T, int64_t N, int64_t K, const std::string& shape) {
    std::vector<float> got(static_cast<size_t>(T * N), NAN);
    const MatmulOut o{got.data(), &q.w};
    matmul_q_vnni({&o, 1}, x.data(), T, one.ctx);
    expect_close(got, ref, x, wdeq, T, N, K, "VNNI" + shape);
  });
}

TEST(MatmulQVnni, ThreadCountInvariant) {
  OPTIQ_SKIP_UNLESS_CPU(vnni_available(), "AVX-512 VNNI");
  auto q = make_qweight(101, 256, 4, 64, DType::kBF16, 5);
  TestKernels p1(1), p2(2);
  for (int64_t T : {1, 3, 9, 40}) {
    const std::vector<float> x = random_x(T, 256, 6);
    std::vector<float> a(T * 101), b(T * 101);
    const MatmulOut oa{a.data(), &q->w}, ob{b.data(), &q->w};
    matmul_q_vnni({&oa, 1}, x.data(), T, p1.ctx);
    matmul_q_vnni({&ob, 1}, x.data(), T, p2.ctx);
    EXPECT_EQ(a, b) << "VNNI T " << T;
  }
}

// VNNI and the portable kernel quantize activations identically and form the same int32 group sums;
// only the fp32 epilogue's order differs. Self-speculation relies on this: its verify forward must
// pick the tokens greedy AR (one row at a time) picks.
TEST(MatmulQVnni, AgreesWithPortableKernel) {
  OPTIQ_SKIP_UNLESS_CPU(vnni_available(), "AVX-512 VNNI");
  TestKernels kern(2);
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128}) {
      const int64_t N = 67, K = 6 * gs, T = 33;
      auto q = make_qweight(N, K, bits, gs, DType::kBF16, 31u + bits * 5 + gs);
      const std::vector<float> wdeq = dequantized(q->w);
      const std::vector<float> x = random_x(T, K, 91u + static_cast<uint32_t>(bits));
      std::vector<float> hw(static_cast<size_t>(T * N)), got(static_cast<size_t>(T * N), NAN);
      matmul_q_highway(hw.data(), x.data(), T, q->w, kern.ctx);
      for (int64_t t = 0; t < T; ++t) {  // one row at a time, as AR decode calls it
        const MatmulOut o{got.data() + t * N, &q->w};
        matmul_q_vnni({&o, 1}, x.data() + t * K, 1, kern.ctx);
      }
      expect_same_integer_sums(got, hw, x, wdeq, T, N, K, "VNNI bits " + std::to_string(bits) + " gs " + std::to_string(gs));
    }
}

TEST(MatmulQVnni, ZeroActivations) {
  OPTIQ_SKIP_UNLESS_CPU(vnni_available(), "AVX-512 VNNI");
  auto q = make_qweight(17, 128, 4, 32, DType::kBF16, 8);
  std::vector<float> x(2 * 128, 0.f), out(2 * 17, NAN);
  TestKernels kern(2);
  const MatmulOut o{out.data(), &q->w};
  matmul_q_vnni({&o, 1}, x.data(), 2, kern.ctx);
  for (float v : out) EXPECT_EQ(v, 0.f);
}

}  // namespace
}  // namespace optiq
