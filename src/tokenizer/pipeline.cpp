// Stages of a Hugging Face tokenizer; each mirrors the Rust `tokenizers` component of the same name.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pipeline.h"

#include <pcre2.h>
#include <utf8proc.h>

#include <functional>

#include <algorithm>
#include <cstring>
#include <queue>

#include "tokenizer/unicode.h"

namespace optiq::tok {

using nlohmann::json;
namespace u = optiq::unicode;

size_t StrHash::operator()(std::string_view s) const noexcept {
  // FNV-1a: the keys are short tokens, for which it beats std::hash's setup cost.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return static_cast<size_t>(h ^ (h >> 32));
}

void FlatStrMap::build(const StrMap& m) {
  size_t cap = 16;
  while (cap < m.size() * 2) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  arena_.clear();
  for (auto& [k, id] : m) {
    uint64_t h = StrHash()(k);
    uint32_t tag = static_cast<uint32_t>(h >> 32) | 1;
    uint64_t i = h & mask_;
    while (slots_[i].tag) i = (i + 1) & mask_;
    slots_[i] = Slot{tag, id, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(k.size())};
    arena_ += k;
  }
}

int32_t FlatStrMap::find(std::string_view s) const {
  if (slots_.empty()) return -1;
  uint64_t h = StrHash()(s);
  uint32_t tag = static_cast<uint32_t>(h >> 32) | 1;
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& sl = slots_[i];
    if (!sl.tag) return -1;
    if (sl.tag == tag && sl.len == s.size() && std::memcmp(arena_.data() + sl.off, s.data(), s.size()) == 0) return sl.id;
  }
}

void FlatPairMap::build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& entries) {
  size_t cap = 16;
  while (cap < entries.size() * 2) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (auto& [k, v] : entries) {
    uint64_t i = mix(k) & mask_;
    while (slots_[i].key != kEmpty && slots_[i].key != k) i = (i + 1) & mask_;
    if (slots_[i].key == k) continue;  // duplicate merge: the first (lowest rank) wins, as in HF
    slots_[i].key = k;
    slots_[i].value = v;
  }
}

// ---------------------------------------------------------------------------------------------------
// Regex

Regex::~Regex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Result<std::unique_ptr<Regex>> Regex::compile(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return Status::InvalidArgument("regex '" + pattern + "': " + reinterpret_cast<char*>(buf) +
                                   " at offset " + std::to_string(off));
  }
  std::unique_ptr<Regex> r(new Regex());
  r->code_ = code;
  r->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return r;
}

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* mctx = nullptr;
  size_t pos = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  while (pos <= s.size()) {
    int rc = jit_ && !mctx ? pcre2_jit_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                           : pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !mctx) {
      // Rare (huge runs matched by nested groups): retry this position with a large JIT stack.
      stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
      mctx = pcre2_match_context_create(nullptr);
      pcre2_jit_stack_assign(mctx, nullptr, stack);
      continue;
    }
    if (rc < 0) break;  // no match (or a resource limit: the rest stays unmatched)
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t a = ov[0], b = ov[1];
    if (b < a) break;  // \K tricks; never in tokenizer patterns
    out.emplace_back(a, b);
    if (b > a) {
      pos = b;
    } else {
      if (a >= s.size()) break;
      size_t next = a;
      u::decode_one(s, next);  // an empty match: step over one character
      pos = next;
    }
  }
  pcre2_match_data_free(md);
  if (mctx) pcre2_match_context_free(mctx);
  if (stack) pcre2_jit_stack_free(stack);
}

Result<Pattern> Pattern::from_json(const json& j, const std::string& where) {
  Pattern p;
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    p.literal_ = j["String"].get<std::string>();
    return p;
  }
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    auto r = Regex::compile(j["Regex"].get<std::string>());
    if (!r.ok()) return r.status().WithContext(where);
    p.regex_ = std::shared_ptr<Regex>(std::move(r).value());
    return p;
  }
  return Status::InvalidArgument(where + ": expected {\"String\": ...} or {\"Regex\": ...}, got " +
                                 j.dump().substr(0, 80));
}

void Pattern::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  if (regex_) return regex_->find_all(s, out);
  if (literal_.empty()) return;
  size_t pos = 0;
  while ((pos = s.find(literal_, pos)) != std::string_view::npos) {
    out.emplace_back(pos, pos + literal_.size());
    pos += literal_.size();
  }
}

// ---------------------------------------------------------------------------------------------------
// JSON helpers

namespace {

std::string field(const std::string& where, const std::string& key) { return where + "." + key; }

Result<std::string> get_str(const json& j, const std::string& key, const std::string& where,
                            std::optional<std::string> def = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return *def;
    return Status::InvalidArgument(field(where, key) + ": missing");
  }
  if (!it->is_string()) return Status::InvalidArgument(field(where, key) + ": expected a string, got " + it->dump().substr(0, 60));
  return it->get<std::string>();
}

Result<bool> get_bool(const json& j, const std::string& key, const std::string& where, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) return Status::InvalidArgument(field(where, key) + ": expected a boolean, got " + it->dump().substr(0, 60));
  return it->get<bool>();
}

Result<int64_t> get_int(const json& j, const std::string& key, const std::string& where, int64_t def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number_integer()) return Status::InvalidArgument(field(where, key) + ": expected an integer, got " + it->dump().substr(0, 60));
  return it->get<int64_t>();
}

Result<char32_t> get_char(const json& j, const std::string& key, const std::string& where, char32_t def) {
  OPTIQ_ASSIGN_OR_RETURN(std::string s, get_str(j, key, where, std::string()));
  if (s.empty()) return def;
  std::u32string w = u::to_u32(s);
  if (w.size() != 1) return Status::InvalidArgument(field(where, key) + ": expected one character, got '" + s + "'");
  return w[0];
}

