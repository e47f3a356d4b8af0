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

#include "models/dhara_train.h"

#include "kernels/train.h"

namespace optiq {

namespace {

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

float* sized(std::vector<float>& v, int64_t n) {
  v.assign(static_cast<size_t>(n), 0.0f);
  return v.data();
}

float* at_least(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace

// Dropout mask value for element (t, i) of slot s's input: 0 or 1/(1 − p), from a hash of the step's
// seed and the element, so that a recomputed forward draws the same mask.
float DharaTrainable::dropout_keep_scale(const Pass& p, int64_t l, int s, int64_t t, int64_t i) const {
  const float rate = p.opts->lora_dropout;
  uint64_t h = mix(p.opts->dropout_seed ^ mix(static_cast<uint64_t>(p.index) * 1315423911ULL +
                                               static_cast<uint64_t>(l) * kNumSlots + static_cast<uint64_t>(s)));
  h = mix(h ^ (static_cast<uint64_t>(t) << 32 | static_cast<uint64_t>(i)));
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  return u < rate ? 0.0f : 1.0f / (1.0f - rate);
}

void DharaTrainable::canon(int64_t l, int slot, float* x, int64_t T, std::vector<float>* pre,
                           const KernelContext& ctx) const {
  const ConvTaps taps = (*w_.layers)[l].conv[slot];
  if (!taps.data) return;
  if (pre) pre->assign(x, x + T * w_.widths[slot]);  // the taps' gradient needs the conv's input
  const int64_t width = w_.widths[slot], Kw = c_.canon_kernel;
  std::vector<float> state(static_cast<size_t>((Kw - 1) * width), 0.0f);
  conv1d_dw(x, x, T, width, taps, Kw, state.data(), false, nullptr, ctx);
}

void DharaTrainable::canon_back(int64_t l, int slot, const Pass& p, float* d, const std::vector<float>& pre,
                                std::vector<float>& scratch, const KernelContext& ctx) const {
  const ConvTaps taps = (*w_.layers)[l].conv[slot];
  if (!taps.data) return;
  const int64_t T = p.T, width = w_.widths[slot];
  if (p.full) conv1d_dw_taps_grad(p.full->layers[l].taps[slot], d, pre.data(), T, width, c_.canon_kernel, ctx);
  float* tmp = at_least(scratch, T * width);
  conv1d_dw_backward(tmp, d, T, width, taps, c_.canon_kernel, ctx);
  std::memcpy(d, tmp, sizeof(float) * T * width);
}

void DharaTrainable::linear(int64_t l, int s, const Pass& p, const float* in, float* y, LayerActs& a,
                            const KernelContext& ctx) const {
  linear_f32(y, in, p.T, slot_weight((*w_.layers)[l], s), ctx);
  const LoraModule* m = p.lora[l].p[s];
  if (!m) return;
  const float* xd = in;
  if (p.opts->lora_dropout > 0) {
    float* d = sized(a.xd[s], p.T * m->in);
    for (int64_t t = 0; t < p.T; ++t)
      for (int64_t i = 0; i < m->in; ++i) d[t * m->in + i] = in[t * m->in + i] * dropout_keep_scale(p, l, s, t, i);
    xd = d;
  }
  lora_forward(y, sized(a.xa[s], p.T * m->rank), xd, p.T, *m, p.scale, ctx);
}

void DharaTrainable::linear_back(int64_t l, int s, const Pass& p, const float* in, const float* dy, float* dx_in,
                                 bool accumulate, LayerActs& a, std::vector<float>& scratch,
                                 const KernelContext& ctx) const {
  const Weight& w = slot_weight((*w_.layers)[l], s);
  if (p.full) linear_weight_grad(p.full->layers[l].linear[s], dy, in, p.T, w.n_out, w.n_in, ctx);
  if (dx_in) linear_input_grad(dx_in, dy, p.T, w, accumulate, ctx);
  const LoraModule* m = p.lora[l].p[s];
  if (!m) return;
  const bool dropout = p.opts->lora_dropout > 0;
  const float* xd = dropout ? a.xd[s].data() : in;
  float* dxd = at_least(scratch, p.T * m->in);
  lora_backward(dxd, *p.lora[l].g[s], dy, xd, a.xa[s].data(), p.T, *m, p.scale, ctx);
  for (int64_t t = 0; t < p.T; ++t)
    for (int64_t i = 0; i < m->in; ++i)
      dx_in[t * m->in + i] += dropout ? dxd[t * m->in + i] * dropout_keep_scale(p, l, s, t, i) : dxd[t * m->in + i];
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
  canon(l, kConvA, hA, T, p.full ? &a.pre[kConvA] : nullptr, ctx);
  float* q = sized(a.q, T * H * D);
  float* k = sized(a.k, T * Hkv * D);
  float* v = sized(a.v, T * Hkv * D);
  linear(l, kQ, p, hA, q, a, ctx);
  linear(l, kK, p, hA, k, a, ctx);
  linear(l, kV, p, hA, v, a, ctx);
  canon(l, kConvBq, q, T, p.full ? &a.pre[kConvBq] : nullptr, ctx);
  canon(l, kConvBk, k, T, p.full ? &a.pre[kConvBk] : nullptr, ctx);
  canon(l, kConvBv, v, T, p.full ? &a.pre[kConvBv] : nullptr, ctx);
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
  linear(l, kO, p, att, x1, a, ctx);
  for (int64_t i = 0; i < T * C; ++i) x1[i] += x[i];
  // MLP block.
  float* h2C = sized(a.h2C, T * C);
  rms_norm(h2C, x1, T, C, L.post_attention_layernorm, eps, ctx);
  canon(l, kConvC, h2C, T, p.full ? &a.pre[kConvC] : nullptr, ctx);
  float* g = sized(a.g, T * F);
  float* u = sized(a.u, T * F);
  linear(l, kGate, p, h2C, g, a, ctx);
  linear(l, kUp, p, h2C, u, a, ctx);
  float* mD = sized(a.mD, T * F);
  silu_mul(mD, g, u, T * F, ctx);
  canon(l, kConvD, mD, T, p.full ? &a.pre[kConvD] : nullptr, ctx);
  float* d = at_least(tmp, T * C);
  linear(l, kDown, p, mD, d, a, ctx);
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
  linear_back(l, kDown, p, a.mD.data(), dx_out, dmD.data(), false, a, s, ctx);
  canon_back(l, kConvD, p, dmD.data(), a.pre[kConvD], s, ctx);
  silu_mul_backward(dg.data(), du.data(), dmD.data(), a.g.data(), a.u.data(), T * F, ctx);
  linear_back(l, kGate, p, a.h2C.data(), dg.data(), dh.data(), false, a, s, ctx);
  linear_back(l, kUp, p, a.h2C.data(), du.data(), dh.data(), true, a, s, ctx);
  canon_back(l, kConvC, p, dh.data(), a.pre[kConvC], s, ctx);
  if (p.full) rms_norm_weight_grad(p.full->layers[l].post_norm, dh.data(), a.x1.data(), T, C, eps, ctx);
  rms_norm_backward(dx1.data(), dh.data(), a.x1.data(), T, C, L.post_attention_layernorm, eps, true, ctx);
  // Attention block: x1 = x + Wo att.
  std::vector<float> datt(static_cast<size_t>(T * H * D)), dq(static_cast<size_t>(T * H * D)),
      dk(static_cast<size_t>(T * Hkv * D)), dv(static_cast<size_t>(T * Hkv * D));
  linear_back(l, kO, p, a.att.data(), dx1.data(), datt.data(), false, a, s, ctx);
  attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), a.q.data(), a.k.data(), a.v.data(), T, H, Hkv, D,
                     p.key_end.data(), 1.0f / std::sqrt(static_cast<float>(D)), ctx);
  if (c_.use_qk_norm) {
    if (p.full) {
      rms_norm_weight_grad(p.full->layers[l].q_norm, dq.data(), a.qr.data(), T * H, D, eps, ctx);
      rms_norm_weight_grad(p.full->layers[l].k_norm, dk.data(), a.kr.data(), T * Hkv, D, eps, ctx);
    }
    rms_norm_backward(dq.data(), dq.data(), a.qr.data(), T * H, D, L.q_norm, eps, false, ctx);
    rms_norm_backward(dk.data(), dk.data(), a.kr.data(), T * Hkv, D, L.k_norm, eps, false, ctx);
  }
  // RoPE's transpose is the rotation by the opposite angle.
  rope_qk(dq.data(), H, dk.data(), Hkv, T, D, p.neg_pos.data(), L.inv_freq.data(), D / 2, ctx);
  canon_back(l, kConvBq, p, dq.data(), a.pre[kConvBq], s, ctx);
  canon_back(l, kConvBk, p, dk.data(), a.pre[kConvBk], s, ctx);
  canon_back(l, kConvBv, p, dv.data(), a.pre[kConvBv], s, ctx);
  linear_back(l, kQ, p, a.hA.data(), dq.data(), dh.data(), false, a, s, ctx);
  linear_back(l, kK, p, a.hA.data(), dk.data(), dh.data(), true, a, s, ctx);
  linear_back(l, kV, p, a.hA.data(), dv.data(), dh.data(), true, a, s, ctx);
  canon_back(l, kConvA, p, dh.data(), a.pre[kConvA], s, ctx);
  if (p.full) rms_norm_weight_grad(p.full->layers[l].in_norm, dh.data(), x, T, C, eps, ctx);
  std::memcpy(dx, dx1.data(), sizeof(float) * T * C);
  rms_norm_backward(dx, dh.data(), x, T, C, L.input_layernorm, eps, true, ctx);
}

Status DharaTrainable::check_sequence(const TrainSequence& seq, size_t si) const {
  const int64_t T = static_cast<int64_t>(seq.tokens.size()), V = c_.vocab_size;
  const std::string where = "train sequence " + std::to_string(si);
  if (static_cast<int64_t>(seq.targets.size()) != T || (!seq.key_end.empty() && static_cast<int64_t>(seq.key_end.size()) != T))
    return Status::InvalidArgument(where + ": targets/key_end must have one entry per token");
  if (T > c_.max_position_embeddings)
    return Status::InvalidArgument(where + ": " + std::to_string(T) + " tokens exceed max_position_embeddings " +
                                   std::to_string(c_.max_position_embeddings));
  for (int64_t t = 0; t < T; ++t) {
    if (seq.tokens[t] < 0 || seq.tokens[t] >= V || seq.targets[t] >= V)
      return Status::InvalidArgument(where + ": token or target id at row " + std::to_string(t) +
                                     " outside the vocabulary [0, " + std::to_string(V) + ")");
    if (!seq.key_end.empty() && (seq.key_end[t] < 1 || seq.key_end[t] > T))
      return Status::InvalidArgument(where + ": key_end at row " + std::to_string(t) + " outside [1, T]");
  }
  return Status::Ok();
}

void DharaTrainable::run_sequence(Pass& p, int64_t first_layer, const KernelContext& ctx, TrainStats& stats) const {
  const TrainSequence& seq = *p.seq;
  const int64_t Ln = c_.num_hidden_layers, C = c_.hidden_size, V = c_.vocab_size;
  const int64_t T = static_cast<int64_t>(seq.tokens.size());
  const Weight& E = *w_.embed_tokens;
  p.T = T;
  p.pos.resize(static_cast<size_t>(T));
  p.neg_pos.resize(static_cast<size_t>(T));
  p.key_begin.assign(static_cast<size_t>(T), 0);
  p.key_end.resize(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    p.pos[t] = t;
    p.neg_pos[t] = -t;
    p.key_end[t] = seq.key_end.empty() ? t + 1 : seq.key_end[t];
  }
  // Forward, keeping the input of every layer from the first trained one on.
  std::vector<std::vector<float>> xs(static_cast<size_t>(Ln + 1));
  std::vector<float> x(static_cast<size_t>(T * C)), tmp;
  for (int64_t t = 0; t < T; ++t) weight_row(E, seq.tokens[t], x.data() + t * C);
  const bool keep_all = !p.opts->grad_checkpoint;
  std::vector<LayerActs> acts(keep_all ? static_cast<size_t>(Ln) : 1);
  size_t act_bytes = 0, peak = 0;
  for (int64_t l = 0; l < Ln; ++l) {
    std::vector<float> next(static_cast<size_t>(T * C));
    LayerActs& a = acts[keep_all ? static_cast<size_t>(l) : 0];
    forward_layer(l, p, x.data(), next.data(), a, tmp, ctx);
    if (l >= first_layer) {
      xs[static_cast<size_t>(l)] = std::move(x);
      act_bytes += xs[static_cast<size_t>(l)].size() * sizeof(float) + (keep_all ? a.bytes() : 0);
    }
    peak = std::max(peak, act_bytes + a.bytes());
    x = std::move(next);
  }
  // Head and loss, in chunks of target rows: z = norm(x) Eᵀ, dz, dhn = dz E.
  std::vector<float> hn(static_cast<size_t>(T * C)), dhn(static_cast<size_t>(T * C), 0.0f);
  rms_norm(hn.data(), x.data(), T, C, *w_.norm, c_.rms_norm_eps, ctx);
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < T; ++t)
    if (seq.targets[t] >= 0) rows.push_back(t);
  constexpr int64_t kChunk = 64;
  std::vector<float> hz, z, dz_h;
  for (size_t r0 = 0; r0 < rows.size(); r0 += kChunk) {
    const int64_t R = std::min<int64_t>(kChunk, static_cast<int64_t>(rows.size() - r0));
    float* hr = at_least(hz, R * C);
    std::vector<int32_t> tgt(static_cast<size_t>(R));
    std::vector<float> wts(static_cast<size_t>(R), seq.weight);
    for (int64_t r = 0; r < R; ++r) {
      std::memcpy(hr + r * C, hn.data() + rows[r0 + r] * C, sizeof(float) * C);
      tgt[r] = seq.targets[rows[r0 + r]];
    }
    float* zr = at_least(z, R * V);
    linear_f32(zr, hr, R, E, ctx);
    stats.loss += softcap_cross_entropy(zr, tgt.data(), wts.data(), R, V,
                                        c_.use_logit_softcap ? c_.logit_softcap : 0.0f, ctx);
    if (p.full) linear_weight_grad(p.full->embed, zr, hr, R, V, C, ctx);  // the tied head
    float* dh = at_least(dz_h, R * C);
    linear_input_grad(dh, zr, R, E, false, ctx);
    for (int64_t r = 0; r < R; ++r) std::memcpy(dhn.data() + rows[r0 + r] * C, dh + r * C, sizeof(float) * C);
    peak = std::max(peak, act_bytes + static_cast<size_t>(R * V) * sizeof(float));
  }
  stats.targets += static_cast<int64_t>(rows.size());
  stats.tokens += T;
  if (first_layer < Ln && !rows.empty()) {
    std::vector<float> dx(static_cast<size_t>(T * C)), dprev(static_cast<size_t>(T * C)), s, recomputed_out;
    if (p.full) rms_norm_weight_grad(p.full->norm, dhn.data(), x.data(), T, C, c_.rms_norm_eps, ctx);
    rms_norm_backward(dx.data(), dhn.data(), x.data(), T, C, *w_.norm, c_.rms_norm_eps, false, ctx);
    // Back through the layers, recomputing each one's activations from its input when checkpointing.
    for (int64_t l = Ln - 1; l >= first_layer; --l) {
      const std::vector<float>& xin = xs[static_cast<size_t>(l)];
      LayerActs& a = acts[keep_all ? static_cast<size_t>(l) : 0];
      if (!keep_all) forward_layer(l, p, xin.data(), at_least(recomputed_out, T * C), a, tmp, ctx);
      peak = std::max(peak, act_bytes + a.bytes() + 4 * sizeof(float) * static_cast<size_t>(T * c_.intermediate_size));
      backward_layer(l, p, xin.data(), dx.data(), dprev.data(), a, s, ctx);
      std::swap(dx, dprev);
    }
    if (p.full)  // the input embedding's rows
      for (int64_t t = 0; t < T; ++t) {
        float* g = p.full->embed + static_cast<int64_t>(seq.tokens[t]) * C;
        for (int64_t c = 0; c < C; ++c) g[c] += dx[t * C + c];
      }
  }
  stats.peak_activation_bytes = std::max(stats.peak_activation_bytes, peak);
}

