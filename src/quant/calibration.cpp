#include "quant/calibration.h"

#include <algorithm>
#include <fstream>

namespace optiq {

using json = nlohmann::json;

Result<std::vector<CalibrationSample>> read_calibration_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open calibration file");
  std::vector<CalibrationSample> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Status::Corruption(where + ": not a JSON object");
    CalibrationSample s;
    if (j.contains("domain")) {
      if (!j["domain"].is_string()) return Status::Corruption(where + ": domain must be a string");
      s.domain = j["domain"].get<std::string>();
    }
    if (j.contains("text")) {
      if (!j["text"].is_string()) return Status::Corruption(where + ": text must be a string");
      s.text = j["text"].get<std::string>();
    } else if (j.contains("messages")) {
      if (!j["messages"].is_array() || j["messages"].empty())
        return Status::Corruption(where + ": messages must be a non-empty array");
      for (size_t i = 0; i < j["messages"].size(); ++i) {
        const json& m = j["messages"][i];
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
          return Status::Corruption(where + ": messages[" + std::to_string(i) + "] needs a string role");
      }
      s.messages = j["messages"];
      if (j.contains("tools")) {
        if (!j["tools"].is_array()) return Status::Corruption(where + ": tools must be an array");
        s.tools = j["tools"];
      }
    } else {
      return Status::Corruption(where + ": neither \"text\" nor \"messages\"");
    }
    out.push_back(std::move(s));
  }
  if (out.empty()) return Status::Corruption(path + ": no samples");
  return out;
}

std::string render_calibration_sample(const CalibrationSample& s, const Tokenizer* tok) {
  if (s.messages.empty()) return s.text;
  if (tok && tok->has_chat_template()) {
    auto r = tok->apply_chat_template(s.messages, s.tools, /*add_generation_prompt=*/false);
    if (r.ok()) return *r;
  }
  auto content_of = [](const json& m) -> std::string {
    std::string c;
    if (m.contains("content") && m["content"].is_string()) c = m["content"].get<std::string>();
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!c.empty()) c += "\n";
      c += m["tool_calls"].dump();
    }
    return c;
  };
  std::string out;
  if (!s.tools.empty()) out += "system: You can call these tools:\n" + s.tools.dump() + "\n\n";
  for (const auto& m : s.messages) out += m["role"].get<std::string>() + ": " + content_of(m) + "\n\n";
  return out;
}

std::vector<std::vector<int32_t>> make_calibration_chunks(const std::vector<int32_t>& tokens,
                                                          const CalibrationOptions& opts) {
  std::vector<std::vector<int32_t>> chunks;
  if (opts.seq_len <= 0) return chunks;
  const size_t L = static_cast<size_t>(opts.seq_len);
  const size_t keep = static_cast<size_t>(std::max(opts.n_samples * 2, 16));
  for (size_t b = 0; b + L <= tokens.size() && chunks.size() < keep; b += L)
    chunks.emplace_back(tokens.begin() + static_cast<std::ptrdiff_t>(b), tokens.begin() + static_cast<std::ptrdiff_t>(b + L));
  seeded_shuffle(chunks, opts.seed);
  if (chunks.size() > static_cast<size_t>(opts.n_samples)) chunks.resize(static_cast<size_t>(opts.n_samples));
  return chunks;
}

Result<std::vector<std::vector<int32_t>>> load_calibration(const std::string& jsonl_path,
                                                           const std::string& model_dir,
                                                           const CalibrationOptions& opts) {
  OPTIQ_ASSIGN_OR_RETURN(std::vector<CalibrationSample> samples, read_calibration_jsonl(jsonl_path));
  OPTIQ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, Tokenizer::from_dir(model_dir));
  std::vector<int32_t> tokens;
  for (const auto& s : samples) {
    // A rendered chat already carries the template's special tokens (BOS included); prose gets the
    // tokenizer's post-processing, as Python's tokenizer.encode(text) does by default.
    const bool chat = !s.messages.empty();
    auto ids = tok->encode(render_calibration_sample(s, tok.get()), /*add_special_tokens=*/!chat);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  }
  auto chunks = make_calibration_chunks(tokens, opts);
  if (chunks.empty())
    return Status::InvalidArgument(jsonl_path + ": " + std::to_string(tokens.size()) +
                                   " tokens, fewer than one chunk of seq_len " + std::to_string(opts.seq_len));
  return chunks;
}

}  // namespace optiq
