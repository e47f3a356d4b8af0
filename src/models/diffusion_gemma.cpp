// DiffusionGemma (model_type "diffusion_gemma"): one Gemma-4 MoE stack used as a causal encoder
// (prompt prefill, canvas commit: writes the KV cache) and as a bidirectional canvas decoder (reads
// the cache, never writes it). specs/diffusiongemma.md §2 is the reference for every line.
//
// Layer (§2.2), identical in both modes except the final layer_scalar:
//   x += post_attention_layernorm(attn(input_layernorm(x)))
//   d  = post_feedforward_layernorm_1(mlp(pre_feedforward_layernorm(x)))          dense gelu-tanh MLP
//   e  = post_feedforward_layernorm_2(experts(pre_feedforward_layernorm_2(x)))    top-k of E, router(x)
//   x  = (x + post_feedforward_layernorm(d + e)) · layer_scalar[mode]
// Attention (§2.3): q/k RMSNorm (learned) then RoPE; v RMSNorm without weight; scale 1.0; full
// layers have no v_proj (V = raw k_proj output) and "proportional" RoPE on the first pairs only.
//
// Modes map onto ForwardBatch (§2.6, §2.7):
//   kCausal (write or not)    encoder: x = embed·bf16(√C), image rows = input_embeds unscaled;
//                             sliding layers see q − k < window; each contiguous run of
//                             embed_override rows (one image's soft tokens) is bidirectional.
//   kFull, write_cache=false  decoder step over a canvas: x = rmsnorm(embed·√C + SC(self_condition));
//                             full layers see the whole cache, sliding layers its last window−1
//                             positions; every canvas row sees the whole canvas.
// Logits: softcap(norm(x)·Eᵀ) in both modes (the encoder's are unused by generation).

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/aligned.h"
#include "kernels/kernels.h"
#include "models/diffusion_gemma.h"
#include "models/gemma4_vision.h"
#include "models/kv_store.h"
#include "models/lora_linears.h"
#include "models/registry.h"
#include "models/weight_loader.h"

namespace optiq {

namespace {

// K/V of every layer for every position (sliding layers keep their full history too: simple, and
// a decoder step only reads the last window−1 rows of it).
class DgCache final : public Cache {
 public:
  struct DgSnapshot final : Snapshot {
    int64_t length = 0;
    int64_t n_writes = 0;  // forwards before the snapshot
  };
  DgCache(const std::vector<DgLayer>& layers, int64_t capacity) : capacity_(capacity), kv_(kv_rows(layers), capacity) {}
  int64_t length() const override { return length_; }
  int64_t capacity() const override { return capacity_; }
  std::unique_ptr<Snapshot> snapshot() const override {
    auto s = std::make_unique<DgSnapshot>();
    s->length = length_;
    s->n_writes = n_writes_;
    return s;
  }
  void restore(const Snapshot& s) override {
    const auto& d = dynamic_cast<const DgSnapshot&>(s);
    // Rows [0, length) are intact unless a later forward (read-only ones write scratch rows past
    // the length too) wrote below it.
    OPTIQ_CHECK_MSG(d.n_writes <= n_writes_, "restore: snapshot from another cache");
    for (auto it = suffix_min_.rbegin(); it != suffix_min_.rend() && it->first >= d.n_writes; ++it)
      OPTIQ_CHECK_MSG(it->second >= d.length, "restore: rows below the snapshot's length " + std::to_string(d.length) +
                                                  " were rewritten from row " + std::to_string(it->second));
    length_ = d.length;
  }
  Status truncate(int64_t n) override {
    if (n < 0 || n > length_)
      return Status::InvalidArgument("truncate: length " + std::to_string(n) + " outside [0, " +
                                     std::to_string(length_) + "]");
    length_ = n;
    return Status::Ok();
  }
  void reserve_rows(int64_t n) { kv_.reserve_rows(n); }
  float* k(size_t l) { return kv_.k(l); }
  float* v(size_t l) { return kv_.v(l); }
  // A forward wrote rows [begin, begin + T); a cache-writing one also advances the length.
  void record_write(int64_t begin, int64_t T, bool advance) {
    // Keep the minima of every suffix of the write history: entries (forward index, first row)
    // with increasing rows; a new write hides earlier entries at or above its row.
    while (!suffix_min_.empty() && suffix_min_.back().second >= begin) suffix_min_.pop_back();
    suffix_min_.emplace_back(n_writes_++, begin);
    if (advance) length_ = begin + T;
  }

