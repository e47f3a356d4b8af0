// Pre-tokenizers built from their tokenizer.json objects (src/tokenizer/pre_tokenizers.cpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/pipeline_internal.h"

namespace optiq::tok {
namespace {

using nlohmann::json;
using Pieces = std::vector<std::string>;

std::unique_ptr<PreTokenizer> make(const std::string& config) {
  auto p = make_pre_tokenizer(json::parse(config), "pre_tokenizer");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(p).value() : nullptr;
}

// The pieces of `text` (one input piece, starting the input when at_start).
Pieces split(const std::string& config, const std::string& text, bool at_start = true) {
  auto p = make(config);
  if (!p) return {"<error>"};
  std::vector<Piece> pieces{Piece{text, at_start}};
  p->pre_tokenize(pieces);
  Pieces out;
  for (auto& piece : pieces) out.push_back(piece.text);
  return out;
}

std::string split_config(const std::string& pattern, const std::string& behavior, bool invert) {
  return R"({"type": "Split", "pattern": )" + pattern + R"(, "behavior": ")" + behavior + R"(", "invert": )" +
         (invert ? "true" : "false") + "}";
}

const std::string kSp = "\xC4\xA0";  // Ġ, the byte-level character of a space

TEST(TokenizerPreTokenizers, SplitBehavioursWithARegex) {
  const std::string digits = R"({"Regex": "\\d+"})";
  EXPECT_EQ(split(split_config(digits, "Isolated", false), "ab12cd3"), (Pieces{"ab", "12", "cd", "3"}));
  EXPECT_EQ(split(split_config(digits, "Removed", false), "ab12cd3"), (Pieces{"ab", "cd"}));
  EXPECT_EQ(split(split_config(digits, "MergedWithPrevious", false), "ab12cd3"), (Pieces{"ab12", "cd3"}));
  EXPECT_EQ(split(split_config(digits, "MergedWithNext", false), "ab12cd3"), (Pieces{"ab", "12cd", "3"}));
  // invert: the matches are the kept parts, the rest is what the behaviour applies to.
  EXPECT_EQ(split(split_config(digits, "Removed", true), "ab12cd3"), (Pieces{"12", "3"}));
  // Contiguous merges adjacent matches (here two separate "-" matches) into one piece.
  EXPECT_EQ(split(split_config(R"({"String": "-"})", "Contiguous", false), "a--b-"), (Pieces{"a", "--", "b", "-"}));
  // No match: the piece passes through whole.
  EXPECT_EQ(split(split_config(digits, "Removed", false), "abc"), (Pieces{"abc"}));
}

TEST(TokenizerPreTokenizers, ByteLevelWithTheGpt2Regex) {
  // Contractions, letters, digits and punctuation are separate pieces; a space sticks to the word after it.
  EXPECT_EQ(split(R"({"type": "ByteLevel", "add_prefix_space": false})", "I'm 42, ok"),
            (Pieces{"I", "'m", kSp + "42", ",", kSp + "ok"}));
  // A run of spaces leaves its last space to the next word (\s+(?!\S)).
  EXPECT_EQ(split(R"({"type": "ByteLevel", "add_prefix_space": false})", "a   b"),
            (Pieces{"a", kSp + kSp, kSp + "b"}));
  EXPECT_EQ(split(R"({"type": "ByteLevel", "add_prefix_space": true})", "hi"), (Pieces{kSp + "hi"}));
  EXPECT_EQ(split(R"({"type": "ByteLevel", "add_prefix_space": true})", " hi"), (Pieces{kSp + "hi"}));  // no second space
  // Without the regex the text stays whole; every byte still maps (newline to Ċ, 0xC3 0xA9 to Ã ©).
  EXPECT_EQ(split(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})", "a b\n\xC3\xA9"),
            (Pieces{"a" + kSp + "b\xC4\x8A\xC3\x83\xC2\xA9"}));
}

TEST(TokenizerPreTokenizers, ByteLevelPlanOnlyForPureByteLevelShapes) {
  EXPECT_TRUE(make(R"({"type": "ByteLevel"})")->byte_level_plan());
  auto plain = make(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": false})")->byte_level_plan();
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->regex, nullptr);
  EXPECT_TRUE(plain->add_prefix_space);
  // The Llama 3 / Qwen shape: an isolating Split, then a ByteLevel without its own regex or prefix space.
  const std::string split_isolated = split_config(R"({"Regex": "\\s+"})", "Isolated", false);
  auto seq = make(R"({"type": "Sequence", "pretokenizers": [)" + split_isolated +
                  R"(, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})")
                 ->byte_level_plan();
  ASSERT_TRUE(seq);
  EXPECT_NE(seq->regex, nullptr);
  EXPECT_FALSE(seq->add_prefix_space);
  // Anything else takes the general path.
  EXPECT_FALSE(make(R"({"type": "Sequence", "pretokenizers": [)" + split_isolated +
                    R"(, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]})")
                   ->byte_level_plan());
  EXPECT_FALSE(make(R"({"type": "Sequence", "pretokenizers": [)" +
                    split_config(R"({"Regex": "\\s+"})", "Removed", false) +
                    R"(, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})")
                   ->byte_level_plan());
  EXPECT_FALSE(make(R"({"type": "Metaspace"})")->byte_level_plan());
}

