// fp32 GEMM micro-kernel: 8 (then 4) rows of A × 2 vectors of B columns per register tile; each A
// element is broadcast once per k and feeds two FMAs, and B rows are read contiguously, so there are
// no horizontal reductions (unlike the weight-matmul tiles, which reduce over K per output).

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/gemm.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "core/status.h"
#include "kernels/gemm.h"

HWY_BEFORE_NAMESPACE();
namespace optiq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <int RM, int RV>
HWY_INLINE void gemm_tile(float* HWY_RESTRICT C, int64_t ldc, const float* HWY_RESTRICT A, int64_t lda,
                          const float* HWY_RESTRICT B, int64_t ldb, int64_t K) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  // The loops over the tile are unrolled so that acc stays in registers: rolled, GCC 12 kept it on
  // the stack and every FMA went through memory (attention GEMMs ran at ~8 MACs per cycle).
  hn::Vec<decltype(df)> acc[RM][RV];
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < RV; ++j) acc[i][j] = hn::Zero(df);
  for (int64_t k = 0; k < K; ++k) {
    hn::Vec<decltype(df)> b[RV];
#pragma GCC unroll 4
    for (int j = 0; j < RV; ++j) b[j] = hn::LoadU(df, B + k * ldb + j * L);
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i) {
      const auto a = hn::Set(df, A[i * lda + k]);
#pragma GCC unroll 4
      for (int j = 0; j < RV; ++j) acc[i][j] = hn::MulAdd(a, b[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < RV; ++j) hn::StoreU(acc[i][j], df, C + i * ldc + j * L);
}

template <int RM>
HWY_INLINE void gemm_rows(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t N,
                          int64_t K) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  int64_t n = 0;
  for (; n + 2 * L <= N; n += 2 * L) gemm_tile<RM, 2>(C + n, ldc, A, lda, B + n, ldb, K);
  for (; n + L <= N; n += L) gemm_tile<RM, 1>(C + n, ldc, A, lda, B + n, ldb, K);
}

void GemmF32(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N,
             int64_t K) {
  int64_t m = 0;
  for (; m + 8 <= M; m += 8) gemm_rows<8>(C + m * ldc, ldc, A + m * lda, lda, B, ldb, N, K);
  for (; m + 4 <= M; m += 4) gemm_rows<4>(C + m * ldc, ldc, A + m * lda, lda, B, ldb, N, K);
  for (; m < M; ++m) gemm_rows<1>(C + m * ldc, ldc, A + m * lda, lda, B, ldb, N, K);
}

}  // namespace HWY_NAMESPACE
}  // namespace optiq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace optiq {
HWY_EXPORT(GemmF32);

void gemm_f32(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N,
              int64_t K) {
  OPTIQ_CHECK(N % gemm_f32_n_align() == 0);
  HWY_DYNAMIC_DISPATCH(GemmF32)(C, ldc, A, lda, B, ldb, M, N, K);
}

}  // namespace optiq
#endif  // HWY_ONCE