  // Scratch, grown on demand and reused across forwards.
  std::vector<float> x, h, q, kk, vv, att, tmp, dense, ex, g, u, rl, rw, sc_p, sc_soft;
  std::vector<int32_t> sel;
  std::vector<int64_t> pos, key_begin, key_end, run_begin, run_end;
  LoraLinears lora;       // the forward's adapter modules (ForwardBatch::adapter)
  KernelScratch kernels;  // the kernels' reused buffers for this cache's forwards

 private:
  static std::vector<int64_t> kv_rows(const std::vector<DgLayer>& layers) {
    std::vector<int64_t> rows;
    for (auto& L : layers) rows.push_back(L.n_kv * L.D);
    return rows;
  }

  int64_t capacity_;
  KvStore kv_;
  int64_t length_ = 0;
  int64_t n_writes_ = 0;                                 // forwards so far
  std::vector<std::pair<int64_t, int64_t>> suffix_min_;  // (forward index, first row written)
};


// A 3-D expert stack [E, out, in] viewed as E per-expert Weights. HF checkpoints store it under the
// bare module name (`experts.gate_up_proj`, no ".weight"); MLX ones as `module.weight` (dense, or
// packed with .scales/.biases), which WeightLoader::experts resolves with the quantization rules.
Result<std::vector<Weight>> load_expert_stack(const WeightLoader& wl, const std::string& module, int64_t E,
                                              int64_t n_out, int64_t n_in) {
  if (!wl.has(module) || wl.has(module + ".weight")) return wl.experts(module, E, n_out, n_in);
  OPTIQ_ASSIGN_OR_RETURN(Weight all, wl.dense(module, {E, n_out, n_in}));
  std::vector<Weight> out(static_cast<size_t>(E), all);
  const size_t stride = static_cast<size_t>(n_out * n_in) * dtype_size(all.dtype);
  for (int64_t e = 0; e < E; ++e) {
    out[e].n_out = n_out;
    out[e].n_in = n_in;
    out[e].data = static_cast<const uint8_t*>(all.data) + e * stride;
  }
  return out;
}

class DiffusionGemmaModel final : public Model {
 public:
  static Result<std::unique_ptr<Model>> load(std::shared_ptr<ModelDir> dir) {
    auto m = std::unique_ptr<DiffusionGemmaModel>(new DiffusionGemmaModel());
    const std::string file = dir->path + "/config.json";
    OPTIQ_ASSIGN_OR_RETURN(m->cfg_, DiffusionGemmaConfig::from_json(dir->config, file));
    m->dir_ = dir;
    OPTIQ_RETURN_IF_ERROR(m->load_weights());
    if (dir->config.contains("vision_config") && dir->config["vision_config"].is_object() &&
        dir->tensors->contains("model.encoder.vision_tower.patch_embedder.input_proj.weight") ) {
      OPTIQ_ASSIGN_OR_RETURN(Gemma4VisionConfig vc,
                             Gemma4VisionConfig::from_json(dir->config["vision_config"], file + ": vision_config"));
      WeightLoader wl(*dir);
      OPTIQ_ASSIGN_OR_RETURN(m->vision_, Gemma4Vision::load(wl, vc, "model.encoder.", m->cfg_.hidden_size));
    }
    m->fill_info();
    m->trainable_ = make_diffusion_gemma_trainable(
        {&m->cfg_, &m->embed_tokens_, m->embed_scale_, &m->norm_, &m->layers_});
    return std::unique_ptr<Model>(std::move(m));
  }

  const ModelInfo& info() const override { return info_; }

  std::unique_ptr<Cache> make_cache(int64_t max_tokens) const override {
    if (max_tokens <= 0 || max_tokens > cfg_.max_position_embeddings) max_tokens = cfg_.max_position_embeddings;
    return std::make_unique<DgCache>(layers_, max_tokens);
  }

  Status forward(const ForwardBatch& b, Cache& cache_base, float* logits, ThreadPool& pool) const override;

  std::vector<LoraTarget> adapter_targets() const override {
    std::vector<LoraTarget> out;
    for (const LoraTarget& t : lora_targets_)
      if (!t.module.empty()) out.push_back(t);
    return out;
  }

  Result<ImageEmbedding> embed_image(std::span<const uint8_t> rgb, int width, int height,
                                     ThreadPool& pool) const override {
    if (!vision_) return Status::Unsupported(dir_->path + ": checkpoint has no vision tower");
    const int n = cfg_.vision_soft_tokens_per_image > 0 ? static_cast<int>(cfg_.vision_soft_tokens_per_image) : 0;
    return vision_->embed(rgb, width, height, pool, n);
  }

  const Trainable* trainable() const override { return trainable_.get(); }

