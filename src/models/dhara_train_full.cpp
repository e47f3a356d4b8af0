// Full-parameter training of dhara: every weight as an fp32 parameter (specs/dhara.md §2 names and
// shapes), gradients from the shared training forward/backward (models/dhara_train.cpp).
#include <cstring>

#include "io/safetensors.h"
#include "models/dhara_train.h"

namespace optiq {

ParamSet zeros_like(const ParamSet& params) {
  ParamSet z;
  for (const auto& [name, p] : params) z[name] = ParamTensor{p.shape, std::vector<float>(p.data.size(), 0.0f)};
  return z;
}

namespace {

const char* const kConvNames[kNumConv] = {"canon_a", "self_attn.canon_b_q", "self_attn.canon_b_k",
                                          "self_attn.canon_b_v", "canon_c", "mlp.canon_d"};

class DharaFullTrainable final : public FullTrainable {
 public:
  explicit DharaFullTrainable(DharaWeightsView src) : cfg_(*src.cfg), config_(*src.config) {
    std::copy(src.widths, src.widths + kNumConv, widths_);
    const int64_t C = cfg_.hidden_size, Kw = cfg_.canon_kernel;
    copy_linear("model.embed_tokens.weight", *src.embed_tokens);
    copy_vector("model.norm.weight", *src.norm, C);
    layers_.resize(static_cast<size_t>(cfg_.num_hidden_layers));
    taps_.resize(layers_.size() * kNumConv);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const DharaLayer& L = (*src.layers)[l];
      const std::string p = "model.layers." + std::to_string(l) + ".";
      copy_vector(p + "input_layernorm.weight", L.input_layernorm, C);
      copy_vector(p + "post_attention_layernorm.weight", L.post_attention_layernorm, C);
      if (cfg_.use_qk_norm) {
        copy_vector(p + "self_attn.q_norm.weight", L.q_norm, cfg_.head_dim);
        copy_vector(p + "self_attn.k_norm.weight", L.k_norm, cfg_.head_dim);
      }
      const Weight* lin[kNumSlots] = {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj};
      for (int s = 0; s < kNumSlots; ++s) copy_linear(p + kSlotNames[s] + ".weight", *lin[s]);
      for (int s = 0; s < kNumConv; ++s) {
        if (!L.conv[s].data) continue;
        // Checkpoint layout [width, 1, Kw] from the kernel's tap-major taps.
        const int64_t w = widths_[s];
        ParamTensor& t = params_[p + kConvNames[s] + ".conv.weight"];
        t.shape = {w, 1, Kw};
        t.data.resize(static_cast<size_t>(w * Kw));
        for (int64_t j = 0; j < Kw; ++j)
          for (int64_t c = 0; c < w; ++c) {
            const int64_t i = j * w + c;
            t.data[static_cast<size_t>(c * Kw + j)] =
                L.conv[s].bf16 ? bf16_to_f32(static_cast<const uint16_t*>(L.conv[s].data)[i])
                               : static_cast<const float*>(L.conv[s].data)[i];
          }
        taps_[l * kNumConv + s].resize(static_cast<size_t>(w * Kw));
      }
      layers_[l].inv_freq = L.inv_freq;
    }
    bind();
    trainable_ = std::make_unique<DharaTrainable>(
        DharaWeightsView{&cfg_, &embed_, &norm_, &layers_, widths_, &config_});
  }

  ParamSet& parameters() override { return params_; }

  Result<TrainStats> accumulate_gradients(std::span<const TrainSequence> batch, ParamSet& grads,
                                          const TrainOptions& opts, ThreadPool& pool) override {
    for (const auto& [name, p] : params_) {
      auto it = grads.find(name);
      if (it == grads.end() || it->second.data.size() != p.data.size())
        return Status::InvalidArgument("gradients lack parameter " + name + " or its shape differs");
    }
    refresh_taps();
    const int64_t Kw = cfg_.canon_kernel;
    DharaFullGrads g;
    g.embed = grads.at("model.embed_tokens.weight").data.data();
    g.norm = grads.at("model.norm.weight").data.data();
    g.layers.resize(layers_.size());
    std::vector<std::vector<float>> tap_grads(layers_.size() * kNumConv);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      DharaLayerGrads& lg = g.layers[l];
      for (int s = 0; s < kNumSlots; ++s) lg.linear[s] = grads.at(p + kSlotNames[s] + ".weight").data.data();
      lg.in_norm = grads.at(p + "input_layernorm.weight").data.data();
      lg.post_norm = grads.at(p + "post_attention_layernorm.weight").data.data();
      if (cfg_.use_qk_norm) {
        lg.q_norm = grads.at(p + "self_attn.q_norm.weight").data.data();
        lg.k_norm = grads.at(p + "self_attn.k_norm.weight").data.data();
      }
      for (int s = 0; s < kNumConv; ++s)
        if (layers_[l].conv[s].data) {
          tap_grads[l * kNumConv + s].assign(static_cast<size_t>(widths_[s] * Kw), 0.0f);
          lg.taps[s] = tap_grads[l * kNumConv + s].data();
        }
    }
    OPTIQ_ASSIGN_OR_RETURN(TrainStats stats, trainable_->accumulate_full_gradients(batch, g, opts, pool));
    // Tap-major gradients back to the checkpoint layout.
    for (size_t l = 0; l < layers_.size(); ++l)
      for (int s = 0; s < kNumConv; ++s) {
        const auto& tg = tap_grads[l * kNumConv + s];
        if (tg.empty()) continue;
        float* dst = grads.at("model.layers." + std::to_string(l) + "." + kConvNames[s] + ".conv.weight").data.data();
        for (int64_t j = 0; j < Kw; ++j)
          for (int64_t c = 0; c < widths_[s]; ++c) dst[c * Kw + j] += tg[static_cast<size_t>(j * widths_[s] + c)];
      }
    return stats;
  }

