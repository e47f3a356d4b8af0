// MLX affine quantized matmul (specs/mlx-format.md §1–§2), Highway with runtime dispatch.
//
// Per group g of a weight row, w_k = s_g·q_k + b_g, so
//   Σ_k x_k·w_k = Σ_g s_g·(Σ_{k∈g} x_k·q_k) + Σ_g b_g·(Σ_{k∈g} x_k).
// The first term is an integer dot product: activations are quantized once per call to int8 values
// with one scale per (row, group) (|error| <= amax_g/(2·kActQMax) per element, see matmul_q.h), and
// codes are widened to int16 in registers, so the inner loop is vpmaddwd / AVX512-VNNI vpdpwssd with
// int32 accumulators (no overflow: |q·x| <= 255·127 and a step adds at most 16 products per lane).
// The bias term uses exact fp32 group sums of x. (This portable path keeps the activations in int16
// lanes; the VNNI and AMX kernels hold the same values as bytes.)
//
// This file is the portable matvec (AR decode) path and the fallback for every T; matmul.cpp decides
// which path a call takes (AMX tiles, VNNI, the packed decode layout: kernels/x86/, same numerics).
//
// Layout trick: a 32-bit lane of packed codes holds cpl = 32/bits consecutive codes (4, 8, 16 for
// 8, 4, 2 bits). Word vector v = (lane >> bits·v) & (m | m<<16) holds codes v and v + cpl/2 of every
// lane, so decoding is one shift + one AND per vector, and every int32 accumulator lane sums codes of
// one lane-run, hence of one group (cpl <= 16 < 32 <= group size). The activations are permuted once
// per call to match. 3/5/6-bit rows are first decoded to bytes and go through the 8-bit path.
// Weights stay in the file layout (no repack). A step is cpl·Lanes() codes with Lanes() read at run
// time (SVE vectors are length-agnostic; Highway rounds their lane count down to a power of two), so
// the activations are prepared for the vector length of the target that runs.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/matmul_q.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <hwy/aligned_allocator.h>
#include <hwy/cache_control.h>

#include "core/status.h"
#include "kernels/matmul_q.h"
#include "kernels/parallel.h"
#include "kernels/quant_codes.h"

