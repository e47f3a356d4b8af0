// The pipeline itself (src/tokenizer/pipeline.cpp): regexes and patterns, building from tokenizer.json,
// added tokens, the streamed byte-level path, and the id/token tables.
#include "tokenizer/pipeline.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/pipeline_internal.h"
#include "tokenizer/unicode.h"

namespace optiq::tok {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;
using Ranges = std::vector<std::pair<size_t, size_t>>;

std::unique_ptr<Pipeline> make(const std::string& tokenizer_json) {
  auto p = Pipeline::from_json(json::parse(tokenizer_json), "tokenizer.json");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(p).value() : nullptr;
}

std::string error_of(const std::string& tokenizer_json) {
  auto p = Pipeline::from_json(json::parse(tokenizer_json), "tokenizer.json");
  EXPECT_FALSE(p.ok()) << tokenizer_json;
  return p.ok() ? std::string() : p.status().message();
}

TEST(TokenizerPipeline, RegexFindsUtf8RangesAndStepsOverEmptyMatches) {
  auto letters = Regex::compile("\\p{L}+");
  ASSERT_TRUE(letters.ok());
  Ranges m;
  (*letters)->find_all("h\xC3\xA9llo, w\xC3\xB6rld", m);  // byte offsets, letters beyond ASCII included
  EXPECT_EQ(m, (Ranges{{0, 6}, {8, 14}}));
  auto maybe_x = Regex::compile("x*");
  ASSERT_TRUE(maybe_x.ok());
  m.clear();
  (*maybe_x)->find_all("a\xC3\xA9x", m);  // an empty match advances by a whole character, not a byte
  EXPECT_EQ(m, (Ranges{{0, 0}, {1, 1}, {3, 4}, {4, 4}}));
  auto bad = Regex::compile("(ab");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("regex '(ab': ", 0), 0u) << bad.status().message();
  EXPECT_NE(bad.status().message().find("at offset 3"), std::string::npos) << bad.status().message();
}

TEST(TokenizerPipeline, PatternLiteralOrRegex) {
  auto lit = Pattern::from_json(json::parse(R"({"String": "aa"})"), "p");
  ASSERT_TRUE(lit.ok());
  Ranges m;
  lit->find_all("aaaaa", m);  // non-overlapping, left to right
  EXPECT_EQ(m, (Ranges{{0, 2}, {2, 4}}));
  EXPECT_FALSE(lit->is_empty_string());
  auto empty = Pattern::from_json(json::parse(R"({"String": ""})"), "p");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->is_empty_string());
  m.clear();
  empty->find_all("abc", m);
  EXPECT_TRUE(m.empty());
  auto re = Pattern::from_json(json::parse(R"({"Regex": "[0-9]"})"), "p");
  ASSERT_TRUE(re.ok());
  ASSERT_NE(re->regex(), nullptr);
  m.clear();
  re->find_all("a1b22", m);
  EXPECT_EQ(m, (Ranges{{1, 2}, {3, 4}, {4, 5}}));
  EXPECT_EQ(replace_pattern("a1b22", *re, "#"), "a#b##");
  EXPECT_EQ(replace_all("a--b--", "--", "+"), "a+b+");
  EXPECT_EQ(replace_all("abc", "", "+"), "abc");
}

TEST(TokenizerPipeline, FieldReadersNameTheFieldAndType) {
  json j = json::parse(R"({"s": "x", "b": true, "i": 3, "c": "\u2581", "n": null})");
  EXPECT_EQ(*get_str(j, "s", "obj"), "x");
  EXPECT_EQ(*get_str(j, "missing", "obj", std::string("d")), "d");
  EXPECT_EQ(*get_str(j, "n", "obj", std::string("d")), "d");  // null counts as absent
  EXPECT_EQ(get_str(j, "missing", "obj").status().message(), "obj.missing: missing");
  EXPECT_EQ(get_str(j, "i", "obj").status().message(), "obj.i: expected a string, got 3");
  EXPECT_TRUE(*get_bool(j, "b", "obj", false));
  EXPECT_EQ(get_bool(j, "s", "obj", false).status().message(), "obj.s: expected a boolean, got \"x\"");
  EXPECT_EQ(*get_int(j, "i", "obj", 0), 3);
  EXPECT_EQ(*get_int(j, "missing", "obj", 9), 9);
  EXPECT_EQ(get_int(j, "b", "obj", 0).status().message(), "obj.b: expected an integer, got true");
  EXPECT_EQ(*get_char(j, "c", "obj", U'x'), U'\u2581');
  EXPECT_EQ(*get_char(j, "missing", "obj", U'x'), U'x');
}

