// train/dataset: rows → (tokens, offset) per specs/optiq-surface.md L.3, checked against the token
// ids and offsets of both fixture cases in shared/fixtures/lora, and malformed data.
#include "train/dataset.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"

namespace optiq {
namespace {

struct TinyTok {
  std::unique_ptr<Tokenizer> tok;
  RowEncoder enc;
};

TinyTok dhara_tiny() {
  TinyTok t;
  auto r = Tokenizer::from_dir(test::fixture("dhara-tiny"));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  t.tok = std::move(r.value());
  t.enc.tokenizer = t.tok.get();
  auto eos = text_eos_id(test::fixture("dhara-tiny"), *t.tok);
  EXPECT_TRUE(eos.ok()) << eos.status().ToString();
  t.enc.eos_id = *eos;
  t.enc.vocab_size = 260;
  return t;
}

nlohmann::json read_case(const std::string& name) {
  std::ifstream in(test::fixture("lora/" + name + "/expected/case.json"));
  return nlohmann::json::parse(in);
}

// Every row's tokens and offset equal case.json's (rows in file order), and the targets
// max(offset, 1) … len − 1 are case.json's target range.
void expect_case(const std::string& name) {
  const nlohmann::json c = read_case(name);
  TinyTok t = dhara_tiny();
  DatasetOptions o;
  o.mask_prompt = c["mask_prompt"].get<bool>();
  o.max_seq_length = c["max_seq_length"].get<int64_t>();
  auto ds = load_dataset(test::fixture("lora/" + name + "/data/train.jsonl"), t.enc, o);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  ASSERT_EQ(ds->rows.size(), c["rows"].size());
  int64_t targets = 0;
  for (size_t i = 0; i < ds->rows.size(); ++i) {
    const auto& want = c["rows"][i];
    const TrainRow& got = ds->rows[i];
    EXPECT_EQ(got.tokens, want["tokens"].get<std::vector<int32_t>>()) << name << " row " << i;
    EXPECT_EQ(got.offset, want["offset"].get<int64_t>()) << name << " row " << i;
    const int64_t first = std::max<int64_t>(got.offset, 1), last = static_cast<int64_t>(got.tokens.size()) - 1;
    EXPECT_EQ(first, want["targets"][0].get<int64_t>()) << name << " row " << i;
    EXPECT_EQ(last, want["targets"][1].get<int64_t>()) << name << " row " << i;
    targets += last - first + 1;
  }
  EXPECT_EQ(targets, c["n_targets"].get<int64_t>());
}

TEST(Dataset, TextFixtureRowsMatchCaseJson) {
  expect_case("dhara-tiny-text");
  // Row 1 (line 1) is cut to --max-seq-length 48: one warning naming the line.
  TinyTok t = dhara_tiny();
  auto ds = load_dataset(test::fixture("lora/dhara-tiny-text/data/train.jsonl"), t.enc, {false, 48});
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->format, RowFormat::kText);
  ASSERT_EQ(ds->warnings.size(), 1u);
  EXPECT_NE(ds->warnings[0].find("lines 1)"), std::string::npos) << ds->warnings[0];
  EXPECT_GT(ds->rows[0].full_length, 48);
}

TEST(Dataset, CompletionFixtureRowsMatchCaseJson) { expect_case("dhara-tiny-completion"); }

TEST(Dataset, CompletionWithoutMaskPromptTrainsFromTheStart) {
  TinyTok t = dhara_tiny();
  auto ds = load_dataset(test::fixture("lora/dhara-tiny-completion/data/train.jsonl"), t.enc, {false, 512});
  ASSERT_TRUE(ds.ok());
  for (const auto& r : ds->rows) EXPECT_EQ(r.offset, 0);
}

TEST(Dataset, TextEosAppendedOnlyWhenMissing) {
  TinyTok t = dhara_tiny();
  auto ds = parse_dataset("{\"text\": \"ab\"}\n{\"text\": \"ab<|im_end|>\"}\n{\"text\": \"\"}\n", "mem.jsonl", t.enc, {});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->rows[0].tokens, (std::vector<int32_t>{97, 98, 258}));
  EXPECT_EQ(ds->rows[1].tokens, (std::vector<int32_t>{97, 98, 258}));
  EXPECT_EQ(ds->rows[2].tokens, (std::vector<int32_t>{258}));
  EXPECT_EQ(ds->rows[1].line, 2);
}

