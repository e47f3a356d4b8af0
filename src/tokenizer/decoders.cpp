// Decoders: turn token strings back into text; each mirrors the Rust `tokenizers` decoder of the same
// name.
#include "tokenizer/pipeline_internal.h"

#include "tokenizer/unicode.h"

namespace optiq::tok {

using nlohmann::json;
namespace u = optiq::unicode;

namespace {

class DecSequence : public Decoder {
 public:
  std::vector<std::unique_ptr<Decoder>> items;
  void decode(std::vector<std::string>& t, bool raw) const override {
    for (auto& d : items) d->decode(t, raw);
  }
};

class DecByteLevel : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool raw) const override {
    std::string bytes;
    for (auto& t : tokens) {
      size_t start = bytes.size();
      bool ok = true;
      size_t i = 0;
      while (i < t.size()) {
        int32_t cp = u::decode_one(t, i);
        int b = cp < 0 ? -1 : u::char_to_byte(static_cast<char32_t>(cp));
        if (b < 0) { ok = false; break; }
        bytes.push_back(static_cast<char>(b));
      }
      if (!ok) { bytes.resize(start); bytes += t; }
    }
    tokens.assign(1, raw ? std::move(bytes) : u::sanitize(bytes));
  }
};

class DecReplace : public Decoder {
 public:
  DecReplace(Pattern p, std::string c) : pattern_(std::move(p)), content_(std::move(c)) {}
  void decode(std::vector<std::string>& tokens, bool) const override {
    for (auto& t : tokens) t = replace_pattern(t, pattern_, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class DecByteFallback : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool raw) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t nbytes = 0;
    auto flush = [&] {
      if (!nbytes) return;
      if (raw || u::is_valid(bytes)) out.push_back(bytes);
      else for (size_t k = 0; k < nbytes; ++k) out.emplace_back("\xEF\xBF\xBD");
      bytes.clear();
      nbytes = 0;
    };
    for (auto& t : tokens) {
      int b = parse_byte(t);
      if (b >= 0) { bytes.push_back(static_cast<char>(b)); ++nbytes; continue; }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
  static int parse_byte(std::string_view t) {
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int h = hex(t[3]), l = hex(t[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
  }
};

class DecFuse : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class DecStrip : public Decoder {
 public:
  char32_t content = ' ';
  size_t start = 0, stop = 0;
  void decode(std::vector<std::string>& tokens, bool) const override {
    for (auto& t : tokens) {
      std::u32string w = u::to_u32(t);
      size_t a = 0, b = w.size();
      for (size_t k = 0; k < start && a < b && w[a] == content; ++k) ++a;
      for (size_t k = 0; k < stop && b > a && w[b - 1] == content; ++k) --b;
      t = u::from_u32(std::u32string_view(w).substr(a, b - a));
    }
  }
};

class DecMetaspace : public Decoder {
 public:
  std::string rep;
  Prepend scheme = Prepend::kAlways;
  void decode(std::vector<std::string>& tokens, bool) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i == 0 && scheme != Prepend::kNever && t.compare(0, rep.size(), rep) == 0) t.erase(0, rep.size());
      t = replace_all(t, rep, " ");
    }
  }
};

class DecWordPiece : public Decoder {
 public:
  std::string prefix = "##";
  bool cleanup = true;
  void decode(std::vector<std::string>& tokens, bool) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix.size(), prefix) == 0) t.erase(0, prefix.size());
        else t.insert(0, " ");
      }
      if (cleanup) {
        for (auto [a, b] : {std::pair{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
                            {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
          t = replace_all(t, a, b);
      }
    }
  }
};

}  // namespace

Result<std::unique_ptr<Decoder>> make_decoder(const json& j, const std::string& where) {
  if (!j.is_object()) return Status::InvalidArgument(where + ": expected an object");
  OPTIQ_ASSIGN_OR_RETURN(std::string type, get_str(j, "type", where));
  if (type == "Sequence") {
    auto seq = std::make_unique<DecSequence>();
    auto it = j.find("decoders");
    if (it == j.end() || !it->is_array()) return Status::InvalidArgument(field(where, "decoders") + ": expected an array");
    for (size_t k = 0; k < it->size(); ++k) {
      OPTIQ_ASSIGN_OR_RETURN(auto d, make_decoder((*it)[k], field(where, "decoders") + "[" + std::to_string(k) + "]"));
      seq->items.push_back(std::move(d));
    }
    return std::unique_ptr<Decoder>(std::move(seq));
  }
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new DecByteLevel());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new DecByteFallback());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new DecFuse());
  if (type == "Replace") {
    if (!j.contains("pattern")) return Status::InvalidArgument(field(where, "pattern") + ": missing");
    OPTIQ_ASSIGN_OR_RETURN(Pattern p, Pattern::from_json(j["pattern"], field(where, "pattern")));
    OPTIQ_ASSIGN_OR_RETURN(std::string c, get_str(j, "content", where));
    return std::unique_ptr<Decoder>(new DecReplace(std::move(p), std::move(c)));
  }
  if (type == "Strip") {
    auto d = std::make_unique<DecStrip>();
    OPTIQ_ASSIGN_OR_RETURN(d->content, get_char(j, "content", where, U' '));
    OPTIQ_ASSIGN_OR_RETURN(int64_t a, get_int(j, "start", where, 0));
    OPTIQ_ASSIGN_OR_RETURN(int64_t b, get_int(j, "stop", where, 0));
    if (a < 0 || b < 0) return Status::InvalidArgument(where + ": start/stop must be >= 0");
    d->start = static_cast<size_t>(a);
    d->stop = static_cast<size_t>(b);
    return std::unique_ptr<Decoder>(std::move(d));
  }
  if (type == "Metaspace") {
    auto d = std::make_unique<DecMetaspace>();
    OPTIQ_ASSIGN_OR_RETURN(char32_t c, get_char(j, "replacement", where, U'\u2581'));
    u::append(d->rep, c);
    OPTIQ_ASSIGN_OR_RETURN(d->scheme, get_prepend(j, where));
    return std::unique_ptr<Decoder>(std::move(d));
  }
  if (type == "WordPiece") {
    auto d = std::make_unique<DecWordPiece>();
    OPTIQ_ASSIGN_OR_RETURN(d->prefix, get_str(j, "prefix", where, std::string("##")));
    OPTIQ_ASSIGN_OR_RETURN(d->cleanup, get_bool(j, "cleanup", where, true));
    return std::unique_ptr<Decoder>(std::move(d));
  }
  return Status::Unsupported(field(where, "type") + ": decoder '" + type + "' is not supported");
}

}  // namespace optiq::tok
