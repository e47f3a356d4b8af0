// Highway versions of the elementwise, norm, Canon-conv and attention kernels declared in ops.h
// (scalar references in ops.cpp). Same contracts; sums are reassociated and exp/tanh come from
// hwy/contrib/math (a few ulp), so results agree with the references to ~1e-6 relative.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/ops_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/status.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"
#include "kernels/weight.h"

HWY_BEFORE_NAMESPACE();
namespace optiq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

HWY_INLINE float reduce_sum(VF v) { return hn::GetLane(hn::SumOfLanes(DF(), v)); }

void SiluMul(float* out, const float* gate, const float* up, int64_t n) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const VF one = hn::Set(df, 1.f);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const VF g = hn::LoadU(df, gate + i);
    const VF e = hn::Exp(df, hn::Neg(g));
    hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(df, up + i)), df, out + i);
  }
  if (i < n) {  // the tail through the same vector math: an element's value never depends on where
               // a call's range starts or ends (row-invariant forwards, kernels/weight.h)
    HWY_ALIGN float g[hn::MaxLanes(df)] = {}, u[hn::MaxLanes(df)] = {};
    std::copy(gate + i, gate + n, g);
    std::copy(up + i, up + n, u);
    const VF gv = hn::Load(df, g);
    hn::Store(hn::Mul(hn::Div(gv, hn::Add(one, hn::Exp(df, hn::Neg(gv)))), hn::Load(df, u)), df, g);
    std::copy(g, g + (n - i), out + i);
  }
}

void MaskedSoftmaxRow(float* row, int64_t n, int64_t lo, int64_t hi, float scale) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  std::fill(row, row + std::min(lo, n), 0.f);
  std::fill(row + std::max<int64_t>(hi, 0), row + n, 0.f);
  if (hi <= lo) return;
  const VF vs = hn::Set(df, scale);
  VF vmax = hn::Set(df, -INFINITY);
  int64_t j = lo;
  for (; j + L <= hi; j += L) vmax = hn::Max(vmax, hn::Mul(hn::LoadU(df, row + j), vs));
  float mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  for (; j < hi; ++j) mx = std::max(mx, row[j] * scale);
  const VF vmx = hn::Set(df, mx);
  VF vsum = hn::Zero(df);
  j = lo;
  for (; j + L <= hi; j += L) {
    const VF p = hn::Exp(df, hn::Sub(hn::Mul(hn::LoadU(df, row + j), vs), vmx));
    hn::StoreU(p, df, row + j);
    vsum = hn::Add(vsum, p);
  }
  float sum = reduce_sum(vsum);
  for (; j < hi; ++j) sum += row[j] = std::exp(row[j] * scale - mx);
  const VF inv = hn::Set(df, 1.0f / sum);
  j = lo;
  for (; j + L <= hi; j += L) hn::StoreU(hn::Mul(hn::LoadU(df, row + j), inv), df, row + j);
  for (; j < hi; ++j) row[j] *= 1.0f / sum;
}

void Softcap(float* x, int64_t n, float cap) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const VF vcap = hn::Set(df, cap), vinv = hn::Set(df, 1.0f / cap);
  int64_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(vcap, hn::Tanh(df, hn::Mul(hn::LoadU(df, x + i), vinv))), df, x + i);
  if (i < n) {  // the tail through the same vector math (see SiluMul)
    HWY_ALIGN float t[hn::MaxLanes(df)] = {};
    std::copy(x + i, x + n, t);
    hn::Store(hn::Mul(vcap, hn::Tanh(df, hn::Mul(hn::Load(df, t), vinv))), df, t);
    std::copy(t, t + (n - i), x + i);
  }
}

void AddInplace(float* x, const float* y, int64_t n) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Add(hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, x + i);
  for (; i < n; ++i) x[i] += y[i];
}

// Rotate-half RoPE of `rows` rows of length D by one position's angles (cs, sn: rot_pairs each):
// (r_i, r_{i+D/2}) <- (r_i·c_i − r_{i+D/2}·s_i, r_{i+D/2}·c_i + r_i·s_i) for i < rot_pairs.
void RopeRows(float* x, int64_t rows, int64_t D, const float* cs, const float* sn, int64_t rot_pairs) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t half = D / 2;
  for (int64_t h = 0; h < rows; ++h) {
    float* r = x + h * D;
    int64_t i = 0;
    for (; i + L <= rot_pairs; i += L) {
      const VF a = hn::LoadU(df, r + i), b = hn::LoadU(df, r + half + i);
      const VF c = hn::LoadU(df, cs + i), sv = hn::LoadU(df, sn + i);
      hn::StoreU(hn::Sub(hn::Mul(a, c), hn::Mul(b, sv)), df, r + i);
      hn::StoreU(hn::Add(hn::Mul(b, c), hn::Mul(a, sv)), df, r + half + i);
    }
    for (; i < rot_pairs; ++i) {
      const float a = r[i], b = r[i + half];
      r[i] = a * cs[i] - b * sn[i];
      r[i + half] = b * cs[i] + a * sn[i];
    }
  }
}