 private:
  DiffusionGemmaModel() = default;
  Status load_weights();
  // The linears an adapter may wrap, kNumLora slots per decoder layer (specs/optiq-surface.md L.2);
  // the encoder runs the same layers, so one adapter acts in both modes.
  enum LoraSlot { kLoraQ = 0, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown, kNumLora };
  static size_t lora_slot(size_t layer, LoraSlot s) { return layer * kNumLora + s; }
  void fill_info();
  // Decoder input block (§2.7): x[T, C] = rmsnorm_noscale(x + SC(self_condition)); x holds the scaled embedding.
  void self_condition_input(DgCache& c, float* x, int64_t T, std::span<const float> sc, const KernelContext& ctx) const;
  void layer(DgCache& c, size_t l, float* x, int64_t T, int64_t S0, bool decoder, const KernelContext& ctx) const;

  DiffusionGemmaConfig cfg_;
  std::shared_ptr<ModelDir> dir_;
  Weight embed_tokens_;   // [V, C]; also the tied head
  Weight embed_t_;        // [C, V] bf16 copy of the table, for the self-conditioning product p·E
  float embed_scale_ = 1.f;  // bf16(√C), as HF casts the scale to the weight dtype
  Weight norm_;           // [C]
  Weight sc_pre_norm_;    // [C]
  Weight sc_gate_, sc_up_, sc_down_;  // [F, C] ×2, [C, F]
  std::vector<DgLayer> layers_;
  std::unique_ptr<Gemma4Vision> vision_;
  ModelInfo info_;
  std::vector<LoraTarget> lora_targets_;  // [layers · kNumLora]; v_proj's slot empty on K = V layers
  std::unique_ptr<Trainable> trainable_;
};

Status DiffusionGemmaModel::load_weights() {
  WeightLoader wl(*dir_);
  const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size, F = cfg_.intermediate_size;
  const int64_t H = cfg_.num_attention_heads, E = cfg_.num_experts, Fe = cfg_.moe_intermediate_size;
  const std::string d = "model.decoder.";
  OPTIQ_ASSIGN_OR_RETURN(embed_tokens_, wl.linear(d + "embed_tokens", V, C));
  OPTIQ_ASSIGN_OR_RETURN(norm_, wl.dense(d + "norm.weight", {C}));
  OPTIQ_ASSIGN_OR_RETURN(sc_pre_norm_, wl.dense(d + "self_conditioning.pre_norm.weight", {C}));
  OPTIQ_ASSIGN_OR_RETURN(sc_gate_, wl.linear(d + "self_conditioning.gate_proj", F, C));
  OPTIQ_ASSIGN_OR_RETURN(sc_up_, wl.linear(d + "self_conditioning.up_proj", F, C));
  OPTIQ_ASSIGN_OR_RETURN(sc_down_, wl.linear(d + "self_conditioning.down_proj", C, F));
  embed_scale_ = round_bf16(std::sqrt(static_cast<float>(C)));
  {
    // p[T, V] · E[V, C] as a regular matmul against Eᵀ: one bf16 transposed copy made at load.
    auto buf = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(V * C) * 2);
    auto* dst = reinterpret_cast<uint16_t*>(buf->data());
    std::vector<float> row(static_cast<size_t>(C));
    for (int64_t v = 0; v < V; ++v) {
      weight_row(embed_tokens_, v, row.data());
      for (int64_t c = 0; c < C; ++c) dst[c * V + v] = f32_to_bf16(row[c]);
    }
    embed_t_.dtype = DType::kBF16;
    embed_t_.n_out = C;
    embed_t_.n_in = V;
    embed_t_.data = buf->data();
    embed_t_.owned = buf;
  }
  layers_.resize(static_cast<size_t>(cfg_.num_hidden_layers));
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
    DgLayer& L = layers_[i];
    const std::string p = d + "layers." + std::to_string(i) + ".";
    L.full = cfg_.full_attention[i];
    L.n_kv = L.full ? cfg_.num_global_key_value_heads : cfg_.num_key_value_heads;
    L.D = L.full ? cfg_.global_head_dim : cfg_.head_dim;
    const int64_t D = L.D, Hkv = L.n_kv;
    // RoPE (§2.4): sliding rotates every pair with θ; full ("proportional") rotates the first
    // int(partial·D/2) pairs with exponents over the FULL head dim, the rest stay identity.
    const double theta = L.full ? cfg_.global_rope_theta : cfg_.rope_theta;
    L.rot_pairs = L.full ? static_cast<int64_t>(cfg_.partial_rotary_factor * static_cast<double>(D) / 2.0) : D / 2;
    L.inv_freq.assign(static_cast<size_t>(D / 2), 0.f);
    for (int64_t j = 0; j < L.rot_pairs; ++j)
      L.inv_freq[j] = 1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * j) / static_cast<float>(D));
    for (auto [w, name] : {std::pair{&L.input_layernorm, "input_layernorm"},
                           {&L.post_attention_layernorm, "post_attention_layernorm"},
                           {&L.pre_feedforward_layernorm, "pre_feedforward_layernorm"},
                           {&L.post_feedforward_layernorm, "post_feedforward_layernorm"},
                           {&L.pre_feedforward_layernorm_2, "pre_feedforward_layernorm_2"},
                           {&L.post_feedforward_layernorm_1, "post_feedforward_layernorm_1"},
                           {&L.post_feedforward_layernorm_2, "post_feedforward_layernorm_2"}}) {
      OPTIQ_ASSIGN_OR_RETURN(*w, wl.dense(p + name + ".weight", {C}));
    }
    OPTIQ_ASSIGN_OR_RETURN(L.q_proj, wl.linear(p + "self_attn.q_proj", H * D, C));
    OPTIQ_ASSIGN_OR_RETURN(L.k_proj, wl.linear(p + "self_attn.k_proj", Hkv * D, C));
    // Full layers of the released checkpoints have no v_proj (V = raw K, spec §2.3); a checkpoint
    // that does ship one on a full layer gets an ordinary V projection.
    L.k_eq_v = L.full && !wl.has(p + "self_attn.v_proj.weight");
    if (!L.k_eq_v) {
      OPTIQ_ASSIGN_OR_RETURN(L.v_proj, wl.linear(p + "self_attn.v_proj", Hkv * D, C));
    }
    OPTIQ_ASSIGN_OR_RETURN(L.o_proj, wl.linear(p + "self_attn.o_proj", C, H * D));
    OPTIQ_ASSIGN_OR_RETURN(L.q_norm, wl.dense(p + "self_attn.q_norm.weight", {D}));
    OPTIQ_ASSIGN_OR_RETURN(L.k_norm, wl.dense(p + "self_attn.k_norm.weight", {D}));
    OPTIQ_ASSIGN_OR_RETURN(L.gate_proj, wl.linear(p + "mlp.gate_proj", F, C));
    OPTIQ_ASSIGN_OR_RETURN(L.up_proj, wl.linear(p + "mlp.up_proj", F, C));
    OPTIQ_ASSIGN_OR_RETURN(L.down_proj, wl.linear(p + "mlp.down_proj", C, F));
    for (const LoraTarget& t :
         {LoraTarget{p + "self_attn.q_proj", C, H * D}, {p + "self_attn.k_proj", C, Hkv * D},
          L.k_eq_v ? LoraTarget{} : LoraTarget{p + "self_attn.v_proj", C, Hkv * D}, {p + "self_attn.o_proj", H * D, C},
          {p + "mlp.gate_proj", C, F}, {p + "mlp.up_proj", C, F}, {p + "mlp.down_proj", F, C}})
      lora_targets_.push_back(t);
    OPTIQ_ASSIGN_OR_RETURN(L.router_proj, wl.linear(p + "router.proj", E, C));
    OPTIQ_ASSIGN_OR_RETURN(L.router_scale, wl.f32(p + "router.scale", {C}));
    OPTIQ_ASSIGN_OR_RETURN(L.per_expert_scale, wl.f32(p + "router.per_expert_scale", {E}));
    OPTIQ_ASSIGN_OR_RETURN(std::vector<Weight> gu, load_expert_stack(wl, p + "experts.gate_up_proj", E, 2 * Fe, C));
    OPTIQ_ASSIGN_OR_RETURN(std::vector<Weight> dn, load_expert_stack(wl, p + "experts.down_proj", E, C, Fe));
    L.experts.resize(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) L.experts[e] = ExpertFfn{gu[e], dn[e]};
    OPTIQ_ASSIGN_OR_RETURN(std::vector<float> ds, wl.f32(p + "layer_scalar", {1}));
    OPTIQ_ASSIGN_OR_RETURN(std::vector<float> es,
                           wl.f32("model.encoder.language_model.layers." + std::to_string(i) + ".layer_scalar", {1}));
    L.decoder_scalar = ds[0];
    L.encoder_scalar = es[0];
  }
  return Status::Ok();
}

