// fp32 GEMM micro-kernel: 8 (then 4) rows of A × 2 vectors of B columns per register tile; each A
// element is broadcast once per k and feeds two FMAs, and B rows are read contiguously, so there are
// no horizontal reductions (unlike the weight-matmul tiles, which reduce over K per output).
// Vector-length agnostic (SVE): the tile's accumulators are named variables and the column step is
// the run-time Lanes().

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

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Row i of a tile at step k: c0 (and c1 when RV = 2) += a_ik · b0 (b1).
template <int RV>
HWY_INLINE void fma_row(DF df, float a, VF b0, VF b1, VF& c0, VF& c1) {
  const VF av = hn::Set(df, a);
  c0 = hn::MulAdd(av, b0, c0);
  if constexpr (RV > 1) c1 = hn::MulAdd(av, b1, c1);
}

// Stores row i of a tile; kPartial: only the columns of `tail` (a single partial vector, RV = 1).
template <int RV, bool kPartial>
HWY_INLINE void store_row(DF df, hn::Mask<DF> tail, VF c0, VF c1, float* HWY_RESTRICT c, int64_t L) {
  if constexpr (kPartial) {
    hn::BlendedStore(c0, tail, df, c);
  } else {
    hn::StoreU(c0, df, c);
    if constexpr (RV > 1) hn::StoreU(c1, df, c + L);
  }
}

// C rows [0, RM) × RV vectors of columns. The accumulators are named variables, not an array:
// SVE vectors are sizeless and cannot be array elements, and on fixed-width targets the unrolled
// code is what GCC made of the array once the loops over it were unrolled (rolled, GCC 12 kept the
// array on the stack and every FMA went through memory: ~8 MACs per cycle in attention GEMMs).
// kPartial: one vector holding only the columns in `tail` (N past the last whole vector, which
// happens only with SVE vectors wider than gemm_f32_n_align() floats).
template <int RM, int RV, bool kPartial = false>
HWY_INLINE void gemm_tile(float* HWY_RESTRICT C, int64_t ldc, const float* HWY_RESTRICT A, int64_t lda,
                          const float* HWY_RESTRICT B, int64_t ldb, int64_t K, hn::Mask<DF> tail) {
  static_assert(RM == 1 || RM == 4 || RM == 8, "tile rows");
  static_assert(RV == 1 || RV == 2, "tile vectors");
  static_assert(!kPartial || RV == 1, "a partial tile is one vector wide");
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  VF c00 = hn::Zero(df), c01 = hn::Zero(df), c10 = hn::Zero(df), c11 = hn::Zero(df);
  VF c20 = hn::Zero(df), c21 = hn::Zero(df), c30 = hn::Zero(df), c31 = hn::Zero(df);
  VF c40 = hn::Zero(df), c41 = hn::Zero(df), c50 = hn::Zero(df), c51 = hn::Zero(df);
  VF c60 = hn::Zero(df), c61 = hn::Zero(df), c70 = hn::Zero(df), c71 = hn::Zero(df);
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    const VF b0 = kPartial ? hn::MaskedLoad(tail, df, b) : hn::LoadU(df, b);
    const VF b1 = RV > 1 ? hn::LoadU(df, b + L) : b0;
    const float* a = A + k;
    fma_row<RV>(df, a[0], b0, b1, c00, c01);
    if constexpr (RM > 1) {
      fma_row<RV>(df, a[lda], b0, b1, c10, c11);
      fma_row<RV>(df, a[2 * lda], b0, b1, c20, c21);
      fma_row<RV>(df, a[3 * lda], b0, b1, c30, c31);
    }
    if constexpr (RM > 4) {
      fma_row<RV>(df, a[4 * lda], b0, b1, c40, c41);
      fma_row<RV>(df, a[5 * lda], b0, b1, c50, c51);
      fma_row<RV>(df, a[6 * lda], b0, b1, c60, c61);
      fma_row<RV>(df, a[7 * lda], b0, b1, c70, c71);
    }
  }
  store_row<RV, kPartial>(df, tail, c00, c01, C, L);
  if constexpr (RM > 1) {
    store_row<RV, kPartial>(df, tail, c10, c11, C + ldc, L);
    store_row<RV, kPartial>(df, tail, c20, c21, C + 2 * ldc, L);
    store_row<RV, kPartial>(df, tail, c30, c31, C + 3 * ldc, L);
  }
  if constexpr (RM > 4) {
    store_row<RV, kPartial>(df, tail, c40, c41, C + 4 * ldc, L);
    store_row<RV, kPartial>(df, tail, c50, c51, C + 5 * ldc, L);
    store_row<RV, kPartial>(df, tail, c60, c61, C + 6 * ldc, L);
    store_row<RV, kPartial>(df, tail, c70, c71, C + 7 * ldc, L);
  }
}

template <int RM>
HWY_INLINE void gemm_rows(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t N,
                          int64_t K) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const hn::Mask<DF> all = hn::FirstN(df, static_cast<size_t>(L));
  int64_t n = 0;
  for (; n + 2 * L <= N; n += 2 * L) gemm_tile<RM, 2>(C + n, ldc, A, lda, B + n, ldb, K, all);
  for (; n + L <= N; n += L) gemm_tile<RM, 1>(C + n, ldc, A, lda, B + n, ldb, K, all);
  if (n < N)  // SVE vectors of more than gemm_f32_n_align() floats: the last columns in a partial vector
    gemm_tile<RM, 1, true>(C + n, ldc, A, lda, B + n, ldb, K, hn::FirstN(df, static_cast<size_t>(N - n)));
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
