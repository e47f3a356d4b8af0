// The kernel seam: every op a model's forward calls, and nothing else. Models include this header
// and kernels/weight.h only; which implementation runs (Highway target, AVX-512 VNNI, AMX, a packed
// decode layout, a GEMM or row attention) is decided inside, in one place per op, from the weight's
// format, the row count and ctx.numerics(). ISA-specific code lives under kernels/x86/ behind
// private headers.
//
// Conventions: fp32 activations, row-major, last dimension contiguous; shapes use the letters of
// core/tensor.h (T rows, C hidden, H / Hkv heads, D head dim, F ffn, E experts, K experts per row).
// Every op takes the caller's KernelContext last (pool, scratch, numerics). Ops that split work
// across the pool do so only when the work pays for a pool round trip; with a worker's context
// (KernelContext::for_worker) they run on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "core/huge_pages.h"
#include "kernels/context.h"
#include "kernels/weight.h"

namespace optiq {

// ---- Linear layers ----

// out[T, N] = x[T, K] · Wᵀ for dense (f32 / bf16 / f16) and MLX affine quantized weights, fp32
// accumulation. Quantized weights use int8 activations per (row, group) except tiny matrices
// (kernels/matmul_q.h explains both). `out` must not alias `x`.
void matmul(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx);

// Several weights on one input (q/k/v, gate/up): out_i[T, w_i.n_out] = x · w_iᵀ. On the quantized
// paths the activations are prepared once and all rows form one parallel pass. Outputs must not
// alias x or each other. Each output equals what matmul() computes for it.
void matmul_multi(std::span<const MatmulOut> outs, const float* x, int64_t T, const KernelContext& ctx);

// A decode step's (T = 1) per-group work after a matmul_multi: every output's rows split into
// n_groups equal slices (KV groups: q rows of a group's heads, its k and v rows); group g's slices
// are ready when fn(g, worker_ctx) runs, and groups run in parallel, fn on the thread that computed
// its slices where the weights' layout allows computing slices, else after one whole matmul_multi.
// Outputs equal matmul_multi's. fn gets a worker context: kernels it calls stay on its thread.
using GroupFn = std::function<void(int64_t group, const KernelContext& worker_ctx)>;
void matmul_grouped(std::span<const MatmulOut> outs, const float* x, int64_t n_groups, const GroupFn& fn,
                    const KernelContext& ctx);

// At load: gives `w` a second copy in the layout this CPU's decode matmul streams fastest (kernels/
// x86/matmul_q_packed.h), allocated from `arena`, when one exists for its format and the matrix is
// large enough to be worth its bytes once more in memory. Returns whether it made one. Throws
// std::bad_alloc when the arena cannot grow (the weight is then unchanged).
bool add_decode_layout(Weight& w, HugePageArena& arena);

// An unmerged LoRA adapter on a linear layer whose output is already in `out` (specs/optiq-surface.md
// L.1): out[T, n_out] += scale · (x[T, n_in] · a[n_in, rank]) · b[rank, n_out], fp32, a and b
// row-major. Each row is computed as a one-row call computes it, whatever T and the thread count.
// `out` must not alias x.
void lora_add(float* out, const float* x, int64_t T, const float* a, const float* b, int64_t n_in, int64_t rank,
              int64_t n_out, float scale, const KernelContext& ctx);

// ---- Norms, activations, elementwise ----

// y[T, C] = w[C] · x / sqrt(mean(x²) + eps), row by row. `w` is dense [C] (f32/bf16/f16); with
// `w.data == nullptr` no weight is applied. `y` may alias `x`.
void rms_norm(float* y, const float* x, int64_t T, int64_t C, const Weight& w, float eps, const KernelContext& ctx);

// out[i] = silu(gate[i]) * up[i]. `out` may alias either input.
void silu_mul(float* out, const float* gate, const float* up, int64_t n, const KernelContext& ctx);

// out[i] = gelu_tanh(gate[i]) * up[i] (torch's "gelu_pytorch_tanh"). `out` may alias either input.
void gelu_tanh_mul(float* out, const float* gate, const float* up, int64_t n, const KernelContext& ctx);

// x = cap · tanh(x / cap), elementwise.
void softcap_inplace(float* x, int64_t n, float cap, const KernelContext& ctx);

// x += y, elementwise.
void add_inplace(float* x, const float* y, int64_t n, const KernelContext& ctx);

// Softmax over n values into p (fp32, max-subtracted); returns the max probability's index.
int64_t softmax(const float* z, float* p, int64_t n, const KernelContext& ctx);

// ---- Positions ----

// Rotate-half RoPE in place on x[T, H, D]: for pair i < rot_pairs (<= D/2),
// angle = pos[t] · inv_freq[i]; (x_i, x_{i+D/2}) rotates by it. Pairs at or past rot_pairs are left
// unchanged. cos/sin in fp32.
void rope(float* x, int64_t T, int64_t H, int64_t D, const int64_t* pos, const float* inv_freq, int64_t rot_pairs,
          const KernelContext& ctx);
// rope on q [T, Hq, D] and k [T, Hk, D] (k may be null) at the same positions; same results as two
// rope calls. The angles are kept in the worker's scratch and reused while positions and inv_freq
// are equal bit for bit (every layer of a forward rotates the same positions).
void rope_qk(float* q, int64_t Hq, float* k, int64_t Hk, int64_t T, int64_t D, const int64_t* pos,
             const float* inv_freq, int64_t rot_pairs, const KernelContext& ctx);

// 2-D RoPE for vision patches, in place on x[T, H, D] (D divisible by 4): channels [0, D/2) rotate
// by pos_x[t], [D/2, D) by pos_y[t]; within a half, pairs (i, i + D/4) use theta^(−2i / (D/2)).
void rope_2d(float* x, int64_t T, int64_t H, int64_t D, const int64_t* pos_x, const int64_t* pos_y, float theta,
             const KernelContext& ctx);

// ---- Canon causal depthwise conv ----

// Conv taps, tap-major [Kw, C]: fp32, or bf16 as checkpoints store them (widening is exact, so the
// results equal those of the same taps in fp32; a decode step reads every layer's taps once).
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

// The longest Canon kernel the convs accept.
inline constexpr int64_t kMaxConvKernel = 16;

// Causal depthwise conv with residual, streaming (Canon layer):
//   y[t, c] = x[t, c] + Σ_{j<Kw} w[c, j] · xp[t + j, c],  xp = state[Kw-1, C] ‖ x[T, C].
// `w_tap_major` is [Kw, C] (w[c, j] at j·C + c; models transpose the checkpoint's [C, 1, Kw] once at
// load). Tap Kw-1 multiplies the current row. `y` may alias `x`. If `window` is non-null it receives
// xp ([Kw-1+T, C]) for later rollback. Read-only calls in place (y == x, no window, state kept) copy
// no window. The state becomes the last Kw-1 rows of xp when `update_state` is true.
void conv1d_dw(float* y, const float* x, int64_t T, int64_t C, ConvTaps w_tap_major, int64_t Kw, float* state,
               bool update_state, float* window, const KernelContext& ctx);

// One step of the same conv from row pointers: y[c] = rows[Kw-1][c] + Σ_j w[c, j] · rows[j][c]
// (decode steps read their state rows in place). Bit-identical to conv1d_dw on the same rows. `y`
// may alias rows[Kw-1]. `tap_stride` (0: C) lets a call convolve channels [c0, c0 + C) of a wider
// conv (rows and taps offset by c0, ConvTaps::at); each channel's result is the same whatever slice
// it is computed in.
void conv1d_dw_row(float* y, const float* const* rows, int64_t C, ConvTaps w_tap_major, int64_t Kw,
                   int64_t tap_stride, const KernelContext& ctx);

// ---- Attention ----

// Grouped-query attention over a cache:
//   q [T, H, D] (positioned and normed), k/v [S, Hkv, D] by position (row stride Hkv·D), out [T, H, D].
// Query row t attends keys [key_begin[t], key_end[t]) (empty: zeros); head h uses KV head h / (H / Hkv).
// Softmax in fp32 with max subtraction; `scale` multiplies q·k. Chunks of many rows run as per-KV-head
// GEMMs unless ctx.numerics().row_invariant.
void attention(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
               int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, const KernelContext& ctx);

// One query row (a decode step), query heads [h_begin, h_end) only, on the calling thread: the
// arithmetic of attention() with T = 1 per head. Lets a decode step attend inside its per-KV-group pass.
void attention_heads(float* out, const float* q, const float* k, const float* v, int64_t H, int64_t Hkv, int64_t D,
                     int64_t key_begin, int64_t key_end, float scale, int64_t h_begin, int64_t h_end,
                     const KernelContext& ctx);

// ---- Mixture of experts ----

// Top-k of softmax(logits) per row, renormalised over the k picks. logits [T, E]; sel [T, K] expert
// ids by decreasing probability (lower id first on ties); w [T, K] summing to 1 per row.
void moe_topk_softmax(const float* logits, int64_t T, int64_t E, int64_t K, int32_t* sel, float* w,
                      const KernelContext& ctx);

// One expert's FFN: gate_up [2F, C] (rows 0..F-1 gate, F..2F-1 up), down [C, F].
struct ExpertFfn {
  Weight gate_up;
  Weight down;
};

// out[T, C] = Σ_k w[t, k] · FFN_{sel[t, k]}(x[t]), FFN_e(x) = down_e(gelu_tanh(gate_e x) * up_e x).
// Rows are grouped by expert (each expert's weights stream once per call); a row's k terms are
// summed in k order, so the result does not depend on the grouping. `out` must not alias `x`.
void moe_experts(float* out, const float* x, int64_t T, int64_t C, const int32_t* sel, const float* w, int64_t K,
                 std::span<const ExpertFfn> experts, const KernelContext& ctx);

}  // namespace optiq
