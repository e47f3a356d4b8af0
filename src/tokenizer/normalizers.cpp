// Normalizers: rewrite the text before pre-tokenization; each mirrors the Rust `tokenizers` normalizer
// of the same name.
#include "tokenizer/pipeline_internal.h"

#include <utf8proc.h>

#include "tokenizer/unicode.h"

namespace optiq::tok {

using nlohmann::json;
namespace u = optiq::unicode;

namespace {

class NormSequence : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> items;
  std::string normalize(std::string s) const override {
    for (auto& n : items) s = n->normalize(std::move(s));
    return s;
  }
};

class NormUnicode : public Normalizer {
 public:
  explicit NormUnicode(u::NormForm f) : form_(f) {}
  std::string normalize(std::string s) const override { return u::normalize(s, form_); }

 private:
  u::NormForm form_;
};

class NormLowercase : public Normalizer {
 public:
  std::string normalize(std::string s) const override { return u::lower(s); }
};

class NormReplace : public Normalizer {
 public:
  NormReplace(Pattern p, std::string c) : pattern_(std::move(p)), content_(std::move(c)) {}
  std::string normalize(std::string s) const override { return replace_pattern(s, pattern_, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class NormPrepend : public Normalizer {
 public:
  explicit NormPrepend(std::string p) : prepend_(std::move(p)) {}
  std::string normalize(std::string s) const override { return s.empty() ? s : prepend_ + s; }

 private:
  std::string prepend_;
};

class NormStrip : public Normalizer {
 public:
  NormStrip(bool l, bool r) : left_(l), right_(r) {}
  std::string normalize(std::string s) const override {
    std::u32string w = u::to_u32(s);
    size_t a = 0, b = w.size();
    if (left_) while (a < b && u::is_whitespace(w[a])) ++a;
    if (right_) while (b > a && u::is_whitespace(w[b - 1])) --b;
    return u::from_u32(std::u32string_view(w).substr(a, b - a));
  }

 private:
  bool left_, right_;
};

// BertNormalizer: clean text, CJK padding, optional accents strip and lowercase.
class NormBert : public Normalizer {
 public:
  bool clean = true, chinese = true, lowercase = true;
  std::optional<bool> strip_accents;
  std::string normalize(std::string s) const override {
    std::u32string w = u::to_u32(s), o;
    for (char32_t c : w) {
      if (clean) {
        if (c == 0 || c == 0xFFFD) continue;
        bool ctrl = c != '\t' && c != '\n' && c != '\r' && utf8proc_cat(c);
        if (ctrl) continue;
        if (u::is_whitespace(c)) c = ' ';
      }
      bool cjk = (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
                 (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
                 (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
      if (chinese && cjk) { o.push_back(' '); o.push_back(c); o.push_back(' '); }
      else o.push_back(c);
    }
    std::string r = u::from_u32(o);
    bool strip = strip_accents.value_or(lowercase);
    if (strip) {
      r = u::normalize(r, u::NormForm::kNFD);
      std::u32string x = u::to_u32(r), y;
      for (char32_t c : x) if (utf8proc_category(static_cast<int32_t>(c)) != UTF8PROC_CATEGORY_MN) y.push_back(c);
      r = u::from_u32(y);
    }
    if (lowercase) r = u::lower(r);
    return r;
  }
  static bool utf8proc_cat(char32_t c) {
    auto cat = utf8proc_category(static_cast<int32_t>(c));
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CN ||
           cat == UTF8PROC_CATEGORY_CO;
  }
};

}  // namespace

Result<std::unique_ptr<Normalizer>> make_normalizer(const json& j, const std::string& where) {
  if (!j.is_object()) return Status::InvalidArgument(where + ": expected an object");
  OPTIQ_ASSIGN_OR_RETURN(std::string type, get_str(j, "type", where));
  if (type == "Sequence") {
    auto seq = std::make_unique<NormSequence>();
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) return Status::InvalidArgument(field(where, "normalizers") + ": expected an array");
    for (size_t k = 0; k < it->size(); ++k) {
      OPTIQ_ASSIGN_OR_RETURN(auto n, make_normalizer((*it)[k], field(where, "normalizers") + "[" + std::to_string(k) + "]"));
      seq->items.push_back(std::move(n));
    }
    return std::unique_ptr<Normalizer>(std::move(seq));
  }
  if (type == "NFC") return std::unique_ptr<Normalizer>(new NormUnicode(u::NormForm::kNFC));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new NormUnicode(u::NormForm::kNFD));
  if (type == "NFKC") return std::unique_ptr<Normalizer>(new NormUnicode(u::NormForm::kNFKC));
  if (type == "NFKD") return std::unique_ptr<Normalizer>(new NormUnicode(u::NormForm::kNFKD));
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new NormLowercase());
  if (type == "Replace") {
    if (!j.contains("pattern")) return Status::InvalidArgument(field(where, "pattern") + ": missing");
    OPTIQ_ASSIGN_OR_RETURN(Pattern p, Pattern::from_json(j["pattern"], field(where, "pattern")));
    OPTIQ_ASSIGN_OR_RETURN(std::string c, get_str(j, "content", where));
    return std::unique_ptr<Normalizer>(new NormReplace(std::move(p), std::move(c)));
  }
  if (type == "Prepend") {
    OPTIQ_ASSIGN_OR_RETURN(std::string p, get_str(j, "prepend", where));
    return std::unique_ptr<Normalizer>(new NormPrepend(std::move(p)));
  }
  if (type == "Strip") {
    OPTIQ_ASSIGN_OR_RETURN(bool l, get_bool(j, "strip_left", where, true));
    OPTIQ_ASSIGN_OR_RETURN(bool r, get_bool(j, "strip_right", where, true));
    return std::unique_ptr<Normalizer>(new NormStrip(l, r));
  }
  if (type == "BertNormalizer") {
    auto n = std::make_unique<NormBert>();
    OPTIQ_ASSIGN_OR_RETURN(n->clean, get_bool(j, "clean_text", where, true));
    OPTIQ_ASSIGN_OR_RETURN(n->chinese, get_bool(j, "handle_chinese_chars", where, true));
    OPTIQ_ASSIGN_OR_RETURN(n->lowercase, get_bool(j, "lowercase", where, true));
    if (j.contains("strip_accents") && j["strip_accents"].is_boolean()) n->strip_accents = j["strip_accents"].get<bool>();
    return std::unique_ptr<Normalizer>(std::move(n));
  }
  return Status::Unsupported(field(where, "type") + ": normalizer '" + type + "' is not supported");
}

}  // namespace optiq::tok
