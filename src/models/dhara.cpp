// dhara (model_type "dhara_ar"): LLaMA-style decoder with Canon depthwise convs, QK-norm after
// RoPE, tied head and a final logit soft-cap. specs/dhara.md §3 is the reference for every line.
//
// Layer (§3.1):
//   h  = norm_in(x);  h += canonA(h)
//   q,k,v = Wq h, Wk h, Wv h;  q += canonBq(q); k += canonBk(k); v += canonBv(v)
//   q,k = RoPE(q,k) with the stored per-layer inv_freq;  q,k = per-head RMSNorm (after RoPE)
//   x1 = x + Wo attn(q, K, V)               (GQA, scale D^-0.5, mask per ForwardBatch)
//   h2 = norm_post(x1); h2 += canonC(h2);  m = silu(Wg h2) * (Wu h2);  m += canonD(m)
//   x2 = x1 + Wd m
// Model: embed → layers → norm → h·Eᵀ → cap·tanh(z/cap).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/aligned.h"
#include "core/huge_pages.h"
#include "kernels/kernels.h"
#include "models/dhara.h"
#include "models/kv_store.h"
#include "models/lora_linears.h"
#include "models/registry.h"
#include "models/weight_loader.h"

namespace optiq {

namespace {

class DharaCache final : public Cache {
 public:
  struct DharaSnapshot final : Snapshot {
    int64_t length = 0;
    std::vector<float> conv_state;
    int64_t ring_head = 0;
  };

  DharaCache(const DharaConfig& c, const int64_t (&widths)[kNumConv], int64_t max_tokens)
      : n_layers_(c.num_hidden_layers), P_(c.canon_kernel - 1), capacity_(max_tokens),
        kv_(std::vector<int64_t>(static_cast<size_t>(c.num_hidden_layers), c.num_key_value_heads * c.head_dim),
            max_tokens) {
    int64_t off = 0;
    for (int s = 0; s < kNumConv; ++s) {
      width_[s] = widths[s];
      state_offset_[s] = off;
      off += (P_ + 1) * widths[s];
    }
    per_layer_state_ = off;
    // On huge pages, as the K/V rows (models/kv_store.h): a step touches every layer's rings.
    conv_state_ = allocate_huge_region(sizeof(float) * static_cast<size_t>(per_layer_state_ * n_layers_));
    window_.resize(static_cast<size_t>(n_layers_ * kNumConv));
  }

  int64_t length() const override { return length_; }
  int64_t capacity() const override { return capacity_; }

  std::unique_ptr<Snapshot> snapshot() const override {
    auto s = std::make_unique<DharaSnapshot>();
    s->length = length_;
    s->conv_state.assign(conv_state(), conv_state() + per_layer_state_ * n_layers_);
    s->ring_head = head_;
    return s;
  }
  void restore(const Snapshot& s) override {
    const auto& d = dynamic_cast<const DharaSnapshot&>(s);
    OPTIQ_CHECK_MSG(d.length <= length_ || d.length <= kv_.reserved_rows(),
                    "restore: snapshot length " + std::to_string(d.length) + " exceeds the cache's written rows");
    length_ = d.length;
    std::copy(d.conv_state.begin(), d.conv_state.end(), conv_state());
    head_ = d.ring_head;
    window_valid_ = false;
    step_undo_ = false;
  }
  Status truncate(int64_t n) override {
    if (n == length_) return Status::Ok();
    if (n > length_ || n < 0)
      return Status::InvalidArgument("truncate: length " + std::to_string(n) + " outside [0, " +
                                     std::to_string(length_) + "]");
    // After a one-token step the ring still holds the row it dropped: step back.
    if (step_undo_ && n == length_ - 1) {
      head_ = (head_ + P_) % (P_ + 1);
      length_ = n;
      step_undo_ = false;
      return Status::Ok();
    }
    // Conv states are rebuilt from the input window recorded by the last cache-writing forward:
    // state = xp[m : m + P] where m = n - chunk_begin (specs/dhara.md §3.5, §6.3).
    if (!window_valid_ || n < window_begin_)
      return Status::InvalidArgument("truncate: length " + std::to_string(n) + " precedes the last forward's chunk (" +
                                     std::to_string(window_begin_) + "); restore a snapshot instead");
    const int64_t m = n - window_begin_;
    for (int64_t l = 0; l < n_layers_; ++l)
      for (int s = 0; s < kNumConv; ++s) {
        const auto& w = window_[static_cast<size_t>(l * kNumConv + s)];
        if (w.empty()) continue;
        scatter_state(l, s, w.data() + m * width_[s]);
      }
    length_ = n;
    window_valid_ = false;
    step_undo_ = false;
    return Status::Ok();
  }

