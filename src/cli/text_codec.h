// Text ↔ ids for the CLI. Uses the model directory's tokenizer.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace optiq::cli {

class TextCodec {
 public:
  static Result<std::unique_ptr<TextCodec>> open(const std::string& model_dir);
  virtual ~TextCodec() = default;
  virtual Result<std::vector<int32_t>> encode(const std::string& text) const = 0;
  virtual Result<std::vector<int32_t>> encode_chat(const std::string& user_message) const = 0;
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // Incremental decoding for streaming: returns newly complete text.
  virtual std::string push(int32_t id) = 0;
  virtual std::string flush() = 0;
};

}  // namespace optiq::cli
