// The linear layers of the kernel seam (matmul, matmul_multi, matmul_grouped): which kernel runs
// each call is decided here, in path_of / shared_path, and nowhere else. Also the dense kernel:
// out[T, N] = x[T, K] · Wᵀ for f32 / bf16 weights, Highway with runtime dispatch.
// bf16 weights are widened to f32 in registers (shift left 16); accumulation is fp32.
// Register tile: 4 activation rows × 4 weight rows, so each loaded weight vector feeds 4 FMAs and
// a block forward (T = 32) re-reads each weight row from L1 rather than from memory.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <algorithm>

#include "core/status.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "kernels/matmul_q.h"
#include "kernels/parallel.h"
#include "kernels/weight.h"
#include "kernels/x86/matmul_q_amx.h"
#include "kernels/x86/matmul_q_packed.h"
#include "kernels/x86/matmul_q_vnni.h"

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

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// One activation row against the tile's weight vectors: c_j += xv · w_j for j < RN (1 or 4).
template <int RN>
HWY_INLINE void fma_row(VF xv, VF w0, VF w1, VF w2, VF w3, VF& c0, VF& c1, VF& c2, VF& c3) {
  c0 = hn::MulAdd(xv, w0, c0);
  if constexpr (RN > 1) {
    c1 = hn::MulAdd(xv, w1, c1);
    c2 = hn::MulAdd(xv, w2, c2);
    c3 = hn::MulAdd(xv, w3, c3);
  }
}

// One output: the lanes of c plus the scalar tail k ≥ k_end of x_r · w_r.
template <typename WT>
HWY_INLINE float finish(DF df, VF c, const float* HWY_RESTRICT xr, const WT* HWY_RESTRICT wr, int64_t k_end,
                        int64_t K) {
  float s = hn::GetLane(hn::SumOfLanes(df, c));
  for (int64_t kk = k_end; kk < K; ++kk) s += xr[kk] * scalar_weight(wr + kk);
  return s;
}

// out[j] for the weight rows j < RN of one activation row.
template <int RN, typename WT>
HWY_INLINE void finish_row(DF df, VF c0, VF c1, VF c2, VF c3, const float* HWY_RESTRICT xr, const WT* const* wr,
                           int64_t k_end, int64_t K, float* HWY_RESTRICT out) {
  out[0] = finish(df, c0, xr, wr[0], k_end, K);
  if constexpr (RN > 1) {
    out[1] = finish(df, c1, xr, wr[1], k_end, K);
    out[2] = finish(df, c2, xr, wr[2], k_end, K);
    out[3] = finish(df, c3, xr, wr[3], k_end, K);
  }
}