Result<SplitBehavior> get_behavior(const json& j, const std::string& where, SplitBehavior def) {
  OPTIQ_ASSIGN_OR_RETURN(std::string b, get_str(j, "behavior", where, std::string()));
  if (b.empty()) return def;
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return Status::InvalidArgument(field(where, "behavior") + ": unknown value '" + b + "'");
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t k = s.find(from, pos);
    if (k == std::string_view::npos) break;
    out.append(s.substr(pos, k - pos));
    out.append(to);
    pos = k + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

std::string replace_pattern(std::string_view s, const Pattern& p, std::string_view content) {
  std::vector<std::pair<size_t, size_t>> m;
  p.find_all(s, m);
  if (m.empty()) return std::string(s);
  std::string out;
  size_t prev = 0;
  for (auto [a, b] : m) {
    out.append(s.substr(prev, a - prev));
    out.append(content);
    prev = b;
  }
  out.append(s.substr(prev));
  return out;
}

// Splits `s` at the given match ranges per HF's NormalizedString::split; returns [start, end) ranges.
std::vector<std::pair<size_t, size_t>> split_ranges(size_t len, const std::vector<std::pair<size_t, size_t>>& matches,
                                                    SplitBehavior behavior, bool invert) {
  // (range, is_match) covering the whole string
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> parts;
  size_t prev = 0;
  for (auto [a, b] : matches) {
    if (prev != a) parts.push_back({{prev, a}, false});
    parts.push_back({{a, b}, true});
    prev = b;
  }
  if (prev != len) parts.push_back({{prev, len}, false});
  if (invert) for (auto& p : parts) p.second = !p.second;

  std::vector<std::pair<size_t, size_t>> out;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (auto& p : parts) if (!p.second) out.push_back(p.first);
      break;
    case SplitBehavior::kIsolated:
      for (auto& p : parts) out.push_back(p.first);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (auto& p : parts) {
        if (p.second && !prev_match && !out.empty()) out.back().second = p.first.second;
        else out.push_back(p.first);
        prev_match = p.second;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev_match = false;
      for (size_t k = parts.size(); k-- > 0;) {
        auto& p = parts[k];
        if (p.second && !prev_match && !out.empty()) out.back().first = p.first.first;
        else out.push_back(p.first);
        prev_match = p.second;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      bool any = false;
      for (auto& p : parts) {
        if (any && p.second == prev_match) out.back().second = p.first.second;
        else out.push_back(p.first);
        any = true;
        prev_match = p.second;
      }
      break;
    }
  }
  std::erase_if(out, [](const auto& r) { return r.first == r.second; });
  return out;
}

void split_pieces(std::vector<Piece>& pieces, const std::function<void(std::string_view, std::vector<std::pair<size_t, size_t>>&)>& find,
                  SplitBehavior behavior, bool invert) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  std::vector<std::pair<size_t, size_t>> m;
  for (auto& p : pieces) {
    m.clear();
    find(p.text, m);
    if (m.empty() && !invert) {
      if (!p.text.empty()) out.push_back(std::move(p));
      continue;
    }
    for (auto [a, b] : split_ranges(p.text.size(), m, behavior, invert))
      out.push_back(Piece{p.text.substr(a, b - a), p.at_start && a == 0});
  }
  pieces = std::move(out);
}

// Ranges of single characters satisfying pred (for Digits / Punctuation / WhitespaceSplit).
void char_matches(std::string_view s, bool (*pred)(char32_t), bool contiguous,
                  std::vector<std::pair<size_t, size_t>>& out) {
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    int32_t cp = u::decode_one(s, i);
    if (cp >= 0 && pred(static_cast<char32_t>(cp))) {
      if (contiguous && !out.empty() && out.back().second == start) out.back().second = i;
      else out.emplace_back(start, i);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Normalizers

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

// ---------------------------------------------------------------------------------------------------
// Pre-tokenizers

class PreSequence : public PreTokenizer {
 public:
  std::vector<std::unique_ptr<PreTokenizer>> items;
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : items) p->pre_tokenize(pieces);
  }
  std::optional<ByteLevelPlan> byte_level_plan() const override;
};

class PreSplit : public PreTokenizer {
 public:
  PreSplit(Pattern p, SplitBehavior b, bool inv) : pattern_(std::move(p)), behavior_(b), invert_(inv) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](std::string_view s, auto& m) { pattern_.find_all(s, m); }, behavior_, invert_);
  }
  const Regex* isolating_regex() const {
    return behavior_ == SplitBehavior::kIsolated && !invert_ ? pattern_.regex() : nullptr;
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class PreByteLevel : public PreTokenizer {
 public:
  bool add_prefix_space = true;
  std::unique_ptr<Regex> regex;  // when use_regex
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space)
      for (auto& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(p.text.begin(), ' ');
    if (regex) split_pieces(pieces, [&](std::string_view s, auto& m) { regex->find_all(s, m); }, SplitBehavior::kIsolated, false);
    const char32_t* table = u::byte_to_char();
    for (auto& p : pieces) {
      std::string out;
      out.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) u::append(out, table[c]);
      p.text = std::move(out);
    }
  }
  std::optional<ByteLevelPlan> byte_level_plan() const override { return ByteLevelPlan{regex.get(), add_prefix_space}; }
};

std::optional<ByteLevelPlan> PreSequence::byte_level_plan() const {
  if (items.size() == 1) return items[0]->byte_level_plan();
  if (items.size() != 2) return std::nullopt;
  auto* split = dynamic_cast<const PreSplit*>(items[0].get());
  auto* bl = dynamic_cast<const PreByteLevel*>(items[1].get());
  if (!split || !bl || bl->regex || bl->add_prefix_space || !split->isolating_regex()) return std::nullopt;
  return ByteLevelPlan{split->isolating_regex(), false};
}

class PreDigits : public PreTokenizer {
 public:
  bool individual = false;
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](std::string_view s, auto& m) { char_matches(s, u::is_numeric, false, m); },
                 individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false);
  }
};

class PrePunctuation : public PreTokenizer {
 public:
  SplitBehavior behavior = SplitBehavior::kIsolated;
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](std::string_view s, auto& m) { char_matches(s, u::is_punctuation, false, m); }, behavior, false);
  }
};

class PreWhitespaceSplit : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](std::string_view s, auto& m) { char_matches(s, u::is_whitespace, false, m); },
                 SplitBehavior::kRemoved, false);
  }
};

class PreWhitespace : public PreTokenizer {
 public:
  std::unique_ptr<Regex> regex;  // \w+|[^\w\s]+
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](std::string_view s, auto& m) { regex->find_all(s, m); }, SplitBehavior::kRemoved, true);
  }
};

class PreBert : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](std::string_view s, auto& m) { char_matches(s, u::is_whitespace, false, m); },
                 SplitBehavior::kRemoved, false);
    split_pieces(pieces, [&](std::string_view s, auto& m) { char_matches(s, u::is_punctuation, false, m); },
                 SplitBehavior::kIsolated, false);
  }
};

enum class Prepend { kAlways, kFirst, kNever };

Result<Prepend> get_prepend(const json& j, const std::string& where) {
  OPTIQ_ASSIGN_OR_RETURN(std::string s, get_str(j, "prepend_scheme", where, std::string()));
  if (s.empty()) {
    OPTIQ_ASSIGN_OR_RETURN(bool aps, get_bool(j, "add_prefix_space", where, true));
    return aps ? Prepend::kAlways : Prepend::kNever;
  }
  if (s == "always") return Prepend::kAlways;
  if (s == "first") return Prepend::kFirst;
  if (s == "never") return Prepend::kNever;
  return Status::InvalidArgument(field(where, "prepend_scheme") + ": unknown value '" + s + "'");
}