TEST(Dataset, TextRowsAreNeverMaskedAndWarn) {
  TinyTok t = dhara_tiny();
  auto ds = parse_dataset("{\"text\": \"abc\"}\n", "mem.jsonl", t.enc, {true, 512});
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->rows[0].offset, 0);
  ASSERT_EQ(ds->warnings.size(), 1u);
  EXPECT_NE(ds->warnings[0].find("--mask-prompt"), std::string::npos);
  DatasetOptions quiet{true, 512, false};
  EXPECT_TRUE(parse_dataset("{\"text\": \"abc\"}\n", "mem.jsonl", t.enc, quiet)->warnings.empty());
}

TEST(Dataset, MessagesMaskAllButTheLastMessage) {
  TinyTok t = dhara_tiny();
  const std::string row =
      R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})";
  auto ds = parse_dataset(row + "\n", "mem.jsonl", t.enc, {true, 512});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  // <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n | yo<|im_end|>\n
  const std::vector<int32_t> head = {257, 117, 115, 101, 114, 10, 104, 105, 258, 10, 257, 97, 115, 115, 105, 115, 116, 97, 110, 116, 10};
  std::vector<int32_t> all = head;
  for (int32_t x : {121, 111, 258, 10}) all.push_back(x);
  EXPECT_EQ(ds->rows[0].tokens, all);
  EXPECT_EQ(ds->rows[0].offset, static_cast<int64_t>(head.size()));
  EXPECT_EQ(ds->format, RowFormat::kChat);
  // The same row as prompt/completion gives the same ids and offset.
  auto pc = parse_dataset("{\"prompt\": \"hi\", \"completion\": \"yo\"}\n", "mem.jsonl", t.enc, {true, 512});
  ASSERT_TRUE(pc.ok());
  EXPECT_EQ(pc->rows[0].tokens, all);
  EXPECT_EQ(pc->rows[0].offset, ds->rows[0].offset);
}

TEST(Dataset, MessagesEndingWithUserMaskWithoutGenerationPrompt) {
  TinyTok t = dhara_tiny();
  const std::string row =
      R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]})";
  auto ds = parse_dataset(row + "\n", "mem.jsonl", t.enc, {true, 512});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  // offset = len(template(messages[:-1], add_generation_prompt=false)) = the system turn only.
  EXPECT_EQ(ds->rows[0].offset, 11);  // <|im_start|>system\ns<|im_end|>\n
}

TEST(Dataset, PreTokenizedRowsVerbatim) {
  RowEncoder enc;  // no tokenizer
  enc.vocab_size = 50;
  auto ds = parse_dataset("{\"prompt_ids\": [1, 2], \"completion_ids\": [3, 4, 5]}\n", "t.jsonl", enc, {true, 512});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->rows[0].tokens, (std::vector<int32_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(ds->rows[0].offset, 2);
  EXPECT_EQ(ds->format, RowFormat::kTokenIds);
  auto unmasked = parse_dataset("{\"prompt_ids\": [1, 2], \"completion_ids\": [3]}\n", "t.jsonl", enc, {false, 512});
  EXPECT_EQ(unmasked->rows[0].offset, 0);
}

TEST(Dataset, TruncationAfterEosAppend) {
  TinyTok t = dhara_tiny();
  auto ds = parse_dataset("{\"text\": \"abcd\"}\n", "mem.jsonl", t.enc, {false, 4});
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->rows[0].tokens, (std::vector<int32_t>{97, 98, 99, 100}));  // the EOS is cut
  EXPECT_EQ(ds->rows[0].full_length, 5);
  EXPECT_EQ(ds->warnings.size(), 1u);
}

