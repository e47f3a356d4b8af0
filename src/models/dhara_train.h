// dhara's training forward and backward (models/dhara_train.cpp), shared by LoRA and full-parameter
// training (models/dhara_train_full.cpp). Private to the dhara training files.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "models/dhara.h"

namespace optiq {

// LoRA slots of a layer, in module order.
enum LoraSlot { kQ = 0, kK, kV, kO, kGate, kUp, kDown, kNumSlots };
const char* const kSlotNames[kNumSlots] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                           "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                           "mlp.down_proj"};

struct LayerLora {
  const LoraModule* p[kNumSlots] = {};
  LoraModule* g[kNumSlots] = {};
  bool any() const {
    for (const LoraModule* m : p)
      if (m) return true;
    return false;
  }
};

// One layer's activations over a sequence (what the backward reads).
struct LayerActs {
  std::vector<float> hA, q, k, v, qr, kr, att, x1, h2C, g, u, mD;
  std::vector<float> xd[kNumSlots], xa[kNumSlots];  // LoRA: dropped-out input (dropout only), x·a
  std::vector<float> pre[kNumConv];                 // full training: each Canon conv's input
  size_t bytes() const {
    size_t n = hA.size() + q.size() + k.size() + v.size() + qr.size() + kr.size() + att.size() + x1.size() +
               h2C.size() + g.size() + u.size() + mD.size();
    for (int s = 0; s < kNumSlots; ++s) n += xd[s].size() + xa[s].size();
    for (int s = 0; s < kNumConv; ++s) n += pre[s].size();
    return n * sizeof(float);
  }
};

// Full-parameter gradients, fp32, laid out as the weights the trainable reads (linears [out, in],
// norms [C] / [D], Canon taps tap-major [Kw, width]); null taps for absent convs.
struct DharaLayerGrads {
  float* linear[kNumSlots] = {};
  float *in_norm = nullptr, *post_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr;
  float* taps[kNumConv] = {};
};
struct DharaFullGrads {
  float* embed = nullptr;  // [V, C]: input embedding and tied head
  float* norm = nullptr;   // [C]
  std::vector<DharaLayerGrads> layers;
};

class DharaTrainable final : public Trainable {
 public:
  explicit DharaTrainable(DharaWeightsView w) : w_(w), c_(*w.cfg) {}

  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> lora_targets(int64_t num_layers) const override {
    const int64_t L = c_.num_hidden_layers;
    const int64_t first = num_layers < 0 ? 0 : std::max<int64_t>(0, L - num_layers);
    std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> out;
    for (int64_t l = first; l < L; ++l)
      for (int s = 0; s < kNumSlots; ++s) out.push_back({module_name(l, s), {slot_in(s), slot_out(s)}});
    return out;
  }

  Result<TrainStats> accumulate_lora_gradients(std::span<const TrainSequence> batch, const LoraAdapter& params,
                                               LoraAdapter& grads, const TrainOptions& opts,
                                               ThreadPool& pool) const override;

  // Every weight's gradient (no LoRA) added into `grads`: full-parameter training (dhara_train_full.cpp).
  Result<TrainStats> accumulate_full_gradients(std::span<const TrainSequence> batch, const DharaFullGrads& grads,
                                               const TrainOptions& opts, ThreadPool& pool) const;
  Result<std::unique_ptr<FullTrainable>> make_full_trainable() const override;

 private:
  std::string module_name(int64_t l, int s) const {
    return "model.layers." + std::to_string(l) + "." + kSlotNames[s];
  }
  int64_t slot_in(int s) const {
    return s == kO ? c_.num_attention_heads * c_.head_dim : s == kDown ? c_.intermediate_size : c_.hidden_size;
  }
  int64_t slot_out(int s) const {
    switch (s) {
      case kQ: return c_.num_attention_heads * c_.head_dim;
      case kK:
      case kV: return c_.num_key_value_heads * c_.head_dim;
      case kGate:
      case kUp: return c_.intermediate_size;
      default: return c_.hidden_size;
    }
  }
  const Weight& slot_weight(const DharaLayer& L, int s) const {
    const Weight* ws[kNumSlots] = {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj};
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
    const DharaFullGrads* full = nullptr;  // full-parameter training: weight gradients go here
  };

  Status check_sequence(const TrainSequence& seq, size_t index) const;
  // Forward, loss and backward of one sequence; LoRA gradients through p.lora, weight gradients
  // through p.full.
  void run_sequence(Pass& p, int64_t first_layer, const KernelContext& ctx, TrainStats& stats) const;
  // Checks every sequence, then runs each non-empty one as a copy of `proto` (its LoRA bindings,
  // scale, options and gradient sinks) from `first_layer`.
  Result<TrainStats> run_batch(std::span<const TrainSequence> batch, const Pass& proto, int64_t first_layer,
                               ThreadPool& pool) const;

  void forward_layer(int64_t l, const Pass& p, const float* x, float* x_out, LayerActs& a, std::vector<float>& tmp,
                     const KernelContext& ctx) const;
  void backward_layer(int64_t l, const Pass& p, const float* x, const float* dx_out, float* dx, LayerActs& a,
                      std::vector<float>& scratch, const KernelContext& ctx) const;
  // Linear + LoRA on input `in` [T, in]: y = in Wᵀ + scale (xd a) b, keeping xd (dropout) and xa.
  void linear(int64_t l, int s, const Pass& p, const float* in, float* y, LayerActs& a,
              const KernelContext& ctx) const;
  // dx_in (+)= dy W + LoRA's input gradient; LoRA parameter gradients accumulated.
  void linear_back(int64_t l, int s, const Pass& p, const float* in, const float* dy, float* dx_in, bool accumulate,
                   LayerActs& a, std::vector<float>& scratch, const KernelContext& ctx) const;
  // In place x += conv(x); `pre` (full training) receives the input.
  void canon(int64_t l, int slot, float* x, int64_t T, std::vector<float>* pre, const KernelContext& ctx) const;
  // In place d = ∂/∂input from d = ∂/∂output; with p.full, the taps' gradient from `pre`.
  void canon_back(int64_t l, int slot, const Pass& p, float* d, const std::vector<float>& pre,
                  std::vector<float>& scratch, const KernelContext& ctx) const;
  float dropout_keep_scale(const Pass& p, int64_t l, int s, int64_t t, int64_t i) const;

  DharaWeightsView w_;
  const DharaConfig& c_;
};

}  // namespace optiq
