// Tokenizer: loads a model directory's tokenizer files and exposes encode/decode/chat templates.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer/jinja.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/unicode.h"

namespace optiq {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

Result<std::string> read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::IOError(path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::IOError(path + ": read failed");
  return ss.str();
}

template <typename J>
Result<J> parse_json(const std::string& text, const std::string& path) {
  try {
    return J::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return Status::Corruption(path + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {  // out_of_range.406: a number beyond double (1e400)
    return Status::Corruption(path + ": invalid JSON: " + e.what());
  }
}

// A special-token entry in tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> token_string(const ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

void add_eos_ids(const json& v, std::vector<int32_t>& out) {
  if (v.is_number_integer()) out.push_back(v.get<int32_t>());
  else if (v.is_array())
    for (auto& e : v)
      if (e.is_number_integer()) out.push_back(e.get<int32_t>());
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json(const json& tokenizer_json, const ordered_json& config,
                                                        const std::string& name) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  OPTIQ_ASSIGN_OR_RETURN(t->pipeline_, tok::Pipeline::from_json(tokenizer_json, name));
  if (!config.is_object()) return t;
  for (const char* k : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    auto it = config.find(k);
    if (it == config.end()) continue;
    if (auto s = token_string(*it)) t->template_vars_[k] = *s;
  }
  if (auto it = config.find("eos_token"); it != config.end())
    if (auto s = token_string(*it))
      if (auto id = t->token_to_id(*s)) t->eos_ids_.push_back(*id);
  auto ct = config.find("chat_template");
  if (ct != config.end() && !ct->is_null()) {
    std::string src;
    if (ct->is_string()) {
      src = ct->get<std::string>();
    } else if (ct->is_array()) {
      // [{"name": ..., "template": ...}]: the "default" entry is the chat template.
      for (auto& e : *ct)
        if (e.is_object() && e.contains("name") && e["name"] == "default" && e.contains("template") && e["template"].is_string())
          src = e["template"].get<std::string>();
      if (src.empty()) return Status::InvalidArgument("tokenizer_config.json: chat_template: no entry named 'default'");
    } else {
      return Status::InvalidArgument("tokenizer_config.json: chat_template: expected a string or a list");
    }
    auto tpl = jinja::Template::parse(src);
    if (!tpl.ok()) return tpl.status().WithContext("tokenizer_config.json: chat_template");
    t->chat_template_ = std::move(tpl).value();
    t->chat_template_src_ = std::move(src);
  }
  return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::string tj_path = (fs::path(dir) / "tokenizer.json").string();
  OPTIQ_ASSIGN_OR_RETURN(std::string tj_text, read_text(tj_path));
  OPTIQ_ASSIGN_OR_RETURN(json tj, parse_json<json>(tj_text, tj_path));
  ordered_json cfg = ordered_json::object();
  std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(cfg_path)) {
    OPTIQ_ASSIGN_OR_RETURN(std::string text, read_text(cfg_path));
    OPTIQ_ASSIGN_OR_RETURN(cfg, parse_json<ordered_json>(text, cfg_path));
  }
  std::string jinja_path = (fs::path(dir) / "chat_template.jinja").string();
  bool has_cfg_template = cfg.is_object() && cfg.contains("chat_template") && !cfg["chat_template"].is_null();
  if (!has_cfg_template && fs::exists(jinja_path)) {
    OPTIQ_ASSIGN_OR_RETURN(std::string text, read_text(jinja_path));
    if (!cfg.is_object()) cfg = ordered_json::object();
    cfg["chat_template"] = text;
  }
  auto t = from_json(tj, cfg, tj_path);
  if (!t.ok()) return t.status();
  std::unique_ptr<Tokenizer> tok = std::move(t).value();
  for (const char* f : {"generation_config.json", "config.json"}) {
    std::string path = (fs::path(dir) / f).string();
    if (!fs::exists(path)) continue;
    OPTIQ_ASSIGN_OR_RETURN(std::string text, read_text(path));
    OPTIQ_ASSIGN_OR_RETURN(json j, parse_json<json>(text, path));
    if (j.is_object() && j.contains("eos_token_id")) add_eos_ids(j["eos_token_id"], tok->eos_ids_);
  }
  std::sort(tok->eos_ids_.begin(), tok->eos_ids_.end());
  tok->eos_ids_.erase(std::unique(tok->eos_ids_.begin(), tok->eos_ids_.end()), tok->eos_ids_.end());
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return pipeline_->encode(text, add_special_tokens);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return pipeline_->decode_tokens(pipeline_->tokens_for(ids, skip_special_tokens), false);
}

std::string Tokenizer::decode_tokens(const std::vector<std::string>& tokens) const {
  return pipeline_->decode_tokens(tokens, false);
}

bool Tokenizer::has_chat_template() const { return chat_template_ != nullptr; }
int64_t Tokenizer::vocab_size() const { return pipeline_->vocab_size(); }
std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return pipeline_->token_to_id(token); }
std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  const std::string* t = pipeline_->id_to_token(id);
  if (!t) return std::nullopt;
  return *t;
}
bool Tokenizer::is_special(int32_t id) const { return pipeline_->is_special(id); }

