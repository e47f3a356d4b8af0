// `optiq tokenize` and `optiq chat-template`: inspect a model directory's tokenizer and chat template.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "cli/commands.h"
#include "cli/flags.h"
#include "tokenizer/tokenizer.h"

namespace optiq::cli {

namespace {

using ojson = nlohmann::ordered_json;

const char* kTokenizeUsage =
    "usage: optiq tokenize --model DIR (--text T | --file F | --jsonl F) [--ids] [--no-special]\n"
    "  --text T      tokenize the string T\n"
    "  --file F      tokenize the whole content of file F\n"
    "  --jsonl F     one {\"text\": ...} object per line in, one {\"ids\": [...]} per line out\n"
    "  --ids         print only the ids, space-separated (default: one 'id<TAB>token' line per token)\n"
    "  --no-special  do not add the post-processor's special tokens (BOS etc.)\n"
    "  --offline     --model may be a Hugging Face id ORG/NAME[@REV]; this takes it from the cache only\n";

const char* kChatUsage =
    "usage: optiq chat-template --model DIR (--messages JSON | --request FILE.json)\n"
    "  --messages JSON   a JSON array of {\"role\", \"content\"} messages\n"
    "  --request FILE    a JSON object with messages, tools, add_generation_prompt (default true) and any\n"
    "                    extra template variables (e.g. enable_thinking)\n"
    "Prints the rendered prompt exactly (no trailing newline added); template errors go to stderr.\n";

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

// Parses --flag VALUE pairs and bare switches; returns false (after printing why) on unknown flags.
struct TokenizeFlags {
  std::string model, text, file, jsonl, messages, request;
  bool has_text = false, ids = false, no_special = false, help = false, offline = false;
};

bool parse_flags(int argc, char** argv, TokenizeFlags& f, const char* usage) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s: missing value\n%s", a.c_str(), usage); return false; }
      dst = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h") f.help = true;
    else if (a == "--model") { if (!value(f.model)) return false; }
    else if (a == "--text") { if (!value(f.text)) return false; f.has_text = true; }
    else if (a == "--file") { if (!value(f.file)) return false; }
    else if (a == "--jsonl") { if (!value(f.jsonl)) return false; }
    else if (a == "--messages") { if (!value(f.messages)) return false; }
    else if (a == "--request") { if (!value(f.request)) return false; }
    else if (a == "--ids") f.ids = true;
    else if (a == "--offline") f.offline = true;
    else if (a == "--no-special") f.no_special = true;
    else { std::fprintf(stderr, "unknown option '%s'\n%s", a.c_str(), usage); return false; }
  }
  return true;
}

// `model`: a directory or a Hugging Face id (resolve_model_arg).
std::unique_ptr<Tokenizer> load(const std::string& model, bool offline) {
  auto dir = resolve_model_arg(model, offline);
  if (!dir.ok()) {
    std::fprintf(stderr, "error: %s\n", dir.status().ToString().c_str());
    return nullptr;
  }
  auto t = Tokenizer::from_dir(*dir);
  if (!t.ok()) {
    std::fprintf(stderr, "error: %s\n", t.status().ToString().c_str());
    return nullptr;
  }
  return std::move(t).value();
}

void print_ids(const std::vector<int32_t>& ids) {
  std::string line;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (k) line += ' ';
    line += std::to_string(ids[k]);
  }
  std::printf("%s\n", line.c_str());
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  TokenizeFlags f;
  if (!parse_flags(argc, argv, f, kTokenizeUsage)) return 2;
  if (f.help) { std::fputs(kTokenizeUsage, stdout); return 0; }
  int sources = f.has_text + !f.file.empty() + !f.jsonl.empty();
  if (f.model.empty() || sources != 1 || !f.messages.empty() || !f.request.empty()) {
    std::fputs(kTokenizeUsage, stderr);
    return 2;
  }
  auto tok = load(f.model, f.offline);
  if (!tok) return 1;
  bool add_special = !f.no_special;
  if (!f.jsonl.empty()) {
    std::ifstream in(f.jsonl, std::ios::binary);
    if (!in) { std::fprintf(stderr, "error: %s: cannot open\n", f.jsonl.c_str()); return 1; }
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty()) continue;
      ojson j;
      try {
        j = ojson::parse(line);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s:%zu: invalid JSON: %s\n", f.jsonl.c_str(), lineno, e.what());
        return 1;
      }
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
        std::fprintf(stderr, "error: %s:%zu: expected {\"text\": string}\n", f.jsonl.c_str(), lineno);
        return 1;
      }
      ojson out = {{"ids", tok->encode(j["text"].get<std::string>(), add_special)}};
      std::printf("%s\n", out.dump().c_str());
    }
    return 0;
  }
  std::string text = f.text;
  if (!f.file.empty() && !read_file(f.file, text)) {
    std::fprintf(stderr, "error: %s: cannot open\n", f.file.c_str());
    return 1;
  }
  std::vector<int32_t> ids = tok->encode(text, add_special);
  if (f.ids) {
    print_ids(ids);
    return 0;
  }
  for (int32_t id : ids) {
    ojson piece = tok->id_to_token(id).value_or("");
    std::printf("%d\t%s%s\n", id, piece.dump(-1, ' ', false, ojson::error_handler_t::replace).c_str(),
                tok->is_special(id) ? "\tspecial" : "");
  }
  return 0;
}

int cmd_chat_template(int argc, char** argv) {
  TokenizeFlags f;
  if (!parse_flags(argc, argv, f, kChatUsage)) return 2;
  if (f.help) { std::fputs(kChatUsage, stdout); return 0; }
  if (f.model.empty() || (f.messages.empty() == f.request.empty()) || f.has_text || !f.file.empty() || !f.jsonl.empty()) {
    std::fputs(kChatUsage, stderr);
    return 2;
  }
  ojson req;
  std::string src = f.messages, where = "--messages";
  if (!f.request.empty()) {
    where = f.request;
    if (!read_file(f.request, src)) { std::fprintf(stderr, "error: %s: cannot open\n", f.request.c_str()); return 1; }
  }
  try {
    req = ojson::parse(src);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s: invalid JSON: %s\n", where.c_str(), e.what());
    return 1;
  }
  if (!f.messages.empty()) req = ojson{{"messages", req}};
  if (!req.is_object() || !req.contains("messages") || !req["messages"].is_array()) {
    std::fprintf(stderr, "error: %s: expected a messages array\n", where.c_str());
    return 1;
  }
  if (req.contains("add_generation_prompt") && !req["add_generation_prompt"].is_boolean()) {
    std::fprintf(stderr, "error: %s: add_generation_prompt: expected a boolean\n", where.c_str());
    return 1;
  }
  auto tok = load(f.model, f.offline);
  if (!tok) return 1;
  ojson extra = ojson::object();
  for (auto& [k, v] : req.items())
    if (k != "messages" && k != "tools" && k != "add_generation_prompt") extra[k] = v;
  auto r = tok->apply_chat_template(req["messages"], req.contains("tools") ? req["tools"] : ojson(),
                                    req.value("add_generation_prompt", true), extra);
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::fwrite(r->data(), 1, r->size(), stdout);
  return 0;
}

}  // namespace optiq::cli
