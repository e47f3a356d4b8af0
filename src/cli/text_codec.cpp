// Interim codec until the tokenizer library lands: byte-level vocabularies (ids 0–255 = bytes).
#include "cli/text_codec.h"

#include <filesystem>

namespace optiq::cli {

namespace {
class ByteCodec final : public TextCodec {
 public:
  Result<std::vector<int32_t>> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  Result<std::vector<int32_t>> encode_chat(const std::string&) const override {
    return Status::Unsupported("--chat needs the tokenizer library (chat templates)");
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string s;
    for (int32_t id : ids)
      if (id >= 0 && id < 256) s.push_back(static_cast<char>(id));
    return s;
  }
  std::string push(int32_t id) override {
    if (id >= 0 && id < 256) pending_.push_back(static_cast<char>(id));
    // Emit only complete UTF-8 sequences.
    size_t cut = pending_.size();
    for (size_t back = 1; back <= std::min<size_t>(3, pending_.size()); ++back) {
      unsigned char c = static_cast<unsigned char>(pending_[pending_.size() - back]);
      if ((c & 0xC0) == 0x80) continue;
      size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
      if (len > back) cut = pending_.size() - back;
      break;
    }
    std::string out = pending_.substr(0, cut);
    pending_.erase(0, cut);
    return out;
  }
  std::string flush() override {
    std::string out;
    out.swap(pending_);
    return out;
  }

 private:
  std::string pending_;
};
}  // namespace

Result<std::unique_ptr<TextCodec>> TextCodec::open(const std::string&) {
  return std::unique_ptr<TextCodec>(new ByteCodec());
}

}  // namespace optiq::cli