TEST(Dataset, BlankLinesAndCrlfAreTolerated) {
  TinyTok t = dhara_tiny();
  auto ds = parse_dataset("\n{\"text\": \"a\"}\r\n  \n{\"text\": \"b\"}", "mem.jsonl", t.enc, {});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  ASSERT_EQ(ds->rows.size(), 2u);
  EXPECT_EQ(ds->rows[0].line, 2);
  EXPECT_EQ(ds->rows[1].line, 4);
}

// Errors name the file and the 1-based line.
void expect_error(const std::string& jsonl, const std::string& needle, const RowEncoder& enc) {
  auto ds = parse_dataset(jsonl, "data/train.jsonl", enc, {});
  ASSERT_FALSE(ds.ok()) << jsonl;
  EXPECT_NE(ds.status().message().find(needle), std::string::npos) << ds.status().ToString();
}

TEST(Dataset, MalformedDataNamesFileAndLine) {
  TinyTok t = dhara_tiny();
  expect_error("{\"text\": \"a\"}\n{\"text\": \"b\"\n", "data/train.jsonl:2: invalid JSON", t.enc);
  expect_error("{\"text\": \"a\"}\n{\"txt\": \"b\"}\n", "data/train.jsonl:2 (text row): missing \"text\"", t.enc);
  expect_error("{\"text\": 5}\n", "data/train.jsonl:1 (text row): \"text\" must be a string", t.enc);
  expect_error("{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"}\n",
               "data/train.jsonl:2 (prompt/completion row): missing \"completion\"", t.enc);
  expect_error("{\"messages\": []}\n", "data/train.jsonl:1 (messages row): \"messages\" must be a non-empty array", t.enc);
  expect_error("{\"messages\": [{\"content\": \"x\"}]}\n", "data/train.jsonl:1 (messages row): messages[0]: missing string \"role\"", t.enc);
  expect_error("[1, 2]\n", "data/train.jsonl:1: a row must be a JSON object", t.enc);
  expect_error("{\"foo\": 1}\n", "data/train.jsonl:1: unknown row format", t.enc);
  expect_error("", "data/train.jsonl: no rows", t.enc);
  expect_error("\n \n", "data/train.jsonl: no rows", t.enc);
  expect_error("{\"prompt_ids\": [1, 2.5], \"completion_ids\": [3]}\n", "data/train.jsonl:1 (prompt_ids/completion_ids row): prompt_ids[1] is not an integer", t.enc);
  expect_error("{\"prompt_ids\": [1], \"completion_ids\": [260]}\n", "completion_ids[0] = 260 is outside the vocabulary [0, 260)", t.enc);
  expect_error("{\"prompt_ids\": [1], \"completion_ids\": \"x\"}\n", "\"completion_ids\" must be an array", t.enc);
}

TEST(Dataset, RowsNeedingATokenizerFailWithoutOne) {
  RowEncoder none;
  expect_error("{\"text\": \"a\"}\n", "data/train.jsonl:1 (text row): text rows need the model's tokenizer", none);
  expect_error("{\"prompt\": \"a\", \"completion\": \"b\"}\n", "prompt/completion rows need the model's tokenizer", none);
}

TEST(Dataset, MissingFileIsNotFound) {
  auto ds = load_dataset("/nonexistent/train.jsonl", RowEncoder{}, {});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Status::Code::kNotFound);
  EXPECT_NE(ds.status().message().find("/nonexistent/train.jsonl"), std::string::npos);
}

TEST(Dataset, EosFromTokenizerConfig) {
  TinyTok t = dhara_tiny();
  EXPECT_EQ(t.enc.eos_id, 258);
}

}  // namespace
}  // namespace optiq