void DiffusionGemmaModel::fill_info() {
  info_.model_type = "diffusion_gemma";
  info_.vocab_size = cfg_.vocab_size;
  info_.hidden_size = cfg_.hidden_size;
  info_.n_layers = cfg_.num_hidden_layers;
  info_.max_position = cfg_.max_position_embeddings;
  info_.canvas_length = cfg_.canvas_length;
  info_.supports_causal = true;
  info_.supports_block = false;
  if (vision_) {
    info_.image_token_id = cfg_.image_token_id;
    info_.boi_token_id = cfg_.boi_token_id;
    info_.eoi_token_id = cfg_.eoi_token_id;
  }
  info_.eos_ids = dir_->eos_ids();
  // Per token: attention, dense MLP, router and top-k of E experts, plus the head.
  size_t per_token = embed_tokens_.bytes() + norm_.bytes();
  const double frac = static_cast<double>(cfg_.top_k_experts) / static_cast<double>(cfg_.num_experts);
  for (auto& L : layers_) {
    per_token += L.q_proj.bytes() + L.k_proj.bytes() + L.v_proj.bytes() + L.o_proj.bytes() + L.gate_proj.bytes() +
                 L.up_proj.bytes() + L.down_proj.bytes() + L.router_proj.bytes();
    size_t ex = 0;
    for (auto& e : L.experts) ex += e.gate_up.bytes() + e.down.bytes();
    per_token += static_cast<size_t>(static_cast<double>(ex) * frac);
  }
  info_.weight_bytes_per_token = per_token;
  info_.total_weight_bytes = dir_->tensors->total_bytes();
}

