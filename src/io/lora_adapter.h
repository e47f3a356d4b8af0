// LoRA adapters as mlx-lm writes them (specs/optiq-surface.md §5.4, "LoRA training: exact semantics"
// L.1, L.7): `adapters.safetensors` holds `<module path>.lora_a` [in, r] and `<module path>.lora_b`
// [r, out] in F32, the module path being the wrapped linear's weight name without ".weight"
// ("model.layers.0.self_attn.q_proj"); `adapter_config.json` holds the scale under
// `lora_parameters.scale`. A linear with an adapter computes y = W x + scale · (x · a) · b.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace optiq {

struct LoraModule {
  int64_t in = 0, rank = 0, out = 0;
  std::vector<float> a;  // [in, rank]
  std::vector<float> b;  // [rank, out]
};

struct LoraAdapter {
  std::string name;            // the directory's base name (how serve lists it)
  float scale = 1.0f;          // lora_parameters.scale
  nlohmann::json config;       // adapter_config.json as read (empty for a bare weights file)
  std::map<std::string, LoraModule> modules;  // module path → weights

  const LoraModule* find(const std::string& module) const {
    auto it = modules.find(module);
    return it == modules.end() ? nullptr : &it->second;
  }
  // A zero-valued copy with the same modules and shapes (gradient accumulators, optimizer moments).
  LoraAdapter zeros_like() const;
  size_t parameter_count() const;
};

// Reads the LoRA pairs of an adapters.safetensors file: every `<m>.lora_a` needs its `<m>.lora_b`
// with a matching rank; F32, BF16 or F16 are read as fp32. Other tensor names are an error naming them.
Result<LoraAdapter> load_lora_weights(const std::string& safetensors_path);

// Reads an adapter directory: DIR/adapters.safetensors plus DIR/adapter_config.json (scale from
// lora_parameters.scale, else 1 with PEFT's lora_alpha / r when only PEFT keys are present).
Result<LoraAdapter> load_lora_adapter(const std::string& dir);

// Writes the modules as F32 `<m>.lora_a` / `<m>.lora_b` to `path`, atomically.
Status save_lora_weights(const std::string& path, const LoraAdapter& adapter);

// What an adapter holds, for `optiq lora info` and the server's adapter list: {"rank" (null when
// ranks differ), "rank_distribution" {rank: modules}, "scale", "dropout", "num_layers",
// "fine_tune_type", "base_model" (PEFT base_model_name_or_path or mlx-lm/optiq keys; null if none),
// "modules" (count), "layers" (distinct layer indices), "module_kinds" (the paths after
// "layers.N.", sorted), "parameters"}. Fields missing from the config are null (dropout 0).
nlohmann::json lora_adapter_summary(const LoraAdapter& adapter);

}  // namespace optiq