// wf: the norm weight as f32 (or null for weightless norms).
void RmsNorm(float* y, const float* x, int64_t T, int64_t C, const float* wf, float eps) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    float* yr = y + t * C;
    VF a0 = hn::Zero(df), a1 = hn::Zero(df);
    int64_t c = 0;
    for (; c + 2 * L <= C; c += 2 * L) {
      const VF v0 = hn::LoadU(df, xr + c), v1 = hn::LoadU(df, xr + c + L);
      a0 = hn::MulAdd(v0, v0, a0);
      a1 = hn::MulAdd(v1, v1, a1);
    }
    float ss = reduce_sum(hn::Add(a0, a1));
    for (; c < C; ++c) ss += xr[c] * xr[c];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
    const VF vinv = hn::Set(df, inv);
    c = 0;
    if (wf) {
      for (; c + L <= C; c += L)
        hn::StoreU(hn::Mul(hn::LoadU(df, wf + c), hn::Mul(hn::LoadU(df, xr + c), vinv)), df, yr + c);
      for (; c < C; ++c) yr[c] = wf[c] * (xr[c] * inv);
    } else {
      for (; c + L <= C; c += L) hn::StoreU(hn::Mul(hn::LoadU(df, xr + c), vinv), df, yr + c);
      for (; c < C; ++c) yr[c] = xr[c] * inv;
    }
  }
}

// Taps are fp32 or bf16; bf16 widens exactly, so both give the same sums for the same tap values.
HWY_INLINE VF load_taps(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE VF load_taps(DF df, const uint16_t* p) {
  const hn::Rebind<uint16_t, DF> d16;
  const hn::Rebind<uint32_t, DF> du32;
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(d16, p))));
}
HWY_INLINE float tap_value(const float* p) { return *p; }
HWY_INLINE float tap_value(const uint16_t* p) { return bf16_to_f32(*p); }

// conv_row's channels [0, C − C % L); kKw > 0 fixes the tap count at compile time (the common Canon
// kernel of 4), so the tap loop unrolls; the sums are the same either way.
template <int kKw, typename Tap>
HWY_INLINE int64_t conv_row_vectors(float* yr, const float* const* rows, int64_t C, const Tap* wt, int64_t tap_stride,
                                    int64_t Kw) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t kw = kKw > 0 ? kKw : Kw;
  const float* r[kMaxConvKernel];
  for (int64_t j = 0; j < kw; ++j) r[j] = rows[j];
  const float* cur = r[kw - 1];
  int64_t c = 0;
  for (; c + L <= C; c += L) {
    VF acc = hn::Zero(df);
#pragma GCC unroll 16
    for (int64_t j = 0; j < kw; ++j) acc = hn::MulAdd(load_taps(df, wt + j * tap_stride + c), hn::LoadU(df, r[j] + c), acc);
    hn::StoreU(hn::Add(hn::LoadU(df, cur + c), acc), df, yr + c);
  }
  return c;
}

// One output row from Kw input rows (rows[Kw-1] is the current one, also the residual), wt = taps
// transposed to [Kw, tap_stride].
template <typename Tap>
HWY_INLINE void conv_row(float* yr, const float* const* rows, int64_t C, const Tap* wt, int64_t tap_stride,
                         int64_t Kw) {
  const DF df;
  const float* cur = rows[Kw - 1];
  const int64_t c = Kw == 4 ? conv_row_vectors<4>(yr, rows, C, wt, tap_stride, Kw)
                            : conv_row_vectors<0>(yr, rows, C, wt, tap_stride, Kw);
  if (c < C) {  // the tail through the same vector math: a channel's result never depends on where a
                // call's channel range starts or ends (decode steps convolve slices of a row)
    HWY_ALIGN float tw[hn::MaxLanes(df)] = {}, tx[hn::MaxLanes(df)] = {};
    VF acc = hn::Zero(df);
    for (int64_t j = 0; j < Kw; ++j) {
      for (int64_t i = c; i < C; ++i) {
        tw[i - c] = tap_value(wt + j * tap_stride + i);
        tx[i - c] = rows[j][i];
      }
      acc = hn::MulAdd(hn::Load(df, tw), hn::Load(df, tx), acc);
    }
    std::copy(cur + c, cur + C, tx);
    hn::Store(hn::Add(hn::Load(df, tx), acc), df, tx);
    std::copy(tx, tx + (C - c), yr + c);
  }
}

// xp = state ‖ x ([Kw-1+T, C]), wt = taps transposed to [Kw, C].
template <typename Tap>
void conv_rows(float* y, const float* xp, int64_t T, int64_t C, const Tap* wt, int64_t Kw) {
  const float* rows[kMaxConvKernel];
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < Kw; ++j) rows[j] = xp + (t + j) * C;
    conv_row(y + t * C, rows, C, wt, C, Kw);
  }
}

// Calls fn with the taps as the pointer type they are stored in.
template <typename Fn>
HWY_INLINE void with_taps(ConvTaps wt, Fn&& fn) {
  if (wt.bf16)
    fn(static_cast<const uint16_t*>(wt.data));
  else
    fn(static_cast<const float*>(wt.data));
}

void ConvRows(float* y, const float* xp, int64_t T, int64_t C, ConvTaps wt, int64_t Kw) {
  with_taps(wt, [&](const auto* taps) { conv_rows(y, xp, T, C, taps, Kw); });
}

void ConvRowPtrs(float* y, const float* const* rows, int64_t C, ConvTaps wt, int64_t tap_stride, int64_t Kw) {
  with_taps(wt, [&](const auto* taps) { conv_row(y, rows, C, taps, tap_stride, Kw); });
}

constexpr int64_t kKeyPrefetch = 8;  // key / value rows prefetched ahead in decode attention