void DiffusionGemmaModel::self_condition_input(DgCache& c, float* x, int64_t T, std::span<const float> sc,
                                               const KernelContext& ctx) const {
  const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size, F = cfg_.intermediate_size;
  if (!sc.empty()) {
    // soft = bf16(softmax(bf16(sc))) · E · √C (§2.7): the reference stores the processed logits in
    // bf16 and casts the probabilities to bf16 before the embedding product.
    float* p = grow(c.sc_p, T * V);
    float* soft = grow(c.sc_soft, T * C);
    ctx.parallel_for(T, [&](int64_t b, int64_t e, int thread) {
      std::vector<float> z(static_cast<size_t>(V));
      for (int64_t t = b; t < e; ++t) {
        for (int64_t v = 0; v < V; ++v) z[v] = round_bf16(sc[t * V + v]);
        softmax(z.data(), p + t * V, V, ctx.for_worker(thread));
        for (int64_t v = 0; v < V; ++v) p[t * V + v] = round_bf16(p[t * V + v]);
      }
    });
    matmul(soft, p, T, embed_t_, ctx);
    for (int64_t i = 0; i < T * C; ++i) soft[i] *= embed_scale_;
    float* n = grow(c.h, T * C);
    float* g = grow(c.g, T * F);
    float* u = grow(c.u, T * F);
    rms_norm(n, soft, T, C, sc_pre_norm_, cfg_.rms_norm_eps, ctx);
    matmul(g, n, T, sc_gate_, ctx);
    matmul(u, n, T, sc_up_, ctx);
    gelu_tanh_mul(g, g, u, T * F, ctx);
    matmul(soft, g, T, sc_down_, ctx);
    add_inplace(x, soft, T * C, ctx);
  }
  // Without self-conditioning the SC MLP sees sc_pre_norm(0) = 0 and adds exactly 0.
  rms_norm(x, x, T, C, Weight{}, cfg_.rms_norm_eps, ctx);
}

