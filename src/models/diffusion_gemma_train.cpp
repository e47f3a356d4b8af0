// DiffusionGemma's training forward and backward: gradients of the loss with respect to LoRA
// parameters (specs/optiq-surface.md §5.5, L.2, L.8 `--objective canvas`; specs/diffusiongemma.md §2).
//
// A TrainSequence with canvas_begin = P holds the prompt tokens[0:P] and the canvas tokens[P:T] at
// positions P … T−1. The inference path runs the prompt through the causal encoder (writing K/V) and
// then one decoder step over the canvas reading that cache (kFull, write_cache=false). Both use the
// same layer with the same weights, so one pass over all T rows computes both exactly: each layer
// runs row-wise on every row, attention gives every row its own key range, and only the final
// layer_scalar and the input block differ between prompt (encoder) and canvas (decoder) rows:
//   input    prompt rows x = embed·bf16(√C);  canvas rows x = rmsnorm_noscale(embed·bf16(√C) + SC)
//            with SC = 0: the canvas decoder's first step passes no self-conditioning, and the SC
//            MLP of a zero soft embedding adds exactly 0 (§2.7), as models/diffusion_gemma.cpp does.
//   keys     prompt row t: [max(0, t − W + 1), t + 1) on sliding layers, [0, t + 1) on full ones;
//            canvas rows: [max(0, P − (W − 1)), T) on sliding layers (the cache's last W − 1
//            positions plus the whole canvas), [0, T) on full ones.
//   scalar   encoder layer_scalar on prompt rows, decoder layer_scalar on canvas rows.
// Prompt rows never see canvas rows, so they compute what the encoder prefill computes; canvas rows
// read the prompt's post-norm, post-RoPE K and normed V of the same layer, as from the cache. The
// LoRA of a module acts on both kinds of rows (the encoder runs the same blocks), and the gradient
// of the canvas loss reaches the prompt rows through their K/V.
//
// Layer (§2.2, §2.3, §2.5), each line undone in backward_layer:
//   h = norm_in(x);  q, k, v = Wq h, Wk h, Wv h (+ LoRA; full layers without v_proj: v = k)
//   qr = rope(q_norm(q));  kr = rope(k_norm(k));  vn = rmsnorm_noscale(v)
//   att = attn(qr, kr, vn, scale 1);  o = Wo att (+ LoRA);  x1 = x + norm_pa(o)
//   hd = norm_pf(x1);  g, u = Wg hd, Wu hd (+ LoRA);  m = gelu_tanh(g)·u;  dn = Wd m (+ LoRA)
//   wsel, sel = topk_softmax(Wr (rmsnorm_noscale(x1) · router_scale · C^−½));  w = wsel · pes[sel]
//   ex = Σ_k w_k · expert_{sel_k}(norm_pf2(x1))
//   s = norm_pf1(dn) + norm_pf2post(ex);  x_out = (x1 + norm_post(s)) · layer_scalar[row's mode]
// Experts, router and self-conditioning are frozen; the expert and router inputs still carry
// gradient, the top-k choice held fixed and the routing weights differentiated as functions of x1.
// Head: z = norm(x_L) Eᵀ; loss = Σ weight · CE(cap·tanh(z/cap), target) over rows with targets.
// With gradient checkpointing only each layer's input is kept; the backward recomputes a layer's
// activations from it before going back through the layer.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "models/diffusion_gemma.h"
#include "models/train_common.h"

