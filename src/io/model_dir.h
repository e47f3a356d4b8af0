// A model directory on disk: config.json, optional generation_config.json / tokenizer files,
// and the memory-mapped tensors.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"

namespace optiq {

struct ModelDir {
  std::string path;
  nlohmann::json config;             // config.json
  nlohmann::json generation_config;  // generation_config.json, or {} if absent
  std::unique_ptr<TensorStore> tensors;
  bool repack = true;  // LoadOptions::repack, for the weight loader

  // Reads config.json (required) and generation_config.json (optional) and maps the tensors.
  static Result<std::shared_ptr<ModelDir>> open(const std::string& dir);

  // eos_token_id (an id or a list) from config.json and generation_config.json: sorted, unique.
  std::vector<int32_t> eos_ids() const;
};

// Reads j[key] as a positive integer into *out; otherwise Corruption "<prefix><key> must be a positive
// integer" (prefix names the file and object, e.g. "config.json: text_config.").
Status read_positive_int(const nlohmann::json& j, const char* key, const std::string& prefix, int64_t* out);

// Reads a JSON file; errors name the file and the parse position.
Result<nlohmann::json> read_json_file(const std::string& path);

}  // namespace optiq