// Computes out rows [t0, t0+RT) × cols [n0, n0+RN) with RT <= 4, RN = 1 or 4. The accumulators
// are named variables, not an array (SVE vectors are sizeless and cannot be array elements); c_ij
// is activation row i × weight row j.
template <int RT, int RN, typename WT>
HWY_INLINE void tile(float* HWY_RESTRICT out, int64_t ldo, const float* HWY_RESTRICT x, int64_t K,
                     const WT* HWY_RESTRICT w, int64_t t0, int64_t n0) {
  static_assert(RT >= 1 && RT <= 4 && (RN == 1 || RN == 4), "tile shape");
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  VF c00 = hn::Zero(df), c01 = hn::Zero(df), c02 = hn::Zero(df), c03 = hn::Zero(df);
  VF c10 = hn::Zero(df), c11 = hn::Zero(df), c12 = hn::Zero(df), c13 = hn::Zero(df);
  VF c20 = hn::Zero(df), c21 = hn::Zero(df), c22 = hn::Zero(df), c23 = hn::Zero(df);
  VF c30 = hn::Zero(df), c31 = hn::Zero(df), c32 = hn::Zero(df), c33 = hn::Zero(df);
  const float* xr[RT];
  const WT* wr[RN];
  for (int i = 0; i < RT; ++i) xr[i] = x + (t0 + i) * K;
  for (int j = 0; j < RN; ++j) wr[j] = w + (n0 + j) * K;
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    // The weight rows after this tile: keeps several lines in flight in the bandwidth-bound matvec.
    for (int j = 0; j < RN; ++j) hwy::Prefetch(wr[j] + RN * K + k);
    const VF w0 = load_weight(df, wr[0] + k);
    VF w1 = w0, w2 = w0, w3 = w0;
    if constexpr (RN > 1) {
      w1 = load_weight(df, wr[1] + k);
      w2 = load_weight(df, wr[2] + k);
      w3 = load_weight(df, wr[3] + k);
    }
    fma_row<RN>(hn::LoadU(df, xr[0] + k), w0, w1, w2, w3, c00, c01, c02, c03);
    if constexpr (RT > 1) fma_row<RN>(hn::LoadU(df, xr[1] + k), w0, w1, w2, w3, c10, c11, c12, c13);
    if constexpr (RT > 2) fma_row<RN>(hn::LoadU(df, xr[2] + k), w0, w1, w2, w3, c20, c21, c22, c23);
    if constexpr (RT > 3) fma_row<RN>(hn::LoadU(df, xr[3] + k), w0, w1, w2, w3, c30, c31, c32, c33);
  }
  float* o = out + t0 * ldo + n0;
  finish_row<RN>(df, c00, c01, c02, c03, xr[0], wr, k, K, o);
  if constexpr (RT > 1) finish_row<RN>(df, c10, c11, c12, c13, xr[1], wr, k, K, o + ldo);
  if constexpr (RT > 2) finish_row<RN>(df, c20, c21, c22, c23, xr[2], wr, k, K, o + 2 * ldo);
  if constexpr (RT > 3) finish_row<RN>(df, c30, c31, c32, c33, xr[3], wr, k, K, o + 3 * ldo);
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

// Weights per matmul_multi / matmul_grouped call that a trace entry or group holds (q/k/v: 3).
constexpr size_t kMaxGroupedWeights = 4;

