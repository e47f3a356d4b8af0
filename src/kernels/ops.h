// Elementwise, normalisation, positional and attention kernels (fp32 activations).
// Shapes in comments use the letters from core/tensor.h.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/weight.h"

namespace optiq {

// y[T, C] = w[C] · x / sqrt(mean(x²) + eps), row by row. `w` is dense [C] (f32/bf16/f16).
// `y` may alias `x`. With `w.data == nullptr` no weight is applied (weightless norms).
void rms_norm(float* y, const float* x, int64_t T, int64_t C, const Weight& w, float eps);

// Rotate-half RoPE in place on x[T, H, D]: for pair i < rot/2 (rot <= D),
// angle = pos[t] · inv_freq[i]; (x_i, x_{i+D/2}) rotates by it. Pairs at or past rot/2 are left
// unchanged. inv_freq has D/2 entries; cos/sin are computed in fp32.
void rope(float* x, int64_t T, int64_t H, int64_t D, const int64_t* pos, const float* inv_freq, int64_t rot_pairs);
// rope on q [T, Hq, D] and k [T, Hk, D] (k may be null) at the same positions: the angles' cos/sin
// are computed once for both. Same results as two rope calls.
void rope_qk(float* q, int64_t Hq, float* k, int64_t Hk, int64_t T, int64_t D, const int64_t* pos,
             const float* inv_freq, int64_t rot_pairs);
// Rotates `rows` rows of length D (one position) by its angles' cos/sin (rot_pairs each), in SIMD.
void rope_rows(float* x, int64_t rows, int64_t D, const float* cs, const float* sn, int64_t rot_pairs);

// Conv taps, tap-major [Kw, C]: fp32, or bf16 as checkpoints store them. A decode step reads every
// layer's taps once; bf16 halves those bytes, and widening bf16 to fp32 is exact, so the results equal
// those of the same taps in fp32.
struct ConvTaps {
  const void* data = nullptr;
  bool bf16 = false;
  ConvTaps() = default;
  ConvTaps(const float* p) : data(p) {}  // NOLINT(google-explicit-constructor): fp32 taps read as before
  ConvTaps at(int64_t channel) const {  // the taps from `channel` on (tap rows keep their stride)
    ConvTaps t = *this;
    t.data = static_cast<const uint8_t*>(data) + channel * (bf16 ? 2 : 4);
    return t;
  }
  static ConvTaps from_bf16(const uint16_t* p) {
    ConvTaps t;
    t.data = p;
    t.bf16 = true;
    return t;
  }
};

// Causal depthwise conv with residual, streaming (Canon layer):
//   y[t, c] = x[t, c] + Σ_{j<Kw} w[c, j] · xp[t + j, c],  xp = state[Kw-1, C] ‖ x[T, C].
// `w_tap_major` is [Kw, C] (w[c, j] at j·C + c, the layout the SIMD loop reads; models transpose the
// checkpoint's [C, 1, Kw] once at load). Tap Kw-1 multiplies the current row. `y` may alias `x`.
// If `window` is non-null it receives xp ([Kw-1+T, C]) for later rollback. Read-only calls in place
// (y == x, no window, state kept) copy no window.
// The state is updated to the last Kw-1 rows of xp when `update_state` is true.
// With a pool, chunks of many rows (block forwards) are split across it by rows.
void conv1d_dw(float* y, const float* x, int64_t T, int64_t C, ConvTaps w_tap_major, int64_t Kw, float* state,
               bool update_state, float* window, ThreadPool* pool = nullptr);

// The longest Canon kernel the convs accept.
inline constexpr int64_t kMaxConvKernel = 16;

// One step of the same conv from row pointers: y[c] = rows[Kw-1][c] + Σ_j w[c, j] · rows[j][c]. Decode
// steps read their state rows in place (a ring in the model's cache) instead of copying a window.
// Bit-identical to conv1d_dw on the same rows. `y` may alias rows[Kw-1].
// `tap_stride` (0: C) lets a call convolve channels [c0, c0 + C) of a wider conv: rows and taps offset
// by c0 (ConvTaps::at), the taps' row stride the full width. Each channel's result is the same
// whatever slice it is computed in.
void conv1d_dw_row(float* y, const float* const* rows, int64_t C, ConvTaps w_tap_major, int64_t Kw,
                   int64_t tap_stride = 0);

// out[T, F] = silu(gate[T, F]) * up[T, F]. `out` may alias either input.
void silu_mul(float* out, const float* gate, const float* up, int64_t n);

// x = cap · tanh(x / cap), elementwise.
void softcap_inplace(float* x, int64_t n, float cap);

// x += y, elementwise.
void add_inplace(float* x, const float* y, int64_t n);

// Grouped-query attention over a cache.
//   q   [T, H, D]        queries (already positioned and normed)
//   k,v [S, Hkv, D]      keys/values by position (row stride Hkv·D)
//   out [T, H, D]
// Query row t attends keys [key_begin[t], key_end[t]); query head h uses KV head h / (H / Hkv).
// Softmax in fp32 with max subtraction; `scale` multiplies q·k.
void attention(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
               int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, ThreadPool& pool);

// One query row (a decode step), query heads [h_begin, h_end) only, on the calling thread: the same
// arithmetic per head as attention() with T = 1. Lets a decode step fuse a KV group's attention with
// the work that produces its queries and keys.
void attention_heads(float* out, const float* q, const float* k, const float* v, int64_t H, int64_t Hkv, int64_t D,
                     int64_t key_begin, int64_t key_end, float scale, int64_t h_begin, int64_t h_end);

// One attention row over a score buffer of n entries: row[j] = softmax_j(scale · row[lo, hi)) for j in
// [lo, hi), 0 elsewhere (max-subtracted, fp32). hi <= lo gives all zeros.
void masked_softmax_row(float* row, int64_t n, int64_t lo, int64_t hi, float scale);

// Softmax over n values into p (fp32, max-subtracted); returns the max probability's index.
int64_t softmax(const float* z, float* p, int64_t n);

// Scalar references (test oracles) for the Highway kernels above; same contracts. The Highway
// versions use vector exp/tanh (a few ulp) and reassociate sums, so they agree to ~1e-6 relative.
void rms_norm_reference(float* y, const float* x, int64_t T, int64_t C, const Weight& w, float eps);
void conv1d_dw_reference(float* y, const float* x, int64_t T, int64_t C, const float* w, int64_t Kw, float* state,
                         bool update_state, float* window);
void silu_mul_reference(float* out, const float* gate, const float* up, int64_t n);
void softcap_inplace_reference(float* x, int64_t n, float cap);
void add_inplace_reference(float* x, const float* y, int64_t n);
void attention_reference(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H,
                         int64_t Hkv, int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale,
                         ThreadPool& pool);

}  // namespace optiq