  // Conv state: a ring of P + 1 rows per layer and slot. Logical row i (0 = oldest of the P state rows)
  // is physical row (head + i) mod (P + 1); row P is the free one, where a decode step writes its
  // input, so a step reads its rows in place and advancing the head drops the oldest.
  float* ring_row(int64_t layer, int slot, int64_t i) {
    return conv_state() + layer * per_layer_state_ + state_offset_[slot] + ((head_ + i) % (P_ + 1)) * width_[slot];
  }
  void gather_state(int64_t layer, int slot, float* dst) {
    for (int64_t i = 0; i < P_; ++i) std::copy_n(ring_row(layer, slot, i), width_[slot], dst + i * width_[slot]);
  }
  void scatter_state(int64_t layer, int slot, const float* src) {
    for (int64_t i = 0; i < P_; ++i) std::copy_n(src + i * width_[slot], width_[slot], ring_row(layer, slot, i));
  }
  float* window(int64_t layer, int slot, int64_t T) {
    auto& w = window_[static_cast<size_t>(layer * kNumConv + slot)];
    w.resize(static_cast<size_t>((P_ + T) * width_[slot]));
    return w.data();
  }
  // Makes room for rows [0, n) of K/V in every layer.
  void reserve_rows(int64_t n) { kv_.reserve_rows(n); }
  float* k(int64_t layer) { return kv_.k(static_cast<size_t>(layer)); }
  float* v(int64_t layer) { return kv_.v(static_cast<size_t>(layer)); }
  // After a cache-writing forward. One-token steps advanced the ring instead of recording a window.
  void commit(int64_t begin, int64_t T, bool ring_step) {
    length_ = begin + T;
    if (ring_step) {
      head_ = (head_ + 1) % (P_ + 1);
      window_valid_ = false;
      step_undo_ = true;
    } else {
      window_begin_ = begin;
      window_valid_ = true;
      step_undo_ = false;
    }
  }

  // Scratch, grown on demand and reused across forwards.
  std::vector<float> x, h, q, kk, vv, att, tmp, g, u, logits_h, conv_state_tmp;
  std::vector<int64_t> pos, key_begin, key_end;
  LoraLinears lora;       // the forward's adapter modules (ForwardBatch::adapter)
  KernelScratch kernels;  // the kernels' reused buffers for this cache's forwards

 private:
  int64_t n_layers_, P_, capacity_;
  KvStore kv_;
  int64_t width_[kNumConv] = {};
  int64_t state_offset_[kNumConv] = {};
  int64_t per_layer_state_ = 0;
  int64_t length_ = 0;
  HugeRegion conv_state_;                     // float [L][slot][P + 1, width]: rings (ring_row)
  float* conv_state() const { return reinterpret_cast<float*>(conv_state_.data); }
  int64_t head_ = 0;                          // ring position shared by all layers and slots
  bool step_undo_ = false;                    // the last forward was a one-token ring step
  std::vector<std::vector<float>> window_;    // per layer×slot [P + T, width] of the last forward
  int64_t window_begin_ = 0;
  bool window_valid_ = false;
};


class DharaModel final : public Model {
 public:
  static Result<std::unique_ptr<Model>> load(std::shared_ptr<ModelDir> dir) {
    auto m = std::unique_ptr<DharaModel>(new DharaModel());
    OPTIQ_ASSIGN_OR_RETURN(m->cfg_, DharaConfig::from_json(dir->config, dir->path + "/config.json"));
    m->dir_ = dir;
    OPTIQ_RETURN_IF_ERROR(m->load_weights());
    m->fill_info();
    m->trainable_ =
        make_dhara_trainable({&m->cfg_, &m->embed_tokens_, &m->norm_, &m->layers_, m->widths_, &m->dir_->config});
    return std::unique_ptr<Model>(std::move(m));
  }

  const ModelInfo& info() const override { return info_; }

  std::unique_ptr<Cache> make_cache(int64_t max_tokens) const override {
    if (max_tokens <= 0 || max_tokens > cfg_.max_position_embeddings) max_tokens = cfg_.max_position_embeddings;
    return std::make_unique<DharaCache>(cfg_, widths_, max_tokens);
  }

  Status forward(const ForwardBatch& b, Cache& cache_base, float* logits, ThreadPool& pool) const override;
  const Trainable* trainable() const override { return trainable_.get(); }
  std::vector<LoraTarget> adapter_targets() const override { return lora_targets_; }