// o[D] = Σ_j softmax(scores)_j · v_j over n keys, given the scores' max: scores[0, n) are overwritten
// with exp(score − mx). v_j is at vb + j·stride.
// scores[0, n) = exp(score − mx); returns 1 / their sum.
HWY_INLINE float softmax_exp(DF df, float* scores, int64_t n, float mx) {
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  VF vsum = hn::Zero(df);
  int64_t jb = 0;
  for (; jb + L <= n; jb += L) {
    const VF p = hn::Exp(df, hn::Sub(hn::LoadU(df, scores + jb), hn::Set(df, mx)));
    hn::StoreU(p, df, scores + jb);
    vsum = hn::Add(vsum, p);
  }
  float sum = reduce_sum(vsum);
  for (; jb < n; ++jb) {
    scores[jb] = std::exp(scores[jb] - mx);
    sum += scores[jb];
  }
  return 1.0f / sum;
}

// a_c += p · v_c for the chunks c < kC (1, 2, 4 or 8) of a row.
template <int kC>
HWY_INLINE void fma_chunks(VF p, VF v0, VF v1, VF v2, VF v3, VF v4, VF v5, VF v6, VF v7, VF& a0, VF& a1, VF& a2,
                           VF& a3, VF& a4, VF& a5, VF& a6, VF& a7) {
  static_assert(kC == 1 || kC == 2 || kC == 4 || kC == 8, "chunks");
  a0 = hn::MulAdd(p, v0, a0);
  if constexpr (kC > 1) a1 = hn::MulAdd(p, v1, a1);
  if constexpr (kC > 2) {
    a2 = hn::MulAdd(p, v2, a2);
    a3 = hn::MulAdd(p, v3, a3);
  }
  if constexpr (kC > 4) {
    a4 = hn::MulAdd(p, v4, a4);
    a5 = hn::MulAdd(p, v5, a5);
    a6 = hn::MulAdd(p, v6, a6);
    a7 = hn::MulAdd(p, v7, a7);
  }
}

// o[c·L, (c+1)·L) = a_c · inv for c < kC.
template <int kC>
HWY_INLINE void store_chunks(DF df, float inv, float* o, int64_t L, VF a0, VF a1, VF a2, VF a3, VF a4, VF a5, VF a6,
                             VF a7) {
  hn::StoreU(hn::Mul(a0, hn::Set(df, inv)), df, o);
  if constexpr (kC > 1) hn::StoreU(hn::Mul(a1, hn::Set(df, inv)), df, o + L);
  if constexpr (kC > 2) {
    hn::StoreU(hn::Mul(a2, hn::Set(df, inv)), df, o + 2 * L);
    hn::StoreU(hn::Mul(a3, hn::Set(df, inv)), df, o + 3 * L);
  }
  if constexpr (kC > 4) {
    hn::StoreU(hn::Mul(a4, hn::Set(df, inv)), df, o + 4 * L);
    hn::StoreU(hn::Mul(a5, hn::Set(df, inv)), df, o + 5 * L);
    hn::StoreU(hn::Mul(a6, hn::Set(df, inv)), df, o + 6 * L);
    hn::StoreU(hn::Mul(a7, hn::Set(df, inv)), df, o + 7 * L);
  }
}

// o_h[kC·L] = inv_h · Σ_j p_h[j] · v_j for kH heads sharing the value rows: one pass over them (each
// read once, prefetched ahead), the same FMAs per head whatever kH. The accumulators are named
// variables (SVE vectors cannot be array elements): a_hc is head h, chunk c; unused ones are dead.
template <int kC, int kH>
HWY_INLINE void weighted_rows_heads(DF df, float* const* p, const float* inv, int64_t n, const float* vb,
                                    int64_t stride, float* const* o) {
  static_assert(kH >= 1 && kH <= 4, "heads");
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const VF z = hn::Zero(df);
  VF a00 = z, a01 = z, a02 = z, a03 = z, a04 = z, a05 = z, a06 = z, a07 = z;
  VF a10 = z, a11 = z, a12 = z, a13 = z, a14 = z, a15 = z, a16 = z, a17 = z;
  VF a20 = z, a21 = z, a22 = z, a23 = z, a24 = z, a25 = z, a26 = z, a27 = z;
  VF a30 = z, a31 = z, a32 = z, a33 = z, a34 = z, a35 = z, a36 = z, a37 = z;
  for (int64_t j = 0; j < n; ++j) {
    const float* vr = vb + j * stride;
    hwy::Prefetch(vr + kKeyPrefetch * stride);
    hwy::Prefetch(vr + kKeyPrefetch * stride + kC * L - 1);
    const VF v0 = hn::LoadU(df, vr);
    const VF v1 = kC > 1 ? hn::LoadU(df, vr + L) : z;
    const VF v2 = kC > 2 ? hn::LoadU(df, vr + 2 * L) : z, v3 = kC > 2 ? hn::LoadU(df, vr + 3 * L) : z;
    const VF v4 = kC > 4 ? hn::LoadU(df, vr + 4 * L) : z, v5 = kC > 4 ? hn::LoadU(df, vr + 5 * L) : z;
    const VF v6 = kC > 4 ? hn::LoadU(df, vr + 6 * L) : z, v7 = kC > 4 ? hn::LoadU(df, vr + 7 * L) : z;
    fma_chunks<kC>(hn::Set(df, p[0][j]), v0, v1, v2, v3, v4, v5, v6, v7, a00, a01, a02, a03, a04, a05, a06, a07);
    if constexpr (kH > 1)
      fma_chunks<kC>(hn::Set(df, p[1][j]), v0, v1, v2, v3, v4, v5, v6, v7, a10, a11, a12, a13, a14, a15, a16, a17);
    if constexpr (kH > 2)
      fma_chunks<kC>(hn::Set(df, p[2][j]), v0, v1, v2, v3, v4, v5, v6, v7, a20, a21, a22, a23, a24, a25, a26, a27);
    if constexpr (kH > 3)
      fma_chunks<kC>(hn::Set(df, p[3][j]), v0, v1, v2, v3, v4, v5, v6, v7, a30, a31, a32, a33, a34, a35, a36, a37);
  }
  store_chunks<kC>(df, inv[0], o[0], L, a00, a01, a02, a03, a04, a05, a06, a07);
  if constexpr (kH > 1) store_chunks<kC>(df, inv[1], o[1], L, a10, a11, a12, a13, a14, a15, a16, a17);
  if constexpr (kH > 2) store_chunks<kC>(df, inv[2], o[2], L, a20, a21, a22, a23, a24, a25, a26, a27);
  if constexpr (kH > 3) store_chunks<kC>(df, inv[3], o[3], L, a30, a31, a32, a33, a34, a35, a36, a37);
}