class PreMetaspace : public PreTokenizer {
 public:
  std::string rep;
  Prepend scheme = Prepend::kAlways;
  bool split = true;
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : pieces) {
      p.text = replace_all(p.text, " ", rep);
      bool starts = p.text.compare(0, rep.size(), rep) == 0;
      if (!starts && (scheme == Prepend::kAlways || (scheme == Prepend::kFirst && p.at_start))) p.text = rep + p.text;
    }
    if (split)
      split_pieces(pieces, [&](std::string_view s, auto& m) {
        size_t pos = 0;
        while ((pos = s.find(rep, pos)) != std::string_view::npos) { m.emplace_back(pos, pos + rep.size()); pos += rep.size(); }
      }, SplitBehavior::kMergedWithNext, false);
  }
};

Result<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const json& j, const std::string& where) {
  if (!j.is_object()) return Status::InvalidArgument(where + ": expected an object");
  OPTIQ_ASSIGN_OR_RETURN(std::string type, get_str(j, "type", where));
  if (type == "Sequence") {
    auto seq = std::make_unique<PreSequence>();
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) return Status::InvalidArgument(field(where, "pretokenizers") + ": expected an array");
    for (size_t k = 0; k < it->size(); ++k) {
      OPTIQ_ASSIGN_OR_RETURN(auto p, make_pre_tokenizer((*it)[k], field(where, "pretokenizers") + "[" + std::to_string(k) + "]"));
      seq->items.push_back(std::move(p));
    }
    return std::unique_ptr<PreTokenizer>(std::move(seq));
  }
  if (type == "Split") {
    if (!j.contains("pattern")) return Status::InvalidArgument(field(where, "pattern") + ": missing");
    OPTIQ_ASSIGN_OR_RETURN(Pattern p, Pattern::from_json(j["pattern"], field(where, "pattern")));
    OPTIQ_ASSIGN_OR_RETURN(SplitBehavior b, get_behavior(j, where, SplitBehavior::kIsolated));
    OPTIQ_ASSIGN_OR_RETURN(bool inv, get_bool(j, "invert", where, false));
    return std::unique_ptr<PreTokenizer>(new PreSplit(std::move(p), b, inv));
  }
  if (type == "ByteLevel") {
    auto p = std::make_unique<PreByteLevel>();
    OPTIQ_ASSIGN_OR_RETURN(p->add_prefix_space, get_bool(j, "add_prefix_space", where, true));
    OPTIQ_ASSIGN_OR_RETURN(bool use_regex, get_bool(j, "use_regex", where, true));
    if (use_regex) { OPTIQ_ASSIGN_OR_RETURN(p->regex, Regex::compile(kGpt2Pattern)); }
    return std::unique_ptr<PreTokenizer>(std::move(p));
  }
  if (type == "Digits") {
    auto p = std::make_unique<PreDigits>();
    OPTIQ_ASSIGN_OR_RETURN(p->individual, get_bool(j, "individual_digits", where, false));
    return std::unique_ptr<PreTokenizer>(std::move(p));
  }
  if (type == "Punctuation") {
    auto p = std::make_unique<PrePunctuation>();
    OPTIQ_ASSIGN_OR_RETURN(p->behavior, get_behavior(j, where, SplitBehavior::kIsolated));
    return std::unique_ptr<PreTokenizer>(std::move(p));
  }
  if (type == "WhitespaceSplit") return std::unique_ptr<PreTokenizer>(new PreWhitespaceSplit());
  if (type == "Whitespace") {
    auto p = std::make_unique<PreWhitespace>();
    OPTIQ_ASSIGN_OR_RETURN(p->regex, Regex::compile("\\w+|[^\\w\\s]+"));
    return std::unique_ptr<PreTokenizer>(std::move(p));
  }
  if (type == "BertPreTokenizer") return std::unique_ptr<PreTokenizer>(new PreBert());
  if (type == "Metaspace") {
    auto p = std::make_unique<PreMetaspace>();
    OPTIQ_ASSIGN_OR_RETURN(char32_t c, get_char(j, "replacement", where, U'\u2581'));
    u::append(p->rep, c);
    OPTIQ_ASSIGN_OR_RETURN(p->scheme, get_prepend(j, where));
    OPTIQ_ASSIGN_OR_RETURN(p->split, get_bool(j, "split", where, true));
    return std::unique_ptr<PreTokenizer>(std::move(p));
  }
  return Status::Unsupported(field(where, "type") + ": pre-tokenizer '" + type + "' is not supported");
}

// ---------------------------------------------------------------------------------------------------
// Models

class BpeModel : public Model {
 public:
  FlatStrMap vocab;
  FlatPairMap merges;  // (left, right) -> (rank, new id)
  std::vector<int32_t> char_ids;  // id of each single code point < kCharTable as a token (no prefix/suffix), or -1
  static constexpr char32_t kCharTable = 0x800;
  std::optional<int32_t> unk_id;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
  std::string prefix, suffix;
  int32_t byte_ids[256];  // <0xXX> ids for byte fallback, -1 if absent

  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

