// dhara's training forward and backward: gradients of the loss with respect to LoRA parameters
// (specs/optiq-surface.md "LoRA training: exact semantics", specs/dhara.md §3, §7).
//
// The layer is models/dhara.cpp's (§3.1), run over one whole sequence at a time with per-row key
// ranges (TrainSequence::key_end) and a zero Canon state, in exact fp32 (kernels/train.h):
//   h  = norm_in(x);  hA = h + canonA(h)
//   q,k,v = Wq hA, Wk hA, Wv hA (+ LoRA);  q,k,v += canonB(q,k,v)
//   qr,kr = RoPE(q,k);  qn,kn = QK-norm(qr,kr);  att = attn(qn, kn, v)
//   x1 = x + Wo att (+ LoRA)
//   h2 = norm_post(x1); h2C = h2 + canonC(h2);  g,u = Wg h2C, Wu h2C (+ LoRA);  m = silu(g)·u
//   mD = m + canonD(m);  x2 = x1 + Wd mD (+ LoRA)
// Head: hn = norm(x_L); z = hn Eᵀ; loss = Σ weight · CE(cap·tanh(z/cap), target) over rows with targets.
// With gradient checkpointing only each layer's input is kept; the backward recomputes a layer's
// activations from it before going back through the layer.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "models/dhara.h"
#include "models/train_common.h"

namespace optiq {

namespace {

// One layer's activations over a sequence (what the backward reads).
struct LayerActs {
  std::vector<float> hA, q, k, v, qr, kr, att, x1, h2C, g, u, mD;
  LoraActs lora[kNumLoraSlots];
  size_t bytes() const {
    size_t n = hA.size() + q.size() + k.size() + v.size() + qr.size() + kr.size() + att.size() + x1.size() +
               h2C.size() + g.size() + u.size() + mD.size();
    size_t b = n * sizeof(float);
    for (const LoraActs& a : lora) b += a.bytes();
    return b;
  }
};

class DharaTrainable final : public Trainable {
 public:
  explicit DharaTrainable(DharaWeightsView w) : w_(w), c_(*w.cfg) {
    table_.n_layers = c_.num_hidden_layers;
    table_.name = [](int64_t l, int s) { return "model.layers." + std::to_string(l) + "." + kLoraSlotNames[s]; };
    table_.shape = [this](int64_t, int s) { return std::pair<int64_t, int64_t>{slot_in(s), slot_out(s)}; };
  }

  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> lora_targets(int64_t num_layers) const override {
    return lora_slot_targets(table_, num_layers);
  }

  Result<TrainStats> accumulate_lora_gradients(std::span<const TrainSequence> batch, const LoraAdapter& params,
                                               LoraAdapter& grads, const TrainOptions& opts,
                                               ThreadPool& pool) const override;

 private:
  int64_t slot_in(int s) const {
    return s == kLoraO ? c_.num_attention_heads * c_.head_dim : s == kLoraDown ? c_.intermediate_size : c_.hidden_size;
  }
  int64_t slot_out(int s) const {
    switch (s) {
      case kLoraQ: return c_.num_attention_heads * c_.head_dim;
      case kLoraK:
      case kLoraV: return c_.num_key_value_heads * c_.head_dim;
      case kLoraGate:
      case kLoraUp: return c_.intermediate_size;
      default: return c_.hidden_size;
    }
  }
  const Weight& slot_weight(const DharaLayer& L, int s) const {
    const Weight* ws[kNumLoraSlots] = {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj};
    return *ws[s];
  }

  // Per-sequence state of one pass.
  struct Pass {
    const TrainSequence* seq = nullptr;
    int64_t T = 0, index = 0;
    std::vector<int64_t> pos, neg_pos, key_begin, key_end;
    std::vector<LayerLora> lora;
    const TrainOptions* opts = nullptr;
    float scale = 1.0f;
  };