template <int kC>
HWY_INLINE void weighted_rows_heads_n(DF df, float* const* p, const float* inv, int nh, int64_t n, const float* vb,
                                      int64_t stride, float* const* o) {
  switch (nh) {
    case 1: return weighted_rows_heads<kC, 1>(df, p, inv, n, vb, stride, o);
    case 2: return weighted_rows_heads<kC, 2>(df, p, inv, n, vb, stride, o);
    case 3: return weighted_rows_heads<kC, 3>(df, p, inv, n, vb, stride, o);
    default: return weighted_rows_heads<kC, 4>(df, p, inv, n, vb, stride, o);
  }
}

HWY_INLINE void softmax_weighted_sum(DF df, float* scores, int64_t n, float mx, const float* vb, int64_t stride,
                                     int64_t D, float* o) {
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const float inv = softmax_exp(df, scores, n, mx);
  if (D % L == 0) {
    float* const p[1] = {scores};
    float* const out[1] = {o};
    switch (D / L) {  // the accumulators stay in registers only with a compile-time count
      case 1: return weighted_rows_heads<1, 1>(df, p, &inv, n, vb, stride, out);
      case 2: return weighted_rows_heads<2, 1>(df, p, &inv, n, vb, stride, out);
      case 4: return weighted_rows_heads<4, 1>(df, p, &inv, n, vb, stride, out);
      case 8: return weighted_rows_heads<8, 1>(df, p, &inv, n, vb, stride, out);
      default: break;
    }
  }
  int64_t d = 0;
  for (; d + 2 * L <= D; d += 2 * L) {
    VF a0 = hn::Zero(df), a1 = hn::Zero(df);
    for (int64_t j = 0; j < n; ++j) {
      const VF p = hn::Set(df, scores[j]);
      const float* vr = vb + j * stride + d;
      a0 = hn::MulAdd(p, hn::LoadU(df, vr), a0);
      a1 = hn::MulAdd(p, hn::LoadU(df, vr + L), a1);
    }
    hn::StoreU(hn::Mul(a0, hn::Set(df, inv)), df, o + d);
    hn::StoreU(hn::Mul(a1, hn::Set(df, inv)), df, o + d + L);
  }
  for (; d < D; ++d) {
    float a = 0.f;
    for (int64_t j = 0; j < n; ++j) a += scores[j] * vb[j * stride + d];
    o[d] = a * inv;
  }
}

// Decode scores, one key at a time: scores[j] = scale · q·k_j for n keys k_j = kb + j·stride; returns
// the max.
HWY_INLINE float decode_scores(DF df, const float* qr, const float* kb, int64_t stride, int64_t D, int64_t n,
                               float scale, float* scores) {
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float* kr = kb + j * stride;
    VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    int64_t d = 0;
    for (; d + 2 * L <= D; d += 2 * L) {
      acc0 = hn::MulAdd(hn::LoadU(df, qr + d), hn::LoadU(df, kr + d), acc0);
      acc1 = hn::MulAdd(hn::LoadU(df, qr + d + L), hn::LoadU(df, kr + d + L), acc1);
    }
    for (; d + L <= D; d += L) acc0 = hn::MulAdd(hn::LoadU(df, qr + d), hn::LoadU(df, kr + d), acc0);
    float sc = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
    for (; d < D; ++d) sc += qr[d] * kr[d];
    sc *= scale;
    scores[j] = sc;
    mx = std::max(mx, sc);
  }
  return mx;
}

constexpr int64_t kMaxQChunks = 8;  // query rows held in registers: D <= 8 vectors

