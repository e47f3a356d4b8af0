// Optimizers over LoRA parameters, specs/optiq-surface.md L.6 (MLX optimizers.py with mlx-lm's
// construction: learning rate only, every other argument at MLX's default). fp32 parameters, gradients
// and state, element by element:
//   sgd    w ← w − lr·g
//   adam   m ← 0.9·m + 0.1·g;  v ← 0.999·v + 0.001·g²;  w ← w − lr·m / (√v + 1e-8)   (no bias correction)
//   adamw  w ← w·(1 − lr·0.01), then the adam update
// Constant learning rate. Thread safety: none; one owner.
#pragma once

#include <string>

#include "core/status.h"
#include "io/lora_adapter.h"

namespace optiq {

enum class OptimizerKind { kSgd, kAdam, kAdamW };
// "sgd", "adam", "adamw"; InvalidArgument otherwise.
Result<OptimizerKind> parse_optimizer(const std::string& name);
const char* optimizer_name(OptimizerKind k);

class Optimizer {
 public:
  // `params` gives the modules and shapes of the moments (zero; sgd keeps none).
  Optimizer(OptimizerKind kind, float learning_rate, const LoraAdapter& params);

  // One update of every module of `params` from `grads` (same modules and shapes; checked).
  void step(LoraAdapter& params, const LoraAdapter& grads);

  OptimizerKind kind() const { return kind_; }
  float learning_rate() const { return lr_; }
  // First and second moments (adam, adamw), shaped as the parameters; for checkpoints.
  const LoraAdapter& first_moment() const { return m_; }
  const LoraAdapter& second_moment() const { return v_; }
  // Replaces the moments (a resumed run). InvalidArgument when their modules or shapes differ.
  Status set_moments(LoraAdapter m, LoraAdapter v);
  bool has_moments() const { return kind_ != OptimizerKind::kSgd; }

 private:
  OptimizerKind kind_;
  float lr_;
  LoraAdapter m_, v_;
};

// InvalidArgument naming the first module (or its shape) where `a` and `b` differ ("what" names `b`).
Status same_lora_shapes(const LoraAdapter& a, const LoraAdapter& b, const std::string& what);

}  // namespace optiq