namespace optiq {

namespace {

// One layer's activations over a sequence (what the backward reads).
struct LayerActs {
  std::vector<float> h;             // [T, C] input_layernorm(x)
  std::vector<float> q, k, v;       // [T, H·D], [T, Hkv·D], [T, Hkv·D] projections (v empty when V = K)
  std::vector<float> qr, kr, vn;    // attention inputs: rope(q_norm(q)), rope(k_norm(k)), rmsnorm(v)
  std::vector<float> att, o, x1;    // [T, H·D], [T, C], [T, C]
  std::vector<float> hd, g, u, m, dn;  // dense MLP: [T, C], [T, F] ×3, [T, C]
  std::vector<int32_t> sel;         // [T, K] routed experts
  std::vector<float> wsel, w;       // [T, K] top-k softmax weights; times per_expert_scale
  std::vector<float> h2, ex, s;     // [T, C] expert input, expert mix, dense + expert sum
  MoeTrainActs moe;
  LoraActs lora[kNumLoraSlots];
  size_t bytes() const {
    size_t n = h.size() + q.size() + k.size() + v.size() + qr.size() + kr.size() + vn.size() + att.size() + o.size() +
               x1.size() + hd.size() + g.size() + u.size() + m.size() + dn.size() + wsel.size() + w.size() +
               h2.size() + ex.size() + s.size();
    size_t b = n * sizeof(float) + sel.size() * sizeof(int32_t) + moe.bytes();
    for (const LoraActs& a : lora) b += a.bytes();
    return b;
  }
};

class DiffusionGemmaTrainable final : public Trainable {
 public:
  explicit DiffusionGemmaTrainable(DiffusionGemmaWeightsView w) : w_(w), c_(*w.cfg) {
    table_.n_layers = c_.num_hidden_layers;
    table_.name = [](int64_t l, int s) {
      return "model.decoder.layers." + std::to_string(l) + "." + kLoraSlotNames[s];
    };
    table_.shape = [this](int64_t l, int s) { return slot_shape(l, s); };
  }

  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> lora_targets(int64_t num_layers) const override {
    return lora_slot_targets(table_, num_layers);
  }

  Result<TrainStats> accumulate_lora_gradients(std::span<const TrainSequence> batch, const LoraAdapter& params,
                                               LoraAdapter& grads, const TrainOptions& opts,
                                               ThreadPool& pool) const override;

 private:
  const DgLayer& layer(int64_t l) const { return (*w_.layers)[static_cast<size_t>(l)]; }
  // {in, out} of slot s of layer l; {0, 0} for the v_proj a full layer does not have.
  std::pair<int64_t, int64_t> slot_shape(int64_t l, int s) const {
    const DgLayer& L = layer(l);
    const int64_t C = c_.hidden_size, F = c_.intermediate_size, HD = c_.num_attention_heads * L.D;
    switch (s) {
      case kLoraQ: return {C, HD};
      case kLoraK: return {C, L.n_kv * L.D};
      case kLoraV: return L.k_eq_v ? std::pair<int64_t, int64_t>{0, 0} : std::pair<int64_t, int64_t>{C, L.n_kv * L.D};
      case kLoraO: return {HD, C};
      case kLoraGate:
      case kLoraUp: return {C, F};
      default: return {F, C};
    }
  }
  static const Weight& slot_weight(const DgLayer& L, int s) {
    const Weight* ws[kNumLoraSlots] = {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj};
    return *ws[s];
  }

  // Per-sequence state of one pass.
  struct Pass {
    int64_t T = 0, P = 0, index = 0;      // rows, prompt rows (canvas rows are [P, T)), sequence index
    std::vector<int64_t> pos;              // [T] = 0 … T−1
    std::vector<int64_t> kb_sliding, kb_full, ke;  // [T] key ranges per layer type
    std::vector<BlockLora> lora;
    const TrainOptions* opts = nullptr;
    float scale = 1.0f;
  };

  LoraSite site(const Pass& p, int64_t l, int s) const { return {p.opts, p.index, l, s, p.scale}; }
  void linear(int64_t l, int s, const Pass& p, const float* in, float* y, LayerActs& a, const KernelContext& ctx) const {
    lora_linear(y, in, p.T, slot_weight(layer(l), s), p.lora[l].p[s], site(p, l, s), a.lora[s], ctx);
  }
  void linear_back(int64_t l, int s, const Pass& p, const float* in, const float* dy, float* dx_in, bool accumulate,
                   LayerActs& a, std::vector<float>& scratch, const KernelContext& ctx) const {
    lora_linear_backward(dx_in, dy, in, p.T, slot_weight(layer(l), s), p.lora[l].p[s], p.lora[l].g[s], site(p, l, s),
                         accumulate, a.lora[s], scratch, ctx);
  }
  float row_scalar(const DgLayer& L, const Pass& p, int64_t t) const {
    return t < p.P ? L.encoder_scalar : L.decoder_scalar;
  }