  void tokenize(std::string_view w, std::vector<int32_t>& out) const override {
    if (w.empty()) return;
    bool cacheable = w.size() <= sizeof(CacheSlot::key);
    uint64_t h = 0;
    CacheSlot* slot = nullptr;
    if (cacheable) {
      h = StrHash()(w) | 1;  // 0 marks an empty slot
      slot = &cache_[h & (cache_.size() - 1)];
      std::lock_guard<std::mutex> lock(cache_mu_);
      if (slot->hash == h && slot->key_len == w.size() && std::memcmp(slot->key, w.data(), w.size()) == 0) {
        out.insert(out.end(), slot->ids, slot->ids + slot->n_ids);
        return;
      }
    }
    size_t start = out.size();
    bool whole = false;
    if (ignore_merges) {
      int32_t id = vocab.find(w);
      if (id >= 0) { out.push_back(id); whole = true; }
    }
    if (!whole) merge_word(w, out);
    size_t n = out.size() - start;
    if (cacheable && n <= sizeof(CacheSlot::ids) / sizeof(int32_t)) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      slot->hash = h;
      slot->key_len = static_cast<uint8_t>(w.size());
      std::memcpy(slot->key, w.data(), w.size());
      slot->n_ids = static_cast<uint8_t>(n);
      std::copy(out.begin() + static_cast<long>(start), out.end(), slot->ids);
    }
  }

 private:
  // Direct-mapped memo of recent words (a collision just evicts): one slot per lookup keeps it cache-friendly.
  struct alignas(64) CacheSlot {  // one cache line
    uint64_t hash = 0;
    uint8_t key_len = 0, n_ids = 0;
    char key[30];
    int32_t ids[6];
  };
  static constexpr size_t kMaxCacheSlots = 1 << 17;  // 8 MiB
  struct Sym { int32_t id; int32_t prev, next; uint32_t len; };
  struct Merge {
    int32_t rank; int32_t pos; int32_t new_id;
    bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }  // min-heap
  };

  void merge_word(std::string_view w, std::vector<int32_t>& out) const {
    std::vector<Sym> syms;
    syms.reserve(w.size());
    auto add = [&](int32_t id, uint32_t len) {
      int32_t n = static_cast<int32_t>(syms.size());
      syms.push_back(Sym{id, n - 1, -1, len});
      if (n > 0) syms[n - 1].next = n;
    };
    std::optional<std::pair<int32_t, uint32_t>> unk;
    std::string buf;
    size_t i = 0;
    while (i < w.size()) {
      size_t start = i;
      u::decode_one(w, i);
      std::string_view ch = w.substr(start, i - start);
      bool first = start == 0, last = i >= w.size();
      std::string_view s = ch;
      if ((!first && !prefix.empty()) || (last && !suffix.empty())) {
        buf.clear();
        if (!first) buf += prefix;
        buf += ch;
        if (last) buf += suffix;
        s = buf;
      }
      uint32_t blen = static_cast<uint32_t>(ch.size());
      int32_t id = -1;
      if (s.data() == ch.data() && !char_ids.empty() && ch.size() <= 2) {
        size_t k = 0;
        int32_t cp = u::decode_one(ch, k);
        id = cp >= 0 && static_cast<char32_t>(cp) < kCharTable ? char_ids[static_cast<size_t>(cp)] : vocab.find(s);
      } else {
        id = vocab.find(s);
      }
      if (id >= 0) {
        if (unk) { add(unk->first, unk->second); unk.reset(); }
        add(id, blen);
        continue;
      }
      if (byte_fallback) {
        bool all = true;
        for (unsigned char b : s) if (byte_ids[b] < 0) { all = false; break; }
        if (all) {
          for (unsigned char b : s) add(byte_ids[b], 1);
          continue;
        }
      }
      if (unk_id) {
        if (unk && fuse_unk) unk->second += blen;
        else {
          if (unk) add(unk->first, unk->second);
          unk = std::make_pair(*unk_id, blen);
        }
      }
    }
    if (unk) add(unk->first, unk->second);

    if (syms.size() > 1 && !merges.empty()) {
      std::priority_queue<Merge> queue;
      for (size_t k = 0; k + 1 < syms.size(); ++k) {
        auto it = merges.find(key(syms[k].id, syms[k + 1].id));
        if (it) queue.push(Merge{it->first, static_cast<int32_t>(k), it->second});
      }
      while (!queue.empty()) {
        Merge top = queue.top();
        queue.pop();
        Sym& cur = syms[top.pos];
        if (cur.len == 0 || cur.next < 0) continue;
        int32_t next_pos = cur.next;
        Sym right = syms[next_pos];
        auto it = merges.find(key(cur.id, right.id));
        if (!it || it->second != top.new_id) continue;
        cur.id = top.new_id;
        cur.len += right.len;
        cur.next = right.next;
        syms[next_pos].len = 0;
        if (right.next >= 0) syms[right.next].prev = top.pos;
        if (cur.prev >= 0) {
          auto p = merges.find(key(syms[cur.prev].id, cur.id));
          if (p) queue.push(Merge{p->first, cur.prev, p->second});
        }
        if (cur.next >= 0) {
          auto n = merges.find(key(cur.id, syms[cur.next].id));
          if (n) queue.push(Merge{n->first, top.pos, n->second});
        }
      }
    }
    for (auto& s : syms) if (s.len) out.push_back(s.id);
  }

  mutable std::mutex cache_mu_;
  mutable std::vector<CacheSlot> cache_;

 public:
  // Sized to the vocabulary (a power of two): big vocabularies see many distinct words.
  void init_cache(size_t vocab_size) {
    size_t n = 256;
    while (n < vocab_size && n < kMaxCacheSlots) n <<= 1;
    cache_.assign(n, CacheSlot{});
  }
};

// Unigram (SentencePiece) model: Viterbi best segmentation, as HF's Unigram::encode_optimized.
class UnigramModel : public Model {
 public:
  FlatStrMap vocab;
  std::vector<double> scores;  // by id
  std::optional<int32_t> unk_id;
  bool byte_fallback = false, fuse_unk = true;
  size_t max_piece_bytes = 1;
  double min_score = 0;
  int32_t byte_ids[256];
  static constexpr double kUnkPenalty = 10.0;

  void tokenize(std::string_view w, std::vector<int32_t>& out) const override {
    if (w.empty()) return;
    struct Node { int64_t starts_at = -1; int32_t id = -1; double score = 0; };
    std::vector<Node> best(w.size() + 1);
    best[0].starts_at = 0;
    double unk_score = min_score - kUnkPenalty;
    size_t pos = 0;
    while (pos < w.size()) {
      size_t next = pos;
      u::decode_one(w, next);
      size_t mblen = next - pos;
      double here = best[pos].score;
      bool has_single = false;
      // Pieces starting at pos, shortest first (the trie's common-prefix order in HF).
      size_t end = pos;
      while (end < w.size() && end - pos < max_piece_bytes) {
        u::decode_one(w, end);
        if (end - pos > max_piece_bytes) break;
        int32_t id = vocab.find(w.substr(pos, end - pos));
        if (id < 0) continue;
        Node& t = best[end];
        double cand = scores[static_cast<size_t>(id)] + here;
        if (t.starts_at < 0 || cand > t.score) { t.score = cand; t.starts_at = static_cast<int64_t>(pos); t.id = id; }
        if (end - pos == mblen) has_single = true;
      }
      if (!has_single && unk_id) {
        Node& t = best[pos + mblen];
        double cand = unk_score + here;
        if (t.starts_at < 0 || cand > t.score) { t.score = cand; t.starts_at = static_cast<int64_t>(pos); t.id = *unk_id; }
      }
      pos = next;
    }
    // Backtrack into strings (fusing consecutive unknowns), then map strings to ids.
    std::vector<std::string_view> pieces;
    size_t e = w.size();
    size_t unk_start = std::string_view::npos, unk_end = 0;
    while (e > 0) {
      const Node& n = best[e];
      if (n.starts_at < 0) return;  // unreachable without an unk token: HF fails; emit nothing
      size_t st = static_cast<size_t>(n.starts_at);
      if (fuse_unk && unk_id && n.id == *unk_id) {
        if (unk_start == std::string_view::npos) unk_end = e;
        unk_start = st;
      } else {
        if (unk_start != std::string_view::npos) { pieces.push_back(w.substr(unk_start, unk_end - unk_start)); unk_start = std::string_view::npos; }
        pieces.push_back(w.substr(st, e - st));
      }
      e = st;
    }
    if (unk_start != std::string_view::npos) pieces.push_back(w.substr(unk_start, unk_end - unk_start));
    for (size_t k = pieces.size(); k-- > 0;) {
      int32_t id = vocab.find(pieces[k]);
      if (id >= 0) { out.push_back(id); continue; }
      if (byte_fallback) {
        bool all = true;
        for (unsigned char b : pieces[k]) if (byte_ids[b] < 0) { all = false; break; }
        if (all) { for (unsigned char b : pieces[k]) out.push_back(byte_ids[b]); continue; }
      }
      if (unk_id) out.push_back(*unk_id);
    }
  }
};

