// Training data: the rows of DATA_DIR/train.jsonl (and valid.jsonl) turned into (tokens, offset)
// exactly as specs/optiq-surface.md "LoRA training: exact semantics" L.3 defines (mlx-lm's
// tuner/datasets.py), the loss covering tokens[j] for j >= offset.
//
// The first row decides the format of every row:
//   {"prompt", "completion"}  the chat template over [user: prompt, assistant: completion], rendered,
//                             then tokenized without special tokens; nothing appended. With
//                             mask_prompt, offset = length of the templated user turn with the
//                             generation prompt.
//   {"messages": [...]}       the chat template over the messages (optional "tools" passed through);
//                             with mask_prompt only the last message is trained.
//   {"text"}                  tokenized with special tokens on; the EOS id appended unless the last
//                             token already is EOS; offset 0, never masked (a warning with mask_prompt).
//   {"prompt_ids", "completion_ids"}  pre-tokenized (models without a tokenizer): the ids verbatim,
//                             offset = len(prompt_ids) with mask_prompt, else 0.
// Every row is then cut to max_seq_length tokens (after the EOS append), with a warning.
//
// Blank lines are skipped (mlx-lm would fail on them). Malformed input (invalid JSON, a row that is not
// an object, missing or mistyped fields, ids outside the vocabulary, no rows) is InvalidArgument or
// Corruption naming the file and the 1-based line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace optiq {

class Tokenizer;

enum class RowFormat { kCompletions, kChat, kText, kTokenIds };
const char* row_format_name(RowFormat f);  // "prompt/completion", "messages", "text", "prompt_ids/completion_ids"

struct TrainRow {
  std::vector<int32_t> tokens;  // [n], already cut to max_seq_length
  int64_t offset = 0;           // the loss covers tokens[j] for j >= offset (may exceed n after a cut)
  int64_t full_length = 0;      // length before the cut (batches sort rows by it, as mlx-lm does)
  int64_t line = 0;             // 1-based line in the file
};

struct DatasetOptions {
  bool mask_prompt = false;
  int64_t max_seq_length = 512;  // > 0
  // Warn when mask_prompt meets text rows (off where the caller forces mask_prompt, as canvas does).
  bool warn_unmasked_text = true;
};

// What turning rows into ids needs. `tokenizer` null: only pre-tokenized rows are accepted (the
// other formats fail naming the line). `vocab_size` > 0 checks pre-tokenized ids against it.
struct RowEncoder {
  const Tokenizer* tokenizer = nullptr;  // not owned; outlives the call
  int32_t eos_id = -1;                   // appended to text rows; required for them
  int64_t vocab_size = 0;
};

struct Dataset {
  std::string path;
  RowFormat format = RowFormat::kText;
  std::vector<TrainRow> rows;
  std::vector<std::string> warnings;  // truncated rows, --mask-prompt on text rows; for the caller to print
  int64_t total_tokens() const;
};

// Reads and converts a JSONL file. NotFound if it does not exist.
Result<Dataset> load_dataset(const std::string& path, const RowEncoder& enc, const DatasetOptions& opts);
// The same over JSONL text already in memory; `name` stands for the file in messages.
Result<Dataset> parse_dataset(std::string_view jsonl, const std::string& name, const RowEncoder& enc,
                              const DatasetOptions& opts);

// The EOS id appended to text rows: tokenizer_config.json's eos_token (a string or {"content"}) in
// `model_dir`, as HF's tokenizer.eos_token_id; else config.json's eos_token_id (the first of a list).
// NotFound when neither names a token.
Result<int32_t> text_eos_id(const std::string& model_dir, const Tokenizer& tok);

}  // namespace optiq
