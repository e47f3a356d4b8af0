// Adapters at inference: checking an adapter against a model's adaptable linears (validate_adapter,
// LoraLinears::resolve) and the adapted view of a model (with_adapter).
#include <string>

#include "models/lora_linears.h"
#include "models/model.h"

namespace optiq {

namespace {

std::string sizes(int64_t in, int64_t out) {
  return "[in " + std::to_string(in) + ", out " + std::to_string(out) + "]";
}

// "model.layers.0.self_attn.q_proj, ..., model.layers.0.mlp.down_proj and 21 more": what a model
// adapts, for the error about a module it does not have.
std::string describe(std::span<const LoraTarget> targets) {
  std::string s;
  size_t shown = 0, total = 0;
  for (const LoraTarget& t : targets) {
    if (t.module.empty()) continue;
    ++total;
    if (shown < 7) s += (shown++ ? ", " : "") + t.module;
  }
  if (total == 0) return "this model takes no adapters";
  if (total > shown) s += " and " + std::to_string(total - shown) + " more";
  return "the model's adaptable linears are " + s;
}

class AdaptedModel final : public Model {
 public:
  AdaptedModel(const Model& base, std::shared_ptr<const LoraAdapter> adapter)
      : base_(base), adapter_(std::move(adapter)) {}
  const ModelInfo& info() const override { return base_.info(); }
  std::unique_ptr<Cache> make_cache(int64_t max_tokens) const override { return base_.make_cache(max_tokens); }
  Status forward(const ForwardBatch& b, Cache& cache, float* logits, ThreadPool& pool) const override {
    if (b.adapter) return base_.forward(b, cache, logits, pool);
    ForwardBatch with = b;
    with.adapter = adapter_.get();
    return base_.forward(with, cache, logits, pool);
  }
  Result<ImageEmbedding> embed_image(std::span<const uint8_t> rgb, int width, int height,
                                     ThreadPool& pool) const override {
    return base_.embed_image(rgb, width, height, pool);
  }
  const Trainable* trainable() const override { return base_.trainable(); }
  std::vector<LoraTarget> adapter_targets() const override { return base_.adapter_targets(); }

 private:
  const Model& base_;
  std::shared_ptr<const LoraAdapter> adapter_;
};

}  // namespace

Status LoraLinears::resolve(const LoraAdapter* adapter, std::span<const LoraTarget> targets) {
  adapter_ = nullptr;
  if (!adapter) return Status::Ok();
  const std::string who = "adapter " + (adapter->name.empty() ? std::string("(unnamed)") : adapter->name);
  modules_.assign(targets.size(), nullptr);
  size_t found = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const LoraTarget& t = targets[i];
    if (t.module.empty()) continue;
    const LoraModule* m = adapter->find(t.module);
    if (!m) continue;
    if (m->in != t.in || m->out != t.out)
      return Status::InvalidArgument(who + ": " + t.module + ": lora_a/lora_b are " + sizes(m->in, m->out) +
                                     ", the model's linear is " + sizes(t.in, t.out));
    if (static_cast<int64_t>(m->a.size()) != m->in * m->rank || static_cast<int64_t>(m->b.size()) != m->rank * m->out)
      return Status::InvalidArgument(who + ": " + t.module + ": lora_a/lora_b hold " + std::to_string(m->a.size()) +
                                     " / " + std::to_string(m->b.size()) + " values for rank " +
                                     std::to_string(m->rank));
    modules_[i] = m;
    ++found;
  }
  if (found != adapter->modules.size()) {
    for (const auto& [name, m] : adapter->modules) {
      bool known = false;
      for (const LoraTarget& t : targets) known = known || t.module == name;
      if (!known)
        return Status::InvalidArgument(who + ": module " + name + " is not a linear this model adapts (" +
                                       describe(targets) + ")");
    }
  }
  adapter_ = adapter;
  return Status::Ok();
}

Status validate_adapter(const Model& model, const LoraAdapter& adapter) {
  LoraLinears l;
  return l.resolve(&adapter, model.adapter_targets()).WithContext(model.info().model_type);
}

std::unique_ptr<Model> with_adapter(const Model& base, std::shared_ptr<const LoraAdapter> adapter) {
  return std::make_unique<AdaptedModel>(base, std::move(adapter));
}

}  // namespace optiq