class WordPieceModel : public Model {
 public:
  const StrMap* vocab = nullptr;
  int32_t unk_id = 0;
  std::string prefix = "##";
  size_t max_chars = 100;
  void tokenize(std::string_view w, std::vector<int32_t>& out) const override {
    if (u::count_chars(w) > max_chars) { out.push_back(unk_id); return; }
    std::vector<int32_t> ids;
    size_t start = 0;
    std::string buf;
    while (start < w.size()) {
      size_t end = w.size();
      int32_t found = -1;
      while (start < end) {
        buf.clear();
        if (start > 0) buf += prefix;
        buf += w.substr(start, end - start);
        auto it = vocab->find(buf);
        if (it != vocab->end()) { found = it->second; break; }
        // step back one character
        do { --end; } while (end > start && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80);
      }
      if (found < 0) { out.push_back(unk_id); return; }
      ids.push_back(found);
      start = end;
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }
};

// ---------------------------------------------------------------------------------------------------
// Post-processors

class PostSequence : public PostProcessor {
 public:
  std::vector<std::unique_ptr<PostProcessor>> items;
  void process(std::vector<int32_t>& ids, bool add) const override {
    for (auto& p : items) p->process(ids, add);
  }
};

class PostNoop : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class PostTemplate : public PostProcessor {
 public:
  // Each item: the sequence (empty optional) or the ids of a special token.
  std::vector<std::optional<std::vector<int32_t>>> single;
  void process(std::vector<int32_t>& ids, bool add) const override {
    if (!add) return;
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (auto& item : single) {
      if (item) out.insert(out.end(), item->begin(), item->end());
      else out.insert(out.end(), ids.begin(), ids.end());
    }
    ids = std::move(out);
  }
};

Result<std::unique_ptr<PostProcessor>> make_post_processor(const json& j, const std::string& where, const Pipeline& pl) {
  if (!j.is_object()) return Status::InvalidArgument(where + ": expected an object");
  OPTIQ_ASSIGN_OR_RETURN(std::string type, get_str(j, "type", where));
  if (type == "Sequence") {
    auto seq = std::make_unique<PostSequence>();
    auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) return Status::InvalidArgument(field(where, "processors") + ": expected an array");
    for (size_t k = 0; k < it->size(); ++k) {
      OPTIQ_ASSIGN_OR_RETURN(auto p, make_post_processor((*it)[k], field(where, "processors") + "[" + std::to_string(k) + "]", pl));
      seq->items.push_back(std::move(p));
    }
    return std::unique_ptr<PostProcessor>(std::move(seq));
  }
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>(new PostNoop());  // only trims offsets
  if (type == "TemplateProcessing") {
    auto p = std::make_unique<PostTemplate>();
    std::string w = field(where, "single");
    auto special_ids = [&](const std::string& name) -> Result<std::vector<int32_t>> {
      auto st = j.find("special_tokens");
      if (st != j.end() && st->is_object() && st->contains(name)) {
        const json& e = (*st)[name];
        if (!e.is_object() || !e.contains("ids") || !e["ids"].is_array())
          return Status::InvalidArgument(field(where, "special_tokens") + "." + name + ".ids: expected an array");
        std::vector<int32_t> ids;
        for (auto& v : e["ids"]) {
          if (!v.is_number_integer()) return Status::InvalidArgument(field(where, "special_tokens") + "." + name + ".ids: expected integers");
          ids.push_back(v.get<int32_t>());
        }
        return ids;
      }
      auto id = pl.token_to_id(name);
      if (!id) return Status::InvalidArgument(w + ": special token '" + name + "' is not defined");
      return std::vector<int32_t>{*id};
    };
    auto it = j.find("single");
    if (it == j.end()) return Status::InvalidArgument(w + ": missing");
    if (it->is_string()) {
      std::string s = it->get<std::string>();
      size_t pos = 0;
      while (pos < s.size()) {
        size_t e = s.find(' ', pos);
        if (e == std::string::npos) e = s.size();
        std::string piece = s.substr(pos, e - pos);
        pos = e + 1;
        if (piece.empty()) continue;
        std::string name = piece.substr(0, piece.find(':'));
        if (name == "$A" || name == "$" || name == "$0") { p->single.push_back(std::nullopt); continue; }
        if (!name.empty() && name[0] == '$') continue;  // pair sequences do not occur in single
        OPTIQ_ASSIGN_OR_RETURN(auto ids, special_ids(name));
        p->single.push_back(std::move(ids));
      }
    } else if (it->is_array()) {
      for (auto& item : *it) {
        if (item.is_object() && item.contains("Sequence")) { p->single.push_back(std::nullopt); continue; }
        if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object() &&
            item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string()) {
          OPTIQ_ASSIGN_OR_RETURN(auto ids, special_ids(item["SpecialToken"]["id"].get<std::string>()));
          p->single.push_back(std::move(ids));
          continue;
        }
        return Status::InvalidArgument(w + ": unexpected item " + item.dump().substr(0, 80));
      }
    } else {
      return Status::InvalidArgument(w + ": expected an array or a string");
    }
    return std::unique_ptr<PostProcessor>(std::move(p));
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto p = std::make_unique<PostTemplate>();
    for (const char* k : {"cls", "sep"}) {
      auto it = j.find(k);
      if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer())
        return Status::InvalidArgument(field(where, k) + ": expected [token, id]");
      if (std::string(k) == "sep") p->single.push_back(std::nullopt);
      p->single.push_back(std::vector<int32_t>{(*it)[1].get<int32_t>()});
    }
    return std::unique_ptr<PostProcessor>(std::move(p));
  }
  return Status::Unsupported(field(where, "type") + ": post-processor '" + type + "' is not supported");
}

