// Shared training pieces (models/train_common.h).
#include "models/train_common.h"

#include <algorithm>
#include <cstring>

namespace optiq {

namespace {

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Dropout mask value of element (t, i) of a linear's input: 0 or 1/(1 − p).
float dropout_keep_scale(const LoraSite& site, int64_t t, int64_t i) {
  const float rate = site.opts->lora_dropout;
  uint64_t h = mix(site.opts->dropout_seed ^ mix(static_cast<uint64_t>(site.sequence) * 1315423911ULL +
                                                 static_cast<uint64_t>(site.layer) * kNumLoraSlots +
                                                 static_cast<uint64_t>(site.slot)));
  h = mix(h ^ (static_cast<uint64_t>(t) << 32 | static_cast<uint64_t>(i)));
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  return u < rate ? 0.0f : 1.0f / (1.0f - rate);
}

}  // namespace

std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> lora_slot_targets(const LoraSlotTable& table,
                                                                                  int64_t num_layers) {
  const int64_t L = table.n_layers;
  const int64_t first = num_layers < 0 ? 0 : std::max<int64_t>(0, L - num_layers);
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> out;
  for (int64_t l = first; l < L; ++l)
    for (int s = 0; s < kNumLoraSlots; ++s) {
      const auto shape = table.shape(l, s);
      if (shape.first > 0) out.push_back({table.name(l, s), shape});
    }
  return out;
}

Result<std::vector<BlockLora>> bind_lora(const LoraSlotTable& table, const LoraAdapter& params, LoraAdapter& grads,
                                         const std::string& model_name, int64_t* first_layer) {
  const int64_t L = table.n_layers;
  std::vector<BlockLora> lora(static_cast<size_t>(L));
  size_t bound = 0;
  *first_layer = L;
  for (int64_t l = 0; l < L; ++l)
    for (int s = 0; s < kNumLoraSlots; ++s) {
      const auto [in, out] = table.shape(l, s);
      if (in <= 0) continue;
      const std::string name = table.name(l, s);
      const LoraModule* m = params.find(name);
      if (!m) continue;
      if (m->in != in || m->out != out)
        return Status::InvalidArgument("adapter module " + name + ": shape [" + std::to_string(m->in) + ", " +
                                       std::to_string(m->out) + "] but the model's linear is [" + std::to_string(in) +
                                       ", " + std::to_string(out) + "]");
      auto it = grads.modules.find(name);
      if (it == grads.modules.end() || it->second.a.size() != m->a.size() || it->second.b.size() != m->b.size())
        return Status::InvalidArgument("gradient adapter lacks module " + name + " or its shapes differ");
      lora[static_cast<size_t>(l)].p[s] = m;
      lora[static_cast<size_t>(l)].g[s] = &it->second;
      ++bound;
      *first_layer = std::min(*first_layer, l);
    }
  if (bound != params.modules.size()) {
    for (const auto& [name, m] : params.modules) {
      bool ours = false;
      for (int64_t l = 0; l < L && !ours; ++l)
        for (int s = 0; s < kNumLoraSlots && !ours; ++s) ours = table.shape(l, s).first > 0 && table.name(l, s) == name;
      if (!ours)
        return Status::InvalidArgument("adapter module " + name + " is not a LoRA target of this " + model_name +
                                       " model");
    }
  }
  return lora;
}

void lora_linear(float* y, const float* in, int64_t T, const Weight& w, const LoraModule* m, const LoraSite& site,
                 LoraActs& acts, const KernelContext& ctx) {
  linear_f32(y, in, T, w, ctx);
  if (!m) return;
  const float* xd = in;
  if (site.opts->lora_dropout > 0) {
    float* d = sized(acts.xd, T * m->in);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < m->in; ++i) d[t * m->in + i] = in[t * m->in + i] * dropout_keep_scale(site, t, i);
    xd = d;
  }
  lora_forward(y, sized(acts.xa, T * m->rank), xd, T, *m, site.scale, ctx);
}

void lora_linear_backward(float* dx_in, const float* dy, const float* in, int64_t T, const Weight& w,
                          const LoraModule* m, LoraModule* g, const LoraSite& site, bool accumulate,
                          const LoraActs& acts, std::vector<float>& scratch, const KernelContext& ctx) {
  linear_input_grad(dx_in, dy, T, w, accumulate, ctx);
  if (!m) return;
  const bool dropout = site.opts->lora_dropout > 0;
  const float* xd = dropout ? acts.xd.data() : in;
  float* dxd = at_least(scratch, T * m->in);
  lora_backward(dxd, *g, dy, xd, acts.xa.data(), T, *m, site.scale, ctx);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < m->in; ++i)
      dx_in[t * m->in + i] += dropout ? dxd[t * m->in + i] * dropout_keep_scale(site, t, i) : dxd[t * m->in + i];
}

double tied_head_loss(float* dx, const float* x, int64_t T, int64_t C, int64_t V, const Weight& norm, float eps,
                      const Weight& embed, float cap, const int32_t* targets, float weight, int64_t* n_targets,
                      size_t* peak_logit_bytes, const KernelContext& ctx) {
  std::vector<float> hn(static_cast<size_t>(T * C)), dhn(static_cast<size_t>(T * C), 0.0f);
  rms_norm(hn.data(), x, T, C, norm, eps, ctx);
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < T; ++t)
    if (targets[t] >= 0) rows.push_back(t);
  *n_targets = static_cast<int64_t>(rows.size());
  *peak_logit_bytes = 0;
  double loss = 0;
  constexpr int64_t kChunk = 64;
  std::vector<float> hz, z, dz_h;
  for (size_t r0 = 0; r0 < rows.size(); r0 += kChunk) {
    const int64_t R = std::min<int64_t>(kChunk, static_cast<int64_t>(rows.size() - r0));
    float* hr = at_least(hz, R * C);
    std::vector<int32_t> tgt(static_cast<size_t>(R));
    std::vector<float> wts(static_cast<size_t>(R), weight);
    for (int64_t r = 0; r < R; ++r) {
      std::memcpy(hr + r * C, hn.data() + rows[r0 + r] * C, sizeof(float) * C);
      tgt[static_cast<size_t>(r)] = targets[rows[r0 + r]];
    }
    float* zr = at_least(z, R * V);
    linear_f32(zr, hr, R, embed, ctx);
    loss += softcap_cross_entropy(zr, tgt.data(), wts.data(), R, V, cap, ctx);
    float* dh = at_least(dz_h, R * C);
    linear_input_grad(dh, zr, R, embed, false, ctx);
    for (int64_t r = 0; r < R; ++r) std::memcpy(dhn.data() + rows[r0 + r] * C, dh + r * C, sizeof(float) * C);
    *peak_logit_bytes = std::max(*peak_logit_bytes, static_cast<size_t>(R * V) * sizeof(float));
  }
  rms_norm_backward(dx, dhn.data(), x, T, C, norm, eps, false, ctx);
  return loss;
}

}  // namespace optiq