Result<std::string> Tokenizer::apply_chat_template(const ordered_json& messages, const ordered_json& tools,
                                                   bool add_generation_prompt, const ordered_json& extra) const {
  if (!chat_template_) return Status::NotFound("tokenizer has no chat_template");
  if (!messages.is_array()) return Status::InvalidArgument("messages: expected an array");
  ordered_json ctx = template_vars_.is_object() ? template_vars_ : ordered_json::object();
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
  else if (!extra.is_null())
    return Status::InvalidArgument("extra template variables: expected an object");
  // transformers always passes tools and documents (None when not given), so templates see them defined.
  ctx["messages"] = messages;
  ctx["tools"] = tools;
  if (!ctx.contains("documents")) ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = add_generation_prompt;
  return chat_template_->render(ctx);
}

Result<std::string> Tokenizer::apply_chat_template(const json& messages, const json& tools,
                                                   bool add_generation_prompt, const json& extra) const {
  // Round-trip through text: nlohmann has no direct conversion between its two object layouts.
  auto convert = [](const json& j) {
    return ordered_json::parse(j.dump(-1, ' ', false, json::error_handler_t::replace));
  };
  return apply_chat_template(convert(messages), convert(tools), add_generation_prompt, convert(extra));
}

// ---------------------------------------------------------------------------------------------------
// StreamingDetokenizer: decode the ids since `prefix` and emit what is new and complete; the
// text-generation-inference scheme, on raw bytes so that incomplete UTF-8 is visible.

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(tok), skip_special_(skip_special_tokens) {}

namespace {
// Length of the longest prefix of s that does not end inside an incomplete (but so far valid) UTF-8
// sequence.
size_t complete_prefix(std::string_view s) {
  size_t n = s.size();
  size_t k = n;
  // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
  size_t back = 0;
  while (k > 0 && back < 4 && (static_cast<unsigned char>(s[k - 1]) & 0xC0) == 0x80) { --k; ++back; }
  if (k == 0) return n;
  unsigned char lead = static_cast<unsigned char>(s[k - 1]);
  size_t need = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 0;
  if (need == 0 || lead > 0xF4) return n;           // ASCII or invalid lead: nothing to wait for
  size_t have = n - (k - 1);
  if (have >= need) return n;                        // complete (valid or not)
  // Incomplete: wait only if the bytes so far are a valid prefix of some character.
  std::string probe(s.substr(k - 1));
  size_t i = 0;
  unicode::decode_one(probe, i);
  return i == probe.size() ? k - 1 : n;
}
}  // namespace

std::string StreamingDetokenizer::push(int32_t id) {
  if (!tok_.id_to_token(id)) return std::string();
  if (skip_special_ && tok_.is_special(id)) return std::string();
  ids_.push_back(id);
  const auto& pl = tok_.pipeline();
  std::string text = pl.decode_tokens(pl.tokens_for(ids_, false), true);
  size_t cut = complete_prefix(text);
  if (cut <= emitted_) return std::string();
  std::string out = unicode::sanitize(std::string_view(text).substr(emitted_, cut - emitted_));
  emitted_ = cut;
  // Keep a short window of context so that decoders which look at the first token (Metaspace) or merge
  // neighbours behave as in a full decode, while the work per push stays bounded.
  if (cut == text.size() && ids_.size() > 8) {
    std::vector<int32_t> tail(ids_.end() - 4, ids_.end());
    std::string tail_text = pl.decode_tokens(pl.tokens_for(tail, false), true);
    if (text.size() >= tail_text.size() && text.compare(text.size() - tail_text.size(), tail_text.size(), tail_text) == 0) {
      ids_ = std::move(tail);
      emitted_ = tail_text.size();
    }
  }
  return out;
}

std::string StreamingDetokenizer::flush() {
  const auto& pl = tok_.pipeline();
  std::string text = pl.decode_tokens(pl.tokens_for(ids_, false), true);
  std::string out = emitted_ < text.size() ? unicode::sanitize(std::string_view(text).substr(emitted_)) : std::string();
  ids_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace optiq