#ifndef OPTIQ_MATMUL_Q_SHARED
#define OPTIQ_MATMUL_Q_SHARED
namespace optiq {
namespace mq {

// Activations prepared for one weight layout: int8-range codes in int16 lanes (kernel lane order), per-row scale,
// and per-group sums divided by that scale (so the bias term joins the integer term before the
// final multiply by sx).
struct PreparedX {
  hwy::AlignedFreeUniquePtr<int16_t[]> q;     // [T, Kp], permuted within each step
  hwy::AlignedFreeUniquePtr<float[]> sx_lane;  // [T, Kp / cpl]: scale of the group each lane covers
  std::vector<float> xs;                       // [T, ngp], Σ_{k∈g} x (exact fp32), zero padded
  int64_t Kp = 0, ngp = 0, n_sl = 0;
};

// perm[p] = position in the kernel's step layout of code p of the step (see file comment).
inline std::vector<int32_t> step_permutation(int64_t cpl, int64_t lanes) {
  const int64_t step = cpl * lanes, half = cpl / 2;
  std::vector<int32_t> perm(static_cast<size_t>(step));
  for (int64_t p = 0; p < step; ++p) {
    const int64_t i = p / cpl, j = p % cpl, v = j % half, w = j / half;
    perm[p] = static_cast<int32_t>(v * 2 * lanes + 2 * i + w);
  }
  return perm;
}

// Quantizes x[T, K] to int8 values (kActQMax) with one scale per (row, group): an outlier only coarsens its own
// group. Rows are split across the pool.
inline void prepare_x(const float* x, int64_t T, int64_t K, int64_t cpl, int64_t lanes, int64_t gs, PreparedX* px,
                      const KernelContext& ctx) {
  const int64_t step = cpl * lanes;
  const int64_t Kp = (K + step - 1) / step * step;
  const int64_t ng = K / gs;
  const int64_t ngp = (ng + lanes - 1) / lanes * lanes;
  const int64_t n_sl = Kp / cpl;
  px->Kp = Kp;
  px->ngp = ngp;
  px->n_sl = n_sl;
  px->q = hwy::AllocateAligned<int16_t>(static_cast<size_t>(T * Kp));
  px->sx_lane = hwy::AllocateAligned<float>(static_cast<size_t>(T * n_sl));
  px->xs.assign(static_cast<size_t>(T * ngp), 0.f);
  const std::vector<int32_t> perm = step_permutation(cpl, lanes);
  auto rows = [&](int64_t tb, int64_t te, int) {
    std::vector<int16_t> nat(static_cast<size_t>(Kp));
    std::vector<float> sxg(static_cast<size_t>(ng + 1), 0.f);
    for (int64_t t = tb; t < te; ++t) {
      const float* xr = x + t * K;
      float* xs = px->xs.data() + t * ngp;
      for (int64_t g = 0; g < ng; ++g) {
        float amax = 0.f, sum = 0.f;
        for (int64_t k = g * gs; k < (g + 1) * gs; ++k) {
          amax = std::max(amax, std::fabs(xr[k]));
          sum += xr[k];
        }
        xs[g] = sum;
        const float sx = amax > 0.f ? amax / kActQMax : 1.f;
        sxg[g] = sx;
        const float inv = 1.f / sx;
        // Round half to even without a libm call: adding 1.5·2^23 leaves the integer part in the
        // mantissa (|x·inv| <= kActQMax < 2^22), the same rounding as lrintf / the AMX path.
        for (int64_t k = g * gs; k < (g + 1) * gs; ++k)
          nat[k] = static_cast<int16_t>((xr[k] * inv + 12582912.f) - 12582912.f);
      }
      std::fill(nat.begin() + K, nat.end(), 0);
      int16_t* qr = px->q.get() + t * Kp;
      for (int64_t s = 0; s < Kp; s += step)
        for (int64_t p = 0; p < step; ++p) qr[s + perm[p]] = nat[s + p];
      // Lane l covers codes l·cpl .. l·cpl + cpl − 1, all in group l·cpl / gs (zero past K).
      float* sl = px->sx_lane.get() + t * n_sl;
      for (int64_t l = 0; l < n_sl; ++l) sl[l] = sxg[std::min(ng, l * cpl / gs)];
    }
  };
  ctx.parallel_for(T, rows, parallel_grain(T, 4 * K, 1));
}

// Dequantize each row, then fp32 dot products (row-parallel).
inline void matmul_q_exact(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  const int64_t N = w.n_out, K = w.n_in;
  ctx.parallel_for(N, [&](int64_t b, int64_t e, int) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = b; n < e; ++n) {
      dequantize_row(w, n, row.data());
      for (int64_t t = 0; t < T; ++t) {
        const float* xr = x + t * K;
        float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;  // independent sums: vectorizable
        int64_t k = 0;
        for (; k + 4 <= K; k += 4) {
          s0 += xr[k] * row[k];
          s1 += xr[k + 1] * row[k + 1];
          s2 += xr[k + 2] * row[k + 2];
          s3 += xr[k + 3] * row[k + 3];
        }
        for (; k < K; ++k) s0 += xr[k] * row[k];
        out[t * N + n] = (s0 + s1) + (s2 + s3);
      }
    }
  }, parallel_grain(N, T * K, 16));
}

}  // namespace mq
}  // namespace optiq
#endif  // OPTIQ_MATMUL_Q_SHARED