 private:
  DharaModel() = default;
  Status load_weights();
  void fill_info();
  // The linears an adapter may wrap, kNumLora slots per layer (specs/optiq-surface.md L.2).
  enum LoraSlot { kLoraQ = 0, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown, kNumLora };
  static size_t lora_slot(int64_t layer, LoraSlot s) { return static_cast<size_t>(layer * kNumLora + s); }
  // One forward's activations, in the cache's buffers, for T rows.
  struct Acts {
    int64_t T = 0, S0 = 0;  // rows; cache length before the forward
    bool write = false;     // the forward keeps its K/V rows and conv states
    float *x, *h;           // [T, C] residual stream; [T, max(C, H·D)] normed input
    float *q, *k, *v, *att;  // [T, H·D], [T, Hkv·D] ×2, [T, H·D]
    float *tmp, *g, *u;     // [T, C] projection output; [T, F] ×2 gate / up
    const int64_t *pos, *key_begin, *key_end;  // [T] positions and per-row key ranges
    const LoraLinears* lora = nullptr;         // the adapter's modules by lora_slot
  };

  void layer(int64_t l, DharaCache& c, const Acts& a, const KernelContext& ctx) const;
  // The adapter's terms on the q, k and v rows (from a.h), before the Canon B convs read them.
  void add_qkv_lora(int64_t l, const Acts& a, int64_t T, const KernelContext& ctx) const {
    a.lora->apply(lora_slot(l, kLoraQ), a.q, a.h, T, ctx);
    a.lora->apply(lora_slot(l, kLoraK), a.k, a.h, T, ctx);
    a.lora->apply(lora_slot(l, kLoraV), a.v, a.h, T, ctx);
  }
  void attention_chunk(int64_t l, DharaCache& c, const Acts& a, const KernelContext& ctx) const;
  void attention_step(int64_t l, DharaCache& c, const Acts& a, const KernelContext& ctx) const;

  // Canon conv for one slot: x[T, width] += conv(x) with the layer's state; records the window when writing.
  void canon(DharaCache& c, int64_t layer, int slot, float* x, int64_t T, bool write, const KernelContext& ctx) const {
    const ConvTaps taps = layers_[layer].conv[slot];
    if (!taps.data) return;
    const int64_t width = widths_[slot], Kw = cfg_.canon_kernel;
    if (T == 1 && write) {  // decode step: the input goes to the ring's free row, read in place
      canon_step(c, layer, slot, x, 0, width, ctx);
      return;
    }
    float* state = grow(c.conv_state_tmp, (Kw - 1) * width);
    c.gather_state(layer, slot, state);
    // Read-only chunks (diffusion steps) convolve in place without a window.
    float* window = write ? c.window(layer, slot, T) : nullptr;
    conv1d_dw(x, x, T, width, taps, Kw, state, write, window, ctx);
    if (write) c.scatter_state(layer, slot, state);
  }

  // One decode step of a conv on channels [c0, c0 + n) of its row x: the slice's input goes to the
  // ring's free row, and each channel's result is what the whole-row step computes.
  void canon_step(DharaCache& c, int64_t layer, int slot, float* x, int64_t c0, int64_t n,
                  const KernelContext& ctx) const {
    const ConvTaps taps = layers_[layer].conv[slot];
    if (!taps.data) return;
    const int64_t Kw = cfg_.canon_kernel;
    const float* rows[kMaxConvKernel];
    for (int64_t i = 0; i < Kw; ++i) rows[i] = c.ring_row(layer, slot, i) + c0;
    std::copy_n(x + c0, n, c.ring_row(layer, slot, Kw - 1) + c0);
    conv1d_dw_row(x + c0, rows, n, taps.at(c0), Kw, widths_[slot], ctx);
  }

