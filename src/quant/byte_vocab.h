// Text → ids for byte-level vocabularies only (tokenizer.json: BPE model with no merges, GPT-2
// byte-to-unicode alphabet, e.g. the dhara-tiny fixture), so convert/eval can read text before the
// full tokenizer library (src/tokenizer) lands. Any other tokenizer is refused with Unsupported.
// Added tokens (`<|im_start|>`, ...) are matched literally when `parse_special` is set.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace optiq {

class ByteVocab {
 public:
  // Reads `dir`/tokenizer.json (and the chat template from tokenizer_config.json if present).
  static Result<ByteVocab> from_dir(const std::string& dir);

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const;
  // The chat_template string from tokenizer_config.json, or "" if none.
  const std::string& chat_template() const { return chat_template_; }

 private:
  int32_t byte_id_[256] = {};
  std::vector<std::pair<std::string, int32_t>> added_;  // longest content first
  std::string chat_template_;
};

}  // namespace optiq
