// JSONL rows → (tokens, offset), specs/optiq-surface.md L.3 (mlx-lm tuner/datasets.py:
// CompletionsDataset, ChatDataset, TextDataset; truncation as trainer.iterate_batches does it).
#include "train/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "tokenizer/tokenizer.h"

namespace optiq {

using ojson = nlohmann::ordered_json;

const char* row_format_name(RowFormat f) {
  switch (f) {
    case RowFormat::kCompletions: return "prompt/completion";
    case RowFormat::kChat: return "messages";
    case RowFormat::kText: return "text";
    case RowFormat::kTokenIds: return "prompt_ids/completion_ids";
  }
  return "?";
}

int64_t Dataset::total_tokens() const {
  int64_t n = 0;
  for (const auto& r : rows) n += static_cast<int64_t>(r.tokens.size());
  return n;
}

namespace {

// Converts one parsed row; `where` is "file:line".
class RowConverter {
 public:
  RowConverter(const RowEncoder& enc, const DatasetOptions& opts) : enc_(enc), opts_(opts) {}

  Result<TrainRow> convert(const ojson& row, RowFormat format, const std::string& where) const {
    switch (format) {
      case RowFormat::kCompletions: return completion(row, where);
      case RowFormat::kChat: return chat(row, where);
      case RowFormat::kText: return text(row, where);
      case RowFormat::kTokenIds: return token_ids(row, where);
    }
    return Status::Internal("unknown row format");
  }

 private:
  Status need_template(const std::string& where, RowFormat f) const {
    if (!enc_.tokenizer)
      return Status::InvalidArgument(where + ": " + row_format_name(f) +
                                     " rows need the model's tokenizer (no tokenizer.json); use "
                                     "{\"prompt_ids\", \"completion_ids\"} rows");
    if (!enc_.tokenizer->has_chat_template())
      return Status::InvalidArgument(where + ": " + row_format_name(f) + " rows need a chat template, and the "
                                     "model's tokenizer has none");
    return Status::Ok();
  }

  static Result<std::string> string_field(const ojson& row, const char* key, const std::string& where) {
    auto it = row.find(key);
    if (it == row.end()) return Status::InvalidArgument(where + ": missing \"" + key + "\"");
    if (!it->is_string())
      return Status::InvalidArgument(where + ": \"" + key + "\" must be a string, got " + it->type_name());
    return it->get<std::string>();
  }

  // Renders the template and tokenizes without special tokens (HF apply_chat_template(tokenize=True)).
  Result<std::vector<int32_t>> templated(const ojson& messages, const ojson& tools, bool add_generation_prompt,
                                         const std::string& where) const {
    auto s = enc_.tokenizer->apply_chat_template(messages, tools, add_generation_prompt, ojson::object());
    if (!s.ok()) return s.status().WithContext(where + ": chat template");
    return enc_.tokenizer->encode(*s, /*add_special_tokens=*/false);
  }

  static Result<ojson> tools_of(const ojson& row, const std::string& where) {
    auto it = row.find("tools");
    if (it == row.end() || it->is_null()) return ojson();
    if (!it->is_array()) return Status::InvalidArgument(where + ": \"tools\" must be an array");
    return *it;
  }

  Result<TrainRow> completion(const ojson& row, const std::string& where) const {
    OPTIQ_RETURN_IF_ERROR(need_template(where, RowFormat::kCompletions));
    OPTIQ_ASSIGN_OR_RETURN(std::string prompt, string_field(row, "prompt", where));
    OPTIQ_ASSIGN_OR_RETURN(std::string completion, string_field(row, "completion", where));
    OPTIQ_ASSIGN_OR_RETURN(ojson tools, tools_of(row, where));
    ojson user = {{"role", "user"}, {"content", prompt}};
    ojson both = ojson::array({user, {{"role", "assistant"}, {"content", completion}}});
    TrainRow r;
    OPTIQ_ASSIGN_OR_RETURN(r.tokens, templated(both, tools, false, where));
    if (opts_.mask_prompt) {
      OPTIQ_ASSIGN_OR_RETURN(auto head, templated(ojson::array({user}), tools, true, where));
      r.offset = static_cast<int64_t>(head.size());
    }
    return r;
  }