#if HWY_TARGET != HWY_SCALAR
// Key i's partial sums: Σ_c q_c · k_i[c·L, (c+1)·L) over the kC chunks of D (zero when i >= m, past
// the keys of a partial block).
template <int kC>
HWY_INLINE VF key_partials(DF df, int64_t i, int64_t m, const float* kb, int64_t stride, int64_t L, VF q0, VF q1,
                           VF q2, VF q3, VF q4, VF q5, VF q6, VF q7) {
  VF acc = hn::Zero(df);
  if (i >= m) return acc;
  const float* kr = kb + i * stride;
  hwy::Prefetch(kr + kKeyPrefetch * stride);
  hwy::Prefetch(kr + kKeyPrefetch * stride + kC * L - 1);
  acc = hn::MulAdd(q0, hn::LoadU(df, kr), acc);
  if constexpr (kC > 1) acc = hn::MulAdd(q1, hn::LoadU(df, kr + L), acc);
  if constexpr (kC > 2) {
    acc = hn::MulAdd(q2, hn::LoadU(df, kr + 2 * L), acc);
    acc = hn::MulAdd(q3, hn::LoadU(df, kr + 3 * L), acc);
  }
  if constexpr (kC > 4) {
    acc = hn::MulAdd(q4, hn::LoadU(df, kr + 4 * L), acc);
    acc = hn::MulAdd(q5, hn::LoadU(df, kr + 5 * L), acc);
    acc = hn::MulAdd(q6, hn::LoadU(df, kr + 6 * L), acc);
    acc = hn::MulAdd(q7, hn::LoadU(df, kr + 7 * L), acc);
  }
  return acc;
}

// One level of the reduction tree: lane i of the result sums lanes 2i, 2i+1 of the concatenation lo ‖ hi.
HWY_INLINE VF pair_sum(DF df, VF lo, VF hi) {
  return hn::Add(hn::ConcatEven(df, hi, lo), hn::ConcatOdd(df, hi, lo));
}

// The same for a whole vector of keys at a time: one partial-sum vector per key, then a pairwise
// ConcatEven/ConcatOdd tree leaves key i's dot product in lane i (log2 L levels, L − 1 combines),
// instead of one horizontal reduction per key. Requires D = kC · L with kC <= kMaxQChunks, and
// Lanes() = kL (4, 8 or 16): the keys' partial sums are named variables k_i, since SVE vectors cannot
// be array elements, so the lane count is fixed at compile time.
template <int kC, int kL>
HWY_INLINE float decode_scores_fixed(DF df, const float* qr, const float* kb, int64_t stride, int64_t n, float scale,
                                     float* scores) {
  static_assert(kL == 4 || kL == 8 || kL == 16, "lanes");
  constexpr int64_t L = kL;
  const VF z = hn::Zero(df);
  const VF q0 = hn::LoadU(df, qr);
  const VF q1 = kC > 1 ? hn::LoadU(df, qr + L) : z;
  const VF q2 = kC > 2 ? hn::LoadU(df, qr + 2 * L) : z, q3 = kC > 2 ? hn::LoadU(df, qr + 3 * L) : z;
  const VF q4 = kC > 4 ? hn::LoadU(df, qr + 4 * L) : z, q5 = kC > 4 ? hn::LoadU(df, qr + 5 * L) : z;
  const VF q6 = kC > 4 ? hn::LoadU(df, qr + 6 * L) : z, q7 = kC > 4 ? hn::LoadU(df, qr + 7 * L) : z;
  const VF vs = hn::Set(df, scale);
  VF vmax = hn::Set(df, -INFINITY);
  for (int64_t jb = 0; jb < n; jb += L) {
    const int64_t m = std::min(L, n - jb);
    const float* kj = kb + jb * stride;
#define OPTIQ_KEY(i) key_partials<kC>(df, i, m, kj, stride, L, q0, q1, q2, q3, q4, q5, q6, q7)
    VF k0 = OPTIQ_KEY(0), k1 = OPTIQ_KEY(1), k2 = OPTIQ_KEY(2), k3 = OPTIQ_KEY(3);
    if constexpr (kL > 4) {
      VF k4 = OPTIQ_KEY(4), k5 = OPTIQ_KEY(5), k6 = OPTIQ_KEY(6), k7 = OPTIQ_KEY(7);
      if constexpr (kL > 8) {
        const VF k8 = OPTIQ_KEY(8), k9 = OPTIQ_KEY(9), k10 = OPTIQ_KEY(10), k11 = OPTIQ_KEY(11);
        const VF k12 = OPTIQ_KEY(12), k13 = OPTIQ_KEY(13), k14 = OPTIQ_KEY(14), k15 = OPTIQ_KEY(15);
        k0 = pair_sum(df, k0, k1);  // 16 -> 8
        k1 = pair_sum(df, k2, k3);
        k2 = pair_sum(df, k4, k5);
        k3 = pair_sum(df, k6, k7);
        k4 = pair_sum(df, k8, k9);
        k5 = pair_sum(df, k10, k11);
        k6 = pair_sum(df, k12, k13);
        k7 = pair_sum(df, k14, k15);
      }
      k0 = pair_sum(df, k0, k1);  // 8 -> 4
      k1 = pair_sum(df, k2, k3);
      k2 = pair_sum(df, k4, k5);
      k3 = pair_sum(df, k6, k7);
    }
#undef OPTIQ_KEY
    const VF sc = hn::Mul(pair_sum(df, pair_sum(df, k0, k1), pair_sum(df, k2, k3)), vs);  // 4 -> 2 -> 1
    if (m == L) {
      hn::StoreU(sc, df, scores + jb);
      vmax = hn::Max(vmax, sc);
    } else {
      HWY_ALIGN float tmp[kL];
      hn::Store(sc, df, tmp);
      for (int64_t i = 0; i < m; ++i) scores[jb + i] = tmp[i];
      vmax = hn::Max(vmax, hn::IfThenElse(hn::FirstN(df, static_cast<size_t>(m)), sc, hn::Set(df, -INFINITY)));
    }
  }
  return hn::GetLane(hn::MaxOfLanes(df, vmax));
}