Result<TrainStats> DharaTrainable::accumulate_lora_gradients(std::span<const TrainSequence> batch,
                                                             const LoraAdapter& params, LoraAdapter& grads,
                                                             const TrainOptions& opts, ThreadPool& pool) const {
  const int64_t Ln = c_.num_hidden_layers;
  // Bind the adapter's modules to layers; every module must be one of ours with our shapes.
  std::vector<LayerLora> lora(static_cast<size_t>(Ln));
  size_t bound = 0;
  int64_t first = Ln;
  for (int64_t l = 0; l < Ln; ++l)
    for (int s = 0; s < kNumSlots; ++s) {
      const std::string name = module_name(l, s);
      const LoraModule* m = params.find(name);
      if (!m) continue;
      if (m->in != slot_in(s) || m->out != slot_out(s))
        return Status::InvalidArgument("adapter module " + name + ": shape [" + std::to_string(m->in) + ", " +
                                       std::to_string(m->out) + "] but the model's linear is [" +
                                       std::to_string(slot_in(s)) + ", " + std::to_string(slot_out(s)) + "]");
      auto it = grads.modules.find(name);
      if (it == grads.modules.end() || it->second.a.size() != m->a.size() || it->second.b.size() != m->b.size())
        return Status::InvalidArgument("gradient adapter lacks module " + name + " or its shapes differ");
      lora[l].p[s] = m;
      lora[l].g[s] = &it->second;
      ++bound;
      first = std::min(first, l);
    }
  if (bound != params.modules.size()) {
    for (const auto& [name, m] : params.modules) {
      bool ours = false;
      for (int64_t l = 0; l < Ln && !ours; ++l)
        for (int s = 0; s < kNumSlots && !ours; ++s) ours = module_name(l, s) == name;
      if (!ours) return Status::InvalidArgument("adapter module " + name + " is not a LoRA target of this dhara model");
    }
  }
  Pass proto;
  proto.opts = &opts;
  proto.scale = params.scale;
  proto.lora = std::move(lora);
  return run_batch(batch, proto, first, pool);
}