  void forward_layer(int64_t l, const Pass& p, const float* x, float* x_out, LayerActs& a, std::vector<float>& tmp,
                     const KernelContext& ctx) const;
  void backward_layer(int64_t l, const Pass& p, const float* x, const float* dx_out, float* dx, LayerActs& a,
                      std::vector<float>& scratch, const KernelContext& ctx) const;
  Status check_sequence(const TrainSequence& seq, size_t index) const;

  DiffusionGemmaWeightsView w_;
  const DiffusionGemmaConfig& c_;
  LoraSlotTable table_;
};

void DiffusionGemmaTrainable::forward_layer(int64_t l, const Pass& p, const float* x, float* x_out, LayerActs& a,
                                            std::vector<float>& tmp, const KernelContext& ctx) const {
  const DgLayer& L = layer(l);
  const int64_t T = p.T, C = c_.hidden_size, F = c_.intermediate_size, D = L.D, H = c_.num_attention_heads;
  const int64_t Hkv = L.n_kv, E = c_.num_experts, K = c_.top_k_experts;
  const float eps = c_.rms_norm_eps;
  const Weight no_weight{};
  // Attention (§2.3).
  float* h = sized(a.h, T * C);
  rms_norm(h, x, T, C, L.input_layernorm, eps, ctx);
  float* q = sized(a.q, T * H * D);
  float* k = sized(a.k, T * Hkv * D);
  linear(l, kLoraQ, p, h, q, a, ctx);
  linear(l, kLoraK, p, h, k, a, ctx);
  const float* v = k;  // full layers without v_proj: V := raw K projection
  if (!L.k_eq_v) {
    linear(l, kLoraV, p, h, sized(a.v, T * Hkv * D), a, ctx);
    v = a.v.data();
  } else {
    a.v.clear();
  }
  float* qr = sized(a.qr, T * H * D);
  float* kr = sized(a.kr, T * Hkv * D);
  float* vn = sized(a.vn, T * Hkv * D);
  rms_norm(qr, q, T * H, D, L.q_norm, eps, ctx);
  rope(qr, T, H, D, p.pos.data(), L.inv_freq.data(), L.rot_pairs, ctx);
  rms_norm(kr, k, T * Hkv, D, L.k_norm, eps, ctx);
  rope(kr, T, Hkv, D, p.pos.data(), L.inv_freq.data(), L.rot_pairs, ctx);
  rms_norm(vn, v, T * Hkv, D, no_weight, eps, ctx);
  float* att = sized(a.att, T * H * D);
  attention(att, qr, kr, vn, T, H, Hkv, D, L.full ? p.kb_full.data() : p.kb_sliding.data(), p.ke.data(), 1.0f, ctx);
  float* o = sized(a.o, T * C);
  linear(l, kLoraO, p, att, o, a, ctx);
  float* x1 = sized(a.x1, T * C);
  rms_norm(x1, o, T, C, L.post_attention_layernorm, eps, ctx);
  add_inplace(x1, x, T * C, ctx);

  // Dense MLP branch.
  float* hd = sized(a.hd, T * C);
  rms_norm(hd, x1, T, C, L.pre_feedforward_layernorm, eps, ctx);
  float* g = sized(a.g, T * F);
  float* u = sized(a.u, T * F);
  linear(l, kLoraGate, p, hd, g, a, ctx);
  linear(l, kLoraUp, p, hd, u, a, ctx);
  float* m = sized(a.m, T * F);
  gelu_tanh_mul(m, g, u, T * F, ctx);
  float* dn = sized(a.dn, T * C);
  linear(l, kLoraDown, p, m, dn, a, ctx);

  // Router (§2.5) on the un-normed residual: rmsnorm_noscale(x1) · scale · C^−½ → logits → top-k.
  float* hr = at_least(tmp, T * std::max(C, E));
  rms_norm(hr, x1, T, C, no_weight, eps, ctx);
  const float root = 1.0f / std::sqrt(static_cast<float>(C));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < C; ++i) hr[t * C + i] = hr[t * C + i] * L.router_scale[i] * root;
  std::vector<float> logits(static_cast<size_t>(T * E));
  linear_f32(logits.data(), hr, T, L.router_proj, ctx);
  a.sel.assign(static_cast<size_t>(T * K), 0);
  float* wsel = sized(a.wsel, T * K);
  moe_topk_softmax(logits.data(), T, E, K, a.sel.data(), wsel, ctx);
  float* w = sized(a.w, T * K);
  for (int64_t i = 0; i < T * K; ++i) w[i] = wsel[i] * L.per_expert_scale[a.sel[i]];