  DharaConfig cfg_;
  std::shared_ptr<ModelDir> dir_;
  Weight embed_tokens_;  // [V, C]; also the tied head
  Weight norm_;          // [C]
  std::vector<DharaLayer> layers_;
  HugeRegion conv_taps_;  // every layer's taps, tap-major, read each decode step: DharaLayer::conv
  size_t conv_tap_bytes_ = 0;
  int64_t widths_[kNumConv] = {};
  ModelInfo info_;
  std::unique_ptr<Trainable> trainable_;
  std::vector<LoraTarget> lora_targets_;  // [layers · kNumLora], module names built once at load
};

Status DharaModel::load_weights() {
  WeightLoader wl(*dir_);
  const int64_t C = cfg_.hidden_size, F = cfg_.intermediate_size, D = cfg_.head_dim;
  const int64_t H = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads;
  const int64_t Kw = cfg_.canon_kernel;
  // The vocabulary comes from the embedding table (specs/dhara.md §9.1); config's vocab_size must agree.
  const TensorView* et = dir_->tensors->find("model.embed_tokens.weight");
  if (!et) return Status::NotFound(dir_->path + ": missing tensor model.embed_tokens.weight");
  if (et->shape.size() != 2) return Status::Corruption(dir_->tensors->file_of("model.embed_tokens.weight") +
                                                       ": model.embed_tokens.weight: shape " + et->shape_str() + " is not 2-D");
  const int64_t V = et->shape[0];
  if (cfg_.vocab_size != 0 && cfg_.vocab_size != V)
    return Status::Corruption(dir_->path + ": config vocab_size " + std::to_string(cfg_.vocab_size) +
                              " but model.embed_tokens.weight has " + std::to_string(V) + " rows");
  cfg_.vocab_size = V;
  OPTIQ_ASSIGN_OR_RETURN(embed_tokens_, wl.linear("model.embed_tokens", V, C));
  OPTIQ_ASSIGN_OR_RETURN(norm_, wl.dense("model.norm.weight", {C}));
  widths_[kConvA] = C;
  widths_[kConvBq] = H * D;
  widths_[kConvBk] = Hkv * D;
  widths_[kConvBv] = Hkv * D;
  widths_[kConvC] = C;
  widths_[kConvD] = F;
  const char* conv_names[kNumConv] = {"canon_a", "self_attn.canon_b_q", "self_attn.canon_b_k",
                                      "self_attn.canon_b_v", "canon_c", "mlp.canon_d"};
  const char conv_letter[kNumConv] = {'A', 'B', 'B', 'B', 'C', 'D'};
  layers_.resize(static_cast<size_t>(cfg_.num_hidden_layers));
  int64_t taps_per_layer = 0;
  for (int s = 0; s < kNumConv; ++s)
    if (cfg_.canon(conv_letter[s])) taps_per_layer += widths_[s] * Kw;
  // Sized for fp32 plus each slot's start aligned to 64 bytes; bf16 taps (as checkpoints store them)
  // stay bf16 and take half.
  conv_taps_ = allocate_huge_region((sizeof(float) * static_cast<size_t>(taps_per_layer) + 64 * kNumConv) *
                                    static_cast<size_t>(cfg_.num_hidden_layers));
  uint8_t* next_taps = conv_taps_.data;
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    DharaLayer& L = layers_[i];
    OPTIQ_ASSIGN_OR_RETURN(L.input_layernorm, wl.dense(p + "input_layernorm.weight", {C}));
    OPTIQ_ASSIGN_OR_RETURN(L.post_attention_layernorm, wl.dense(p + "post_attention_layernorm.weight", {C}));
    if (cfg_.use_qk_norm) {
      OPTIQ_ASSIGN_OR_RETURN(L.q_norm, wl.dense(p + "self_attn.q_norm.weight", {D}));
      OPTIQ_ASSIGN_OR_RETURN(L.k_norm, wl.dense(p + "self_attn.k_norm.weight", {D}));
    }
    OPTIQ_ASSIGN_OR_RETURN(L.q_proj, wl.linear(p + "self_attn.q_proj", H * D, C));
    OPTIQ_ASSIGN_OR_RETURN(L.k_proj, wl.linear(p + "self_attn.k_proj", Hkv * D, C));
    OPTIQ_ASSIGN_OR_RETURN(L.v_proj, wl.linear(p + "self_attn.v_proj", Hkv * D, C));
    OPTIQ_ASSIGN_OR_RETURN(L.o_proj, wl.linear(p + "self_attn.o_proj", C, H * D));
    OPTIQ_ASSIGN_OR_RETURN(L.gate_proj, wl.linear(p + "mlp.gate_proj", F, C));
    OPTIQ_ASSIGN_OR_RETURN(L.up_proj, wl.linear(p + "mlp.up_proj", F, C));
    OPTIQ_ASSIGN_OR_RETURN(L.down_proj, wl.linear(p + "mlp.down_proj", C, F));
    for (const LoraTarget& t : {LoraTarget{p + "self_attn.q_proj", C, H * D}, {p + "self_attn.k_proj", C, Hkv * D},
                                {p + "self_attn.v_proj", C, Hkv * D}, {p + "self_attn.o_proj", H * D, C},
                                {p + "mlp.gate_proj", C, F}, {p + "mlp.up_proj", C, F}, {p + "mlp.down_proj", F, C}})
      lora_targets_.push_back(t);
    for (int s = 0; s < kNumConv; ++s) {
      if (!cfg_.canon(conv_letter[s])) continue;
      const std::string name = p + conv_names[s] + ".conv.weight";
      OPTIQ_ASSIGN_OR_RETURN(std::vector<float> taps, wl.f32(name, {widths_[s], 1, Kw}));
      const TensorView* tv = dir_->tensors->find(name);
      const int64_t width = widths_[s];
      // To tap-major, once, for the kernel, in the checkpoint's precision (bf16 round-trips exactly).
      auto to_tap_major = [&](auto* tm, auto convert) {
        for (int64_t c = 0; c < width; ++c)
          for (int64_t j = 0; j < Kw; ++j) tm[j * width + c] = convert(taps[c * Kw + j]);
        const size_t bytes = sizeof(*tm) * taps.size();
        conv_tap_bytes_ += bytes;
        next_taps += (bytes + 63) / 64 * 64;
        return tm;
      };
      if (tv && tv->dtype == DType::kBF16)
        L.conv[s] = ConvTaps::from_bf16(to_tap_major(reinterpret_cast<uint16_t*>(next_taps), f32_to_bf16));
      else
        L.conv[s] = ConvTaps(to_tap_major(reinterpret_cast<float*>(next_taps), [](float v) { return v; }));
    }
    // RoPE must use the stored inv_freq, never one recomputed from rope_theta (specs/dhara.md §3.3).
    OPTIQ_ASSIGN_OR_RETURN(L.inv_freq, wl.f32(p + "self_attn.rotary_emb.inv_freq", {D / 2}));
  }
  return Status::Ok();
}

void DharaModel::fill_info() {
  info_.model_type = "dhara_ar";
  info_.vocab_size = cfg_.vocab_size;
  info_.hidden_size = cfg_.hidden_size;
  info_.n_layers = cfg_.num_hidden_layers;
  info_.max_position = cfg_.max_position_embeddings;
  info_.mask_token_id = cfg_.mask_token_id;
  info_.block_len = 32;  // the training block (specs/dhara.md §1)
  info_.supports_block = cfg_.mask_token_id >= 0;
  info_.eos_ids = dir_->eos_ids();
  size_t per_token = embed_tokens_.bytes() + norm_.bytes() + conv_tap_bytes_;
  for (auto& L : layers_)
    per_token += L.q_proj.bytes() + L.k_proj.bytes() + L.v_proj.bytes() + L.o_proj.bytes() + L.gate_proj.bytes() +
                 L.up_proj.bytes() + L.down_proj.bytes() + L.input_layernorm.bytes() + L.post_attention_layernorm.bytes();
  info_.weight_bytes_per_token = per_token;
  info_.kv_bytes_per_position =
      sizeof(float) * static_cast<size_t>(2 * cfg_.num_hidden_layers * cfg_.num_key_value_heads * cfg_.head_dim);
  int64_t state_floats = 0;  // a step reads the P = kernel - 1 state rows of each present conv
  for (const DharaLayer& L : layers_)
    for (int s = 0; s < kNumConv; ++s)
      if (L.conv[s].data) state_floats += (cfg_.canon_kernel - 1) * widths_[s];
  info_.state_bytes_per_token = sizeof(float) * static_cast<size_t>(state_floats);
  info_.total_weight_bytes = dir_->tensors->total_bytes();
}

Status DharaModel::forward(const ForwardBatch& b, Cache& cache_base, float* logits, ThreadPool& pool) const {
  auto* cp = dynamic_cast<DharaCache*>(&cache_base);
  if (!cp) return Status::InvalidArgument("dhara forward: cache was not made by this model");
  DharaCache& c = *cp;
  const int64_t T = static_cast<int64_t>(b.tokens.size());
  const int64_t C = cfg_.hidden_size, F = cfg_.intermediate_size, D = cfg_.head_dim;
  const int64_t H = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, V = cfg_.vocab_size;
  const int64_t S0 = c.length();
  if (T == 0) return Status::InvalidArgument("dhara forward: empty chunk");
  if (b.pos0 != S0)
    return Status::InvalidArgument("dhara forward: pos0 " + std::to_string(b.pos0) + " != cache length " +
                                   std::to_string(S0) + " (chunks append to the cache)");
  if (S0 + T > c.capacity())
    return Status::InvalidArgument("dhara forward: " + std::to_string(S0 + T) + " positions exceed the context of " +
                                   std::to_string(c.capacity()));
  for (int64_t t = 0; t < T; ++t)
    if (b.tokens[t] < 0 || b.tokens[t] >= V)
      return Status::InvalidArgument("dhara forward: token id " + std::to_string(b.tokens[t]) + " at index " +
                                     std::to_string(t) + " outside the vocabulary [0, " + std::to_string(V) + ")");
  if (b.mask == MaskMode::kBlock && b.block_len <= 0)
    return Status::InvalidArgument("dhara forward: block_len must be positive");
  if (!b.input_embeds.empty() && static_cast<int64_t>(b.input_embeds.size()) != T * C)
    return Status::InvalidArgument("dhara forward: input_embeds must be [T, C]");

  OPTIQ_RETURN_IF_ERROR(c.lora.resolve(b.adapter, lora_targets_).WithContext("dhara forward"));

  KernelContext ctx(pool, c.kernels, {.row_invariant = b.row_invariant});
  c.reserve_rows(S0 + T);
  Acts a;
  a.T = T;
  a.S0 = S0;
  a.write = b.write_cache;
  a.x = grow(c.x, T * C);
  a.h = grow(c.h, T * std::max(C, H * D));
  a.q = grow(c.q, T * H * D);
  a.k = grow(c.kk, T * Hkv * D);
  a.v = grow(c.vv, T * Hkv * D);
  a.att = grow(c.att, T * H * D);
  a.tmp = grow(c.tmp, T * C);
  a.g = grow(c.g, T * F);
  a.u = grow(c.u, T * F);
  int64_t* pos = grow(c.pos, T);
  int64_t* kb = grow(c.key_begin, T);
  int64_t* ke = grow(c.key_end, T);
  a.pos = pos;
  a.key_begin = kb;
  a.key_end = ke;
  a.lora = &c.lora;
  // Per-row key ranges: every mask mode is a prefix [0, end) of the cache plus this chunk.
  for (int64_t t = 0; t < T; ++t) {
    pos[t] = b.pos0 + t;
    kb[t] = 0;
    switch (b.mask) {
      case MaskMode::kCausal: ke[t] = pos[t] + 1; break;
      case MaskMode::kBlock: ke[t] = std::min(S0 + T, (pos[t] / b.block_len + 1) * b.block_len); break;
      case MaskMode::kFull: ke[t] = S0 + T; break;
    }
  }
  for (int64_t t = 0; t < T; ++t) {
    if (!b.embed_override.empty() && b.embed_override[t])
      std::memcpy(a.x + t * C, b.input_embeds.data() + t * C, sizeof(float) * C);
    else
      weight_row(embed_tokens_, b.tokens[t], a.x + t * C);
  }
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) layer(l, c, a, ctx);
  if (a.write) c.commit(S0, T, /*ring_step=*/T == 1);