  void forward_layer(int64_t l, const Pass& p, const float* x, float* x_out, LayerActs& a, std::vector<float>& tmp,
                     const KernelContext& ctx) const;
  void backward_layer(int64_t l, const Pass& p, const float* x, const float* dx_out, float* dx, LayerActs& a,
                      std::vector<float>& scratch, const KernelContext& ctx) const;
  // Linear + LoRA on input `in` [T, in] (models/train_common.h lora_linear).
  void linear(int64_t l, int s, const Pass& p, const float* in, float* y, LayerActs& a,
              const KernelContext& ctx) const {
    lora_linear(y, in, p.T, slot_weight((*w_.layers)[l], s), p.lora[l].p[s], site(p, l, s), a.lora[s], ctx);
  }
  // dx_in (+)= dy W + LoRA's input gradient; LoRA parameter gradients accumulated.
  void linear_back(int64_t l, int s, const Pass& p, const float* in, const float* dy, float* dx_in, bool accumulate,
                   LayerActs& a, std::vector<float>& scratch, const KernelContext& ctx) const {
    lora_linear_backward(dx_in, dy, in, p.T, slot_weight((*w_.layers)[l], s), p.lora[l].p[s], p.lora[l].g[s],
                         site(p, l, s), accumulate, a.lora[s], scratch, ctx);
  }
  LoraSite site(const Pass& p, int64_t l, int s) const { return {p.opts, p.index, l, s, p.scale}; }
  void canon(int64_t l, int slot, float* x, int64_t T, const KernelContext& ctx) const;
  void canon_back(int64_t l, int slot, float* d, int64_t T, std::vector<float>& scratch,
                  const KernelContext& ctx) const;

