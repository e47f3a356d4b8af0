// Writes an MLX-compatible quantized checkpoint directory (specs/mlx-format.md §3–§7):
//   model.safetensors  quantized modules as `P.weight` (U32, packed), `P.scales`, `P.biases` (the
//                      source weight dtype); every other tensor copied unchanged; metadata
//                      {"format": "mlx"}
//   config.json        the source config plus `quantization` and an identical `quantization_config`
//                      (global {group_size, bits, mode: affine}, and with per_module_entries one
//                      {"bits", "group_size"} entry per quantized module, as OptIQ writes)
//   optiq_metadata.json when metadata is given
//   tokenizer / generation files copied verbatim.
// Modules not in the plan stay float with no `.scales` and no entry, so the load rule keeps them float.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"

namespace optiq {

struct ModuleQuant {
  int bits = 4;
  int group_size = 64;
};

struct QuantizedModelSpec {
  std::map<std::string, ModuleQuant> modules;  // module path (no ".weight") → parameters
  bool per_module_entries = true;              // false: global block only (uniform recipes)
  int global_bits = 4;
  int global_group_size = 64;
  nlohmann::json metadata;  // written as optiq_metadata.json unless null
};

// `src_dir` must be a float checkpoint; `out_dir` is created (existing files are replaced).
// InvalidArgument if a planned module is missing, not a 2-D float weight, or its input size is not a
// multiple of its group size; or if per_module_entries is false and a module differs from the
// global parameters.
Status write_quantized_model(const std::string& src_dir, const std::string& out_dir, const QuantizedModelSpec& spec);

}  // namespace optiq
