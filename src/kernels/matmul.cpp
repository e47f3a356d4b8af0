// Dense matmul out[T, N] = x[T, K] · Wᵀ for f32 / bf16 weights, Highway with runtime dispatch.
// bf16 weights are widened to f32 in registers (shift left 16); accumulation is fp32.
// Register tile: 4 activation rows × 4 weight rows, so each loaded weight vector feeds 4 FMAs and
// a block forward (T = 32) re-reads each weight row from L1 rather than from memory.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include "core/status.h"
#include "kernels/matmul_q.h"
#include "kernels/parallel.h"
#include "kernels/weight.h"

HWY_BEFORE_NAMESPACE();
namespace optiq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D>
HWY_INLINE hn::Vec<D> load_weight(D df, const float* p) {
  return hn::LoadU(df, p);
}
template <class D>
HWY_INLINE hn::Vec<D> load_weight(D df, const uint16_t* p) {
  const hn::Rebind<uint16_t, D> d16;
  const hn::Rebind<uint32_t, D> du32;
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(d16, p))));
}
HWY_INLINE float scalar_weight(const float* p) { return *p; }
HWY_INLINE float scalar_weight(const uint16_t* p) { return bf16_to_f32(*p); }

// Computes out rows [t0, t0+RT) × cols [n0, n0+RN) with RT, RN <= 4.
template <int RT, int RN, typename WT>
HWY_INLINE void tile(float* HWY_RESTRICT out, int64_t ldo, const float* HWY_RESTRICT x, int64_t K,
                     const WT* HWY_RESTRICT w, int64_t t0, int64_t n0) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  hn::Vec<decltype(df)> acc[RT][RN];
  for (int i = 0; i < RT; ++i)
    for (int j = 0; j < RN; ++j) acc[i][j] = hn::Zero(df);
  const float* xr[RT];
  const WT* wr[RN];
  for (int i = 0; i < RT; ++i) xr[i] = x + (t0 + i) * K;
  for (int j = 0; j < RN; ++j) wr[j] = w + (n0 + j) * K;
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    hn::Vec<decltype(df)> wv[RN];
    // The weight rows after this tile: keeps several lines in flight in the bandwidth-bound matvec.
    for (int j = 0; j < RN; ++j) hwy::Prefetch(wr[j] + RN * K + k);
    for (int j = 0; j < RN; ++j) wv[j] = load_weight(df, wr[j] + k);
    for (int i = 0; i < RT; ++i) {
      const auto xv = hn::LoadU(df, xr[i] + k);
      for (int j = 0; j < RN; ++j) acc[i][j] = hn::MulAdd(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < RT; ++i) {
    for (int j = 0; j < RN; ++j) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[i][j]));
      for (int64_t kk = k; kk < K; ++kk) s += xr[i][kk] * scalar_weight(wr[j] + kk);
      out[(t0 + i) * ldo + n0 + j] = s;
    }
  }
}

template <int RT, typename WT>
HWY_INLINE void rows_tile(float* out, int64_t ldo, const float* x, int64_t K, const WT* w, int64_t t0,
                          int64_t nb, int64_t ne) {
  int64_t n = nb;
  for (; n + 4 <= ne; n += 4) tile<RT, 4>(out, ldo, x, K, w, t0, n);
  for (; n < ne; ++n) tile<RT, 1>(out, ldo, x, K, w, t0, n);
}

template <typename WT>
void dense_range(float* out, const float* x, int64_t T, int64_t K, int64_t N, const WT* w, int64_t nb, int64_t ne) {
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) rows_tile<4>(out, N, x, K, w, t, nb, ne);
  switch (T - t) {
    case 3: rows_tile<3>(out, N, x, K, w, t, nb, ne); break;
    case 2: rows_tile<2>(out, N, x, K, w, t, nb, ne); break;
    case 1: rows_tile<1>(out, N, x, K, w, t, nb, ne); break;
    default: break;
  }
}

