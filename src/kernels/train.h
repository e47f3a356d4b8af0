// The kernel seam for training: exact fp32 linears over frozen base weights (dense or MLX-quantized,
// used as their exact fp32 values, never with int8 activations), the backward of every forward op,
// and LoRA. Conventions as kernels/kernels.h: fp32 row-major, the caller's KernelContext last.
// Backward ops take the upstream gradient `dy` and what the forward saw, and write (or, where noted,
// add into) the input gradient.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "io/lora_adapter.h"
#include "kernels/kernels.h"

namespace optiq {

// ---- Linear layers over a frozen base ----

// y[T, N] = x[T, K] · Wᵀ with W's exact fp32 values (dequantized per panel, fp32 accumulation).
void linear_f32(float* y, const float* x, int64_t T, const Weight& w, const KernelContext& ctx);

// dx[T, K] = dy[T, N] · W (the input gradient of linear_f32), or dx += that with `accumulate`.
void linear_input_grad(float* dx, const float* dy, int64_t T, const Weight& w, bool accumulate,
                       const KernelContext& ctx);

// LoRA on a linear's output: y[T, out] += scale · (xd · a) · b with xd = x or its dropout; `xa`
// [T, r] receives xd · a (the backward needs it).
void lora_forward(float* y, float* xa, const float* xd, int64_t T, const LoraModule& m, float scale,
                  const KernelContext& ctx);

// The backward of lora_forward: grad.a += xdᵀ · e, grad.b += xaᵀ · (scale · dy), and
// dxd[T, in] = e · aᵀ (written) where e = scale · dy · bᵀ. `dxd` may be null (input gradient not needed).
void lora_backward(float* dxd, LoraModule& grad, const float* dy, const float* xd, const float* xa, int64_t T,
                   const LoraModule& m, float scale, const KernelContext& ctx);

// ---- Elementwise and norms ----

// Backward of rms_norm (y = w · x / sqrt(mean(x²) + eps) per row of C): dx from dy and the input x.
// `dx` may alias `dy`; with `accumulate` it adds into dx instead (then no aliasing).
void rms_norm_backward(float* dx, const float* dy, const float* x, int64_t T, int64_t C, const Weight& w, float eps,
                       bool accumulate, const KernelContext& ctx);

// Backward of out = silu(gate) · up: dgate, dup from dout. Outputs may alias dout.
void silu_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                       const KernelContext& ctx);

// Backward of out = gelu_tanh(gate) · up (gelu_tanh_mul): dgate = dout · up · gelu_tanh'(gate),
// dup = dout · gelu_tanh(gate). Outputs may alias dout.
void gelu_tanh_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                            const KernelContext& ctx);

// Backward of rope() in place on dx [T, H, D]: dx ← Rᵀ · dx, the rotation of the same pairs by the
// opposite angles (pairs at or past rot_pairs pass through).
void rope_backward(float* dx, int64_t T, int64_t H, int64_t D, const int64_t* pos, const float* inv_freq,
                   int64_t rot_pairs, const KernelContext& ctx);

// Backward of the Canon conv with residual over a whole sequence from a zero state
// (y[t] = x[t] + Σ_j w[j] · x[t − (Kw−1) + j]): dx[t] = dy[t] + Σ_j w[j] · dy[t + (Kw−1) − j]. No aliasing.
void conv1d_dw_backward(float* dx, const float* dy, int64_t T, int64_t C, ConvTaps w_tap_major, int64_t Kw,
                        const KernelContext& ctx);

// ---- Attention ----

// Backward of attention() over one sequence (q [T, H, D], k/v [T, Hkv, D], row t sees keys
// [key_begin[t], key_end[t]); key_begin null: 0): writes dq [T, H, D], dk and dv [T, Hkv, D] from
// dout [T, H, D]. The softmax is recomputed.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t D, const int64_t* key_begin,
                        const int64_t* key_end, float scale, const KernelContext& ctx);