  // Expert branch.
  float* h2 = sized(a.h2, T * C);
  rms_norm(h2, x1, T, C, L.pre_feedforward_layernorm_2, eps, ctx);
  float* ex = sized(a.ex, T * C);
  moe_experts_train(ex, a.moe, h2, T, C, a.sel.data(), w, K, L.experts, ctx);

  // s = norm_pf1(dn) + norm_pf2post(ex); x_out = (x1 + norm_post(s)) · scalar.
  float* s = sized(a.s, T * C);
  float* e = at_least(tmp, T * C);
  rms_norm(s, dn, T, C, L.post_feedforward_layernorm_1, eps, ctx);
  rms_norm(e, ex, T, C, L.post_feedforward_layernorm_2, eps, ctx);
  add_inplace(s, e, T * C, ctx);
  rms_norm(x_out, s, T, C, L.post_feedforward_layernorm, eps, ctx);
  add_inplace(x_out, x1, T * C, ctx);
  for (int64_t t = 0; t < T; ++t) {
    const float sc = row_scalar(L, p, t);
    for (int64_t i = 0; i < C; ++i) x_out[t * C + i] *= sc;
  }
}

void DiffusionGemmaTrainable::backward_layer(int64_t l, const Pass& p, const float* x, const float* dx_out, float* dx,
                                             LayerActs& a, std::vector<float>& scratch,
                                             const KernelContext& ctx) const {
  const DgLayer& L = layer(l);
  const int64_t T = p.T, C = c_.hidden_size, F = c_.intermediate_size, D = L.D, H = c_.num_attention_heads;
  const int64_t Hkv = L.n_kv, E = c_.num_experts, K = c_.top_k_experts;
  const float eps = c_.rms_norm_eps;
  const Weight no_weight{};
  auto buf = [](int64_t n) { return std::vector<float>(static_cast<size_t>(n)); };
  // x_out = x2 · scalar, x2 = x1 + norm_post(s): dx2 = dx_out · scalar; dx1 = dx2 + (through the branches).
  std::vector<float> dx1 = buf(T * C), ds = buf(T * C), dtmp = buf(T * C);
  for (int64_t t = 0; t < T; ++t) {
    const float sc = row_scalar(L, p, t);
    for (int64_t i = 0; i < C; ++i) dx1[t * C + i] = dx_out[t * C + i] * sc;
  }
  rms_norm_backward(ds.data(), dx1.data(), a.s.data(), T, C, L.post_feedforward_layernorm, eps, false, ctx);

  // Expert branch: s ∋ norm_pf2post(ex), ex = Σ_k w_k · expert(h2), h2 = norm_pf2(x1).
  rms_norm_backward(dtmp.data(), ds.data(), a.ex.data(), T, C, L.post_feedforward_layernorm_2, eps, false, ctx);
  std::vector<float> dh2 = buf(T * C), dw = buf(T * K), dlogits = buf(T * E);
  moe_experts_backward(dh2.data(), dw.data(), dtmp.data(), T, C, a.w.data(), K, L.experts, a.moe, ctx);
  rms_norm_backward(dx1.data(), dh2.data(), a.x1.data(), T, C, L.pre_feedforward_layernorm_2, eps, true, ctx);
  // Router: w = wsel · pes[sel], wsel = topk_softmax(Wr hr), hr = rmsnorm_noscale(x1) · router_scale · C^−½.
  for (int64_t i = 0; i < T * K; ++i) dw[i] *= L.per_expert_scale[a.sel[i]];
  moe_topk_softmax_backward(dlogits.data(), dw.data(), a.wsel.data(), a.sel.data(), T, E, K, ctx);
  linear_input_grad(dtmp.data(), dlogits.data(), T, L.router_proj, false, ctx);
  const float root = 1.0f / std::sqrt(static_cast<float>(C));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < C; ++i) dtmp[t * C + i] *= L.router_scale[i] * root;
  rms_norm_backward(dx1.data(), dtmp.data(), a.x1.data(), T, C, no_weight, eps, true, ctx);