template <int kC>
HWY_INLINE float decode_scores_chunks(DF df, const float* qr, const float* kb, int64_t stride, int64_t D, int64_t n,
                                      float scale, float* scores) {
  constexpr int kMax = static_cast<int>(hn::MaxLanes(DF()));
#if HWY_HAVE_SCALABLE
  // SVE: the run-time vector length picks the instance (a constant on SVE_256 and SVE2_128).
  switch (hn::Lanes(df)) {
    case 4: return decode_scores_fixed<kC, 4>(df, qr, kb, stride, n, scale, scores);
    case 8:
      if constexpr (kMax >= 8) return decode_scores_fixed<kC, 8>(df, qr, kb, stride, n, scale, scores);
      break;
    case 16:
      if constexpr (kMax >= 16) return decode_scores_fixed<kC, 16>(df, qr, kb, stride, n, scale, scores);
      break;
    default: break;
  }
  return decode_scores(df, qr, kb, stride, D, n, scale, scores);  // vectors of 32 floats or more
#else
  return decode_scores_fixed<kC, kMax>(df, qr, kb, stride, n, scale, scores);
#endif
}

HWY_INLINE float decode_scores_batched(DF df, const float* qr, const float* kb, int64_t stride, int64_t D, int64_t n,
                                       float scale, float* scores) {
  switch (D / static_cast<int64_t>(hn::Lanes(df))) {  // register-resident query and partial sums
    case 1: return decode_scores_chunks<1>(df, qr, kb, stride, D, n, scale, scores);
    case 2: return decode_scores_chunks<2>(df, qr, kb, stride, D, n, scale, scores);
    case 4: return decode_scores_chunks<4>(df, qr, kb, stride, D, n, scale, scores);
    case 8: return decode_scores_chunks<8>(df, qr, kb, stride, D, n, scale, scores);
    default: return decode_scores(df, qr, kb, stride, D, n, scale, scores);
  }
}
#else
HWY_INLINE float decode_scores_batched(DF df, const float* qr, const float* kb, int64_t stride, int64_t D, int64_t n,
                                       float scale, float* scores) {
  return decode_scores(df, qr, kb, stride, D, n, scale, scores);
}
#endif

// Attention for query rows idx in [b, e) of the head-major order idx = h·T + t.
// Keys of the current KV head are transposed once ([D, Sp], zero padded) so that scores for 16 keys
// are D broadcast-FMAs; the weighted sum of values runs over D in vectors.
void AttentionRange(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
                    int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, int64_t jmin,
                    int64_t jmax, int64_t b, int64_t e, bool allow_transpose) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t group = H / Hkv, stride = Hkv * D;
  const int64_t S = jmax - jmin;
  const int64_t Sp = (S + L - 1) / L * L + L;
  // Transposing a head's keys pays off when many query rows share them (block forwards); at decode
  // (one row per query head) direct row dot products are cheaper than the transpose.
  // Row-invariant calls (kernels/weight.h) keep the decode arithmetic for every row.
  const bool transpose = allow_transpose && T * group > 4;
  std::vector<float> kt(transpose ? static_cast<size_t>(D * Sp) : 0, 0.f);
#if HWY_TARGET != HWY_SCALAR
  const int64_t chunks = D % L == 0 ? D / L : 0;
  if (!transpose && T == 1 && (chunks == 1 || chunks == 2 || chunks == 4 || chunks == 8)) {
    // Decode: the query heads of a KV group together, their scores while the group's keys are hot
    // in L1, then one pass over the values for all of them. Per head, the same arithmetic as the
    // one-head path below (row-invariant forwards rely on it).
    constexpr int64_t kMaxHeads = 4;
    const int64_t batch = chunks == 8 ? 2 : kMaxHeads;  // accumulators must fit the registers
    std::vector<float> scores(static_cast<size_t>(batch * (Sp + L)));
    const int64_t j0 = key_begin[0], j1 = key_end[0], n = j1 - j0;
    for (int64_t h0 = b; h0 < e;) {
      const int64_t hk = h0 / group;
      const int64_t h1 = std::min({e, (hk + 1) * group, h0 + batch});
      float* p[kMaxHeads];
      float* o[kMaxHeads];
      float inv[kMaxHeads];
      for (int64_t h = h0; h < h1; ++h) {
        o[h - h0] = out + h * D;
        p[h - h0] = scores.data() + (h - h0) * (Sp + L);
        if (n <= 0) {
          std::fill(o[h - h0], o[h - h0] + D, 0.f);
          continue;
        }
        const float mx =
            decode_scores_batched(df, q + h * D, k + j0 * stride + hk * D, stride, D, n, scale, p[h - h0]);
        inv[h - h0] = softmax_exp(df, p[h - h0], n, mx);
      }
      if (n > 0) {
        const float* vb = v + hk * D + j0 * stride;
        const int nh = static_cast<int>(h1 - h0);
        switch (chunks) {
          case 1: weighted_rows_heads_n<1>(df, p, inv, nh, n, vb, stride, o); break;
          case 2: weighted_rows_heads_n<2>(df, p, inv, nh, n, vb, stride, o); break;
          case 4: weighted_rows_heads_n<4>(df, p, inv, nh, n, vb, stride, o); break;
          default: weighted_rows_heads_n<8>(df, p, inv, nh, n, vb, stride, o); break;
        }
      }
      h0 = h1;
    }
    return;
  }