  Result<TrainRow> chat(const ojson& row, const std::string& where) const {
    OPTIQ_RETURN_IF_ERROR(need_template(where, RowFormat::kChat));
    auto it = row.find("messages");
    if (it == row.end()) return Status::InvalidArgument(where + ": missing \"messages\"");
    const ojson& messages = *it;
    if (!messages.is_array() || messages.empty())
      return Status::InvalidArgument(where + ": \"messages\" must be a non-empty array");
    for (size_t i = 0; i < messages.size(); ++i) {
      const ojson& m = messages[i];
      const std::string at = where + ": messages[" + std::to_string(i) + "]";
      if (!m.is_object()) return Status::InvalidArgument(at + " must be an object");
      if (!m.contains("role") || !m["role"].is_string()) return Status::InvalidArgument(at + ": missing string \"role\"");
      if (!m.contains("content")) return Status::InvalidArgument(at + ": missing \"content\"");
    }
    OPTIQ_ASSIGN_OR_RETURN(ojson tools, tools_of(row, where));
    TrainRow r;
    OPTIQ_ASSIGN_OR_RETURN(r.tokens, templated(messages, tools, false, where));
    if (opts_.mask_prompt) {
      const bool last_is_assistant = messages.back()["role"].get<std::string>() == "assistant";
      ojson head = ojson::array();
      for (size_t i = 0; i + 1 < messages.size(); ++i) head.push_back(messages[i]);
      OPTIQ_ASSIGN_OR_RETURN(auto head_ids, templated(head, tools, last_is_assistant, where));
      r.offset = static_cast<int64_t>(head_ids.size());
    }
    return r;
  }

  Result<TrainRow> text(const ojson& row, const std::string& where) const {
    if (!enc_.tokenizer)
      return Status::InvalidArgument(where + ": text rows need the model's tokenizer (no tokenizer.json); use "
                                     "{\"prompt_ids\", \"completion_ids\"} rows");
    OPTIQ_ASSIGN_OR_RETURN(std::string text, string_field(row, "text", where));
    if (enc_.eos_id < 0) return Status::InvalidArgument(where + ": text rows need an EOS token, and the model has none");
    TrainRow r;
    r.tokens = enc_.tokenizer->encode(text, /*add_special_tokens=*/true);
    if (r.tokens.empty() || r.tokens.back() != enc_.eos_id) r.tokens.push_back(enc_.eos_id);
    return r;
  }

  Result<std::vector<int32_t>> ids_field(const ojson& row, const char* key, const std::string& where) const {
    auto it = row.find(key);
    if (it == row.end()) return Status::InvalidArgument(where + ": missing \"" + key + "\"");
    if (!it->is_array()) return Status::InvalidArgument(where + ": \"" + key + "\" must be an array of token ids");
    std::vector<int32_t> ids;
    ids.reserve(it->size());
    for (size_t i = 0; i < it->size(); ++i) {
      const ojson& v = (*it)[i];
      const std::string at = where + ": " + key + "[" + std::to_string(i) + "]";
      if (!v.is_number_integer()) return Status::InvalidArgument(at + " is not an integer: " + v.dump());
      const int64_t id = v.get<int64_t>();
      const int64_t limit = enc_.vocab_size > 0 ? enc_.vocab_size : int64_t{INT32_MAX} + 1;
      if (id < 0 || id >= limit)
        return Status::InvalidArgument(at + " = " + std::to_string(id) + " is outside the vocabulary [0, " +
                                       std::to_string(limit) + ")");
      ids.push_back(static_cast<int32_t>(id));
    }
    return ids;
  }

  Result<TrainRow> token_ids(const ojson& row, const std::string& where) const {
    OPTIQ_ASSIGN_OR_RETURN(auto prompt, ids_field(row, "prompt_ids", where));
    OPTIQ_ASSIGN_OR_RETURN(auto completion, ids_field(row, "completion_ids", where));
    TrainRow r;
    r.tokens = std::move(prompt);
    if (opts_.mask_prompt) r.offset = static_cast<int64_t>(r.tokens.size());
    r.tokens.insert(r.tokens.end(), completion.begin(), completion.end());
    return r;
  }

