// Text ↔ ids for the CLI, through the model directory's tokenizer (src/tokenizer).
#include "cli/text_codec.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace optiq::cli {

namespace {

class TokenizerCodec final : public TextCodec {
 public:
  explicit TokenizerCodec(std::unique_ptr<Tokenizer> tok) : tok_(std::move(tok)), stream_(*tok_) {}
  Result<std::vector<int32_t>> encode(const std::string& text) const override {
    // Raw prompts get the tokenizer's own special tokens (e.g. BOS), as HF's encode does.
    return tok_->encode(text, /*add_special_tokens=*/true);
  }
  Result<std::vector<int32_t>> encode_chat(const std::string& user_message) const override {
    if (!tok_->has_chat_template()) return Status::Unsupported("--chat: the model's tokenizer has no chat template");
    nlohmann::json messages = nlohmann::json::array({{{"role", "user"}, {"content", user_message}}});
    OPTIQ_ASSIGN_OR_RETURN(std::string prompt, tok_->apply_chat_template(messages, nlohmann::json(), true));
    // The rendered template already carries its special tokens (specs/dhara.md §5).
    return tok_->encode(prompt, /*add_special_tokens=*/false);
  }
  std::string decode(std::span<const int32_t> ids) const override { return tok_->decode(ids, true); }
  std::string push(int32_t id) override { return stream_.push(id); }
  std::string flush() override { return stream_.flush(); }

 private:
  std::unique_ptr<Tokenizer> tok_;
  StreamingDetokenizer stream_;
};

}  // namespace

Result<std::unique_ptr<TextCodec>> TextCodec::open(const std::string& model_dir) {
  if (!std::filesystem::exists(std::filesystem::path(model_dir) / "tokenizer.json"))
    return Status::NotFound(model_dir + ": no tokenizer.json (use --prompt-ids)");
  OPTIQ_ASSIGN_OR_RETURN(auto tok, Tokenizer::from_dir(model_dir));
  return std::unique_ptr<TextCodec>(new TokenizerCodec(std::move(tok)));
}

}  // namespace optiq::cli
