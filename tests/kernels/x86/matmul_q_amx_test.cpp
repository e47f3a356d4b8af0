// The AMX-INT8 block matmul (Sapphire Rapids and later) against the float64 oracle and the portable
// kernel. Skipped, saying so, on CPUs without AMX.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/x86/matmul_q_amx.h"
#include "tests/kernels/matmul_q_test_util.h"

namespace optiq {
namespace {

TEST(MatmulQAmx, MatchesOracle) {
  OPTIQ_SKIP_UNLESS_CPU(amx_available(), "AMX-INT8 (or the OS did not grant tile state)");
  TestKernels one(1);
  for_each_oracle_case([&](const QWeight& q, const std::vector<float>& x, const std::vector<double>& ref,
                           const std::vector<float>& wdeq, int64_t T, int64_t N, int64_t K, const std::string& shape) {
    std::vector<float> got(static_cast<size_t>(T * N), NAN);
    matmul_q_amx(got.data(), x.data(), T, q.w, one.ctx);
    expect_close(got, ref, x, wdeq, T, N, K, "AMX" + shape);
  });
}

TEST(MatmulQAmx, ThreadCountInvariant) {
  OPTIQ_SKIP_UNLESS_CPU(amx_available(), "AMX-INT8");
  auto q = make_qweight(101, 256, 4, 64, DType::kBF16, 5);
  TestKernels p1(1), p2(2);
  for (int64_t T : {1, 3, 9, 40}) {
    const std::vector<float> x = random_x(T, 256, 6);
    std::vector<float> a(T * 101), b(T * 101);
    matmul_q_amx(a.data(), x.data(), T, q->w, p1.ctx);
    matmul_q_amx(b.data(), x.data(), T, q->w, p2.ctx);
    EXPECT_EQ(a, b) << "AMX T " << T;
  }
}

// AMX and the portable kernel quantize activations identically and form the same int32 group sums;
// only the fp32 epilogue's order differs. Self-speculation relies on this: its verify forward (a
// block) must pick the tokens greedy AR (one row at a time) picks.
TEST(MatmulQAmx, AgreesWithPortableKernel) {
  OPTIQ_SKIP_UNLESS_CPU(amx_available(), "AMX-INT8");
  TestKernels kern(2);
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128}) {
      const int64_t N = 67, K = 6 * gs, T = 33;
      auto q = make_qweight(N, K, bits, gs, DType::kBF16, 31u + bits * 5 + gs);
      const std::vector<float> wdeq = dequantized(q->w);
      const std::vector<float> x = random_x(T, K, 91u + static_cast<uint32_t>(bits));
      std::vector<float> hw(static_cast<size_t>(T * N)), got(static_cast<size_t>(T * N), NAN);
      matmul_q_highway(hw.data(), x.data(), T, q->w, kern.ctx);
      matmul_q_amx(got.data(), x.data(), T, q->w, kern.ctx);
      expect_same_integer_sums(got, hw, x, wdeq, T, N, K, "AMX bits " + std::to_string(bits) + " gs " + std::to_string(gs));
    }
}

TEST(MatmulQAmx, ZeroActivations) {
  OPTIQ_SKIP_UNLESS_CPU(amx_available(), "AMX-INT8");
  auto q = make_qweight(17, 128, 4, 32, DType::kBF16, 8);
  std::vector<float> x(2 * 128, 0.f), out(2 * 17, NAN);
  TestKernels kern(2);
  matmul_q_amx(out.data(), x.data(), 2, q->w, kern.ctx);
  for (float v : out) EXPECT_EQ(v, 0.f);
}

}  // namespace
}  // namespace optiq