  // Head: norm, tied embedding, soft-cap.
  const int64_t first = b.last_logits_only ? T - 1 : 0;
  const int64_t rows = T - first;
  rms_norm(a.h, a.x + first * C, rows, C, norm_, cfg_.rms_norm_eps, ctx);
  matmul(logits, a.h, rows, embed_tokens_, ctx);
  if (cfg_.use_logit_softcap) softcap_inplace(logits, rows * V, cfg_.logit_softcap, ctx);
  return Status::Ok();
}

// One layer (specs/dhara.md §3.1), in place on the residual stream a.x.
void DharaModel::layer(int64_t l, DharaCache& c, const Acts& a, const KernelContext& ctx) const {
  const DharaLayer& L = layers_[l];
  const int64_t T = a.T, C = cfg_.hidden_size, F = cfg_.intermediate_size;
  // Attention block: h = norm_in(x); h += canonA(h); x += Wo · attn(q, k, v of h).
  rms_norm(a.h, a.x, T, C, L.input_layernorm, cfg_.rms_norm_eps, ctx);
  canon(c, l, kConvA, a.h, T, a.write, ctx);
  if (T == 1 && a.write)
    attention_step(l, c, a, ctx);
  else
    attention_chunk(l, c, a, ctx);
  matmul(a.tmp, a.att, T, L.o_proj, ctx);
  a.lora->apply(lora_slot(l, kLoraO), a.tmp, a.att, T, ctx);
  add_inplace(a.x, a.tmp, T * C, ctx);
  // MLP block: h2 = norm_post(x); h2 += canonC(h2); m = silu(Wg h2) * (Wu h2); m += canonD(m); x += Wd m.
  rms_norm(a.h, a.x, T, C, L.post_attention_layernorm, cfg_.rms_norm_eps, ctx);
  canon(c, l, kConvC, a.h, T, a.write, ctx);
  const MatmulOut gate_up[] = {{a.g, &L.gate_proj}, {a.u, &L.up_proj}};
  matmul_multi(gate_up, a.h, T, ctx);
  a.lora->apply(lora_slot(l, kLoraGate), a.g, a.h, T, ctx);
  a.lora->apply(lora_slot(l, kLoraUp), a.u, a.h, T, ctx);
  silu_mul(a.g, a.g, a.u, T * F, ctx);
  canon(c, l, kConvD, a.g, T, a.write, ctx);
  matmul(a.tmp, a.g, T, L.down_proj, ctx);
  a.lora->apply(lora_slot(l, kLoraDown), a.tmp, a.g, T, ctx);
  add_inplace(a.x, a.tmp, T * C, ctx);
}