TEST(TokenizerPreTokenizers, CharacterClassSplitters) {
  EXPECT_EQ(split(R"({"type": "Digits"})", "a123b4"), (Pieces{"a", "123", "b", "4"}));
  EXPECT_EQ(split(R"({"type": "Digits", "individual_digits": true})", "a123b"), (Pieces{"a", "1", "2", "3", "b"}));
  EXPECT_EQ(split(R"({"type": "Punctuation"})", "hi,there!!"), (Pieces{"hi", ",", "there", "!", "!"}));
  EXPECT_EQ(split(R"({"type": "Punctuation", "behavior": "MergedWithPrevious"})", "hi,there!"), (Pieces{"hi,", "there!"}));
  EXPECT_EQ(split(R"({"type": "WhitespaceSplit"})", " a \t b\xE3\x80\x80" "c "), (Pieces{"a", "b", "c"}));
  EXPECT_EQ(split(R"({"type": "Whitespace"})", "Hey, you...ok"), (Pieces{"Hey", ",", "you", "...", "ok"}));
  EXPECT_EQ(split(R"({"type": "BertPreTokenizer"})", "Hi, there$5"), (Pieces{"Hi", ",", "there", "$", "5"}));
}

TEST(TokenizerPreTokenizers, MetaspacePrependSchemes) {
  const std::string m = "\xE2\x96\x81";  // ▁
  EXPECT_EQ(split(R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"})", "Hi there"),
            (Pieces{m + "Hi", m + "there"}));
  EXPECT_EQ(split(R"({"type": "Metaspace", "prepend_scheme": "never"})", "Hi there"), (Pieces{"Hi", m + "there"}));
  // "first": only the piece that starts the input gets the prefix.
  EXPECT_EQ(split(R"({"type": "Metaspace", "prepend_scheme": "first"})", "Hi", true), (Pieces{m + "Hi"}));
  EXPECT_EQ(split(R"({"type": "Metaspace", "prepend_scheme": "first"})", "Hi", false), (Pieces{"Hi"}));
  EXPECT_EQ(split(R"({"type": "Metaspace", "split": false})", "Hi there"), (Pieces{m + "Hi" + m + "there"}));
  // The older add_prefix_space flag stands in for prepend_scheme.
  EXPECT_EQ(split(R"({"type": "Metaspace", "add_prefix_space": false})", "Hi"), (Pieces{"Hi"}));
  EXPECT_EQ(split(R"({"type": "Metaspace", "replacement": "_"})", "a b"), (Pieces{"_a", "_b"}));
}

TEST(TokenizerPreTokenizers, SequenceRunsEachStepOnEveryPiece) {
  EXPECT_EQ(split(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Digits"}]})",
                  "ab12 3c"),
            (Pieces{"ab", "12", "3", "c"}));
}

TEST(TokenizerPreTokenizers, MalformedConfigsNameTheField) {
  auto error = [](const std::string& config) {
    auto p = make_pre_tokenizer(json::parse(config), "pre_tokenizer");
    EXPECT_FALSE(p.ok()) << config;
    return p.ok() ? std::string() : p.status().message();
  };
  EXPECT_EQ(error(split_config(R"({"String": "-"})", "Sideways", false)),
            "pre_tokenizer.behavior: unknown value 'Sideways'");
  EXPECT_EQ(error(R"({"type": "Split", "behavior": "Removed"})"), "pre_tokenizer.pattern: missing");
  EXPECT_EQ(error(R"({"type": "Split", "pattern": {"Glob": "*"}})"),
            "pre_tokenizer.pattern: expected {\"String\": ...} or {\"Regex\": ...}, got {\"Glob\":\"*\"}");
  EXPECT_EQ(error(R"({"type": "Metaspace", "prepend_scheme": "sometimes"})"),
            "pre_tokenizer.prepend_scheme: unknown value 'sometimes'");
  EXPECT_EQ(error(R"({"type": "Metaspace", "replacement": "ab"})"),
            "pre_tokenizer.replacement: expected one character, got 'ab'");
  EXPECT_EQ(error(R"({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": 1}]})"),
            "pre_tokenizer.pretokenizers[0].individual_digits: expected a boolean, got 1");
  EXPECT_EQ(error(R"({"type": "Sequence"})"), "pre_tokenizer.pretokenizers: expected an array");
  auto unsupported = make_pre_tokenizer(json::parse(R"({"type": "UnicodeScripts"})"), "pre_tokenizer");
  ASSERT_FALSE(unsupported.ok());
  EXPECT_EQ(unsupported.status().code(), Status::Code::kUnsupported);
  EXPECT_EQ(unsupported.status().message(), "pre_tokenizer.type: pre-tokenizer 'UnicodeScripts' is not supported");
}

}  // namespace
}  // namespace optiq::tok