TEST(TokenizerPipeline, VocabularyAddedTokensAndIdTables) {
  auto p = make(R"({
    "added_tokens": [{"id": 5, "content": "<eos>", "special": true}, {"id": 6, "content": "hi", "special": false}],
    "model": {"type": "WordPiece", "unk_token": "?", "vocab": {"?": 0, "hi": 1, "x": 3}}})");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->vocab_size(), 7);  // the largest id + 1, gaps included
  EXPECT_EQ(*p->token_to_id("x"), 3);
  EXPECT_EQ(*p->token_to_id("hi"), 6);  // an added token shadows the same model token
  EXPECT_FALSE(p->token_to_id("nope"));
  ASSERT_NE(p->id_to_token(5), nullptr);
  EXPECT_EQ(*p->id_to_token(5), "<eos>");
  EXPECT_EQ(*p->id_to_token(2), "");  // a gap
  EXPECT_EQ(p->id_to_token(7), nullptr);
  EXPECT_EQ(p->id_to_token(-1), nullptr);
  EXPECT_TRUE(p->is_special(5));
  EXPECT_FALSE(p->is_special(6));
  EXPECT_FALSE(p->is_special(99));
  const Ids ids = {3, 5, 42, 1};
  EXPECT_EQ(p->tokens_for(ids, false), (std::vector<std::string>{"x", "<eos>", "hi"}));  // unknown ids dropped
  EXPECT_EQ(p->tokens_for(ids, true), (std::vector<std::string>{"x", "hi"}));
  // Without a decoder, tokens join with spaces.
  EXPECT_EQ(p->decode_tokens({"x", "hi"}, false), "x hi");
}

TEST(TokenizerPipeline, AddedTokensMatchLeftmostLongestBeforeTheModel) {
  auto p = make(R"({
    "added_tokens": [{"id": 10, "content": "ab", "normalized": false}, {"id": 11, "content": "abc", "normalized": false}],
    "model": {"type": "WordPiece", "unk_token": "?", "vocab": {"?": 0, "a": 1, "b": 2, "c": 3, "d": 4}}})");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->encode("dabcd", false), (Ids{4, 11, 4}));  // "abc" beats "ab"
  EXPECT_EQ(p->encode("dabd", false), (Ids{4, 10, 4}));
  EXPECT_EQ(p->encode("", false), Ids{});
}

TEST(TokenizerPipeline, NormalizedAddedTokensMatchAfterNormalization) {
  auto p = make(R"({
    "added_tokens": [{"id": 10, "content": "Hey", "normalized": true}, {"id": 11, "content": "<B>", "normalized": false}],
    "normalizer": {"type": "Lowercase"},
    "pre_tokenizer": {"type": "WhitespaceSplit"},
    "model": {"type": "WordPiece", "unk_token": "?", "vocab": {"?": 0, "x": 1, "<b>": 2}}})");
  ASSERT_TRUE(p);
  // "Hey" is stored normalized ("hey"), so any casing of the input matches it once lowercased.
  EXPECT_EQ(p->encode("HEY x", false), (Ids{10, 1}));
  // "<B>" is matched on the raw text, before the normalizer could turn it into the model token "<b>".
  EXPECT_EQ(p->encode("x <B>", false), (Ids{1, 11}));
  EXPECT_EQ(p->encode("x <b>", false), (Ids{1, 2}));
}

// A byte-level vocabulary: byte b is token id b, plus "oĠ" (o + space), which only a wrong split could form.
std::string byte_level_json(const std::string& pre_tokenizer) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append(s, unicode::byte_to_char()[b]);
    vocab[s] = b;
  }
  vocab["o\xC4\xA0"] = 256;
  json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"o \xC4\xA0"})}}},
            {"pre_tokenizer", json::parse(pre_tokenizer)}};
  return j.dump();
}

