// The cache-blocked training GEMM against a float64 product: shapes across the packing, row-tile
// and block boundaries (odd M, N below and above a vector and a block, K across KC), overwrite and
// accumulate, with leading dimensions wider than the operands.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/gemm_blocked.h"

namespace optiq {
namespace {

TEST(GemmBlocked, MatchesFloat64ProductOnEveryBoundary) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t M : {1, 5, 6, 7, 13, 100})
    for (int64_t N : {1, 7, 8, 16, 17, 33, 128, 131, 300})
      for (int64_t K : {1, 3, 255, 256, 257, 600})
        for (bool acc : {false, true}) {
          const int64_t lda = K + 3, ldb = N + 5, ldc = N + 2;
          std::vector<float> A(M * lda), B(K * ldb), C(M * ldc);
          for (float& v : A) v = u(rng);
          for (float& v : B) v = u(rng);
          for (float& v : C) v = u(rng);
          const std::vector<float> C0 = C;
          gemm_f32_blocked(C.data(), ldc, A.data(), lda, B.data(), ldb, M, N, K, acc);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < ldc; ++n) {
              if (n >= N) {  // outside the product: untouched
                ASSERT_EQ(C[m * ldc + n], C0[m * ldc + n]);
                continue;
              }
              double s = acc ? C0[m * ldc + n] : 0.0;
              for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[m * lda + k]) * B[k * ldb + n];
              ASSERT_NEAR(C[m * ldc + n], s, 1e-5 * (1.0 + static_cast<double>(K)))
                  << "M " << M << " N " << N << " K " << K << " acc " << acc << " at " << m << "," << n;
            }
        }
}

}  // namespace
}  // namespace optiq