void DiffusionGemmaModel::layer(DgCache& c, size_t l, float* x, int64_t T, int64_t S0, bool decoder,
                                const KernelContext& ctx) const {
  const DgLayer& L = layers_[l];
  const int64_t C = cfg_.hidden_size, H = cfg_.num_attention_heads, D = L.D, Hkv = L.n_kv;
  const int64_t F = cfg_.intermediate_size, E = cfg_.num_experts, K = cfg_.top_k_experts;
  const float eps = cfg_.rms_norm_eps;
  const Weight no_weight{};
  float* h = grow(c.h, T * std::max(C, H * D));
  float* q = grow(c.q, T * H * D);
  float* kk = grow(c.kk, T * Hkv * D);
  float* vv = grow(c.vv, T * Hkv * D);
  float* att = grow(c.att, T * H * D);
  float* tmp = grow(c.tmp, T * C);
  const int64_t* pos = c.pos.data();

  // Attention (§2.3).
  const LoraLinears& lora = c.lora;
  rms_norm(h, x, T, C, L.input_layernorm, eps, ctx);
  matmul(q, h, T, L.q_proj, ctx);
  lora.apply(lora_slot(l, kLoraQ), q, h, T, ctx);
  matmul(kk, h, T, L.k_proj, ctx);
  lora.apply(lora_slot(l, kLoraK), kk, h, T, ctx);
  if (L.k_eq_v) {
    std::memcpy(vv, kk, sizeof(float) * T * Hkv * D);  // V := raw K projection (its adapter included)
  } else {
    matmul(vv, h, T, L.v_proj, ctx);
    lora.apply(lora_slot(l, kLoraV), vv, h, T, ctx);
  }
  rms_norm(q, q, T * H, D, L.q_norm, eps, ctx);
  rope(q, T, H, D, pos, L.inv_freq.data(), L.rot_pairs, ctx);
  rms_norm(kk, kk, T * Hkv, D, L.k_norm, eps, ctx);
  rope(kk, T, Hkv, D, pos, L.inv_freq.data(), L.rot_pairs, ctx);
  rms_norm(vv, vv, T * Hkv, D, no_weight, eps, ctx);
  // Rows past the cache length are scratch for read-only (decoder) forwards: length() does not
  // advance, and the next appending forward overwrites them.
  std::memcpy(c.k(l) + S0 * Hkv * D, kk, sizeof(float) * T * Hkv * D);
  std::memcpy(c.v(l) + S0 * Hkv * D, vv, sizeof(float) * T * Hkv * D);
  int64_t* kb = grow(c.key_begin, T);
  int64_t* ke = grow(c.key_end, T);
  const int64_t W = cfg_.sliding_window;
  for (int64_t t = 0; t < T; ++t) {
    if (decoder) {
      // Decoder rows: the cache (sliding layers: its last W−1 positions, the same for every row)
      // plus the whole canvas.
      kb[t] = L.full ? 0 : std::max<int64_t>(0, S0 - (W - 1));
      ke[t] = S0 + T;
    } else {
      // Encoder rows: causal, sliding layers q − k < W; an image run [rb, re) is bidirectional.
      kb[t] = L.full ? 0 : std::max<int64_t>(0, pos[t] - W + 1);
      ke[t] = pos[t] + 1;
      if (c.run_begin[t] >= 0) {
        kb[t] = std::min(kb[t], c.run_begin[t]);
        ke[t] = std::max(ke[t], c.run_end[t]);
      }
    }
  }
  // Canvas steps and commits: many rows sharing their keys → GEMM form; few rows → the plain kernel.
  attention(att, q, c.k(l), c.v(l), T, H, Hkv, D, kb, ke, 1.0f, ctx);
  matmul(tmp, att, T, L.o_proj, ctx);
  lora.apply(lora_slot(l, kLoraO), tmp, att, T, ctx);
  rms_norm(tmp, tmp, T, C, L.post_attention_layernorm, eps, ctx);
  add_inplace(x, tmp, T * C, ctx);

  // Dense MLP branch.
  float* g = grow(c.g, T * F);
  float* u = grow(c.u, T * F);
  float* dense = grow(c.dense, T * C);
  rms_norm(h, x, T, C, L.pre_feedforward_layernorm, eps, ctx);
  matmul(g, h, T, L.gate_proj, ctx);
  lora.apply(lora_slot(l, kLoraGate), g, h, T, ctx);
  matmul(u, h, T, L.up_proj, ctx);
  lora.apply(lora_slot(l, kLoraUp), u, h, T, ctx);
  gelu_tanh_mul(g, g, u, T * F, ctx);
  matmul(dense, g, T, L.down_proj, ctx);
  lora.apply(lora_slot(l, kLoraDown), dense, g, T, ctx);
  rms_norm(dense, dense, T, C, L.post_feedforward_layernorm_1, eps, ctx);

  // Router (§2.5) on the un-normed residual: rmsnorm_noscale(x) · scale · C^−½ → logits → top-k.
  float* rl = grow(c.rl, T * E);
  float* rw = grow(c.rw, T * K);
  int32_t* sel = grow(c.sel, T * K);
  rms_norm(h, x, T, C, no_weight, eps, ctx);
  const float root = 1.0f / std::sqrt(static_cast<float>(C));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < C; ++i) h[t * C + i] = h[t * C + i] * L.router_scale[i] * root;
  matmul(rl, h, T, L.router_proj, ctx);
  moe_topk_softmax(rl, T, E, K, sel, rw, ctx);
  for (int64_t i = 0; i < T * K; ++i) rw[i] *= L.per_expert_scale[sel[i]];

  // Expert branch.
  float* ex = grow(c.ex, T * C);
  rms_norm(h, x, T, C, L.pre_feedforward_layernorm_2, eps, ctx);
  moe_experts(ex, h, T, C, sel, rw, K, L.experts, ctx);
  rms_norm(ex, ex, T, C, L.post_feedforward_layernorm_2, eps, ctx);

  add_inplace(dense, ex, T * C, ctx);
  rms_norm(dense, dense, T, C, L.post_feedforward_layernorm, eps, ctx);
  add_inplace(x, dense, T * C, ctx);
  const float s = decoder ? L.decoder_scalar : L.encoder_scalar;
  for (int64_t i = 0; i < T * C; ++i) x[i] *= s;
}

