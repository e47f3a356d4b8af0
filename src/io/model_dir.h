// A model directory on disk: config.json, optional generation_config.json / tokenizer files,
// and the memory-mapped tensors.
#pragma once

#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
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

// j[key] as an integer of type T, `fallback` when absent: nlohmann's j.value(key, fallback) (a float
// converts by truncation) except for a float T cannot hold, which nlohmann converts with undefined
// behaviour, and a non-number: Corruption "<prefix><key> ..." for both.
template <typename T>
Result<T> read_int(const nlohmann::json& j, const char* key, T fallback, const std::string& prefix) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number()) return Status::Corruption(prefix + key + " is not a number: " + it->dump());
  if (it->is_number_float()) {
    const double d = it->get<double>();
    // Both bounds are exact doubles for int32 and int64: -2^31 - 1, 2^31 and -2^63 (rounded), 2^63.
    if (!(d > static_cast<double>(std::numeric_limits<T>::min()) - 1 &&
          d < static_cast<double>(std::numeric_limits<T>::max()) + 1))
      return Status::Corruption(prefix + key + " = " + it->dump() + " is out of range");
  }
  return it->get<T>();
}

// Reads a JSON file; errors name the file and the parse position.
Result<nlohmann::json> read_json_file(const std::string& path);
// Parses JSON text read from `name` (read_json_file's parser, for bytes already in memory): Corruption
// "<name>: invalid JSON at byte N: ..." on malformed text.
Result<nlohmann::json> parse_json(std::string_view text, const std::string& name);

}  // namespace optiq