#endif
  std::vector<float> scores(static_cast<size_t>(Sp + L));
  int64_t cur_hk = -1;
  for (int64_t idx = b; idx < e; ++idx) {
    const int64_t h = idx / T, t = idx % T, hk = h / group;
    float* o = out + (t * H + h) * D;
    const int64_t j0 = key_begin[t], j1 = key_end[t];
    std::fill(o, o + D, 0.f);
    if (j1 <= j0) continue;
    if (!transpose) {
      const float* qr = q + (t * H + h) * D;
      const int64_t n = j1 - j0;
      const float mx = HWY_TARGET != HWY_SCALAR && D % L == 0 && D <= kMaxQChunks * L
                           ? decode_scores_batched(df, qr, k + j0 * stride + hk * D, stride, D, n, scale, scores.data())
                           : decode_scores(df, qr, k + j0 * stride + hk * D, stride, D, n, scale, scores.data());
      softmax_weighted_sum(df, scores.data(), n, mx, v + hk * D + j0 * stride, stride, D, o);
      continue;
    }
    if (hk != cur_hk) {
      for (int64_t j = jmin; j < jmax; ++j)
        for (int64_t d = 0; d < D; ++d) kt[d * Sp + (j - jmin)] = k[j * stride + hk * D + d];
      cur_hk = hk;
    }
    const float* qr = q + (t * H + h) * D;
    const int64_t n = j1 - j0, off = j0 - jmin;
    VF vmax = hn::Set(df, -INFINITY);
    for (int64_t jb = 0; jb < n; jb += L) {
      VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
      const float* kc = kt.data() + off + jb;
      int64_t d = 0;
      for (; d + 2 <= D; d += 2) {
        acc0 = hn::MulAdd(hn::Set(df, qr[d]), hn::LoadU(df, kc + d * Sp), acc0);
        acc1 = hn::MulAdd(hn::Set(df, qr[d + 1]), hn::LoadU(df, kc + (d + 1) * Sp), acc1);
      }
      if (d < D) acc0 = hn::MulAdd(hn::Set(df, qr[d]), hn::LoadU(df, kc + d * Sp), acc0);
      const VF s = hn::Mul(hn::Add(acc0, acc1), hn::Set(df, scale));
      hn::StoreU(s, df, scores.data() + jb);
      // Lanes past n hold padding keys: keep them out of the max.
      const int64_t valid = std::min<int64_t>(L, n - jb);
      vmax = hn::Max(vmax, hn::IfThenElse(hn::FirstN(df, static_cast<size_t>(valid)), s, hn::Set(df, -INFINITY)));
    }
    softmax_weighted_sum(df, scores.data(), n, hn::GetLane(hn::MaxOfLanes(df, vmax)), v + hk * D + j0 * stride,
                         stride, D, o);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace optiq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace optiq {
HWY_EXPORT(SiluMul);
HWY_EXPORT(Softcap);
HWY_EXPORT(MaskedSoftmaxRow);
HWY_EXPORT(AddInplace);
HWY_EXPORT(RmsNorm);
HWY_EXPORT(RopeRows);
HWY_EXPORT(ConvRows);
HWY_EXPORT(ConvRowPtrs);
HWY_EXPORT(AttentionRange);

void silu_mul(float* out, const float* gate, const float* up, int64_t n, const KernelContext& ctx) {
  // Block forwards' gated MLPs (T·F = 70K at dhara-250m) use every thread; decode rows stay inline.
  parallel_elementwise(ctx, n, kMinElementwisePerThread, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(SiluMul)(out + b, gate + b, up + b, e - b);
  });
}

void softcap_inplace(float* x, int64_t n, float cap, const KernelContext& ctx) {
  parallel_elementwise(ctx, n, kMinElementwisePerThread,
                       [&](int64_t b, int64_t e) { HWY_DYNAMIC_DISPATCH(Softcap)(x + b, e - b, cap); });
}

void masked_softmax_row(float* row, int64_t n, int64_t lo, int64_t hi, float scale) {
  HWY_DYNAMIC_DISPATCH(MaskedSoftmaxRow)(row, n, lo, hi, scale);
}

void add_inplace(float* x, const float* y, int64_t n, const KernelContext&) {
  HWY_DYNAMIC_DISPATCH(AddInplace)(x, y, n);
}

void rope_rows(float* x, int64_t rows, int64_t D, const float* cs, const float* sn, int64_t rot_pairs) {
  HWY_DYNAMIC_DISPATCH(RopeRows)(x, rows, D, cs, sn, rot_pairs);
}

namespace {
struct NormWeights {  // a bf16 / f16 norm weight widened to f32 (decode: 4 calls per layer per token)
  std::vector<float> f32;
};
}  // namespace

void rms_norm(float* y, const float* x, int64_t T, int64_t C, const Weight& w, float eps, const KernelContext& ctx) {
  const float* wf = nullptr;
  if (w.data && w.dtype == DType::kF32) {
    wf = static_cast<const float*>(w.data);
  } else if (w.data) {
    std::vector<float>& buf = ctx.buffers<NormWeights>().f32;
    buf.resize(static_cast<size_t>(C));
    convert_to_f32(w.dtype, w.data, buf.data(), buf.size());
    wf = buf.data();
  }
  HWY_DYNAMIC_DISPATCH(RmsNorm)(y, x, T, C, wf, eps);
}

void conv1d_dw_row(float* y, const float* const* rows, int64_t C, ConvTaps w_tap_major, int64_t Kw,
                   int64_t tap_stride, const KernelContext&) {
  OPTIQ_CHECK(Kw >= 1 && Kw <= kMaxConvKernel);
  HWY_DYNAMIC_DISPATCH(ConvRowPtrs)(y, rows, C, w_tap_major, tap_stride > 0 ? tap_stride : C, Kw);
}

void conv1d_dw(float* y, const float* x, int64_t T, int64_t C, ConvTaps w_tap_major, int64_t Kw, float* state,
               bool update_state, float* window, const KernelContext& ctx) {
  OPTIQ_CHECK(Kw >= 1 && Kw <= kMaxConvKernel);
  const int64_t P = Kw - 1;
  const bool split = ctx.can_parallelize() && T > 1 && T * C * Kw >= kMinParallelMacs / 4;
  if (y == x && !update_state && !window) {
    // Read-only, in place (diffusion steps): no window. Each part of the rows is rewritten last row
    // first, so a row's inputs (itself and the P rows before it) are still inputs when it is computed;
    // the P input rows before a part belong to the part before it and are copied first (the first
    // part reads the state). Without the windows, a dhara-250m 32-row block forward spent ~1.9 ms
    // less in the Canon convs of its 32 layers (instrumented, 2 threads).
    const int64_t parts = split ? std::min<int64_t>(T, ctx.threads()) : 1;
    std::vector<float> before(static_cast<size_t>((parts - 1) * P * C));
    for (int64_t p = 1; p < parts; ++p)
      for (int64_t i = 0; i < P; ++i) {
        const int64_t r = p * T / parts - P + i;
        const float* src = r >= 0 ? x + r * C : state + (r + P) * C;
        std::copy(src, src + C, before.data() + ((p - 1) * P + i) * C);
      }
    auto run_part = [&](int64_t p) {
      const int64_t b = p * T / parts, e = (p + 1) * T / parts;
      const float* prev = p == 0 ? state : before.data() + (p - 1) * P * C;  // input rows b − P .. b − 1
      const float* rows[kMaxConvKernel];
      for (int64_t t = e - 1; t >= b; --t) {
        for (int64_t j = 0; j < Kw; ++j) {
          const int64_t r = t - P + j;
          rows[j] = r >= b ? y + r * C : prev + (r - (b - P)) * C;
        }
        HWY_DYNAMIC_DISPATCH(ConvRowPtrs)(y + t * C, rows, C, w_tap_major, C, Kw);
      }
    };
    if (parts == 1)
      run_part(0);
    else
      ctx.parallel_for(parts, [&](int64_t pb, int64_t pe, int) {
        for (int64_t p = pb; p < pe; ++p) run_part(p);
      }, 1);
    return;
  }
  // xp = state ‖ x, materialised once so that y may alias x.
  std::vector<float> local;
  float* xp = window;
  if (!xp) {
    local.resize(static_cast<size_t>((P + T) * C));
    xp = local.data();
  }
  std::copy(state, state + P * C, xp);
  std::copy(x, x + T * C, xp + P * C);
  // Output rows depend only on xp, so rows split freely (row t reads xp rows t .. t + Kw − 1).
  if (split) {
    ctx.parallel_for(T, [&](int64_t b, int64_t e, int) {
      HWY_DYNAMIC_DISPATCH(ConvRows)(y + b * C, xp + b * C, e - b, C, w_tap_major, Kw);
    }, 1);
  } else {
    HWY_DYNAMIC_DISPATCH(ConvRows)(y, xp, T, C, w_tap_major, Kw);
  }
  if (update_state) std::copy(xp + T * C, xp + (T + P) * C, state);
}

void attention_heads(float* out, const float* q, const float* k, const float* v, int64_t H, int64_t Hkv, int64_t D,
                     int64_t key_begin, int64_t key_end, float scale, int64_t h_begin, int64_t h_end,
                     const KernelContext& ctx) {
  HWY_DYNAMIC_DISPATCH(AttentionRange)(out, q, k, v, 1, H, Hkv, D, &key_begin, &key_end, scale,
                                       key_end > key_begin ? key_begin : 0, key_end > key_begin ? key_end : 0,
                                       h_begin, h_end, !ctx.numerics().row_invariant);
}

void attention_rows(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
                    int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, const KernelContext& ctx) {
  if (T <= 0) return;
  int64_t jmin = INT64_MAX, jmax = 0;
  for (int64_t t = 0; t < T; ++t)
    if (key_end[t] > key_begin[t]) {
      jmin = std::min(jmin, key_begin[t]);
      jmax = std::max(jmax, key_end[t]);
    }
  if (jmax == 0) jmin = 0;
  const bool allow_transpose = !ctx.numerics().row_invariant;
  ctx.parallel_for(T * H, [&](int64_t b, int64_t e, int) {
    HWY_DYNAMIC_DISPATCH(AttentionRange)(out, q, k, v, T, H, Hkv, D, key_begin, key_end, scale, jmin, jmax, b, e,
                                         allow_transpose);
  },
  // Decode attention streams the fp32 K/V cache (2 KB per position per layer at dhara-250m's shapes)
  // and is bound by memory, which one core cannot saturate: split heads across the pool from a much
  // lower threshold than compute-bound kernels use (a pool round trip costs ~1 µs). A decode row's
  // chunks are whole KV groups, so each thread streams its keys and values once for all their heads.
  T * H * 2 * D * (jmax - jmin) < kMinParallelMacs / 8 ? T * H : (T == 1 ? H / Hkv : 1));
}

}  // namespace optiq
#endif  // HWY_ONCE
