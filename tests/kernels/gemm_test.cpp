// gemm_f32 (the activation × activation product of GEMM attention) against a float64 loop on every
// compiled target this CPU supports: odd M and K, N padded to gemm_f32_n_align() (a partial last
// vector where SVE vectors are wider), leading dimensions wider than the operands, and columns past N
// left untouched.
#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <hwy/targets.h>

namespace optiq {
namespace {

TEST(GemmF32, MatchesFloat64Reference) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t A16 = gemm_f32_n_align();
  for (int64_t M : {1, 3, 17})
    for (int64_t K : {1, 7, 64, 129})
      for (int64_t N : {A16, 3 * A16}) {
        const int64_t lda = K + 3, ldb = N + A16, ldc = N + A16;  // wider rows than the operands
        std::vector<float> A(M * lda), B(K * ldb), C(M * ldc, -7.f);
        for (auto& v : A) v = nd(rng);
        for (auto& v : B) v = nd(rng);
        for (int64_t tgt : hwy::SupportedAndGeneratedTargets()) {
          hwy::SetSupportedTargetsForTest(tgt);
          std::fill(C.begin(), C.end(), -7.f);
          gemm_f32(C.data(), ldc, A.data(), lda, B.data(), ldb, M, N, K);
          hwy::SetSupportedTargetsForTest(0);
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
              double s = 0, mag = 0;
              for (int64_t k = 0; k < K; ++k) {
                s += double(A[m * lda + k]) * B[k * ldb + n];
                mag += std::fabs(double(A[m * lda + k]) * B[k * ldb + n]);
              }
              ASSERT_NEAR(C[m * ldc + n], s, 1e-5 * mag + 1e-6)
                  << hwy::TargetName(tgt) << " M " << M << " K " << K << " N " << N;
            }
            for (int64_t n = N; n < ldc; ++n)
              ASSERT_EQ(C[m * ldc + n], -7.f) << hwy::TargetName(tgt) << " column past N written";
          }
        }
      }
}

}  // namespace
}  // namespace optiq
