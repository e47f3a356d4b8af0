// dhara's training forward and backward (LoRA gradients), specs/dhara.md §3 and
// specs/optiq-surface.md "LoRA training: exact semantics". The forward is models/dhara.cpp's, over
// whole sequences with per-row key ranges, keeping what the backward needs.
#include <algorithm>
#include <string>

#include "models/dhara.h"

namespace optiq {

namespace {

class DharaTrainable final : public Trainable {
 public:
  explicit DharaTrainable(DharaWeightsView w) : w_(w) {}

  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> lora_targets(int64_t num_layers) const override {
    const DharaConfig& c = *w_.cfg;
    const int64_t L = c.num_hidden_layers, C = c.hidden_size, F = c.intermediate_size;
    const int64_t HD = c.num_attention_heads * c.head_dim, KD = c.num_key_value_heads * c.head_dim;
    const int64_t first = num_layers < 0 ? 0 : std::max<int64_t>(0, L - num_layers);
    std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> out;
    for (int64_t l = first; l < L; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      out.push_back({p + "self_attn.q_proj", {C, HD}});
      out.push_back({p + "self_attn.k_proj", {C, KD}});
      out.push_back({p + "self_attn.v_proj", {C, KD}});
      out.push_back({p + "self_attn.o_proj", {HD, C}});
      out.push_back({p + "mlp.gate_proj", {C, F}});
      out.push_back({p + "mlp.up_proj", {C, F}});
      out.push_back({p + "mlp.down_proj", {F, C}});
    }
    return out;
  }

  Result<TrainStats> accumulate_lora_gradients(std::span<const TrainSequence>, const LoraAdapter&, LoraAdapter&,
                                               const TrainOptions&, ThreadPool&) const override {
    return Status::Unsupported("dhara training: not implemented yet");
  }

 private:
  DharaWeightsView w_;
};

}  // namespace

std::unique_ptr<Trainable> make_dhara_trainable(DharaWeightsView weights) {
  return std::make_unique<DharaTrainable>(weights);
}

}  // namespace optiq