Ids bytes_of(const std::string& s) {
  Ids ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

TEST(TokenizerPipeline, StreamedByteLevelMatchesTheGeneralPath) {
  const std::string split = R"({"type": "Split", "pattern": {"Regex": " ?[a-z]+| "}, "behavior": "Isolated"})";
  const std::string byte_level = R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})";
  // Pre-tokenizer shapes the pipeline streams (a plan) and an equivalent one it does not (three steps; the
  // WhitespaceSplit finds no whitespace once bytes are mapped).
  auto streamed = make(byte_level_json(R"({"type": "Sequence", "pretokenizers": [)" + split + ", " + byte_level + "]}"));
  auto general = make(byte_level_json(R"({"type": "Sequence", "pretokenizers": [)" + split + ", " + byte_level +
                                      R"(, {"type": "WhitespaceSplit"}]})"));
  ASSERT_TRUE(streamed && general);
  for (const std::string text : {"hello world", "go on", "a  b\n\xC3\xA9t\xC3\xA9", "oo o", ""}) {
    EXPECT_EQ(streamed->encode(text, false), general->encode(text, false)) << text;
    EXPECT_EQ(streamed->encode(text, false), bytes_of(text)) << text;  // the split keeps "o" and " " apart
  }
  // Without a split, "o" + " " merge.
  auto whole = make(byte_level_json(byte_level));
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->encode("go on", false), (Ids{'g', 256, 'o', 'n'}));
  // The GPT-2 regex of a plain ByteLevel also keeps them apart; add_prefix_space adds the leading space.
  auto gpt2 = make(byte_level_json(R"({"type": "ByteLevel", "add_prefix_space": true})"));
  ASSERT_TRUE(gpt2);
  EXPECT_EQ(gpt2->encode("go on", false), bytes_of(" go on"));
}

TEST(TokenizerPipeline, ModelTypeIsInferredWhenAbsent) {
  // merges: BPE; a vocab list: Unigram; otherwise WordPiece (which needs its [UNK]).
  auto bpe = make(R"({"model": {"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})");
  ASSERT_TRUE(bpe);
  EXPECT_EQ(bpe->encode("ab", false), (Ids{2}));
  auto unigram = make(R"({"model": {"vocab": [["a", -1.0], ["ab", -0.5]]}})");
  ASSERT_TRUE(unigram);
  EXPECT_EQ(unigram->encode("ab", false), (Ids{1}));
  auto wordpiece = make(R"({"model": {"vocab": {"[UNK]": 0, "ab": 1}}})");
  ASSERT_TRUE(wordpiece);
  EXPECT_EQ(wordpiece->encode("ab", false), (Ids{1}));
}

TEST(TokenizerPipeline, MalformedFilesNameTheField) {
  EXPECT_EQ(error_of("[]"), "tokenizer.json: expected a JSON object at the top level");
  EXPECT_EQ(error_of("{}"), "tokenizer.json: model: missing or not an object");
  EXPECT_EQ(error_of(R"({"model": {"type": "BPE"}})"), "tokenizer.json: model.vocab: missing or not an object");
  EXPECT_EQ(error_of(R"({"model": {"type": "BPE", "vocab": {"a": -1}}})"),
            "tokenizer.json: model.vocab['a']: id -1 out of range [0, 2097152)");
  EXPECT_EQ(error_of(R"({"model": {"type": "Unigram", "vocab": {"a": 0}}})"),
            "tokenizer.json: model.vocab: expected an array of [piece, score]");
  EXPECT_EQ(error_of(R"({"model": {"type": "BPE", "vocab": {}}, "added_tokens": {}})"),
            "tokenizer.json: added_tokens: expected an array");
  EXPECT_EQ(error_of(R"({"model": {"type": "BPE", "vocab": {}}, "added_tokens": [{"content": "x"}]})"),
            "tokenizer.json: added_tokens[0].id: missing or out of range: -1");
  EXPECT_EQ(error_of(R"({"model": {"type": "BPE", "vocab": {}}, "added_tokens": [{"id": 1}]})"),
            "tokenizer.json: added_tokens[0].content: missing");
  // Each stage's errors carry the stage's path.
  EXPECT_EQ(error_of(R"({"model": {"type": "BPE", "vocab": {}}, "normalizer": {"type": "Nope"}})"),
            "tokenizer.json: normalizer.type: normalizer 'Nope' is not supported");
  EXPECT_EQ(error_of(R"({"model": {"type": "BPE", "vocab": {}}, "decoder": {"type": "Nope"}})"),
            "tokenizer.json: decoder.type: decoder 'Nope' is not supported");
  EXPECT_EQ(error_of(R"({"model": {"type": "BPE", "vocab": {}}, "post_processor": {"type": "Nope"}})"),
            "tokenizer.json: post_processor.type: post-processor 'Nope' is not supported");
  EXPECT_EQ(error_of(R"({"model": {"type": "WordLevel", "vocab": {}}})"),
            "tokenizer.json: model.type: model 'WordLevel' is not supported");
}

}  // namespace
}  // namespace optiq::tok
