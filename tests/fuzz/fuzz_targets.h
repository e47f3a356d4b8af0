// Fuzz entry points shared by the libFuzzer targets (tests/fuzz/*_fuzz.cpp, clang + -DOPTIQ_FUZZ=ON) and the
// corpus replay test that runs in every build (tests/fuzz/fuzz_replay_test.cpp). Each must never crash, leak
// or hit undefined behaviour, whatever the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace optiq::fuzz {

// Bytes as tokenizer.json text: load, then encode/decode a few strings (including the input itself).
inline void tokenizer_json(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  nlohmann::json j = nlohmann::json::parse(in.begin(), in.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return;
  auto tok = Tokenizer::from_json(j, nlohmann::ordered_json::object(), "fuzz");
  if (!tok.ok()) return;
  const Tokenizer& t = **tok;
  for (std::string_view text : {std::string_view("Hello, world! 123 \xC3\xA9\xF0\x9F\xA4\x96  \n\t<|x|>"),
                                in.substr(0, 512), std::string_view("")}) {
    for (bool special : {false, true}) {
      std::vector<int32_t> ids = t.encode(text, special);
      (void)t.decode(ids, false);
      (void)t.decode(ids, true);
      StreamingDetokenizer sd(t);
      for (int32_t id : ids) (void)sd.push(id);
      (void)sd.flush();
    }
  }
  std::vector<int32_t> junk = {-1, 0, 1, 2, 255, 256, 100000, INT32_MAX};
  (void)t.decode(junk, false);
  (void)t.vocab_size();
  (void)t.token_to_id(in.substr(0, 16));
}

// Bytes as a chat template, optionally followed by "\x00" and a JSON object of variables; rendered
// against a fixed conversation merged with those variables.
inline void jinja_template(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view src = in, vars;
  size_t nul = in.find('\0');
  if (nul != std::string_view::npos) {
    src = in.substr(0, nul);
    vars = in.substr(nul + 1);
  }
  jinja::Options opt;
  opt.strftime_now = [](const std::string& f) { return f; };
  auto tpl = jinja::Template::parse(src, opt);
  if (!tpl.ok()) return;
  nlohmann::ordered_json ctx = {
      {"messages", nlohmann::ordered_json::array({{{"role", "system"}, {"content", "Be brief."}},
                                                  {{"role", "user"}, {"content", "Hi <think>x</think> there"}},
                                                  {{"role", "assistant"}, {"content", "ok"},
                                                   {"tool_calls", {{{"function", {{"name", "f"}, {"arguments", {{"a", 1}}}}}}}}}})},
      {"tools", nlohmann::ordered_json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}}})},
      {"add_generation_prompt", true},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"},
      {"n", 3},
      {"x", 1.5},
      {"none", nullptr}};
  if (!vars.empty()) {
    auto extra = nlohmann::ordered_json::parse(vars.begin(), vars.end(), nullptr, false);
    if (!extra.is_discarded() && extra.is_object())
      for (auto& [k, v] : extra.items()) ctx[k] = v;
  }
  (void)(*tpl)->render(ctx);
}

}  // namespace optiq::fuzz