  DharaWeightsView w_;
  const DharaConfig& c_;
  LoraSlotTable table_;
};

void DharaTrainable::canon(int64_t l, int slot, float* x, int64_t T, const KernelContext& ctx) const {
  const ConvTaps taps = (*w_.layers)[l].conv[slot];
  if (!taps.data) return;
  const int64_t width = w_.widths[slot], Kw = c_.canon_kernel;
  std::vector<float> state(static_cast<size_t>((Kw - 1) * width), 0.0f);
  conv1d_dw(x, x, T, width, taps, Kw, state.data(), false, nullptr, ctx);
}

void DharaTrainable::canon_back(int64_t l, int slot, float* d, int64_t T, std::vector<float>& scratch,
                                const KernelContext& ctx) const {
  const ConvTaps taps = (*w_.layers)[l].conv[slot];
  if (!taps.data) return;
  const int64_t width = w_.widths[slot];
  float* tmp = at_least(scratch, T * width);
  conv1d_dw_backward(tmp, d, T, width, taps, c_.canon_kernel, ctx);
  std::memcpy(d, tmp, sizeof(float) * T * width);
}

void DharaTrainable::forward_layer(int64_t l, const Pass& p, const float* x, float* x_out, LayerActs& a,
                                   std::vector<float>& tmp, const KernelContext& ctx) const {
  const DharaLayer& L = (*w_.layers)[l];
  const int64_t T = p.T, C = c_.hidden_size, F = c_.intermediate_size, D = c_.head_dim;
  const int64_t H = c_.num_attention_heads, Hkv = c_.num_key_value_heads;
  const float eps = c_.rms_norm_eps;
  // Attention block.
  float* hA = sized(a.hA, T * C);
  rms_norm(hA, x, T, C, L.input_layernorm, eps, ctx);
  canon(l, kConvA, hA, T, ctx);
  float* q = sized(a.q, T * H * D);
  float* k = sized(a.k, T * Hkv * D);
  float* v = sized(a.v, T * Hkv * D);
  linear(l, kLoraQ, p, hA, q, a, ctx);
  linear(l, kLoraK, p, hA, k, a, ctx);
  linear(l, kLoraV, p, hA, v, a, ctx);
  canon(l, kConvBq, q, T, ctx);
  canon(l, kConvBk, k, T, ctx);
  canon(l, kConvBv, v, T, ctx);
  rope_qk(q, H, k, Hkv, T, D, p.pos.data(), L.inv_freq.data(), D / 2, ctx);
  a.qr.assign(q, q + T * H * D);
  a.kr.assign(k, k + T * Hkv * D);
  if (c_.use_qk_norm) {  // q, k become the normed attention inputs; qr, kr keep the norms' inputs
    rms_norm(q, q, T * H, D, L.q_norm, eps, ctx);
    rms_norm(k, k, T * Hkv, D, L.k_norm, eps, ctx);
  }
  float* att = sized(a.att, T * H * D);
  attention(att, q, k, v, T, H, Hkv, D, p.key_begin.data(), p.key_end.data(), 1.0f / std::sqrt(static_cast<float>(D)),
            ctx);
  float* x1 = sized(a.x1, T * C);
  linear(l, kLoraO, p, att, x1, a, ctx);
  for (int64_t i = 0; i < T * C; ++i) x1[i] += x[i];
  // MLP block.
  float* h2C = sized(a.h2C, T * C);
  rms_norm(h2C, x1, T, C, L.post_attention_layernorm, eps, ctx);
  canon(l, kConvC, h2C, T, ctx);
  float* g = sized(a.g, T * F);
  float* u = sized(a.u, T * F);
  linear(l, kLoraGate, p, h2C, g, a, ctx);
  linear(l, kLoraUp, p, h2C, u, a, ctx);
  float* mD = sized(a.mD, T * F);
  silu_mul(mD, g, u, T * F, ctx);
  canon(l, kConvD, mD, T, ctx);
  float* d = at_least(tmp, T * C);
  linear(l, kLoraDown, p, mD, d, a, ctx);
  for (int64_t i = 0; i < T * C; ++i) x_out[i] = x1[i] + d[i];
}

void DharaTrainable::backward_layer(int64_t l, const Pass& p, const float* x, const float* dx_out, float* dx,
                                    LayerActs& a, std::vector<float>& s, const KernelContext& ctx) const {
  const DharaLayer& L = (*w_.layers)[l];
  const int64_t T = p.T, C = c_.hidden_size, F = c_.intermediate_size, D = c_.head_dim;
  const int64_t H = c_.num_attention_heads, Hkv = c_.num_key_value_heads;
  const float eps = c_.rms_norm_eps;
  std::vector<float> dx1(dx_out, dx_out + T * C), dmD(static_cast<size_t>(T * F)), dg(static_cast<size_t>(T * F)),
      du(static_cast<size_t>(T * F)), dh(static_cast<size_t>(T * C));
  // MLP block: x2 = x1 + Wd mD.
  linear_back(l, kLoraDown, p, a.mD.data(), dx_out, dmD.data(), false, a, s, ctx);
  canon_back(l, kConvD, dmD.data(), T, s, ctx);
  silu_mul_backward(dg.data(), du.data(), dmD.data(), a.g.data(), a.u.data(), T * F, ctx);
  linear_back(l, kLoraGate, p, a.h2C.data(), dg.data(), dh.data(), false, a, s, ctx);
  linear_back(l, kLoraUp, p, a.h2C.data(), du.data(), dh.data(), true, a, s, ctx);
  canon_back(l, kConvC, dh.data(), T, s, ctx);
  rms_norm_backward(dx1.data(), dh.data(), a.x1.data(), T, C, L.post_attention_layernorm, eps, true, ctx);
  // Attention block: x1 = x + Wo att.
  std::vector<float> datt(static_cast<size_t>(T * H * D)), dq(static_cast<size_t>(T * H * D)),
      dk(static_cast<size_t>(T * Hkv * D)), dv(static_cast<size_t>(T * Hkv * D));
  linear_back(l, kLoraO, p, a.att.data(), dx1.data(), datt.data(), false, a, s, ctx);
  attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), a.q.data(), a.k.data(), a.v.data(), T, H, Hkv, D,
                     p.key_end.data(), 1.0f / std::sqrt(static_cast<float>(D)), ctx);
  if (c_.use_qk_norm) {
    rms_norm_backward(dq.data(), dq.data(), a.qr.data(), T * H, D, L.q_norm, eps, false, ctx);
    rms_norm_backward(dk.data(), dk.data(), a.kr.data(), T * Hkv, D, L.k_norm, eps, false, ctx);
  }
  // RoPE's transpose is the rotation by the opposite angle.
  rope_qk(dq.data(), H, dk.data(), Hkv, T, D, p.neg_pos.data(), L.inv_freq.data(), D / 2, ctx);
  canon_back(l, kConvBq, dq.data(), T, s, ctx);
  canon_back(l, kConvBk, dk.data(), T, s, ctx);
  canon_back(l, kConvBv, dv.data(), T, s, ctx);
  linear_back(l, kLoraQ, p, a.hA.data(), dq.data(), dh.data(), false, a, s, ctx);
  linear_back(l, kLoraK, p, a.hA.data(), dk.data(), dh.data(), true, a, s, ctx);
  linear_back(l, kLoraV, p, a.hA.data(), dv.data(), dh.data(), true, a, s, ctx);
  canon_back(l, kConvA, dh.data(), T, s, ctx);
  std::memcpy(dx, dx1.data(), sizeof(float) * T * C);
  rms_norm_backward(dx, dh.data(), x, T, C, L.input_layernorm, eps, true, ctx);
}

