// The tokenizer pipeline: builds the stages from tokenizer.json (each stage kind lives in its own file:
// normalizers.cpp, pre_tokenizers.cpp, tokenizer_models.cpp, post_processors.cpp, decoders.cpp), splits out
// added tokens, and runs encode and decode. Also the pieces every stage shares: regexes, patterns and the
// tokenizer.json field readers. Mirrors the Rust `tokenizers` TokenizerImpl.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pipeline_internal.h"

#include <pcre2.h>

#include <algorithm>
#include <cstring>

#include "tokenizer/unicode.h"

namespace optiq::tok {

using nlohmann::json;
namespace u = optiq::unicode;

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
// JSON helpers and string rewriting the stages share (declared in pipeline_internal.h)

std::string field(const std::string& where, const std::string& key) { return where + "." + key; }

Result<std::string> get_str(const json& j, const std::string& key, const std::string& where,
                            std::optional<std::string> def) {
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

namespace {

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
  OPTIQ_ASSIGN_OR_RETURN(p->model_, make_model(m, mw, mtype, p->vocab_, std::move(unigram_scores)));

  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    OPTIQ_ASSIGN_OR_RETURN(p->post_processor_, make_post_processor(j["post_processor"], name + ": post_processor", *p));
  }
  return p;
}

}  // namespace optiq::tok