HWY_BEFORE_NAMESPACE();
namespace optiq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
// The static baseline target (single lanes, no int16 pairs): the dequantize-and-dot exact path. It
// only runs on x86-64 CPUs without SSSE3.
void MatmulQ(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  mq::matmul_q_exact(out, x, T, w, ctx);
}
#else
using DI32 = hn::ScalableTag<int32_t>;
using DU32 = hn::Repartition<uint32_t, DI32>;
using DI16 = hn::Repartition<int16_t, DI32>;
using DF = hn::Repartition<float, DI32>;
using VI32 = hn::Vec<DI32>;
using VI16 = hn::Vec<DI16>;
using VF = hn::Vec<DF>;
using VU32 = hn::Vec<DU32>;
using IdxF = decltype(hn::SetTableIndices(DF(), static_cast<const int32_t*>(nullptr)));
// The vector length is Lanes() at run time (SVE); this is its compile-time bound, for buffers.
constexpr int64_t kMaxLanes = static_cast<int64_t>(hn::MaxLanes(DI32()));
constexpr int kTileT = 8;  // activation rows per register tile
constexpr int kBlockN = 16;  // weight rows whose scales are converted together
constexpr int64_t kPrefetchRows = 4;  // software prefetch distance, in weight rows

// acc += pairwise int16 products (lane i gets a[2i]·b[2i] + a[2i+1]·b[2i+1]).
HWY_INLINE VI32 dot_pairs(VI32 acc, VI16 a, VI16 b, VI32& acc1) {
#if HWY_TARGET == HWY_AVX3_DL
  // Highway 1.0.3 lowers this to vpmaddwd + vpaddd; VNNI fuses both. Inline asm because the
  // AVX3_DL target attribute string lacks avx512vnni (the target itself requires it).
  (void)acc1;
  __m512i r = acc.raw;
  asm("vpdpwssd %2, %1, %0" : "+v"(r) : "v"(a.raw), "v"(b.raw));
  return VI32{r};
#else
  return hn::ReorderWidenMulAccumulate(DI32(), a, b, acc, acc1);
#endif
}

struct QArgs {
  const uint8_t* rows;   // packed rows (or decoded bytes for 3/5/6 bits)
  int64_t row_bytes;     // bytes per row in `rows`
  int64_t K, N, gs, gshift;  // gs = 1 << gshift
  int64_t lanes;         // Lanes(DI32()), which px's layout was made for
  const int32_t* lane_group;  // [lanes]: group of lane i relative to the step's first group
  const mq::PreparedX* px;
  float* out;            // [T, N]
};

// The scalars of one step of a tile (vectors travel as arguments: SVE vectors cannot be members).
struct Step {
  int64_t s;                 // step index
  int64_t n_full, tail;      // whole steps in a row; bytes in the row's last, partial step
  int64_t step_bytes, lanes;
  const int16_t* xq;         // activation codes of the tile's first row at this step
  const float* xl;           // their lane scales at this step
  int64_t Kp, n_sl;          // activation row strides of xq and xl
  bool multi_group;          // step >= group size: a lane's scale is lane_group[lane] groups on
  uint8_t* tail_buf;         // [step_bytes], aligned
};

// Word vector v of a step's packed codes: codes v and v + cpl/2 of every 32-bit lane (file comment).
template <int B>
HWY_INLINE VI16 codes(VU32 lw, int v, VU32 mask) {
  return hn::BitCast(DI16(), hn::And(hn::ShiftRightSame(lw, B * v), mask));
}