Result<TrainStats> DharaTrainable::accumulate_lora_gradients(std::span<const TrainSequence> batch,
                                                             const LoraAdapter& params, LoraAdapter& grads,
                                                             const TrainOptions& opts, ThreadPool& pool) const {
  const int64_t Ln = c_.num_hidden_layers, C = c_.hidden_size, V = c_.vocab_size;
  int64_t first = Ln;
  OPTIQ_ASSIGN_OR_RETURN(std::vector<LayerLora> lora, bind_lora(table_, params, grads, "dhara", &first));

  KernelScratch scratch;
  KernelContext ctx(pool, scratch);
  TrainStats stats;
  const Weight& E = *w_.embed_tokens;
  for (size_t si = 0; si < batch.size(); ++si) {
    const TrainSequence& seq = batch[si];
    const int64_t T = static_cast<int64_t>(seq.tokens.size());
    if (T == 0) continue;
    if (static_cast<int64_t>(seq.targets.size()) != T || (!seq.key_end.empty() && static_cast<int64_t>(seq.key_end.size()) != T))
      return Status::InvalidArgument("train sequence " + std::to_string(si) + ": targets/key_end must have one entry per token");
    if (T > c_.max_position_embeddings)
      return Status::InvalidArgument("train sequence " + std::to_string(si) + ": " + std::to_string(T) +
                                     " tokens exceed max_position_embeddings " + std::to_string(c_.max_position_embeddings));
    for (int64_t t = 0; t < T; ++t) {
      if (seq.tokens[t] < 0 || seq.tokens[t] >= V || seq.targets[t] >= V)
        return Status::InvalidArgument("train sequence " + std::to_string(si) + ": token or target id at row " +
                                       std::to_string(t) + " outside the vocabulary [0, " + std::to_string(V) + ")");
      if (!seq.key_end.empty() && (seq.key_end[t] < 1 || seq.key_end[t] > T))
        return Status::InvalidArgument("train sequence " + std::to_string(si) + ": key_end at row " +
                                       std::to_string(t) + " outside [1, T]");
    }
    Pass p;
    p.seq = &seq;
    p.T = T;
    p.index = static_cast<int64_t>(si);
    p.opts = &opts;
    p.scale = params.scale;
    p.lora = lora;
    p.pos.resize(static_cast<size_t>(T));
    p.neg_pos.resize(static_cast<size_t>(T));
    p.key_begin.assign(static_cast<size_t>(T), 0);
    p.key_end.resize(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      p.pos[t] = t;
      p.neg_pos[t] = -t;
      p.key_end[t] = seq.key_end.empty() ? t + 1 : seq.key_end[t];
    }
    std::vector<float> x(static_cast<size_t>(T * C)), tmp, s;
    for (int64_t t = 0; t < T; ++t) weight_row(E, seq.tokens[t], x.data() + t * C);
    const TiedHead head{w_.norm, &E, V, c_.rms_norm_eps, c_.use_logit_softcap ? c_.logit_softcap : 0.0f};
    train_sequence_pass<LayerActs>(
        seq, std::move(x), Ln, std::min(first, Ln), C, head, opts.grad_checkpoint,
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

std::unique_ptr<Trainable> make_dhara_trainable(DharaWeightsView weights) {
  return std::make_unique<DharaTrainable>(weights);
}

}  // namespace optiq