void DenseF32(float* out, const float* x, int64_t T, int64_t K, int64_t N, const float* w, int64_t nb, int64_t ne) {
  dense_range(out, x, T, K, N, w, nb, ne);
}
void DenseBF16(float* out, const float* x, int64_t T, int64_t K, int64_t N, const uint16_t* w, int64_t nb,
               int64_t ne) {
  dense_range(out, x, T, K, N, w, nb, ne);
}

}  // namespace HWY_NAMESPACE
}  // namespace optiq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace optiq {
HWY_EXPORT(DenseF32);
HWY_EXPORT(DenseBF16);

size_t Weight::bytes() const {
  if (!quantized()) return static_cast<size_t>(n_out) * static_cast<size_t>(n_in) * dtype_size(dtype);
  size_t packed = static_cast<size_t>(n_out) * static_cast<size_t>(n_in) * quant.bits / 8;
  size_t groups = static_cast<size_t>(n_out) * static_cast<size_t>(n_in / quant.group_size);
  return packed + 2 * groups * dtype_size(quant.scale_dtype);
}

namespace {
thread_local bool tl_row_invariant = false;
}  // namespace

RowInvariantScope::RowInvariantScope() : prev_(tl_row_invariant) { tl_row_invariant = true; }
RowInvariantScope::~RowInvariantScope() { tl_row_invariant = prev_; }
bool row_invariant() { return tl_row_invariant; }

void matmul(float* out, const float* x, int64_t T, const Weight& w, ThreadPool& pool) {
  if (w.quantized()) {
    matmul_q(out, x, T, w, pool);
    return;
  }
  const int64_t N = w.n_out, K = w.n_in;
  // Grain of 16 rows keeps each thread's weight slice contiguous and tile-aligned.
  const int64_t grain = parallel_grain(N, T * K, 16);
  switch (w.dtype) {
    case DType::kF32:
      pool.parallel_for(N, [&](int64_t b, int64_t e, int) {
        HWY_DYNAMIC_DISPATCH(DenseF32)(out, x, T, K, N, static_cast<const float*>(w.data), b, e);
      }, grain);
      return;
    case DType::kBF16:
      pool.parallel_for(N, [&](int64_t b, int64_t e, int) {
        HWY_DYNAMIC_DISPATCH(DenseBF16)(out, x, T, K, N, static_cast<const uint16_t*>(w.data), b, e);
      }, grain);
      return;
    default:
      OPTIQ_CHECK_MSG(false, std::string("matmul: unsupported weight dtype ") + dtype_name(w.dtype));
  }
}

void matmul_multi(std::span<const MatmulOut> outs, const float* x, int64_t T, ThreadPool& pool) {
  bool all_quantized = true;
  for (const MatmulOut& o : outs) all_quantized = all_quantized && o.w->quantized();
  if (all_quantized && !outs.empty()) {
    matmul_q_multi(outs, x, T, pool);
    return;
  }
  for (const MatmulOut& o : outs) matmul(o.out, x, T, *o.w, pool);
}

void matmul_reference(float* out, const float* x, int64_t T, const Weight& w) {
  std::vector<float> row(static_cast<size_t>(w.n_in));
  for (int64_t n = 0; n < w.n_out; ++n) {
    if (w.quantized())
      dequantize_row_reference(w, n, row.data());
    else
      weight_row(w, n, row.data());
    for (int64_t t = 0; t < T; ++t) {
      double s = 0;
      for (int64_t k = 0; k < w.n_in; ++k) s += static_cast<double>(x[t * w.n_in + k]) * row[k];
      out[t * w.n_out + n] = static_cast<float>(s);
    }
  }
}

void weight_row(const Weight& w, int64_t row, float* out) {
  if (w.quantized()) {
    dequantize_row(w, row, out);
    return;
  }
  const size_t K = static_cast<size_t>(w.n_in);
  const uint8_t* base = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(row) * K * dtype_size(w.dtype);
  convert_to_f32(w.dtype, base, out, K);
}

}  // namespace optiq
#endif  // HWY_ONCE