// f += (Σ_v w_v·x_v, exact in int32) · sw · sx for one weight row's step and the tile's activation row
// t: the V = cpl/2 word vectors w_v, the row's codes (V vectors of 2·lanes int16 in the step's
// permuted order), sw the weight row's group scale per lane and sx the activation row's.
template <int V>
HWY_INLINE VF step_dot(VF f, VF sw, const Step& st, int t, VI16 w0, VI16 w1, VI16 w2, VI16 w3, VI16 w4, VI16 w5,
                       VI16 w6, VI16 w7) {
  static_assert(V == 2 || V == 4 || V == 8, "word vectors per step");
  const DI32 di32;
  const DI16 di16;
  const DF df;
  const int16_t* HWY_RESTRICT xq = st.xq + t * st.Kp;
  const int64_t L = st.lanes;
  const VF sx = hn::Load(df, st.xl + t * st.n_sl);
  // Two accumulators halve the dependent vpdpwssd chain.
  VI32 i0 = hn::Zero(di32), i1 = hn::Zero(di32), j0 = hn::Zero(di32), j1 = hn::Zero(di32);
  i0 = dot_pairs(i0, w0, hn::Load(di16, xq), i1);
  j0 = dot_pairs(j0, w1, hn::Load(di16, xq + 2 * L), j1);
  if constexpr (V > 2) {
    i0 = dot_pairs(i0, w2, hn::Load(di16, xq + 4 * L), i1);
    j0 = dot_pairs(j0, w3, hn::Load(di16, xq + 6 * L), j1);
  }
  if constexpr (V > 4) {
    i0 = dot_pairs(i0, w4, hn::Load(di16, xq + 8 * L), i1);
    j0 = dot_pairs(j0, w5, hn::Load(di16, xq + 10 * L), j1);
    i0 = dot_pairs(i0, w6, hn::Load(di16, xq + 12 * L), i1);
    j0 = dot_pairs(j0, w7, hn::Load(di16, xq + 14 * L), j1);
  }
  const VI32 acc = hn::Add(hn::RearrangeToOddPlusEven(i0, i1), hn::RearrangeToOddPlusEven(j0, j1));
  return hn::MulAdd(hn::ConvertTo(df, acc), hn::Mul(sw, sx), f);
}

// One weight row's step against the tile's TT activation rows: a_t += step_dot for t < TT (a_t with
// t >= TT are not touched). row: the row's packed bytes; scr: its scales from the step's first group.
template <int B, int TT>
HWY_INLINE void row_step(const Step& st, const uint8_t* row, int64_t row_bytes, const float* scr, VU32 mask,
                         IdxF idx, VF& a0, VF& a1, VF& a2, VF& a3, VF& a4, VF& a5, VF& a6, VF& a7) {
  constexpr int V = 16 / B;  // cpl / 2
  const DU32 du32;
  const DF df;
  VU32 lw;
  if (HWY_LIKELY(st.s < st.n_full)) {
    // The next rows' bytes at this step: several lines in flight per row beat waiting on the
    // hardware prefetcher alone (the matvec is bound by memory, not arithmetic).
    hwy::Prefetch(row + kPrefetchRows * row_bytes + st.s * st.step_bytes);
    lw = hn::LoadU(du32, reinterpret_cast<const uint32_t*>(row + st.s * st.step_bytes));
  } else {
    std::memset(st.tail_buf, 0, static_cast<size_t>(st.step_bytes));
    std::memcpy(st.tail_buf, row + st.s * st.step_bytes, static_cast<size_t>(st.tail));
    lw = hn::Load(du32, reinterpret_cast<const uint32_t*>(st.tail_buf));
  }
  // Decoded once, used by every activation row (w_v with v >= V are dead copies of w0).
  const VI16 w0 = codes<B>(lw, 0, mask), w1 = codes<B>(lw, 1, mask);
  const VI16 w2 = V > 2 ? codes<B>(lw, 2, mask) : w0, w3 = V > 2 ? codes<B>(lw, 3, mask) : w0;
  const VI16 w4 = V > 4 ? codes<B>(lw, 4, mask) : w0, w5 = V > 4 ? codes<B>(lw, 5, mask) : w0;
  const VI16 w6 = V > 4 ? codes<B>(lw, 6, mask) : w0, w7 = V > 4 ? codes<B>(lw, 7, mask) : w0;
  const VF sw = st.multi_group ? hn::TableLookupLanes(hn::LoadU(df, scr), idx) : hn::Set(df, *scr);
  a0 = step_dot<V>(a0, sw, st, 0, w0, w1, w2, w3, w4, w5, w6, w7);
  if constexpr (TT > 1) a1 = step_dot<V>(a1, sw, st, 1, w0, w1, w2, w3, w4, w5, w6, w7);
  if constexpr (TT > 2) {
    a2 = step_dot<V>(a2, sw, st, 2, w0, w1, w2, w3, w4, w5, w6, w7);
    a3 = step_dot<V>(a3, sw, st, 3, w0, w1, w2, w3, w4, w5, w6, w7);
  }
  if constexpr (TT > 4) {
    a4 = step_dot<V>(a4, sw, st, 4, w0, w1, w2, w3, w4, w5, w6, w7);
    a5 = step_dot<V>(a5, sw, st, 5, w0, w1, w2, w3, w4, w5, w6, w7);
    a6 = step_dot<V>(a6, sw, st, 6, w0, w1, w2, w3, w4, w5, w6, w7);
    a7 = step_dot<V>(a7, sw, st, 7, w0, w1, w2, w3, w4, w5, w6, w7);
  }
}