  const RowEncoder& enc_;
  const DatasetOptions& opts_;
};

// The first row's keys decide the format (mlx-lm load_dataset's order).
Result<RowFormat> detect_format(const ojson& row, const std::string& where) {
  if (row.contains("prompt") && row.contains("completion")) return RowFormat::kCompletions;
  if (row.contains("messages")) return RowFormat::kChat;
  if (row.contains("text")) return RowFormat::kText;
  if (row.contains("prompt_ids") && row.contains("completion_ids")) return RowFormat::kTokenIds;
  return Status::InvalidArgument(where +
                                 ": unknown row format (expected keys \"text\", \"prompt\" + \"completion\", "
                                 "\"messages\", or \"prompt_ids\" + \"completion_ids\")");
}

std::string join_lines(const std::vector<int64_t>& lines, size_t limit) {
  std::string s;
  for (size_t i = 0; i < lines.size() && i < limit; ++i) s += (i ? ", " : "") + std::to_string(lines[i]);
  if (lines.size() > limit) s += ", ...";
  return s;
}

}  // namespace

Result<Dataset> parse_dataset(std::string_view jsonl, const std::string& name, const RowEncoder& enc,
                              const DatasetOptions& opts) {
  if (opts.max_seq_length <= 0)
    return Status::InvalidArgument("max_seq_length must be positive, got " + std::to_string(opts.max_seq_length));
  Dataset ds;
  ds.path = name;
  RowConverter convert(enc, opts);
  bool have_format = false;
  std::vector<int64_t> cut_lines;
  int64_t longest = 0;
  size_t pos = 0;
  for (int64_t line_no = 1; pos < jsonl.size(); ++line_no) {
    size_t end = jsonl.find('\n', pos);
    if (end == std::string_view::npos) end = jsonl.size();
    std::string_view line = jsonl.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::string where = name + ":" + std::to_string(line_no);
    ojson row;
    try {
      row = ojson::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      return Status::InvalidArgument(where + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
    } catch (const nlohmann::json::exception& e) {
      return Status::InvalidArgument(where + ": invalid JSON: " + e.what());
    }
    if (!row.is_object()) return Status::InvalidArgument(where + ": a row must be a JSON object, got " + row.type_name());
    if (!have_format) {
      OPTIQ_ASSIGN_OR_RETURN(ds.format, detect_format(row, where));
      have_format = true;
    }
    OPTIQ_ASSIGN_OR_RETURN(TrainRow r, convert.convert(row, ds.format, where + " (" + row_format_name(ds.format) + " row)"));
    r.line = line_no;
    r.full_length = static_cast<int64_t>(r.tokens.size());
    if (r.full_length > opts.max_seq_length) {
      cut_lines.push_back(line_no);
      longest = std::max(longest, r.full_length);
      r.tokens.resize(static_cast<size_t>(opts.max_seq_length));
    }
    ds.rows.push_back(std::move(r));
  }
  if (ds.rows.empty()) return Status::InvalidArgument(name + ": no rows (the file is empty)");
  if (!cut_lines.empty())
    ds.warnings.push_back(name + ": " + std::to_string(cut_lines.size()) + " row(s) longer than --max-seq-length " +
                          std::to_string(opts.max_seq_length) + " (the longest " + std::to_string(longest) +
                          " tokens) are truncated to it, losing their end (lines " + join_lines(cut_lines, 8) + ")");
  if (opts.mask_prompt && opts.warn_unmasked_text && ds.format == RowFormat::kText)
    ds.warnings.push_back(name + ": --mask-prompt does not apply to text rows; every token is trained");
  return ds;
}

Result<Dataset> load_dataset(const std::string& path, const RowEncoder& enc, const DatasetOptions& opts) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return Status::NotFound(path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IOError(path + ": read failed");
  return parse_dataset(ss.str(), path, enc, opts);
}

Result<int32_t> text_eos_id(const std::string& model_dir, const Tokenizer& tok) {
  const std::string tc_path = model_dir + "/tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(tc_path, ec)) {
    OPTIQ_ASSIGN_OR_RETURN(auto tc, read_json_file(tc_path));
    if (tc.is_object() && tc.contains("eos_token")) {
      const auto& e = tc["eos_token"];
      std::string s;
      if (e.is_string()) s = e.get<std::string>();
      else if (e.is_object() && e.contains("content") && e["content"].is_string()) s = e["content"].get<std::string>();
      if (!s.empty()) {
        if (auto id = tok.token_to_id(s)) return *id;
        return Status::Corruption(tc_path + ": eos_token \"" + s + "\" is not in the tokenizer's vocabulary");
      }
    }
  }
  const std::string cfg_path = model_dir + "/config.json";
  OPTIQ_ASSIGN_OR_RETURN(auto cfg, read_json_file(cfg_path));
  if (cfg.is_object() && cfg.contains("eos_token_id")) {
    const auto& e = cfg["eos_token_id"];
    if (e.is_number_integer()) return e.get<int32_t>();
    if (e.is_array() && !e.empty() && e[0].is_number_integer()) return e[0].get<int32_t>();
  }
  return Status::NotFound(model_dir + ": no EOS token (tokenizer_config.json eos_token, config.json eos_token_id)");
}

}  // namespace optiq