// ---------------------------------------------------------------------------------------------------
// Decoders

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

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  size_t j = i;
  int32_t cp = u::decode_one(s, j);
  return cp >= 0 && (u::is_alphanumeric(static_cast<char32_t>(cp)) || cp == '_');
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  int32_t cp = u::decode_one(s, i);
  return cp >= 0 && (u::is_alphanumeric(static_cast<char32_t>(cp)) || cp == '_');
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Added tokens

void AddedMatcher::add(std::string_view pattern, int32_t token_index) {
  if (pattern.empty()) return;
  first_[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (unsigned char c : pattern) {
    auto& next = nodes_[node].next;
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, INT32_MIN));
    if (it != next.end() && it->first == c) { node = it->second; continue; }
    int32_t n = static_cast<int32_t>(nodes_.size());
    next.insert(it, {c, n});
    nodes_.emplace_back();
    node = n;
  }
  if (nodes_[node].token < 0) nodes_[node].token = token_index;  // first definition wins
}

std::pair<size_t, int32_t> AddedMatcher::longest_at(std::string_view s, size_t pos) const {
  size_t best_len = 0;
  int32_t best = -1;
  int32_t node = 0;
  for (size_t i = pos; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    const auto& next = nodes_[node].next;
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, INT32_MIN));
    if (it == next.end() || it->first != c) break;
    node = it->second;
    if (nodes_[node].token >= 0) { best_len = i + 1 - pos; best = nodes_[node].token; }
  }
  return {best_len, best};
}

// Splits s into added-token matches (first = index into added_) and plain text (first = -1), per HF's
// AddedVocabulary::find_matches: leftmost-longest, single_word/lstrip/rstrip applied to each match.
void Pipeline::split_added(std::string_view s, const AddedMatcher& m, size_t base,
                           std::vector<std::pair<int32_t, std::pair<size_t, size_t>>>& out) const {
  size_t start_offset = 0;
  size_t pos = 0;
  if (!m.empty()) {
    while (pos < s.size()) {
      if (!m.may_start(static_cast<unsigned char>(s[pos]))) { ++pos; continue; }
      auto [len, idx] = m.longest_at(s, pos);
      if (!len) { ++pos; continue; }
      size_t start = pos, stop = pos + len;
      const AddedToken& t = added_[idx];
      if (t.single_word) {
        bool start_space = start == 0 || !ends_with_word(s.substr(0, start));
        bool stop_space = stop == s.size() || !starts_with_word(s.substr(stop));
        if (!start_space || !stop_space) { pos = stop; continue; }  // matches do not overlap in HF either
      }
      if (t.lstrip) {
        size_t ns = start;
        while (ns > 0) {
          size_t k = ns - 1;
          while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
          size_t kk = k;
          int32_t cp = u::decode_one(s, kk);
          if (cp < 0 || !u::is_whitespace(static_cast<char32_t>(cp))) break;
          ns = k;
        }
        start = std::max(ns, start_offset);
      }
      if (t.rstrip) {
        while (stop < s.size()) {
          size_t k = stop;
          int32_t cp = u::decode_one(s, k);
          if (cp < 0 || !u::is_whitespace(static_cast<char32_t>(cp))) break;
          stop = k;
        }
      }
      if (start_offset < start) out.push_back({-1, {base + start_offset, base + start}});
      out.push_back({idx, {base + start, base + stop}});
      start_offset = stop;
      pos = stop;
    }
  }
  if (start_offset < s.size()) out.push_back({-1, {base + start_offset, base + s.size()}});
}

namespace {
// UTF-8 of each byte's byte-level character (1 or 2 bytes).
struct ByteLevelUtf8 {
  char bytes[256][2];
  uint8_t len[256];
  ByteLevelUtf8() {
    for (int b = 0; b < 256; ++b) {
      std::string s;
      u::append(s, u::byte_to_char()[b]);
      len[b] = static_cast<uint8_t>(s.size());
      std::memcpy(bytes[b], s.data(), s.size());
    }
  }
};
const ByteLevelUtf8& byte_level_utf8() {
  static const ByteLevelUtf8 t;  // immutable after construction
  return t;
}
}  // namespace

void Pipeline::encode_segment(std::string_view seg, bool at_start, std::vector<int32_t>& out) const {
  std::string norm_buf;
  std::string_view norm = seg;
  if (normalizer_) norm = norm_buf = normalizer_->normalize(std::string(seg));
  std::vector<std::pair<int32_t, std::pair<size_t, size_t>>> parts;
  split_added(norm, norm_matcher_, 0, parts);
  std::vector<Piece> pieces;
  for (auto& [idx, r] : parts) {
    if (idx >= 0) { out.push_back(added_[idx].id); continue; }
    if (plan_) {
      // Streamed GPT-2 pre-tokenization: identical pieces to pre_tokenize(), without the copies.
      std::string prefixed;
      std::string_view text = norm.substr(r.first, r.second - r.first);
      if (plan_->add_prefix_space && (text.empty() || text[0] != ' ')) {
        prefixed = " ";
        prefixed += text;
        text = prefixed;
      }
      const ByteLevelUtf8& tbl = byte_level_utf8();
      std::string buf;
      auto emit = [&](size_t a, size_t b) {
        if (a == b) return;
        buf.clear();
        for (size_t k = a; k < b; ++k) {
          unsigned char c = static_cast<unsigned char>(text[k]);
          buf.append(tbl.bytes[c], tbl.len[c]);
        }
        model_->tokenize(buf, out);
      };
      if (!plan_->regex) { emit(0, text.size()); continue; }
      std::vector<std::pair<size_t, size_t>> m;
      plan_->regex->find_all(text, m);
      size_t prev = 0;
      for (auto [a, b] : m) {
        emit(prev, a);
        emit(a, b);
        prev = b;
      }
      emit(prev, text.size());
      continue;
    }
    pieces.clear();
    pieces.push_back(Piece{std::string(norm.substr(r.first, r.second - r.first)), at_start && r.first == 0});
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
    for (auto& p : pieces) model_->tokenize(p.text, out);
  }
}

std::vector<int32_t> Pipeline::encode(std::string_view text, bool add_special_tokens) const {
  std::string clean = u::sanitize(text);
  std::vector<int32_t> ids;
  std::vector<std::pair<int32_t, std::pair<size_t, size_t>>> parts;
  split_added(clean, raw_matcher_, 0, parts);
  for (auto& [idx, r] : parts) {
    if (idx >= 0) ids.push_back(added_[idx].id);
    else encode_segment(std::string_view(clean).substr(r.first, r.second - r.first), r.first == 0, ids);
  }
  if (post_processor_) post_processor_->process(ids, add_special_tokens);
  return ids;
}