// One output: the lanes of f plus the bias term Σ_g b_g·(Σ_{k∈g} x_k)/sx (bc: the weight row's biases,
// xs: the activation row's group sums, both ngp long).
HWY_INLINE float finish(VF f, const float* HWY_RESTRICT bc, const float* HWY_RESTRICT xs, int64_t ngp, int64_t lanes) {
  const DF df;
  for (int64_t c = 0; c < ngp; c += lanes) f = hn::MulAdd(hn::LoadU(df, bc + c), hn::Load(df, xs + c), f);
  return hn::GetLane(hn::SumOfLanes(df, f));
}

// out[t·N] = finish(a_t) for the tile's activation rows t < TT (xs: row 0's group sums, ngp apart).
template <int TT>
HWY_INLINE void finish_row(const float* bc, const float* xs, int64_t ngp, int64_t lanes, float* out, int64_t N, VF a0,
                           VF a1, VF a2, VF a3, VF a4, VF a5, VF a6, VF a7) {
  out[0] = finish(a0, bc, xs, ngp, lanes);
  if constexpr (TT > 1) out[N] = finish(a1, bc, xs + ngp, ngp, lanes);
  if constexpr (TT > 2) {
    out[2 * N] = finish(a2, bc, xs + 2 * ngp, ngp, lanes);
    out[3 * N] = finish(a3, bc, xs + 3 * ngp, ngp, lanes);
  }
  if constexpr (TT > 4) {
    out[4 * N] = finish(a4, bc, xs + 4 * ngp, ngp, lanes);
    out[5 * N] = finish(a5, bc, xs + 5 * ngp, ngp, lanes);
    out[6 * N] = finish(a6, bc, xs + 6 * ngp, ngp, lanes);
    out[7 * N] = finish(a7, bc, xs + 7 * ngp, ngp, lanes);
  }
}