// The same with every row's keys starting at 0.
inline void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t D, const int64_t* key_end,
                               float scale, const KernelContext& ctx) {
  attention_backward(dq, dk, dv, dout, q, k, v, T, H, Hkv, D, nullptr, key_end, scale, ctx);
}

// ---- Mixture of experts ----

// What moe_experts_train keeps for moe_experts_backward (T·K slots, slot = t·K + k).
struct MoeTrainActs {
  std::vector<int32_t> slots;   // [T·K] slot ids grouped by expert, increasing within an expert
  std::vector<int64_t> offset;  // [E + 1] each expert's range in `slots`
  std::vector<float> gu;        // [T·K, 2F] gate ‖ up rows in `slots` order
  std::vector<float> y;         // [T·K, C] each slot's expert output before its routing weight, by slot id
  size_t bytes() const { return (gu.size() + y.size()) * sizeof(float) + slots.size() * 4 + offset.size() * 8; }
};

// moe_experts() in exact fp32 (linear_f32 on each expert's gathered rows), keeping `acts`:
// out[T, C] = Σ_k w[t, k] · FFN_{sel[t, k]}(x[t]), summed in k order. `out` must not alias `x`.
void moe_experts_train(float* out, MoeTrainActs& acts, const float* x, int64_t T, int64_t C, const int32_t* sel,
                       const float* w, int64_t K, std::span<const ExpertFfn> experts, const KernelContext& ctx);

// Backward of moe_experts_train at a fixed selection (the one `acts` recorded): dx [T, C] =
// Σ_k w[t, k] · J_{t,k}ᵀ dout[t] (J the selected expert's Jacobian at x[t]) and dw [T, K] =
// dout[t] · FFN_{sel[t, k]}(x[t]), both written.
void moe_experts_backward(float* dx, float* dw, const float* dout, int64_t T, int64_t C, const float* w, int64_t K,
                          std::span<const ExpertFfn> experts, const MoeTrainActs& acts, const KernelContext& ctx);

// Backward of moe_topk_softmax's weights at a fixed selection. The renormalised top-k weights are the
// softmax over the selected logits alone (w_k = exp(z_k) / Σ_{j selected} exp(z_j): the full softmax's
// normaliser cancels), so dz_k = w_k · (dw_k − Σ_j w_j · dw_j) on selected logits and 0 elsewhere.
// dlogits [T, E] written; w, dw [T, K].
void moe_topk_softmax_backward(float* dlogits, const float* dw, const float* w, const int32_t* sel, int64_t T,
                               int64_t E, int64_t K, const KernelContext& ctx);

// ---- Loss ----

// For each of R rows of pre-cap logits z[R, V] with target[r] >= 0: the loss weight[r] · CE(softcap(z_r),
// target) (cap <= 0: no soft-cap), replacing z with its gradient. Rows with target < 0 get zero
// gradient. Returns the summed loss (fp64).
double softcap_cross_entropy(float* z, const int32_t* target, const float* weight, int64_t R, int64_t V, float cap,
                             const KernelContext& ctx);

}  // namespace optiq

namespace optiq {

// ---- Weight gradients (full-parameter training) ----

// dw[N, K] += dy[T, N]ᵀ · x[T, K].
void linear_weight_grad(float* dw, const float* dy, const float* x, int64_t T, int64_t N, int64_t K,
                        const KernelContext& ctx);

// The weight gradient of rms_norm: dw[c] += Σ_t dy[t, c] · x[t, c] / sqrt(mean(x_t²) + eps).
void rms_norm_weight_grad(float* dw, const float* dy, const float* x, int64_t T, int64_t C, float eps,
                          const KernelContext& ctx);

// The taps' gradient of the Canon conv over a sequence from a zero state, tap-major:
// dtaps[j, c] += Σ_t dy[t, c] · x[t − (Kw−1) + j, c].
void conv1d_dw_taps_grad(float* dtaps, const float* dy, const float* x, int64_t T, int64_t C, int64_t Kw,
                         const KernelContext& ctx);

}  // namespace optiq
