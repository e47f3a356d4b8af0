// Pre-tokenizers: split the normalized text into the pieces the model encodes one by one; each mirrors
// the Rust `tokenizers` pre-tokenizer of the same name.
#include "tokenizer/pipeline_internal.h"

#include <algorithm>
#include <functional>

#include "tokenizer/unicode.h"

namespace optiq::tok {

using nlohmann::json;
namespace u = optiq::unicode;

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

}  // namespace optiq::tok