// Weight rows [nb, ne) (packed at `rows`, row_bytes apart) against activation rows [t0, t0 + TT),
// R weight rows at a time (independent accumulators hide the dot-product latency when TT is small):
// out[t, n]. sc / bc: the rows' scales / biases as f32, [rows, ng] contiguous and zero padded at
// the end by lanes (lanes past a row's last group read the next row's values, multiplied by zero
// activations or zero group sums). The accumulators are named variables, not arrays (SVE vectors
// cannot be array elements): a_rt is weight row r × activation row t (R·TT <= 8, so most are dead).
template <int B, int TT, int R>
HWY_NOINLINE void rows_tile(const QArgs& a, const uint8_t* rows, const float* sc, const float* bc, int64_t nb,
                            int64_t ne, int64_t t0) {
  static_assert((R == 1 || R == 2 || R == 4) && TT <= 8 && R * TT <= 8, "tile shape");
  constexpr int64_t cpl = 32 / B;
  const DU32 du32;
  const DF df;
  const int64_t lanes = a.lanes, step = cpl * lanes;
  const int16_t* HWY_RESTRICT xq0 = a.px->q.get() + t0 * a.px->Kp;
  const float* HWY_RESTRICT xl0 = a.px->sx_lane.get() + t0 * a.px->n_sl;
  const float* HWY_RESTRICT xs0 = a.px->xs.data() + t0 * a.px->ngp;
  const int64_t Kp = a.px->Kp, ngp = a.px->ngp, n_sl = a.px->n_sl, gshift = a.gshift, ng = a.K >> a.gshift;
  const int64_t row_bytes = a.row_bytes;
  const int64_t n_steps = Kp / step;
  const VU32 mask = hn::Set(du32, ((1u << B) - 1) * 0x10001u);
  const IdxF idx = hn::SetTableIndices(df, a.lane_group);
  HWY_ALIGN uint8_t tail_buf[kMaxLanes * 4];
  Step st;
  st.step_bytes = lanes * 4;
  st.n_full = row_bytes / st.step_bytes;
  st.tail = row_bytes - st.n_full * st.step_bytes;
  st.lanes = lanes;
  st.Kp = Kp;
  st.n_sl = n_sl;
  st.multi_group = step >= a.gs;
  st.tail_buf = tail_buf;

  for (int64_t n = nb; n + R <= ne; n += R) {
    const VF z = hn::Zero(df);
    VF a00 = z, a01 = z, a02 = z, a03 = z, a04 = z, a05 = z, a06 = z, a07 = z;
    VF a10 = z, a11 = z, a12 = z, a13 = z, a14 = z, a15 = z, a16 = z, a17 = z;
    VF a20 = z, a21 = z, a22 = z, a23 = z, a24 = z, a25 = z, a26 = z, a27 = z;
    VF a30 = z, a31 = z, a32 = z, a33 = z, a34 = z, a35 = z, a36 = z, a37 = z;
    const uint8_t* row = rows + (n - nb) * row_bytes;  // weight row r is r·row_bytes further
    const float* scn = sc + (n - nb) * ng;              // its scales r·ng further
    for (int64_t s = 0; s < n_steps; ++s) {
      const int64_t g0 = (s * step) >> gshift;
      st.s = s;
      st.xq = xq0 + s * step;
      st.xl = xl0 + s * lanes;
      row_step<B, TT>(st, row, row_bytes, scn + g0, mask, idx, a00, a01, a02, a03, a04, a05, a06, a07);
      if constexpr (R > 1)
        row_step<B, TT>(st, row + row_bytes, row_bytes, scn + ng + g0, mask, idx, a10, a11, a12, a13, a14, a15, a16,
                        a17);
      if constexpr (R > 2) {
        row_step<B, TT>(st, row + 2 * row_bytes, row_bytes, scn + 2 * ng + g0, mask, idx, a20, a21, a22, a23, a24,
                        a25, a26, a27);
        row_step<B, TT>(st, row + 3 * row_bytes, row_bytes, scn + 3 * ng + g0, mask, idx, a30, a31, a32, a33, a34,
                        a35, a36, a37);
      }
    }
    float* out = a.out + t0 * a.N + n;
    const float* bcn = bc + (n - nb) * ng;
    finish_row<TT>(bcn, xs0, ngp, lanes, out, a.N, a00, a01, a02, a03, a04, a05, a06, a07);
    if constexpr (R > 1)
      finish_row<TT>(bcn + ng, xs0, ngp, lanes, out + 1, a.N, a10, a11, a12, a13, a14, a15, a16, a17);
    if constexpr (R > 2) {
      finish_row<TT>(bcn + 2 * ng, xs0, ngp, lanes, out + 2, a.N, a20, a21, a22, a23, a24, a25, a26, a27);
      finish_row<TT>(bcn + 3 * ng, xs0, ngp, lanes, out + 3, a.N, a30, a31, a32, a33, a34, a35, a36, a37);
    }
  }
}