namespace {

void matmul_dense(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  const int64_t N = w.n_out, K = w.n_in;
  // Grain of 16 rows keeps each thread's weight slice contiguous and tile-aligned.
  const int64_t grain = parallel_grain(N, T * K, 16);
  switch (w.dtype) {
    case DType::kF32:
      ctx.parallel_for(N, [&](int64_t b, int64_t e, int) {
        HWY_DYNAMIC_DISPATCH(DenseF32)(out, x, T, K, N, static_cast<const float*>(w.data), b, e);
      }, grain);
      return;
    case DType::kBF16:
      ctx.parallel_for(N, [&](int64_t b, int64_t e, int) {
        HWY_DYNAMIC_DISPATCH(DenseBF16)(out, x, T, K, N, static_cast<const uint16_t*>(w.data), b, e);
      }, grain);
      return;
    default:
      OPTIQ_CHECK_MSG(false, std::string("matmul: unsupported weight dtype ") + dtype_name(w.dtype));
  }
}

// ---- Which kernel runs a call: decided here, once per call, for every linear layer. ----

enum class Path {
  kDense,    // f32 / bf16 weights: the Highway tile kernel above
  kExact,    // tiny quantized matrices: dequantize, fp32 dot products (matmul_q.h)
  kAmx,      // chunks of many rows on AMX tiles (x86/matmul_q_amx.h)
  kPacked,   // the row-interleaved decode copy (x86/matmul_q_packed.h)
  kVnni,     // AVX-512 VNNI on the file layout (x86/matmul_q_vnni.h)
  kHighway,  // the portable quantized kernel (matmul_q.cpp)
};

Path path_of(const Weight& w, int64_t T, const Numerics& num) {
  if (!w.quantized()) return Path::kDense;
  if (w.n_out * w.n_in <= kExactMaxWeights) return Path::kExact;
  // AMX tiles sum in another order than a one-row call: not under row-invariant numerics.
  if (T >= kAmxMinRows && !num.row_invariant && amx_available()) return Path::kAmx;
  if (w.packed) return Path::kPacked;
  if (vnni_available()) return Path::kVnni;
  return Path::kHighway;
}

// The path that computes all of `outs` in one pass (activations prepared once), or kDense when
// they take one call each. Packed copies may differ in bit width but share K and group size; AMX
// and VNNI passes also need one bit width (a VNNI pass reads packed weights' file layout).
Path shared_path(std::span<const MatmulOut> outs, int64_t T, const Numerics& num) {
  const Weight& w0 = *outs[0].w;
  const Path p0 = path_of(w0, T, num);
  bool all_packed = true, one_pass = p0 == Path::kAmx || p0 == Path::kPacked || p0 == Path::kVnni;
  for (const MatmulOut& o : outs) {
    const Weight& w = *o.w;
    const Path p = path_of(w, T, num);
    const bool same_k_groups = w.n_in == w0.n_in && w.quant.group_size == w0.quant.group_size;
    all_packed = all_packed && p == Path::kPacked && same_k_groups;
    one_pass = one_pass && same_k_groups && w.quant.bits == w0.quant.bits &&
               (p0 == Path::kAmx ? p == Path::kAmx : p == Path::kPacked || p == Path::kVnni);
  }
  if (all_packed) return Path::kPacked;
  if (one_pass) return p0 == Path::kAmx ? Path::kAmx : Path::kVnni;
  return Path::kDense;
}

void matmul_one(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  const MatmulOut o{out, &w};
  switch (path_of(w, T, ctx.numerics())) {
    case Path::kDense: return matmul_dense(out, x, T, w, ctx);
    case Path::kExact: return matmul_q_exact(out, x, T, w, ctx);
    case Path::kAmx: return matmul_q_amx({&o, 1}, x, T, ctx);
    case Path::kPacked: return matmul_q_packed({&o, 1}, x, T, ctx);
    case Path::kVnni: return matmul_q_vnni({&o, 1}, x, T, ctx);
    case Path::kHighway: return matmul_q_highway(out, x, T, w, ctx);
  }
}

// The slices of group g of n_groups: every output's rows split into n_groups equal parts.
struct GroupSlices {
  RowSlice s[kMaxGroupedWeights];
  size_t n = 0;
  std::span<const RowSlice> span() const { return {s, n}; }
};
GroupSlices group_slices(std::span<const MatmulOut> outs, int64_t g, int64_t n_groups) {
  GroupSlices gs;
  for (const MatmulOut& o : outs) {
    const int64_t rows = o.w->n_out / n_groups;
    gs.s[gs.n++] = {o.out, o.w, g * rows, (g + 1) * rows};
  }
  return gs;
}

// Whether matmul_grouped can compute each group's slices inside its pass: packed weights whose
// group boundaries fall on the packed layout's slice boundaries.
bool grouped_by_slices(std::span<const MatmulOut> outs, int64_t n_groups, const KernelContext& ctx) {
  if (outs.size() > kMaxGroupedWeights || shared_path(outs, 1, ctx.numerics()) != Path::kPacked) return false;
  for (const MatmulOut& o : outs)
    if (o.w->n_out % n_groups != 0) return false;
  return packed_slices_ok(group_slices(outs, 0, n_groups).span()) &&
         packed_slices_ok(group_slices(outs, n_groups - 1, n_groups).span());
}

// ---- Prefetch ahead: the matmul trace of a forward (see KernelContext) ----

// One recorded call: the spans an idle worker should prefetch before it (empty when its path
// streams nothing worth prefetching), and what identifies it.
struct TracedCall {
  const void* weights[kMaxGroupedWeights] = {};
  size_t n_weights = 0;
  int64_t rows = 0, groups = 0;
  ThreadPool::Span spans[ThreadPool::kMaxPrefetchSpans];
  int n_spans = 0;
  bool same_call(const TracedCall& o) const {
    return n_weights == o.n_weights && rows == o.rows && groups == o.groups &&
           std::equal(weights, weights + n_weights, o.weights);
  }
};
struct MatmulTrace {
  std::vector<TracedCall> calls;
  size_t next = 0;  // index of the current forward's next call
};
// Calls a trace holds (~2 MB): a dhara-250m forward makes ~120, a 128-expert MoE forward thousands;
// a context used for more (a benchmark loop) stops recording there.
constexpr size_t kMaxTracedCalls = size_t{1} << 14;

void hint(const MatmulTrace& tr, size_t i, const KernelContext& ctx) {
  if (i < tr.calls.size() && tr.calls[i].n_spans > 0)
    ctx.pool().prefetch_while_idle({tr.calls[i].spans, static_cast<size_t>(tr.calls[i].n_spans)});
}

// Records the call about to run as the forward's next, and once it has run (`after` = true) hands the
// worker what the call after it read last time. Only the context's own thread records; calls with
// more weights than a trace entry holds are not traced.
void trace(std::span<const MatmulOut> outs, int64_t T, int64_t groups, const KernelContext& ctx) {
  if (!ctx.can_parallelize() || ctx.pool().size() < 2 || outs.size() > kMaxGroupedWeights) return;
  MatmulTrace& tr = ctx.buffers<MatmulTrace>();
  if (tr.next >= kMaxTracedCalls) return;
  TracedCall c;
  for (const MatmulOut& o : outs) c.weights[c.n_weights++] = o.w;
  c.rows = T;
  c.groups = groups;
  if (tr.next >= tr.calls.size() || !tr.calls[tr.next].same_call(c)) {
    // A new sequence from here on: record this call's spans.
    if (groups > 0 && grouped_by_slices(outs, groups, ctx))
      c.n_spans = matmul_q_packed_slices_spans(group_slices(outs, std::min<int64_t>(1, groups - 1), groups).span(),
                                               c.spans);  // the worker's first group is group 1
    else if (shared_path(outs, T, ctx.numerics()) == Path::kPacked)
      c.n_spans = matmul_q_packed_prefetch_spans(outs, ctx.pool().size(), c.spans);
    tr.calls.resize(tr.next);
    tr.calls.push_back(c);
  }
  ++tr.next;
  hint(tr, tr.next, ctx);
}

}  // namespace

