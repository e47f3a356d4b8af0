// A scripted stand-in for optiq::Trainable (src/models/model.h) with no weights, for the training loop's
// tests. Its loss has a closed-form gradient that depends on everything a step is made of (the
// sequences' tokens, targets, key ranges, canvas starts and weights; the LoRA parameters; the dropout
// seed), so two runs write the same adapter only if they fed it the same steps:
//
//   loss = Σ_sequences weight · Σ_{t : targets[t] >= 0} Σ_modules Σ_i ½ (p_i − c(t, i))²
//   c(t, i) = sin(0.37·targets[t] + 0.011·tokens[t] + 0.003·key_end[t] + 0.05·i + drop) / 4
//   drop = (dropout_seed mod 1000) / 1000 when lora_dropout > 0, else 0
//
// over every parameter p_i of every module (lora_a then lora_b, i counting on across both), so
// ∂loss/∂p_i = Σ weight · (p_i − c(t, i)). Every call is logged. `fail_at_call` makes the n-th call
// (1-based) fail, as an interrupted run.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "models/model.h"

namespace optiq::test {

struct FakeTrainCall {
  std::vector<TrainSequence> batch;
  TrainOptions opts;
};

class FakeTrainable final : public Trainable {
 public:
  // `layers` layers, each with q_proj [in 6 → out 5] and down_proj [in 4 → out 6].
  explicit FakeTrainable(int64_t layers = 2) : layers_(layers) {}

  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> lora_targets(int64_t num_layers) const override {
    std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> out;
    const int64_t first = num_layers < 0 ? 0 : std::max<int64_t>(0, layers_ - num_layers);
    for (int64_t l = first; l < layers_; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      out.push_back({p + "self_attn.q_proj", {6, 5}});
      out.push_back({p + "mlp.down_proj", {4, 6}});
    }
    return out;
  }

  Result<TrainStats> accumulate_lora_gradients(std::span<const TrainSequence> batch, const LoraAdapter& params,
                                               LoraAdapter& grads, const TrainOptions& opts,
                                               ThreadPool&) const override {
    ++calls_;
    if (fail_at_call > 0 && calls_ == fail_at_call) return Status::Internal("fake: interrupted");
    log.push_back({std::vector<TrainSequence>(batch.begin(), batch.end()), opts});
    const double drop = opts.lora_dropout > 0 ? static_cast<double>(opts.dropout_seed % 1000) / 1000.0 : 0.0;
    TrainStats st;
    for (const TrainSequence& q : batch) {
      st.tokens += static_cast<int64_t>(q.tokens.size());
      for (size_t t = 0; t < q.targets.size(); ++t) {
        if (q.targets[t] < 0) continue;
        ++st.targets;
        const double ke = q.key_end.empty() ? 0.0 : static_cast<double>(q.key_end[t]);
        const double base = 0.37 * q.targets[t] + 0.011 * q.tokens[t] + 0.003 * ke + drop;
        for (const auto& [name, p] : params.modules) {
          LoraModule& g = grads.modules.at(name);
          size_t i = 0;
          auto visit = [&](const std::vector<float>& pv, std::vector<float>& gv) {
            for (size_t k = 0; k < pv.size(); ++k, ++i) {
              const double c = std::sin(base + 0.05 * static_cast<double>(i)) / 4;
              const double d = pv[k] - c;
              st.loss += q.weight * 0.5 * d * d;
              gv[k] += static_cast<float>(q.weight * d);
            }
          };
          visit(p.a, g.a);
          visit(p.b, g.b);
        }
      }
    }
    return st;
  }

  int64_t fail_at_call = 0;
  mutable std::vector<FakeTrainCall> log;
  int64_t calls() const { return calls_; }

 private:
  int64_t layers_;
  mutable int64_t calls_ = 0;
};

// ModelInfo of a block-diffusion model the fake stands for (vocab 300, mask 299, 32-token blocks).
inline ModelInfo fake_train_info() {
  ModelInfo info;
  info.model_type = "fake_trainable";
  info.vocab_size = 300;
  info.n_layers = 2;
  info.mask_token_id = 299;
  info.block_len = 32;
  info.supports_block = true;
  return info;
}

}  // namespace optiq::test