// Scales / biases to f32: bf16 widened in registers (the common case), else the generic converter.
void scales_to_f32(DType t, const uint8_t* src, float* dst, size_t n) {
  if (t != DType::kBF16) {
    convert_to_f32(t, src, dst, n);
    return;
  }
  const DF df;
  const DU32 du32;
  const hn::Rebind<uint16_t, DF> du16;
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
  const size_t L = hn::Lanes(df);
  size_t i = 0;
  for (; i + L <= n; i += L)
    hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, s + i)))), df, dst + i);
  for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
}

template <int B>
void rows_all_t(const QArgs& a, int64_t T, const uint8_t* rows, const float* sc, const float* bc, int64_t nb,
                int64_t ne) {
  int64_t t = 0;
  for (; t + kTileT <= T; t += kTileT) rows_tile<B, kTileT, 1>(a, rows, sc, bc, nb, ne, t);
  if (t + 4 <= T) {
    rows_tile<B, 4, 1>(a, rows, sc, bc, nb, ne, t);
    t += 4;
  }
  if (t + 2 <= T) {
    rows_tile<B, 2, 2>(a, rows, sc, bc, nb, ne - (ne - nb) % 2, t);
    if ((ne - nb) % 2)
      rows_tile<B, 2, 1>(a, rows + (ne - 1 - nb) * a.row_bytes, sc + (ne - 1 - nb) * (a.K >> a.gshift),
                         bc + (ne - 1 - nb) * (a.K >> a.gshift), ne - 1, ne, t);
    t += 2;
  }
  if (t < T) {
    const int64_t n4 = ne - (ne - nb) % 4;
    rows_tile<B, 1, 4>(a, rows, sc, bc, nb, n4, t);
    for (int64_t n = n4; n < ne; ++n)
      rows_tile<B, 1, 1>(a, rows + (n - nb) * a.row_bytes, sc + (n - nb) * (a.K >> a.gshift),
                         bc + (n - nb) * (a.K >> a.gshift), n, n + 1, t);
  }
}

void MatmulQ(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  const int bits = w.quant.bits;
  const int64_t gs = w.quant.group_size, K = w.n_in, N = w.n_out;
  const int64_t ng = K / gs;
  // 2/4/8-bit rows are read in place; other widths are decoded to bytes and use the 8-bit layout.
  const bool direct = bits == 2 || bits == 4 || bits == 8;
  const int B = direct ? bits : 8;
  const int64_t cpl = 32 / B;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DI32()));
  mq::PreparedX px;
  mq::prepare_x(x, T, K, cpl, lanes, gs, &px, ctx);
  QArgs a;
  a.K = K;
  a.N = N;
  a.gs = gs;
  a.gshift = 0;
  while ((int64_t{1} << a.gshift) < gs) ++a.gshift;
  OPTIQ_CHECK((int64_t{1} << a.gshift) == gs);
  a.lanes = lanes;
  HWY_ALIGN int32_t lane_group[kMaxLanes];
  for (int64_t i = 0; i < lanes; ++i) lane_group[i] = static_cast<int32_t>((cpl * i) >> a.gshift);
  a.lane_group = lane_group;
  a.px = &px;
  a.out = out;
  a.row_bytes = direct ? K * bits / 8 : px.Kp;
  const int64_t src_row_bytes = K * bits / 8;
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const size_t ssz = dtype_size(w.quant.scale_dtype);
  ctx.parallel_for(N, [&](int64_t b, int64_t e, int) {
    std::vector<float> sc(static_cast<size_t>(kBlockN * ng + lanes), 0.f);
    std::vector<float> bc(static_cast<size_t>(kBlockN * ng + px.ngp), 0.f);
    hwy::AlignedFreeUniquePtr<uint8_t[]> dec;
    if (!direct) {
      dec = hwy::AllocateAligned<uint8_t>(static_cast<size_t>(kBlockN * px.Kp));
      std::memset(dec.get(), 0, static_cast<size_t>(kBlockN * px.Kp));
    }
    for (int64_t n0 = b; n0 < e; n0 += kBlockN) {
      const int64_t n1 = std::min(e, n0 + kBlockN);
      // Scales and biases of consecutive rows are contiguous: one conversion per block.
      const size_t off = static_cast<size_t>(n0 * ng) * ssz, cnt = static_cast<size_t>((n1 - n0) * ng);
      // The next block's scales and biases (their stream is 1/8 of the weights' at 4-bit g64).
      for (size_t l = 0; l < cnt * ssz; l += 64) {
        hwy::Prefetch(static_cast<const uint8_t*>(w.quant.scales) + off + cnt * ssz + l);
        hwy::Prefetch(static_cast<const uint8_t*>(w.quant.biases) + off + cnt * ssz + l);
      }
      scales_to_f32(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.scales) + off, sc.data(), cnt);
      scales_to_f32(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.biases) + off, bc.data(), cnt);
      std::fill(sc.begin() + static_cast<int64_t>(cnt), sc.end(), 0.f);
      std::fill(bc.begin() + static_cast<int64_t>(cnt), bc.end(), 0.f);
      if (!direct)
        for (int64_t n = n0; n < n1; ++n) decode_codes_u8(base + n * src_row_bytes, K, bits, dec.get() + (n - n0) * px.Kp);
      const uint8_t* rows = direct ? base + n0 * src_row_bytes : dec.get();
      switch (B) {
        case 2: rows_all_t<2>(a, T, rows, sc.data(), bc.data(), n0, n1); break;
        case 4: rows_all_t<4>(a, T, rows, sc.data(), bc.data(), n0, n1); break;
        default: rows_all_t<8>(a, T, rows, sc.data(), bc.data(), n0, n1); break;
      }
    }
  }, parallel_grain(N, T * K, kBlockN));
}
#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace HWY_NAMESPACE
}  // namespace optiq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace optiq {
HWY_EXPORT(MatmulQ);