Result<TrainStats> DharaTrainable::run_batch(std::span<const TrainSequence> batch, const Pass& proto,
                                             int64_t first_layer, ThreadPool& pool) const {
  for (size_t si = 0; si < batch.size(); ++si) OPTIQ_RETURN_IF_ERROR(check_sequence(batch[si], si));
  KernelScratch scratch;
  KernelContext ctx(pool, scratch);
  TrainStats stats;
  for (size_t si = 0; si < batch.size(); ++si) {
    if (batch[si].tokens.empty()) continue;
    Pass p = proto;
    p.seq = &batch[si];
    p.index = static_cast<int64_t>(si);
    run_sequence(p, first_layer, ctx, stats);
  }
  return stats;
}

Result<TrainStats> DharaTrainable::accumulate_full_gradients(std::span<const TrainSequence> batch,
                                                             const DharaFullGrads& grads, const TrainOptions& opts,
                                                             ThreadPool& pool) const {
  Pass proto;
  proto.opts = &opts;
  proto.lora.assign(static_cast<size_t>(c_.num_hidden_layers), LayerLora{});
  proto.full = &grads;
  return run_batch(batch, proto, 0, pool);
}

std::unique_ptr<Trainable> make_dhara_trainable(DharaWeightsView weights) {
  return std::make_unique<DharaTrainable>(weights);
}

}  // namespace optiq
