// Optimizers, specs/optiq-surface.md L.6.
#include "train/optimizer.h"

#include <cmath>
#include <vector>

namespace optiq {

Result<OptimizerKind> parse_optimizer(const std::string& name) {
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "adam") return OptimizerKind::kAdam;
  if (name == "adamw") return OptimizerKind::kAdamW;
  return Status::InvalidArgument("--optimizer must be adamw, adam or sgd, got \"" + name + "\"");
}

const char* optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kAdam: return "adam";
    case OptimizerKind::kAdamW: return "adamw";
  }
  return "?";
}

Status same_lora_shapes(const LoraAdapter& a, const LoraAdapter& b, const std::string& what) {
  if (a.modules.size() != b.modules.size())
    return Status::InvalidArgument(what + ": " + std::to_string(b.modules.size()) + " modules, expected " +
                                   std::to_string(a.modules.size()));
  for (const auto& [name, m] : a.modules) {
    const LoraModule* o = b.find(name);
    if (!o) return Status::InvalidArgument(what + ": no module " + name);
    if (o->in != m.in || o->rank != m.rank || o->out != m.out || o->a.size() != m.a.size() || o->b.size() != m.b.size())
      return Status::InvalidArgument(what + ": " + name + " is [" + std::to_string(o->in) + ", " +
                                     std::to_string(o->rank) + "] x [" + std::to_string(o->rank) + ", " +
                                     std::to_string(o->out) + "], expected [" + std::to_string(m.in) + ", " +
                                     std::to_string(m.rank) + "] x [" + std::to_string(m.rank) + ", " +
                                     std::to_string(m.out) + "]");
  }
  return Status::Ok();
}

Optimizer::Optimizer(OptimizerKind kind, float learning_rate, const LoraAdapter& params)
    : kind_(kind), lr_(learning_rate) {
  if (has_moments()) {
    m_ = params.zeros_like();
    v_ = params.zeros_like();
  }
}

Status Optimizer::set_moments(LoraAdapter m, LoraAdapter v) {
  if (!has_moments()) return Status::InvalidArgument("sgd keeps no moments");
  OPTIQ_RETURN_IF_ERROR(same_lora_shapes(m_, m, "first moment"));
  OPTIQ_RETURN_IF_ERROR(same_lora_shapes(v_, v, "second moment"));
  m_ = std::move(m);
  v_ = std::move(v);
  return Status::Ok();
}

namespace {

// One tensor: w, g, and (adam) m, v of n elements. Float arithmetic in MLX's order.
void update(OptimizerKind kind, float lr, float* w, const float* g, float* m, float* v, size_t n) {
  if (kind == OptimizerKind::kSgd) {
    for (size_t i = 0; i < n; ++i) w[i] = w[i] - lr * g[i];
    return;
  }
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, decay = 0.01f;
  if (kind == OptimizerKind::kAdamW) {
    const float keep = 1.0f - lr * decay;
    for (size_t i = 0; i < n; ++i) w[i] = w[i] * keep;
  }
  for (size_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * (g[i] * g[i]);
    w[i] = w[i] - lr * m[i] / (std::sqrt(v[i]) + eps);
  }
}

}  // namespace

void Optimizer::step(LoraAdapter& params, const LoraAdapter& grads) {
  const Status same = same_lora_shapes(params, grads, "gradients");
  OPTIQ_CHECK_MSG(same.ok(), same.ToString());
  for (auto& [name, p] : params.modules) {
    const LoraModule& g = grads.modules.at(name);
    LoraModule* m = has_moments() ? &m_.modules.at(name) : nullptr;
    LoraModule* v = has_moments() ? &v_.modules.at(name) : nullptr;
    update(kind_, lr_, p.a.data(), g.a.data(), m ? m->a.data() : nullptr, v ? v->a.data() : nullptr, p.a.size());
    update(kind_, lr_, p.b.data(), g.b.data(), m ? m->b.data() : nullptr, v ? v->b.data() : nullptr, p.b.size());
  }
}

}  // namespace optiq