Status DiffusionGemmaModel::forward(const ForwardBatch& b, Cache& cache_base, float* logits, ThreadPool& pool) const {
  auto* cp = dynamic_cast<DgCache*>(&cache_base);
  if (!cp) return Status::InvalidArgument("diffusion_gemma forward: cache was not made by this model");
  DgCache& c = *cp;
  OPTIQ_RETURN_IF_ERROR(c.lora.resolve(b.adapter, lora_targets_).WithContext("diffusion_gemma forward"));
  const KernelContext ctx(pool, c.kernels, {.row_invariant = b.row_invariant});
  const int64_t T = static_cast<int64_t>(b.tokens.size());
  const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size;
  const int64_t S0 = c.length();
  if (T == 0) return Status::InvalidArgument("diffusion_gemma forward: empty chunk");
  if (b.pos0 != S0)
    return Status::InvalidArgument("diffusion_gemma forward: pos0 " + std::to_string(b.pos0) + " != cache length " +
                                   std::to_string(S0) + " (chunks start at the end of the cache)");
  if (S0 + T > c.capacity())
    return Status::InvalidArgument("diffusion_gemma forward: " + std::to_string(S0 + T) +
                                   " positions exceed the context of " + std::to_string(c.capacity()));
  if (b.mask == MaskMode::kBlock)
    return Status::Unsupported("diffusion_gemma forward: block masks are not defined for this model");
  const bool decoder = b.mask == MaskMode::kFull;
  if (decoder && b.write_cache)
    return Status::InvalidArgument("diffusion_gemma forward: decoder (kFull) steps never write the cache; "
                                   "commit canvases with kCausal");
  const bool has_override = !b.embed_override.empty();
  if (has_override != !b.input_embeds.empty() ||
      (has_override && (static_cast<int64_t>(b.embed_override.size()) != T ||
                        static_cast<int64_t>(b.input_embeds.size()) != T * C)))
    return Status::InvalidArgument("diffusion_gemma forward: input_embeds must be [T, C] = [" + std::to_string(T) +
                                   ", " + std::to_string(C) + "] with embed_override sized T, or both empty");
  if (!b.self_condition.empty()) {
    if (!decoder) return Status::InvalidArgument("diffusion_gemma forward: self_condition is for decoder (kFull) steps");
    if (static_cast<int64_t>(b.self_condition.size()) != T * V)
      return Status::InvalidArgument("diffusion_gemma forward: self_condition has " +
                                     std::to_string(b.self_condition.size()) + " values, expected [T, V] = " +
                                     std::to_string(T * V));
  }
  for (int64_t t = 0; t < T; ++t) {
    if (has_override && b.embed_override[t]) continue;  // image rows: the id only marks the slot
    if (b.tokens[t] < 0 || b.tokens[t] >= V)
      return Status::InvalidArgument("diffusion_gemma forward: token id " + std::to_string(b.tokens[t]) +
                                     " at index " + std::to_string(t) + " outside the vocabulary [0, " +
                                     std::to_string(V) + ")");
  }

  c.reserve_rows(S0 + T);
  float* x = grow(c.x, T * C);
  int64_t* pos = grow(c.pos, T);
  int64_t* rb = grow(c.run_begin, T);
  int64_t* re = grow(c.run_end, T);
  for (int64_t t = 0; t < T; ++t) pos[t] = S0 + t;
  // Image runs: maximal runs of overridden rows are one image's soft tokens (bidirectional block).
  for (int64_t t = 0; t < T;) {
    if (!has_override || !b.embed_override[t]) {
      rb[t] = re[t] = -1;
      ++t;
      continue;
    }
    int64_t e = t;
    while (e < T && b.embed_override[e]) ++e;
    for (int64_t i = t; i < e; ++i) {
      rb[i] = S0 + t;
      re[i] = S0 + e;
    }
    t = e;
  }
  for (int64_t t = 0; t < T; ++t) {
    float* xr = x + t * C;
    if (has_override && b.embed_override[t]) {
      std::memcpy(xr, b.input_embeds.data() + t * C, sizeof(float) * C);  // soft tokens, unscaled
      continue;
    }
    weight_row(embed_tokens_, b.tokens[t], xr);
    for (int64_t i = 0; i < C; ++i) xr[i] *= embed_scale_;
  }
  if (decoder) self_condition_input(c, x, T, b.self_condition, ctx);

  for (size_t l = 0; l < layers_.size(); ++l) layer(c, l, x, T, S0, decoder, ctx);
  c.record_write(S0, T, b.write_cache);

  const int64_t first = b.last_logits_only ? T - 1 : 0;
  const int64_t rows = T - first;
  float* h = grow(c.h, rows * C);
  rms_norm(h, x + first * C, rows, C, norm_, cfg_.rms_norm_eps, ctx);
  matmul(logits, h, rows, embed_tokens_, ctx);  // tied head
  if (cfg_.final_logit_softcapping > 0) softcap_inplace(logits, rows * V, cfg_.final_logit_softcapping, ctx);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Model>> make_diffusion_gemma(std::shared_ptr<ModelDir> dir, const LoadOptions&) {
  // Every forward is a whole canvas (or prompt chunk), so the one-row packed copies would only cost
  // memory: the matrices stay in the file layout.
  dir->repack = false;
  return DiffusionGemmaModel::load(std::move(dir));
}

}  // namespace optiq