  // Dense branch: s ∋ norm_pf1(dn), dn = Wd (gelu(g)·u), g, u = Wg hd, Wu hd, hd = norm_pf(x1).
  rms_norm_backward(dtmp.data(), ds.data(), a.dn.data(), T, C, L.post_feedforward_layernorm_1, eps, false, ctx);
  std::vector<float> dm = buf(T * F), dg = buf(T * F), du = buf(T * F), dh = buf(T * C);
  linear_back(l, kLoraDown, p, a.m.data(), dtmp.data(), dm.data(), false, a, scratch, ctx);
  gelu_tanh_mul_backward(dg.data(), du.data(), dm.data(), a.g.data(), a.u.data(), T * F, ctx);
  linear_back(l, kLoraGate, p, a.hd.data(), dg.data(), dh.data(), false, a, scratch, ctx);
  linear_back(l, kLoraUp, p, a.hd.data(), du.data(), dh.data(), true, a, scratch, ctx);
  rms_norm_backward(dx1.data(), dh.data(), a.x1.data(), T, C, L.pre_feedforward_layernorm, eps, true, ctx);

  // Attention: x1 = x + norm_pa(Wo att).
  rms_norm_backward(dtmp.data(), dx1.data(), a.o.data(), T, C, L.post_attention_layernorm, eps, false, ctx);
  std::vector<float> datt = buf(T * H * D), dq = buf(T * H * D), dk = buf(T * Hkv * D), dv = buf(T * Hkv * D);
  linear_back(l, kLoraO, p, a.att.data(), dtmp.data(), datt.data(), false, a, scratch, ctx);
  attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), a.qr.data(), a.kr.data(), a.vn.data(), T, H, Hkv, D,
                     L.full ? p.kb_full.data() : p.kb_sliding.data(), p.ke.data(), 1.0f, ctx);
  // vn = rmsnorm_noscale(v); kr = rope(k_norm(k)); qr = rope(q_norm(q)).
  const float* v = L.k_eq_v ? a.k.data() : a.v.data();
  rms_norm_backward(dv.data(), dv.data(), v, T * Hkv, D, no_weight, eps, false, ctx);
  rope_backward(dq.data(), T, H, D, p.pos.data(), L.inv_freq.data(), L.rot_pairs, ctx);
  rope_backward(dk.data(), T, Hkv, D, p.pos.data(), L.inv_freq.data(), L.rot_pairs, ctx);
  rms_norm_backward(dq.data(), dq.data(), a.q.data(), T * H, D, L.q_norm, eps, false, ctx);
  rms_norm_backward(dk.data(), dk.data(), a.k.data(), T * Hkv, D, L.k_norm, eps, false, ctx);
  if (L.k_eq_v) add_inplace(dk.data(), dv.data(), T * Hkv * D, ctx);  // k feeds both K and V
  dh.assign(static_cast<size_t>(T * C), 0.0f);
  linear_back(l, kLoraQ, p, a.h.data(), dq.data(), dh.data(), false, a, scratch, ctx);
  linear_back(l, kLoraK, p, a.h.data(), dk.data(), dh.data(), true, a, scratch, ctx);
  if (!L.k_eq_v) linear_back(l, kLoraV, p, a.h.data(), dv.data(), dh.data(), true, a, scratch, ctx);
  std::memcpy(dx, dx1.data(), sizeof(float) * T * C);
  rms_norm_backward(dx, dh.data(), x, T, C, L.input_layernorm, eps, true, ctx);
}