// Attention of a chunk (prefill, block and diffusion forwards): q, k, v = W h; Canon B convs; RoPE with
// the stored inv_freq; per-head QK-norm after RoPE; K/V rows into the cache; GQA over each row's keys.
void DharaModel::attention_chunk(int64_t l, DharaCache& c, const Acts& a, const KernelContext& ctx) const {
  const DharaLayer& L = layers_[l];
  const int64_t T = a.T, D = cfg_.head_dim, H = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads;
  const MatmulOut qkv[] = {{a.q, &L.q_proj}, {a.k, &L.k_proj}, {a.v, &L.v_proj}};
  matmul_multi(qkv, a.h, T, ctx);
  add_qkv_lora(l, a, T, ctx);
  canon(c, l, kConvBq, a.q, T, a.write, ctx);
  canon(c, l, kConvBk, a.k, T, a.write, ctx);
  canon(c, l, kConvBv, a.v, T, a.write, ctx);
  rope_qk(a.q, H, a.k, Hkv, T, D, a.pos, L.inv_freq.data(), D / 2, ctx);
  if (cfg_.use_qk_norm) {  // per head over D, after RoPE (§3.1)
    rms_norm(a.q, a.q, T * H, D, L.q_norm, cfg_.rms_norm_eps, ctx);
    rms_norm(a.k, a.k, T * Hkv, D, L.k_norm, cfg_.rms_norm_eps, ctx);
  }
  // Rows past the cache length are written even for read-only forwards: they are scratch until
  // length() advances, and the next appending forward overwrites them.
  std::memcpy(c.k(l) + a.S0 * Hkv * D, a.k, sizeof(float) * T * Hkv * D);
  std::memcpy(c.v(l) + a.S0 * Hkv * D, a.v, sizeof(float) * T * Hkv * D);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  attention(a.att, a.q, c.k(l), c.v(l), T, H, Hkv, D, a.key_begin, a.key_end, scale, ctx);
}

