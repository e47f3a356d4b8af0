// How a model applies ForwardBatch::adapter (internal to src/models). A model lists its adaptable
// linears once at load, as LoraTargets in a fixed order of slots (an empty module name: the model has
// no linear in that slot, e.g. DiffusionGemma's v_proj on full layers). Each forward looks the
// adapter's modules up once (resolve) and adds a module's term right after its base matmul (apply),
// unmerged: y = W x + scale · (x a) b (specs/optiq-surface.md L.1).
#pragma once

#include <span>
#include <vector>

#include "kernels/kernels.h"
#include "models/model.h"

namespace optiq {

// One forward's adapter modules by slot. Lives in the cache's scratch; not thread-safe.
class LoraLinears {
 public:
  // Looks up each target's module in `adapter` (null: no adapter, apply() does nothing).
  // InvalidArgument, naming the adapter and module, when a module's sizes differ from its target's
  // or the adapter names a module that is not a target.
  Status resolve(const LoraAdapter* adapter, std::span<const LoraTarget> targets);
  bool active() const { return adapter_ != nullptr; }
  // Whether slot i has a module (false without an adapter).
  bool has(size_t i) const { return adapter_ && modules_[i]; }
  // out[T, target.out] += scale · (x[T, target.in] · a) · b for slot i's module, if any.
  void apply(size_t i, float* out, const float* x, int64_t T, const KernelContext& ctx) const {
    if (!adapter_) return;
    if (const LoraModule* m = modules_[i])
      lora_add(out, x, T, m->a.data(), m->b.data(), m->in, m->rank, m->out, adapter_->scale, ctx);
  }

 private:
  const LoraAdapter* adapter_ = nullptr;
  std::vector<const LoraModule*> modules_;  // [targets], null where the adapter has no module
};

}  // namespace optiq
