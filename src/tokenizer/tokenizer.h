// Hugging Face tokenizer.json loader, encoder and decoder, plus chat templates.
//
// Behaviour follows the Rust `tokenizers` library: added tokens are split out of the raw text first
// (non-normalized ones before normalization, normalized ones after), every other segment is normalized,
// pre-tokenized and run through the model (BPE; WordPiece), and the post-processor adds special tokens
// when asked. Input text that is not valid UTF-8 is first repaired (invalid subparts become U+FFFD),
// since HF only accepts valid strings.
//
// Thread safety: a Tokenizer is immutable after from_dir() except for an internal BPE word cache guarded
// by a mutex, so every const method may be called from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace optiq {

namespace tok {
class Pipeline;
}
namespace jinja {
class Template;
}

class Tokenizer {
 public:
  ~Tokenizer();
  // Loads tokenizer.json + tokenizer_config.json (chat_template there, or chat_template.jinja beside it),
  // and reads the EOS set from generation_config.json, config.json and tokenizer_config.json if present.
  // Fails with the file and field on malformed or unsupported content.
  static Result<std::unique_ptr<Tokenizer>> from_dir(const std::string& dir);
  // Builds from in-memory JSON (tokenizer.json content, tokenizer_config.json or {}); used by from_dir,
  // tests and the fuzzer. `name` prefixes error messages.
  static Result<std::unique_ptr<Tokenizer>> from_json(const nlohmann::json& tokenizer_json,
                                                      const nlohmann::ordered_json& tokenizer_config,
                                                      const std::string& name = "tokenizer.json");

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Ids outside the vocabulary are skipped.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // Renders the chat template. messages/tools: JSON as in the OpenAI chat format (tools null: `tools` is None in the
  // template, as transformers passes it); extra: additional template variables (e.g. enable_thinking).
  // Variables bos_token/eos_token/unk_token/pad_token come from tokenizer_config.json. Fails with line and
  // column on template errors, including raise_exception(). nlohmann::json sorts object keys, so `tojson`
  // then lists keys sorted; pass ordered_json (the overload below) to keep the caller's order as Python does.
  Result<std::string> apply_chat_template(const nlohmann::json& messages, const nlohmann::json& tools,
                                          bool add_generation_prompt,
                                          const nlohmann::json& extra = nlohmann::json::object()) const;
  Result<std::string> apply_chat_template(const nlohmann::ordered_json& messages,
                                          const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                          const nlohmann::ordered_json& extra) const;
  bool has_chat_template() const;
  const std::string& chat_template_source() const { return chat_template_src_; }

  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }  // sorted, unique
  int64_t vocab_size() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token's string in the vocabulary (before decoding), or nullopt for unknown ids.
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;

  // The decoder applied to a run of token strings (no special-token filtering).
  std::string decode_tokens(const std::vector<std::string>& tokens) const;
  // The underlying stages (internal; the streaming detokenizer decodes raw bytes through it).
  const tok::Pipeline& pipeline() const { return *pipeline_; }

 private:
  Tokenizer();
  std::unique_ptr<tok::Pipeline> pipeline_;
  std::unique_ptr<jinja::Template> chat_template_;
  std::string chat_template_src_;
  nlohmann::ordered_json template_vars_;  // bos_token, eos_token, ... from tokenizer_config.json
  std::vector<int32_t> eos_ids_;
};

// Turns a stream of ids into text, emitting only complete UTF-8. Correct when one character's bytes
// span several tokens (byte fallback, byte-level BPE). Not thread-safe; one per stream. The Tokenizer
// must outlive it.
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tok, bool skip_special_tokens = true);
  std::string push(int32_t id);  // newly completed text
  std::string flush();           // whatever remains (invalid bytes as U+FFFD)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // ids since the last point where the decoded text was stable
  size_t emitted_ = 0;        // bytes of decode(ids_) already returned
};

}  // namespace optiq