// A decode step's attention (one row, cache written): from the projections to the attention output
// everything is per KV group, so one pass per group on every thread computes its q/k/v rows, convs,
// RoPE, norms, K/V row and heads. Per head, the same arithmetic as attention_chunk.
void DharaModel::attention_step(int64_t l, DharaCache& c, const Acts& a, const KernelContext& ctx) const {
  const DharaLayer& L = layers_[l];
  const int64_t D = cfg_.head_dim, H = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, G = H / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const MatmulOut qkv[] = {{a.q, &L.q_proj}, {a.k, &L.k_proj}, {a.v, &L.v_proj}};
  const GroupFn group = [&](int64_t grp, const KernelContext& wctx) {
    float* qg = a.q + grp * G * D;
    float* kg = a.k + grp * D;
    float* vg = a.v + grp * D;
    canon_step(c, l, kConvBq, a.q, grp * G * D, G * D, wctx);
    canon_step(c, l, kConvBk, a.k, grp * D, D, wctx);
    canon_step(c, l, kConvBv, a.v, grp * D, D, wctx);
    rope_qk(qg, G, kg, 1, 1, D, a.pos, L.inv_freq.data(), D / 2, wctx);
    if (cfg_.use_qk_norm) {
      rms_norm(qg, qg, G, D, L.q_norm, cfg_.rms_norm_eps, wctx);
      rms_norm(kg, kg, 1, D, L.k_norm, cfg_.rms_norm_eps, wctx);
    }
    std::memcpy(c.k(l) + a.S0 * Hkv * D + grp * D, kg, sizeof(float) * D);
    std::memcpy(c.v(l) + a.S0 * Hkv * D + grp * D, vg, sizeof(float) * D);
    attention_heads(a.att, a.q, c.k(l), c.v(l), H, Hkv, D, a.key_begin[0], a.key_end[0], scale, grp * G,
                    (grp + 1) * G, wctx);
  };
  if (!a.lora->has(lora_slot(l, kLoraQ)) && !a.lora->has(lora_slot(l, kLoraK)) && !a.lora->has(lora_slot(l, kLoraV))) {
    matmul_grouped(qkv, a.h, Hkv, group, ctx);
    return;
  }
  // With an adapter on q, k or v its term must be in the rows before a group reads them: the whole
  // projections first, then the groups in parallel (matmul_grouped's own fallback order).
  matmul_multi(qkv, a.h, 1, ctx);
  add_qkv_lora(l, a, 1, ctx);
  ctx.parallel_for(Hkv, [&](int64_t gb, int64_t ge, int thread) {
    const KernelContext wctx = ctx.for_worker(thread);
    for (int64_t g = gb; g < ge; ++g) group(g, wctx);
  }, 1);
}

}  // namespace