std::optional<int32_t> Pipeline::token_to_id(std::string_view token) const {
  auto it = added_by_content_.find(token);
  if (it != added_by_content_.end()) return it->second;
  auto v = vocab_.find(token);
  if (v != vocab_.end()) return v->second;
  return std::nullopt;
}

const std::string* Pipeline::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  return &id_to_token_[id];
}

bool Pipeline::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < special_.size() && special_[id];
}

std::vector<std::string> Pipeline::tokens_for(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* t = id_to_token(id);
    if (!t) continue;
    if (skip_special && is_special(id)) continue;
    tokens.push_back(*t);
  }
  return tokens;
}

std::string Pipeline::decode_tokens(std::vector<std::string> tokens, bool raw) const {
  if (!decoder_) {
    std::string out;
    for (size_t k = 0; k < tokens.size(); ++k) {
      if (k) out += ' ';
      out += tokens[k];
    }
    return out;
  }
  decoder_->decode(tokens, raw);
  std::string out;
  for (auto& t : tokens) out += t;
  return out;
}

// Ids index dense tables; real vocabularies stay far below this (262,144 for Gemma 3).
constexpr int64_t kMaxId = 1 << 21;

Result<std::unique_ptr<Pipeline>> Pipeline::from_json(const json& j, const std::string& name) {
  if (!j.is_object()) return Status::InvalidArgument(name + ": expected a JSON object at the top level");
  std::unique_ptr<Pipeline> p(new Pipeline());
  auto mit = j.find("model");
  if (mit == j.end() || !mit->is_object()) return Status::InvalidArgument(name + ": model: missing or not an object");
  const json& m = *mit;
  std::string mw = name + ": model";
  std::string mtype = "BPE";
  if (m.contains("type")) { OPTIQ_ASSIGN_OR_RETURN(mtype, get_str(m, "type", mw)); }
  else if (!m.contains("merges")) mtype = m.contains("vocab") && m["vocab"].is_array() ? "Unigram" : "WordPiece";

  // Vocabulary
  auto vit = m.find("vocab");
  int64_t max_id = -1;
  std::vector<double> unigram_scores;
  if (mtype == "Unigram") {
    // [[piece, score], ...]; the id is the index.
    if (vit == m.end() || !vit->is_array()) return Status::InvalidArgument(field(mw, "vocab") + ": expected an array of [piece, score]");
    if (static_cast<int64_t>(vit->size()) >= kMaxId) return Status::InvalidArgument(field(mw, "vocab") + ": too many pieces");
    p->vocab_.reserve(vit->size());
    for (size_t k = 0; k < vit->size(); ++k) {
      const json& e = (*vit)[k];
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
        return Status::InvalidArgument(field(mw, "vocab") + "[" + std::to_string(k) + "]: expected [string, number]");
      p->vocab_[e[0].get<std::string>()] = static_cast<int32_t>(k);
      unigram_scores.push_back(e[1].get<double>());
    }
    max_id = static_cast<int64_t>(vit->size()) - 1;
  } else if (vit == m.end() || !vit->is_object()) {
    return Status::InvalidArgument(field(mw, "vocab") + ": missing or not an object");
  }
  if (mtype != "Unigram") p->vocab_.reserve(vit->size());
  for (auto it = vit->begin(); mtype != "Unigram" && it != vit->end(); ++it) {
    if (!it.value().is_number_integer())
      return Status::InvalidArgument(field(mw, "vocab") + "['" + it.key() + "']: expected an integer id");
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= kMaxId) return Status::InvalidArgument(field(mw, "vocab") + "['" + it.key() + "']: id " + std::to_string(id) + " out of range [0, " + std::to_string(kMaxId) + ")");
    p->vocab_[it.key()] = static_cast<int32_t>(id);
    max_id = std::max(max_id, id);
  }

  // Added tokens
  auto ait = j.find("added_tokens");
  if (ait != j.end() && !ait->is_null()) {
    if (!ait->is_array()) return Status::InvalidArgument(name + ": added_tokens: expected an array");
    for (size_t k = 0; k < ait->size(); ++k) {
      const json& a = (*ait)[k];
      std::string w = name + ": added_tokens[" + std::to_string(k) + "]";
      if (!a.is_object()) return Status::InvalidArgument(w + ": expected an object");
      AddedToken t;
      OPTIQ_ASSIGN_OR_RETURN(int64_t id, get_int(a, "id", w, -1));
      if (id < 0 || id >= kMaxId) return Status::InvalidArgument(field(w, "id") + ": missing or out of range: " + std::to_string(id));
      t.id = static_cast<int32_t>(id);
      OPTIQ_ASSIGN_OR_RETURN(t.content, get_str(a, "content", w));
      OPTIQ_ASSIGN_OR_RETURN(t.single_word, get_bool(a, "single_word", w, false));
      OPTIQ_ASSIGN_OR_RETURN(t.lstrip, get_bool(a, "lstrip", w, false));
      OPTIQ_ASSIGN_OR_RETURN(t.rstrip, get_bool(a, "rstrip", w, false));
      OPTIQ_ASSIGN_OR_RETURN(t.special, get_bool(a, "special", w, false));
      OPTIQ_ASSIGN_OR_RETURN(t.normalized, get_bool(a, "normalized", w, !t.special));
      max_id = std::max(max_id, id);
      p->added_by_content_[t.content] = t.id;
      p->added_.push_back(std::move(t));
    }
  }
  p->id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  p->special_.assign(static_cast<size_t>(max_id + 1), 0);
  for (auto& [tok, id] : p->vocab_) p->id_to_token_[id] = tok;
  for (auto& t : p->added_) {
    p->id_to_token_[t.id] = t.content;
    p->special_[t.id] = t.special;
  }

  // Normalizer (needed to normalize the content of normalized added tokens)
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    OPTIQ_ASSIGN_OR_RETURN(p->normalizer_, make_normalizer(j["normalizer"], name + ": normalizer"));
  }
  for (size_t k = 0; k < p->added_.size(); ++k) {
    const AddedToken& t = p->added_[k];
    if (t.normalized && p->normalizer_) p->norm_matcher_.add(p->normalizer_->normalize(t.content), static_cast<int32_t>(k));
    else if (t.normalized) p->norm_matcher_.add(t.content, static_cast<int32_t>(k));
    else p->raw_matcher_.add(t.content, static_cast<int32_t>(k));
  }
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
    OPTIQ_ASSIGN_OR_RETURN(p->pre_tokenizer_, make_pre_tokenizer(j["pre_tokenizer"], name + ": pre_tokenizer"));
    p->plan_ = p->pre_tokenizer_->byte_level_plan();
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    OPTIQ_ASSIGN_OR_RETURN(p->decoder_, make_decoder(j["decoder"], name + ": decoder"));
  }

  // Model
  if (mtype == "BPE") {
    auto bpe = std::make_unique<BpeModel>();
    bpe->vocab.build(p->vocab_);
    bpe->init_cache(p->vocab_.size());
    OPTIQ_ASSIGN_OR_RETURN(bpe->fuse_unk, get_bool(m, "fuse_unk", mw, false));
    OPTIQ_ASSIGN_OR_RETURN(bpe->byte_fallback, get_bool(m, "byte_fallback", mw, false));
    OPTIQ_ASSIGN_OR_RETURN(bpe->ignore_merges, get_bool(m, "ignore_merges", mw, false));
    OPTIQ_ASSIGN_OR_RETURN(bpe->prefix, get_str(m, "continuing_subword_prefix", mw, std::string()));
    OPTIQ_ASSIGN_OR_RETURN(bpe->suffix, get_str(m, "end_of_word_suffix", mw, std::string()));
    if (m.contains("dropout") && !m["dropout"].is_null()) {
      if (!m["dropout"].is_number()) return Status::InvalidArgument(field(mw, "dropout") + ": expected a number");
      double d = m["dropout"].get<double>();
      if (d != 0.0 && d != 1.0 && !(d > 0.0 && d < 1.0)) return Status::InvalidArgument(field(mw, "dropout") + ": must be in [0, 1]");
      // Dropout only applies in training; inference (and HF's encode with dropout) is deterministic here.
    }
    OPTIQ_ASSIGN_OR_RETURN(std::string unk, get_str(m, "unk_token", mw, std::string()));
    if (!unk.empty()) {
      auto it = p->vocab_.find(unk);
      if (it == p->vocab_.end()) return Status::InvalidArgument(field(mw, "unk_token") + ": '" + unk + "' is not in the vocabulary");
      bpe->unk_id = it->second;
    }
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      auto it = p->vocab_.find(std::string_view(buf));
      bpe->byte_ids[b] = it == p->vocab_.end() ? -1 : it->second;
    }
    auto mg = m.find("merges");
    if (mg != m.end() && !mg->is_null()) {
      if (!mg->is_array()) return Status::InvalidArgument(field(mw, "merges") + ": expected an array");
      std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>> entries;
      entries.reserve(mg->size());
      std::string merged;
      for (size_t k = 0; k < mg->size(); ++k) {
        const json& e = (*mg)[k];
        std::string_view a, b;
        std::string tmp;
        if (e.is_string()) {
          const std::string& s = e.get_ref<const std::string&>();
          size_t sp = s.find(' ');
          if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
            return Status::InvalidArgument(field(mw, "merges") + "[" + std::to_string(k) + "]: expected \"a b\", got '" + s + "'");
          a = std::string_view(s).substr(0, sp);
          b = std::string_view(s).substr(sp + 1);
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
          a = e[0].get_ref<const std::string&>();
          b = e[1].get_ref<const std::string&>();
        } else {
          return Status::InvalidArgument(field(mw, "merges") + "[" + std::to_string(k) + "]: expected a pair of strings");
        }
        int32_t ia = bpe->vocab.find(a), ib = bpe->vocab.find(b);
        std::string_view b_rest = b;
        if (!bpe->prefix.empty() && b_rest.substr(0, bpe->prefix.size()) == bpe->prefix) b_rest.remove_prefix(bpe->prefix.size());
        merged.assign(a);
        merged.append(b_rest);
        int32_t im = bpe->vocab.find(merged);
        if (ia < 0 || ib < 0 || im < 0)
          return Status::InvalidArgument(field(mw, "merges") + "[" + std::to_string(k) + "]: token '" +
                                         std::string(ia < 0 ? a : ib < 0 ? b : std::string_view(merged)) +
                                         "' is not in the vocabulary");
        entries.emplace_back(BpeModel::key(ia, ib), std::make_pair(static_cast<int32_t>(k), im));
      }
      bpe->merges.build(entries);
    }
    if (bpe->prefix.empty() && bpe->suffix.empty()) {
      bpe->char_ids.assign(BpeModel::kCharTable, -1);
      for (char32_t c = 0; c < BpeModel::kCharTable; ++c) {
        std::string s;
        u::append(s, c);
        auto it = p->vocab_.find(s);
        if (it != p->vocab_.end()) bpe->char_ids[c] = it->second;
      }
    }
    p->model_ = std::move(bpe);
  } else if (mtype == "Unigram") {
    auto ug = std::make_unique<UnigramModel>();
    ug->vocab.build(p->vocab_);
    ug->scores = std::move(unigram_scores);
    OPTIQ_ASSIGN_OR_RETURN(ug->byte_fallback, get_bool(m, "byte_fallback", mw, false));
    OPTIQ_ASSIGN_OR_RETURN(int64_t unk, get_int(m, "unk_id", mw, -1));
    if (unk >= static_cast<int64_t>(ug->scores.size())) return Status::InvalidArgument(field(mw, "unk_id") + ": " + std::to_string(unk) + " is not a vocabulary index");
    if (unk >= 0) ug->unk_id = static_cast<int32_t>(unk);
    ug->min_score = ug->scores.empty() ? 0.0 : *std::min_element(ug->scores.begin(), ug->scores.end());
    for (auto& [piece, id] : p->vocab_) ug->max_piece_bytes = std::max(ug->max_piece_bytes, piece.size());
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      ug->byte_ids[b] = ug->vocab.find(buf);
    }
    p->model_ = std::move(ug);
  } else if (mtype == "WordPiece") {
    auto wp = std::make_unique<WordPieceModel>();
    wp->vocab = &p->vocab_;
    OPTIQ_ASSIGN_OR_RETURN(std::string unk, get_str(m, "unk_token", mw, std::string("[UNK]")));
    auto it = p->vocab_.find(unk);
    if (it == p->vocab_.end()) return Status::InvalidArgument(field(mw, "unk_token") + ": '" + unk + "' is not in the vocabulary");
    wp->unk_id = it->second;
    OPTIQ_ASSIGN_OR_RETURN(wp->prefix, get_str(m, "continuing_subword_prefix", mw, std::string("##")));
    OPTIQ_ASSIGN_OR_RETURN(int64_t mc, get_int(m, "max_input_chars_per_word", mw, 100));
    wp->max_chars = static_cast<size_t>(std::max<int64_t>(0, mc));
    p->model_ = std::move(wp);
  } else {
    return Status::Unsupported(field(mw, "type") + ": model '" + mtype + "' is not supported");
  }

  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    OPTIQ_ASSIGN_OR_RETURN(p->post_processor_, make_post_processor(j["post_processor"], name + ": post_processor", *p));
  }
  return p;
}

}  // namespace optiq::tok