// ---- Random checkpoints (benchmarks and property tests) ----
#include "models/random_checkpoint.h"

namespace optiq {

Status write_random_diffusion_gemma(const nlohmann::json& config, const std::string& out_dir, DType dtype,
                                    uint64_t seed) {
  OPTIQ_ASSIGN_OR_RETURN(DiffusionGemmaConfig c, DiffusionGemmaConfig::from_json(config, "config"));
  OPTIQ_ASSIGN_OR_RETURN(RandomCheckpoint ck, RandomCheckpoint::create(dtype, seed, "random diffusion_gemma"));
  const int64_t C = c.hidden_size, V = c.vocab_size, F = c.intermediate_size, E = c.num_experts,
                Fe = c.moe_intermediate_size, H = c.num_attention_heads;
  // Linears ~ N(0, 1/fan_in) keep activations O(1) through the layers; the tied embedding's std sets
  // the logits' spread (≈ std·√C after the final norm): 4/√C puts it at ≈ 4, inside the soft-cap.
  auto linear = [&](const std::string& module, int64_t n_out, int64_t n_in) {
    ck.add(module + ".weight", {n_out, n_in}, ck.normal(0.f, 1.0f / std::sqrt(static_cast<float>(n_in))));
  };
  auto norm = [&](const std::string& name, int64_t n) { ck.add(name, {n}, ck.normal(1.f, 0.1f)); };
  const std::string d = "model.decoder.";
  ck.add(d + "embed_tokens.weight", {V, C}, ck.normal(0.f, 4.0f / std::sqrt(static_cast<float>(C))));
  norm(d + "norm.weight", C);
  norm(d + "self_conditioning.pre_norm.weight", C);
  linear(d + "self_conditioning.gate_proj", F, C);
  linear(d + "self_conditioning.up_proj", F, C);
  linear(d + "self_conditioning.down_proj", C, F);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const bool full = c.full_attention[l];
    const int64_t D = full ? c.global_head_dim : c.head_dim;
    const int64_t Hkv = full ? c.num_global_key_value_heads : c.num_key_value_heads;
    const std::string p = d + "layers." + std::to_string(l) + ".";
    for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                          "post_feedforward_layernorm", "pre_feedforward_layernorm_2", "post_feedforward_layernorm_1",
                          "post_feedforward_layernorm_2"})
      norm(p + n + ".weight", C);
    linear(p + "self_attn.q_proj", H * D, C);
    linear(p + "self_attn.k_proj", Hkv * D, C);
    if (!full) linear(p + "self_attn.v_proj", Hkv * D, C);  // full layers use V = raw K, as released
    linear(p + "self_attn.o_proj", C, H * D);
    norm(p + "self_attn.q_norm.weight", D);
    norm(p + "self_attn.k_norm.weight", D);
    linear(p + "mlp.gate_proj", F, C);
    linear(p + "mlp.up_proj", F, C);
    linear(p + "mlp.down_proj", C, F);
    ck.add(p + "router.proj.weight", {E, C}, ck.normal(0.f, 1.0f));  // spread router logits: varied experts
    norm(p + "router.scale", C);
    norm(p + "router.per_expert_scale", E);
    // Expert stacks under HF's bare names, [E, N, K].
    ck.add(p + "experts.gate_up_proj", {E, 2 * Fe, C}, ck.normal(0.f, 1.0f / std::sqrt(static_cast<float>(C))));
    ck.add(p + "experts.down_proj", {E, C, Fe}, ck.normal(0.f, 1.0f / std::sqrt(static_cast<float>(Fe))));
    ck.add(p + "layer_scalar", {1}, ck.uniform(0.9f, 1.1f));
    ck.add("model.encoder.language_model.layers." + std::to_string(l) + ".layer_scalar", {1}, ck.uniform(0.9f, 1.1f));
  }
  nlohmann::json cfg = config;
  cfg["model_type"] = "diffusion_gemma";
  return ck.write(out_dir, std::move(cfg));
}

}  // namespace optiq
