#include "quant/byte_vocab.h"

#include <algorithm>
#include <filesystem>

#include "io/model_dir.h"

namespace optiq {

namespace {

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards in order.
std::string byte_char_utf8(int b) {
  auto printable = [](int c) { return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255); };
  int cp = b;
  if (!printable(b)) {
    int n = 0;
    for (int c = 0; c < b; ++c)
      if (!printable(c)) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace

Result<ByteVocab> ByteVocab::from_dir(const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  OPTIQ_ASSIGN_OR_RETURN(nlohmann::json j, read_json_file(path));
  auto unsupported = [&](const std::string& why) {
    return Status::Unsupported(path + ": " + why +
                               "; only byte-level vocabularies with no merges can be read until the tokenizer "
                               "library lands");
  };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) return unsupported("no model object");
  const auto& m = j["model"];
  if (m.value("type", std::string()) != "BPE") return unsupported("model.type is not BPE");
  if (m.contains("merges") && m["merges"].is_array() && !m["merges"].empty())
    return unsupported("BPE with " + std::to_string(m["merges"].size()) + " merges");
  if (!m.contains("vocab") || !m["vocab"].is_object()) return unsupported("model.vocab missing");
  if (j.contains("normalizer") && !j["normalizer"].is_null()) return unsupported("has a normalizer");
  if (j.contains("pre_tokenizer") && j["pre_tokenizer"].is_object() &&
      j["pre_tokenizer"].value("add_prefix_space", false))
    return unsupported("pre_tokenizer adds a prefix space");
  ByteVocab v;
  const auto& vocab = m["vocab"];
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(byte_char_utf8(b));
    if (it == vocab.end() || !it->is_number_integer())
      return unsupported("byte " + std::to_string(b) + " has no single-character entry");
    v.byte_id_[b] = it->get<int32_t>();
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& t : j["added_tokens"])
      if (t.is_object() && t.contains("content") && t["content"].is_string() && t.contains("id") &&
          t["id"].is_number_integer() && !t["content"].get<std::string>().empty())
        v.added_.emplace_back(t["content"].get<std::string>(), t["id"].get<int32_t>());
  std::stable_sort(v.added_.begin(), v.added_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  std::error_code ec;
  if (std::filesystem::exists(dir + "/tokenizer_config.json", ec)) {
    OPTIQ_ASSIGN_OR_RETURN(nlohmann::json tc, read_json_file(dir + "/tokenizer_config.json"));
    if (tc.is_object() && tc.contains("chat_template") && tc["chat_template"].is_string())
      v.chat_template_ = tc["chat_template"].get<std::string>();
  }
  return v;
}

std::vector<int32_t> ByteVocab::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    bool matched = false;
    if (parse_special) {
      for (const auto& [content, id] : added_)
        if (content[0] == text[i] && text.compare(i, content.size(), content) == 0) {
          out.push_back(id);
          i += content.size();
          matched = true;
          break;
        }
    }
    if (!matched) out.push_back(byte_id_[static_cast<uint8_t>(text[i++])]);
  }
  return out;
}

}  // namespace optiq
