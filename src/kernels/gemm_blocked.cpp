// Cache-blocked fp32 GEMM (kernels/gemm_blocked.h). Register tiles use named accumulators (no arrays
// of vectors), so the code compiles for SVE's sizeless vectors too; columns past the last whole
// vector go through a masked tile.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/gemm_blocked.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>

#include "kernels/gemm_blocked.h"

HWY_BEFORE_NAMESPACE();
namespace optiq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// RM (1..6) rows × 2 vectors of columns [n, n + 2L) over k in [0, K).
template <int RM>
HWY_INLINE void Tile2(float* HWY_RESTRICT C, int64_t ldc, const float* HWY_RESTRICT A, int64_t lda,
                      const float* HWY_RESTRICT B, int64_t ldb, int64_t K, bool acc) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  auto c00 = hn::Zero(d), c01 = hn::Zero(d), c10 = hn::Zero(d), c11 = hn::Zero(d), c20 = hn::Zero(d),
       c21 = hn::Zero(d), c30 = hn::Zero(d), c31 = hn::Zero(d), c40 = hn::Zero(d), c41 = hn::Zero(d),
       c50 = hn::Zero(d), c51 = hn::Zero(d);
#define OPTIQ_ROW(i, ci0, ci1)                                          \
  if constexpr (RM > i) {                                               \
    ci0 = hn::LoadU(d, C + i * ldc);                                    \
    ci1 = hn::LoadU(d, C + i * ldc + L);                                \
  }
  if (acc) {
    OPTIQ_ROW(0, c00, c01) OPTIQ_ROW(1, c10, c11) OPTIQ_ROW(2, c20, c21)
    OPTIQ_ROW(3, c30, c31) OPTIQ_ROW(4, c40, c41) OPTIQ_ROW(5, c50, c51)
  }
#undef OPTIQ_ROW
  for (int64_t k = 0; k < K; ++k) {
    const auto b0 = hn::LoadU(d, B + k * ldb);
    const auto b1 = hn::LoadU(d, B + k * ldb + L);
#define OPTIQ_ROW(i, ci0, ci1)                                          \
  if constexpr (RM > i) {                                               \
    const auto a = hn::Set(d, A[i * lda + k]);                          \
    ci0 = hn::MulAdd(a, b0, ci0);                                       \
    ci1 = hn::MulAdd(a, b1, ci1);                                       \
  }
    OPTIQ_ROW(0, c00, c01) OPTIQ_ROW(1, c10, c11) OPTIQ_ROW(2, c20, c21)
    OPTIQ_ROW(3, c30, c31) OPTIQ_ROW(4, c40, c41) OPTIQ_ROW(5, c50, c51)
#undef OPTIQ_ROW
  }
#define OPTIQ_ROW(i, ci0, ci1)                                          \
  if constexpr (RM > i) {                                               \
    hn::StoreU(ci0, d, C + i * ldc);                                    \
    hn::StoreU(ci1, d, C + i * ldc + L);                                \
  }
  OPTIQ_ROW(0, c00, c01) OPTIQ_ROW(1, c10, c11) OPTIQ_ROW(2, c20, c21)
  OPTIQ_ROW(3, c30, c31) OPTIQ_ROW(4, c40, c41) OPTIQ_ROW(5, c50, c51)
#undef OPTIQ_ROW
}

// RM rows × one whole vector of columns.
template <int RM>
HWY_INLINE void Tile1(float* HWY_RESTRICT C, int64_t ldc, const float* HWY_RESTRICT A, int64_t lda,
                      const float* HWY_RESTRICT B, int64_t ldb, int64_t K, bool acc) {
  const hn::ScalableTag<float> d;
  auto c0 = hn::Zero(d), c1 = hn::Zero(d), c2 = hn::Zero(d), c3 = hn::Zero(d), c4 = hn::Zero(d), c5 = hn::Zero(d);
#define OPTIQ_ROW(i, ci) \
  if constexpr (RM > i) ci = hn::LoadU(d, C + i * ldc);
  if (acc) { OPTIQ_ROW(0, c0) OPTIQ_ROW(1, c1) OPTIQ_ROW(2, c2) OPTIQ_ROW(3, c3) OPTIQ_ROW(4, c4) OPTIQ_ROW(5, c5) }
#undef OPTIQ_ROW
  for (int64_t k = 0; k < K; ++k) {
    const auto b = hn::LoadU(d, B + k * ldb);
#define OPTIQ_ROW(i, ci) \
  if constexpr (RM > i) ci = hn::MulAdd(hn::Set(d, A[i * lda + k]), b, ci);
    OPTIQ_ROW(0, c0) OPTIQ_ROW(1, c1) OPTIQ_ROW(2, c2) OPTIQ_ROW(3, c3) OPTIQ_ROW(4, c4) OPTIQ_ROW(5, c5)
#undef OPTIQ_ROW
  }
#define OPTIQ_ROW(i, ci) \
  if constexpr (RM > i) hn::StoreU(ci, d, C + i * ldc);
  OPTIQ_ROW(0, c0) OPTIQ_ROW(1, c1) OPTIQ_ROW(2, c2) OPTIQ_ROW(3, c3) OPTIQ_ROW(4, c4) OPTIQ_ROW(5, c5)
#undef OPTIQ_ROW
}