Status DiffusionGemmaTrainable::check_sequence(const TrainSequence& seq, size_t index) const {
  const int64_t T = static_cast<int64_t>(seq.tokens.size()), V = c_.vocab_size;
  const std::string what = "train sequence " + std::to_string(index) + ": ";
  if (static_cast<int64_t>(seq.targets.size()) != T)
    return Status::InvalidArgument(what + "targets must have one entry per token");
  if (!seq.key_end.empty())
    return Status::InvalidArgument(what + "diffusion_gemma trains under its own masks (a causal encoder over the "
                                          "prompt, a bidirectional canvas); key_end must be empty");
  if (seq.canvas_begin < -1 || seq.canvas_begin > T)
    return Status::InvalidArgument(what + "canvas_begin " + std::to_string(seq.canvas_begin) + " outside [-1, " +
                                   std::to_string(T) + "]");
  if (T > c_.max_position_embeddings)
    return Status::InvalidArgument(what + std::to_string(T) + " tokens exceed max_position_embeddings " +
                                   std::to_string(c_.max_position_embeddings));
  for (int64_t t = 0; t < T; ++t)
    if (seq.tokens[t] < 0 || seq.tokens[t] >= V || seq.targets[t] >= V)
      return Status::InvalidArgument(what + "token or target id at row " + std::to_string(t) +
                                     " outside the vocabulary [0, " + std::to_string(V) + ")");
  return Status::Ok();
}

Result<TrainStats> DiffusionGemmaTrainable::accumulate_lora_gradients(std::span<const TrainSequence> batch,
                                                                      const LoraAdapter& params, LoraAdapter& grads,
                                                                      const TrainOptions& opts,
                                                                      ThreadPool& pool) const {
  const int64_t Ln = c_.num_hidden_layers, C = c_.hidden_size, V = c_.vocab_size, W = c_.sliding_window;
  int64_t first_layer = Ln;
  OPTIQ_ASSIGN_OR_RETURN(std::vector<BlockLora> lora, bind_lora(table_, params, grads, "diffusion_gemma", &first_layer));
  for (size_t si = 0; si < batch.size(); ++si) OPTIQ_RETURN_IF_ERROR(check_sequence(batch[si], si));

  KernelScratch scratch;
  KernelContext ctx(pool, scratch);
  TrainStats stats;
  const Weight& E = *w_.embed_tokens;
  for (size_t si = 0; si < batch.size(); ++si) {
    const TrainSequence& seq = batch[si];
    const int64_t T = static_cast<int64_t>(seq.tokens.size());
    if (T == 0) continue;
    Pass p;
    p.T = T;
    p.P = seq.canvas_begin < 0 ? T : seq.canvas_begin;
    p.index = static_cast<int64_t>(si);
    p.opts = &opts;
    p.scale = params.scale;
    p.lora = lora;
    p.pos.resize(static_cast<size_t>(T));
    p.kb_sliding.resize(static_cast<size_t>(T));
    p.kb_full.assign(static_cast<size_t>(T), 0);
    p.ke.resize(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      p.pos[t] = t;
      const bool canvas = t >= p.P;
      p.kb_sliding[t] = canvas ? std::max<int64_t>(0, p.P - (W - 1)) : std::max<int64_t>(0, t - W + 1);
      p.ke[t] = canvas ? T : t + 1;
    }
    // Input block: scaled embeddings; canvas rows normed (decoder input without self-conditioning).
    std::vector<float> x(static_cast<size_t>(T * C));
    for (int64_t t = 0; t < T; ++t) {
      weight_row(E, seq.tokens[t], x.data() + t * C);
      for (int64_t i = 0; i < C; ++i) x[t * C + i] *= w_.embed_scale;
    }
    if (p.P < T) rms_norm(x.data() + p.P * C, x.data() + p.P * C, T - p.P, C, Weight{}, c_.rms_norm_eps, ctx);
    std::vector<float> tmp, s;
    const TiedHead head{w_.norm, &E, V, c_.rms_norm_eps, c_.final_logit_softcapping};
    train_sequence_pass<LayerActs>(
        seq, std::move(x), Ln, first_layer, C, head, opts.grad_checkpoint,
        4 * sizeof(float) * static_cast<size_t>(T * c_.intermediate_size),
        [&](int64_t l, const float* in, float* out, LayerActs& a) { forward_layer(l, p, in, out, a, tmp, ctx); },
        [&](int64_t l, const float* in, const float* dy, float* dx, LayerActs& a) {
          backward_layer(l, p, in, dy, dx, a, s, ctx);
        },
        stats, ctx);
  }
  return stats;
}

}  // namespace

std::unique_ptr<Trainable> make_diffusion_gemma_trainable(DiffusionGemmaWeightsView weights) {
  return std::make_unique<DiffusionGemmaTrainable>(weights);
}

}  // namespace optiq