void matmul_trace_begin(const KernelContext& ctx) {
  if (ctx.pool().size() < 2) return;
  MatmulTrace& tr = ctx.buffers<MatmulTrace>();
  tr.next = 0;
  hint(tr, 0, ctx);
}

void matmul(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  matmul_one(out, x, T, w, ctx);
  const MatmulOut o{out, &w};
  trace({&o, 1}, T, 0, ctx);
}

void matmul_multi(std::span<const MatmulOut> outs, const float* x, int64_t T, const KernelContext& ctx) {
  if (outs.empty()) return;
  switch (shared_path(outs, T, ctx.numerics())) {
    case Path::kPacked: matmul_q_packed(outs, x, T, ctx); break;
    case Path::kAmx: matmul_q_amx(outs, x, T, ctx); break;
    case Path::kVnni: matmul_q_vnni(outs, x, T, ctx); break;
    default:
      for (const MatmulOut& o : outs) matmul_one(o.out, x, T, *o.w, ctx);
  }
  trace(outs, T, 0, ctx);
}

void matmul_grouped(std::span<const MatmulOut> outs, const float* x, int64_t n_groups, const GroupFn& fn,
                    const KernelContext& ctx) {
  OPTIQ_CHECK(n_groups > 0 && !outs.empty());
  if (grouped_by_slices(outs, n_groups, ctx)) {
    ctx.parallel_for(n_groups, [&](int64_t gb, int64_t ge, int thread) {
      const KernelContext wctx = ctx.for_worker(thread);
      for (int64_t g = gb; g < ge; ++g) {
        matmul_q_packed_slices(group_slices(outs, g, n_groups).span(), x, 1, wctx);
        fn(g, wctx);
      }
    }, 1);
  } else {
    matmul_multi(outs, x, 1, ctx);
    ctx.parallel_for(n_groups, [&](int64_t gb, int64_t ge, int thread) {
      const KernelContext wctx = ctx.for_worker(thread);
      for (int64_t g = gb; g < ge; ++g) fn(g, wctx);
    }, 1);
  }
  trace(outs, 1, n_groups, ctx);
}

bool add_decode_layout(Weight& w, HugePageArena& arena) {
  if (!w.quantized() || w.n_out * w.n_in <= kExactMaxWeights || !packable(w)) return false;
  w.packed = pack_rows(w, arena);
  return true;
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