void matmul_q_highway(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  OPTIQ_CHECK(w.quantized());
  HWY_DYNAMIC_DISPATCH(MatmulQ)(out, x, T, w, ctx);
}

void matmul_q_exact(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  mq::matmul_q_exact(out, x, T, w, ctx);
}

void dequantize_row_reference(const Weight& w, int64_t row, float* out) {
  const int bits = w.quant.bits, gs = w.quant.group_size;
  const int64_t K = w.n_in;
  const int64_t row_bytes = K * bits / 8;
  const uint8_t* r = static_cast<const uint8_t*>(w.data) + row * row_bytes;
  const int64_t n_groups = K / gs;
  for (int64_t g = 0; g < n_groups; ++g) {
    const float s = load_scale(w.quant.scale_dtype, w.quant.scales, row * n_groups + g);
    const float b = load_scale(w.quant.scale_dtype, w.quant.biases, row * n_groups + g);
    for (int64_t k = g * gs; k < (g + 1) * gs; ++k) out[k] = s * static_cast<float>(unpack_code(r, k, bits)) + b;
  }
}

void dequantize_row(const Weight& w, int64_t row, float* out) {
  const int bits = w.quant.bits, gs = w.quant.group_size;
  const int64_t K = w.n_in;
  const int64_t n_groups = K / gs;
  std::vector<uint8_t> codes(static_cast<size_t>(K));
  decode_codes_u8(static_cast<const uint8_t*>(w.data) + row * (K * bits / 8), K, bits, codes.data());
  std::vector<float> s(static_cast<size_t>(n_groups)), b(static_cast<size_t>(n_groups));
  const size_t off = static_cast<size_t>(row * n_groups) * dtype_size(w.quant.scale_dtype);
  convert_to_f32(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.scales) + off, s.data(), s.size());
  convert_to_f32(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.biases) + off, b.data(), b.size());
  for (int64_t g = 0; g < n_groups; ++g) {
    const float sg = s[g], bg = b[g];
    // Same expression as the reference (multiply, then add; no FMA contraction at the baseline ISA).
    for (int64_t k = g * gs; k < (g + 1) * gs; ++k) out[k] = sg * static_cast<float>(codes[k]) + bg;
  }
}

}  // namespace optiq
#endif  // HWY_ONCE