  Status save(const std::string& dir, DType dtype) const override {
    if (dtype != DType::kF32 && dtype != DType::kBF16)
      return Status::InvalidArgument("save: dtype must be F32 or BF16");
    std::vector<std::vector<uint16_t>> bf(params_.size());
    std::vector<TensorToWrite> tensors;
    size_t i = 0;
    for (const auto& [name, p] : params_) {
      if (dtype == DType::kBF16) {
        auto& b = bf[i++];
        b.resize(p.data.size());
        for (size_t k = 0; k < b.size(); ++k) b[k] = f32_to_bf16(p.data[k]);
        tensors.push_back({name, dtype, p.shape, b.data(), b.size() * 2});
      } else {
        tensors.push_back({name, dtype, p.shape, p.data.data(), p.data.size() * 4});
      }
    }
    // inv_freq is a buffer, not a parameter: written as read.
    std::vector<std::vector<float>> inv(layers_.size());
    for (size_t l = 0; l < layers_.size(); ++l) {
      inv[l] = layers_[l].inv_freq;
      tensors.push_back({"model.layers." + std::to_string(l) + ".self_attn.rotary_emb.inv_freq", DType::kF32,
                         {static_cast<int64_t>(inv[l].size())}, inv[l].data(), inv[l].size() * 4});
    }
    nlohmann::json cfg = config_;
    cfg["torch_dtype"] = dtype == DType::kBF16 ? "bfloat16" : "float32";
    OPTIQ_RETURN_IF_ERROR(write_file_atomic(dir + "/config.json", cfg.dump(2) + "\n"));
    return write_safetensors(dir + "/model.safetensors", tensors);
  }

 private:
  void copy_linear(const std::string& name, const Weight& w) {
    ParamTensor& t = params_[name];
    t.shape = {w.n_out, w.n_in};
    t.data.resize(static_cast<size_t>(w.n_out * w.n_in));
    for (int64_t n = 0; n < w.n_out; ++n) weight_row(w, n, t.data.data() + n * w.n_in);
  }
  void copy_vector(const std::string& name, const Weight& w, int64_t n) {
    ParamTensor& t = params_[name];
    t.shape = {n};
    t.data.assign(static_cast<size_t>(n), 1.0f);
    if (w.data) convert_to_f32(w.dtype, w.data, t.data.data(), static_cast<size_t>(n));
  }
  static Weight f32_weight(ParamTensor& t) {
    Weight w;
    w.dtype = DType::kF32;
    w.n_out = t.shape.size() == 2 ? t.shape[0] : 1;
    w.n_in = t.shape.size() == 2 ? t.shape[1] : t.shape[0];
    w.data = t.data.data();
    return w;
  }
  // Points the trainable's weights at the parameters (map nodes and their vectors never move).
  void bind() {
    embed_ = f32_weight(params_.at("model.embed_tokens.weight"));
    norm_ = f32_weight(params_.at("model.norm.weight"));
    for (size_t l = 0; l < layers_.size(); ++l) {
      DharaLayer& L = layers_[l];
      const std::string p = "model.layers." + std::to_string(l) + ".";
      L.input_layernorm = f32_weight(params_.at(p + "input_layernorm.weight"));
      L.post_attention_layernorm = f32_weight(params_.at(p + "post_attention_layernorm.weight"));
      if (cfg_.use_qk_norm) {
        L.q_norm = f32_weight(params_.at(p + "self_attn.q_norm.weight"));
        L.k_norm = f32_weight(params_.at(p + "self_attn.k_norm.weight"));
      }
      Weight* lin[kNumSlots] = {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj};
      for (int s = 0; s < kNumSlots; ++s) *lin[s] = f32_weight(params_.at(p + kSlotNames[s] + ".weight"));
      for (int s = 0; s < kNumConv; ++s)
        if (!taps_[l * kNumConv + s].empty()) L.conv[s] = ConvTaps(taps_[l * kNumConv + s].data());
    }
  }
  // The kernels read taps tap-major: rebuilt from the (optimizer-updated) parameters each step.
  void refresh_taps() {
    const int64_t Kw = cfg_.canon_kernel;
    for (size_t l = 0; l < layers_.size(); ++l)
      for (int s = 0; s < kNumConv; ++s) {
        auto& tm = taps_[l * kNumConv + s];
        if (tm.empty()) continue;
        const auto& src = params_.at("model.layers." + std::to_string(l) + "." + kConvNames[s] + ".conv.weight").data;
        for (int64_t c = 0; c < widths_[s]; ++c)
          for (int64_t j = 0; j < Kw; ++j) tm[static_cast<size_t>(j * widths_[s] + c)] = src[static_cast<size_t>(c * Kw + j)];
      }
  }

  DharaConfig cfg_;
  nlohmann::json config_;
  int64_t widths_[kNumConv] = {};
  ParamSet params_;
  Weight embed_, norm_;
  std::vector<DharaLayer> layers_;
  std::vector<std::vector<float>> taps_;  // [layer × slot] tap-major copies of the conv parameters
  std::unique_ptr<DharaTrainable> trainable_;
};

}  // namespace

Result<std::unique_ptr<FullTrainable>> DharaTrainable::make_full_trainable() const {
  if (!w_.config) return Status::Unsupported("dhara: full training needs the model's config.json");
  return std::unique_ptr<FullTrainable>(std::make_unique<DharaFullTrainable>(w_));
}

}  // namespace optiq
