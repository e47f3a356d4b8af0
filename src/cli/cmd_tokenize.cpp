// `optiq tokenize` and `optiq chat-template`: inspect a model directory's tokenizer and chat template.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "cli/commands.h"
#include "cli/errors.h"
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
    "  --offline         --model may be a Hugging Face id ORG/NAME[@REV]; this takes it from the cache only\n"
    "Prints the rendered prompt exactly (no trailing newline added); template errors go to stderr.\n";

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

// A command's flags parsed (cli/flags.h); on a usage error, the exit code in `rc`.
struct Parsed {
  Result<Flags> flags = Status::Internal("unparsed");
  int rc = 0;
};

Parsed parse(const char* cmd, int argc, char** argv) {
  Parsed p;
  p.flags = Flags::parse(argc, argv, {"--model", "--text", "--file", "--jsonl", "--messages", "--request"},
                         {"--ids", "--no-special", "--help", "--offline"});
  if (!p.flags.ok()) p.rc = usage_error(cmd, p.flags.status().message());
  else if (!p.flags->positional().empty())
    p.rc = usage_error(cmd, "unexpected argument '" + p.flags->positional()[0] + "'");
  return p;
}

// `model`: a directory or a Hugging Face id (resolve_model_arg).
std::unique_ptr<Tokenizer> load(const char* cmd, const std::string& model, bool offline) {
  auto dir = resolve_model_arg(model, offline);
  if (!dir.ok()) {
    runtime_error(cmd, dir.status());
    return nullptr;
  }
  auto t = Tokenizer::from_dir(*dir);
  if (!t.ok()) {
    runtime_error(cmd, t.status());
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
  const char* cmd = "tokenize";
  Parsed p = parse(cmd, argc, argv);
  if (p.rc) return p.rc;
  const Flags& f = *p.flags;
  if (f.has("--help")) { std::fputs(kTokenizeUsage, stdout); return 0; }
  if (!f.has("--model")) return usage_error(cmd, "--model DIR is required");
  if (f.has("--text") + f.has("--file") + f.has("--jsonl") != 1)
    return usage_error(cmd, "give exactly one of --text, --file and --jsonl");
  for (const char* other : {"--messages", "--request"})
    if (f.has(other)) return usage_error(cmd, std::string(other) + " belongs to optiq chat-template");
  auto tok = load(cmd, f.str("--model"), f.has("--offline"));
  if (!tok) return kExitRuntime;
  bool add_special = !f.has("--no-special");
  if (f.has("--jsonl")) {
    const std::string jsonl = f.str("--jsonl");
    std::ifstream in(jsonl, std::ios::binary);
    if (!in) return runtime_error(cmd, Status::IOError(jsonl + ": cannot open"));
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty()) continue;
      const std::string where = jsonl + ":" + std::to_string(lineno);
      ojson j;
      try {
        j = ojson::parse(line);
      } catch (const std::exception& e) {
        return runtime_error(cmd, Status::InvalidArgument(where + ": invalid JSON: " + e.what()));
      }
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        return runtime_error(cmd, Status::InvalidArgument(where + ": expected {\"text\": string}"));
      ojson out = {{"ids", tok->encode(j["text"].get<std::string>(), add_special)}};
      std::printf("%s\n", out.dump().c_str());
      std::fflush(stdout);  // lines answered so far reach the reader even if a later one fails
    }
    return 0;
  }
  std::string text = f.str("--text");
  if (f.has("--file") && !read_file(f.str("--file"), text))
    return runtime_error(cmd, Status::IOError(f.str("--file") + ": cannot open"));
  std::vector<int32_t> ids = tok->encode(text, add_special);
  if (f.has("--ids")) {
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
  const char* cmd = "chat-template";
  Parsed p = parse(cmd, argc, argv);
  if (p.rc) return p.rc;
  const Flags& f = *p.flags;
  if (f.has("--help")) { std::fputs(kChatUsage, stdout); return 0; }
  if (!f.has("--model")) return usage_error(cmd, "--model DIR is required");
  if (f.has("--messages") == f.has("--request")) return usage_error(cmd, "give exactly one of --messages and --request");
  for (const char* other : {"--text", "--file", "--jsonl", "--ids", "--no-special"})
    if (f.has(other)) return usage_error(cmd, std::string(other) + " belongs to optiq tokenize");
  ojson req;
  std::string src = f.str("--messages"), where = "--messages";
  if (f.has("--request")) {
    where = f.str("--request");
    if (!read_file(where, src)) return runtime_error(cmd, Status::IOError(where + ": cannot open"));
  }
  // A bad --messages value is a usage error; a bad --request file is the file's fault.
  auto bad = [&](const std::string& msg) {
    return f.has("--messages") ? usage_error(cmd, where + ": " + msg)
                               : runtime_error(cmd, Status::InvalidArgument(where + ": " + msg));
  };
  try {
    req = ojson::parse(src);
  } catch (const std::exception& e) {
    return bad(std::string("invalid JSON: ") + e.what());
  }
  if (f.has("--messages")) req = ojson{{"messages", req}};
  if (!req.is_object() || !req.contains("messages") || !req["messages"].is_array())
    return bad("expected a messages array");
  if (req.contains("add_generation_prompt") && !req["add_generation_prompt"].is_boolean())
    return bad("add_generation_prompt: expected a boolean");
  auto tok = load(cmd, f.str("--model"), f.has("--offline"));
  if (!tok) return kExitRuntime;
  ojson extra = ojson::object();
  for (auto& [k, v] : req.items())
    if (k != "messages" && k != "tools" && k != "add_generation_prompt") extra[k] = v;
  auto r = tok->apply_chat_template(req["messages"], req.contains("tools") ? req["tools"] : ojson(),
                                    req.value("add_generation_prompt", true), extra);
  if (!r.ok()) return runtime_error(cmd, r.status());
  std::fwrite(r->data(), 1, r->size(), stdout);
  return 0;
}

}  // namespace optiq::cli