// Columns past the last whole vector, scalar (masked vector loads may touch memory past the end on
// some targets).
HWY_INLINE void TailColumns(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb,
                            int64_t rows, int64_t cols, int64_t K, bool acc) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      float s = acc ? C[i * ldc + j] : 0.0f;
      for (int64_t k = 0; k < K; ++k) s += A[i * lda + k] * B[k * ldb + j];
      C[i * ldc + j] = s;
    }
}

template <int RM>
HWY_INLINE void Rows(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t N,
                     int64_t K, bool acc) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  int64_t n = 0;
  for (; n + 2 * L <= N; n += 2 * L) Tile2<RM>(C + n, ldc, A, lda, B + n, ldb, K, acc);
  for (; n + L <= N; n += L) Tile1<RM>(C + n, ldc, A, lda, B + n, ldb, K, acc);
  if (n < N) TailColumns(C + n, ldc, A, lda, B + n, ldb, RM, N - n, K, acc);
}

template <int RM>
HWY_INLINE void RowsDispatch(int64_t rm, float* C, int64_t ldc, const float* A, int64_t lda, const float* B,
                             int64_t ldb, int64_t N, int64_t K, bool acc) {
  if constexpr (RM >= 1) {
    if (rm == RM) return Rows<RM>(C, ldc, A, lda, B, ldb, N, K, acc);
    RowsDispatch<RM - 1>(rm, C, ldc, A, lda, B, ldb, N, K, acc);
  }
}

template <int RM>
HWY_INLINE void Tile2Dispatch(int64_t rm, float* C, int64_t ldc, const float* A, int64_t lda, const float* B,
                              int64_t ldb, int64_t K, bool acc) {
  if constexpr (RM >= 1) {
    if (rm == RM) return Tile2<RM>(C, ldc, A, lda, B, ldb, K, acc);
    Tile2Dispatch<RM - 1>(rm, C, ldc, A, lda, B, ldb, K, acc);
  }
}

void GemmBlocked(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate) {
  // B is packed block by block into strips of 2L columns, each KC rows of 2L contiguous floats: read
  // in place at a large stride, B's rows map onto a few L1 sets and evict each other.
  constexpr int64_t KC = 256, NC = 128;
  const hn::ScalableTag<float> d;
  const int64_t W = 2 * static_cast<int64_t>(hn::Lanes(d));
  alignas(64) float packed[KC * NC];
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int64_t kc = std::min(KC, K - k0);
    const bool acc = accumulate || k0 > 0;
    for (int64_t n0 = 0; n0 < N; n0 += NC) {
      const int64_t nc = std::min(NC, N - n0);
      const int64_t strips = W <= NC ? nc / W : 0;  // whole 2L-column strips, packed
      for (int64_t s = 0; s < strips; ++s)
        for (int64_t k = 0; k < kc; ++k)
          std::copy_n(B + (k0 + k) * ldb + n0 + s * W, W, packed + (s * kc + k) * W);
      const int64_t rest = n0 + strips * W;  // columns after the strips, read in place
      // The packed block (KC × NC, 128 KiB) stays in L2 while every row tile of A passes over it.
      for (int64_t m = 0; m < M; m += 6) {
        const int64_t rm = std::min<int64_t>(6, M - m);
        float* Cm = C + m * ldc;
        const float* Am = A + m * lda + k0;
        for (int64_t s = 0; s < strips; ++s)
          Tile2Dispatch<6>(rm, Cm + n0 + s * W, ldc, Am, lda, packed + s * kc * W, W, kc, acc);
        if (rest < n0 + nc)
          RowsDispatch<6>(rm, Cm + rest, ldc, Am, lda, B + k0 * ldb + rest, ldb, n0 + nc - rest, kc, acc);
      }
    }
  }
  if (K == 0 && !accumulate)
    for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, 0.0f);
}

}  // namespace HWY_NAMESPACE
}  // namespace optiq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace optiq {
HWY_EXPORT(GemmBlocked);

void gemm_f32_blocked(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
                      int64_t N, int64_t K, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(GemmBlocked)(C, ldc, A, lda, B, ldb, M, N, K, accumulate);
}

}  // namespace optiq
#endif  // HWY_ONCE