Result<std::unique_ptr<Model>> make_dhara(std::shared_ptr<ModelDir> dir, const LoadOptions&) {
  return DharaModel::load(std::move(dir));
}

}  // namespace optiq

// ---- Random checkpoints (benchmarks and property tests) ----
#include "models/random_checkpoint.h"

namespace optiq {

Status write_random_dhara(const nlohmann::json& config, const std::string& out_dir, DType dtype, uint64_t seed) {
  OPTIQ_ASSIGN_OR_RETURN(DharaConfig c, DharaConfig::from_json(config, "config"));
  OPTIQ_ASSIGN_OR_RETURN(RandomCheckpoint ck, RandomCheckpoint::create(dtype, seed, "random dhara"));
  if (c.vocab_size <= 0) return Status::InvalidArgument("random dhara: config needs vocab_size");
  const int64_t C = c.hidden_size, F = c.intermediate_size, D = c.head_dim, H = c.num_attention_heads,
                Hkv = c.num_key_value_heads, V = c.vocab_size, Kw = c.canon_kernel;
  // Weights ~ N(0, 0.02), output projections scaled down by √(2·layers); norms 1; Canon taps ~ N(0, 0.1).
  auto normal = [&](float sd) { return ck.normal(0.f, sd); };
  const auto ones = RandomCheckpoint::constant(1.0f);
  const float out_sd = 0.02f / std::sqrt(2.0f * static_cast<float>(c.num_hidden_layers));
  ck.add("model.embed_tokens.weight", {V, C}, normal(0.02f));
  ck.add("model.norm.weight", {C}, ones);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    ck.add(p + "input_layernorm.weight", {C}, ones);
    ck.add(p + "post_attention_layernorm.weight", {C}, ones);
    ck.add(p + "self_attn.q_norm.weight", {D}, ones);
    ck.add(p + "self_attn.k_norm.weight", {D}, ones);
    ck.add(p + "self_attn.q_proj.weight", {H * D, C}, normal(0.02f));
    ck.add(p + "self_attn.k_proj.weight", {Hkv * D, C}, normal(0.02f));
    ck.add(p + "self_attn.v_proj.weight", {Hkv * D, C}, normal(0.02f));
    ck.add(p + "self_attn.o_proj.weight", {C, H * D}, normal(out_sd));
    ck.add(p + "mlp.gate_proj.weight", {F, C}, normal(0.02f));
    ck.add(p + "mlp.up_proj.weight", {F, C}, normal(0.02f));
    ck.add(p + "mlp.down_proj.weight", {C, F}, normal(out_sd));
    ck.add(p + "canon_a.conv.weight", {C, 1, Kw}, normal(0.1f));
    ck.add(p + "self_attn.canon_b_q.conv.weight", {H * D, 1, Kw}, normal(0.1f));
    ck.add(p + "self_attn.canon_b_k.conv.weight", {Hkv * D, 1, Kw}, normal(0.1f));
    ck.add(p + "self_attn.canon_b_v.conv.weight", {Hkv * D, 1, Kw}, normal(0.1f));
    ck.add(p + "canon_c.conv.weight", {C, 1, Kw}, normal(0.1f));
    ck.add(p + "mlp.canon_d.conv.weight", {F, 1, Kw}, normal(0.1f));
    const double theta = config.value("rope_theta", 10000.0);
    ck.add(p + "self_attn.rotary_emb.inv_freq", {D / 2}, [&](int64_t j) {
      return static_cast<float>(std::pow(theta, -2.0 * static_cast<double>(j) / static_cast<double>(D)));
    });
  }
  nlohmann::json cfg = config;
  cfg["model_type"] = "dhara_ar";
  return ck.write(out_dir, std::move(cfg));
}

}  // namespace optiq
