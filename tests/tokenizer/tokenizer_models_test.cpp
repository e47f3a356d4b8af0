// BPE, Unigram and WordPiece models built from their tokenizer.json objects (src/tokenizer/tokenizer_models.cpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/pipeline_internal.h"

namespace optiq::tok {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

// A model with its vocabulary, which the model may point into (WordPiece), kept alive together.
struct Built {
  StrMap vocab;
  std::unique_ptr<Model> model;
  Ids encode(std::string_view word) const {
    Ids out;
    model->tokenize(word, out);
    return out;
  }
};

// `model_json` as in tokenizer.json; the vocabulary comes from its "vocab" (an object, or Unigram's
// [[piece, score], ...] list, whose index is the id) as Pipeline::from_json reads it.
std::unique_ptr<Built> build(const std::string& type, const std::string& model_json) {
  json m = json::parse(model_json);
  auto b = std::make_unique<Built>();
  std::vector<double> scores;
  if (type == "Unigram") {
    for (size_t k = 0; k < m["vocab"].size(); ++k) {
      b->vocab[m["vocab"][k][0].get<std::string>()] = static_cast<int32_t>(k);
      scores.push_back(m["vocab"][k][1].get<double>());
    }
  } else {
    for (auto& [piece, id] : m["vocab"].items()) b->vocab[piece] = id.get<int32_t>();
  }
  auto model = make_model(m, "model", type, b->vocab, std::move(scores));
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  b->model = std::move(model).value();
  return b;
}

std::string error_of(const std::string& type, const std::string& model_json) {
  json m = json::parse(model_json);
  StrMap vocab;
  for (auto& [piece, id] : m["vocab"].items()) vocab[piece] = id.get<int32_t>();
  auto model = make_model(m, "model", type, vocab, {});
  EXPECT_FALSE(model.ok()) << model_json;
  return model.ok() ? std::string() : model.status().message();
}

TEST(TokenizerModels, BpeAppliesMergesByRank) {
  const std::string vocab = R"("vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5})";
  // (b, c) ranks before (a, b): "abc" becomes a + bc, and no merge joins those two.
  auto bc_first = build("BPE", "{" + vocab + R"(, "merges": ["b c", "a b", "ab c"]})");
  EXPECT_EQ(bc_first->encode("abc"), (Ids{0, 4}));
  auto ab_first = build("BPE", "{" + vocab + R"(, "merges": ["a b", "b c", "ab c"]})");
  EXPECT_EQ(ab_first->encode("abc"), (Ids{5}));
  // Merges may also be given as pairs.
  auto pairs = build("BPE", "{" + vocab + R"(, "merges": [["a", "b"], ["ab", "c"]]})");
  EXPECT_EQ(pairs->encode("abc"), (Ids{5}));
  EXPECT_EQ(pairs->encode("cab"), (Ids{2, 3}));
  // Without merges every character stays a token.
  auto none = build("BPE", "{" + vocab + "}");
  EXPECT_EQ(none->encode("abc"), (Ids{0, 1, 2}));
  EXPECT_EQ(none->encode(""), Ids{});
}

TEST(TokenizerModels, BpeRepeatedWordsGiveTheSameIds) {
  // The per-word memo must not change results, also for words too long to memoize.
  auto m = build("BPE", R"({"vocab": {"a": 0, "b": 1, "ab": 2, "abab": 3}, "merges": ["a b", "ab ab"]})");
  const std::string long_word(64, 'a');
  const Ids first_short = m->encode("ababa"), first_long = m->encode(long_word);
  EXPECT_EQ(first_short, (Ids{3, 0}));
  EXPECT_EQ(first_long, Ids(64, 0));
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(m->encode("ababa"), first_short);
    EXPECT_EQ(m->encode(long_word), first_long);
  }
}

TEST(TokenizerModels, BpeByteFallbackAndUnknowns) {
  const std::string vocab = R"("vocab": {"<unk>": 0, "<0xC3>": 1, "<0xA9>": 2, "a": 3})";
  // é (C3 A9) is not in the vocabulary: its bytes are.
  auto fallback = build("BPE", "{" + vocab + R"(, "unk_token": "<unk>", "byte_fallback": true})");
  EXPECT_EQ(fallback->encode("a\xC3\xA9" "a"), (Ids{3, 1, 2, 3}));
  // A character whose bytes are not all in the vocabulary falls back to <unk>.
  EXPECT_EQ(fallback->encode("\xE4\xB8\xAD"), (Ids{0}));
  // Without byte fallback: one <unk> per unknown character, or one per run with fuse_unk.
  auto unk = build("BPE", "{" + vocab + R"(, "unk_token": "<unk>"})");
  EXPECT_EQ(unk->encode("\xC3\xA9\xC3\xA9" "a"), (Ids{0, 0, 3}));
  auto fused = build("BPE", "{" + vocab + R"(, "unk_token": "<unk>", "fuse_unk": true})");
  EXPECT_EQ(fused->encode("\xC3\xA9\xC3\xA9" "a\xC3\xA9"), (Ids{0, 3, 0}));
  // No unk token at all: unknown characters are dropped, as in HF.
  auto drop = build("BPE", "{" + vocab + "}");
  EXPECT_EQ(drop->encode("\xC3\xA9" "a"), (Ids{3}));
}

TEST(TokenizerModels, BpeIgnoreMergesPrefixAndSuffix) {
  // ignore_merges: a word in the vocabulary is one token even when no merge sequence builds it.
  const std::string vocab = R"("vocab": {"a": 0, "b": 1, "c": 2, "abc": 3})";
  EXPECT_EQ(build("BPE", "{" + vocab + R"(, "ignore_merges": true})")->encode("abc"), (Ids{3}));
  EXPECT_EQ(build("BPE", "{" + vocab + R"(, "ignore_merges": false})")->encode("abc"), (Ids{0, 1, 2}));
  // continuing_subword_prefix marks non-initial characters; a merge drops the right side's prefix.
  auto prefixed = build("BPE", R"({"vocab": {"a": 0, "##b": 1, "ab": 2, "##a": 3}, "continuing_subword_prefix": "##",
                                    "merges": ["a ##b"]})");
  EXPECT_EQ(prefixed->encode("ab"), (Ids{2}));
  EXPECT_EQ(prefixed->encode("aab"), (Ids{0, 3, 1}));  // "##a ##b" is no merge
  // end_of_word_suffix marks the last character.
  auto suffixed = build("BPE", R"({"vocab": {"a": 0, "b": 1, "b</w>": 2, "a</w>": 3}, "end_of_word_suffix": "</w>"})");
  EXPECT_EQ(suffixed->encode("ab"), (Ids{0, 2}));
  EXPECT_EQ(suffixed->encode("ba"), (Ids{1, 3}));
}

TEST(TokenizerModels, UnigramViterbiPicksTheBestScore) {
  // "ab" as one piece (-1.5) beats a + b (-3.0); at -3.5 it loses.
  auto one = build("Unigram", R"({"unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -2.0], ["ab", -1.5]]})");
  EXPECT_EQ(one->encode("ab"), (Ids{3}));
  auto two = build("Unigram", R"({"unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -2.0], ["ab", -3.5]]})");
  EXPECT_EQ(two->encode("ab"), (Ids{1, 2}));
  // Unknown characters: consecutive ones fuse into one <unk>.
  EXPECT_EQ(one->encode("axyb"), (Ids{1, 0, 2}));
  EXPECT_EQ(one->encode("\xC3\xA9"), (Ids{0}));
}

TEST(TokenizerModels, UnigramByteFallback) {
  auto m = build("Unigram", R"({"unk_id": 0, "byte_fallback": true,
                                "vocab": [["<unk>", 0.0], ["a", -1.0], ["<0xC3>", -5.0], ["<0xA9>", -5.0]]})");
  EXPECT_EQ(m->encode("a\xC3\xA9"), (Ids{1, 2, 3}));
  EXPECT_EQ(m->encode("\xE4\xB8\xAD"), (Ids{0}));  // its bytes are missing: <unk>
}

TEST(TokenizerModels, WordPieceGreedyLongestMatch) {
  auto m = build("WordPiece", R"({"unk_token": "[UNK]",
      "vocab": {"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "unaff": 4, "##a": 5}})");
  EXPECT_EQ(m->encode("unaffable"), (Ids{4, 3}));  // the longest first piece wins, not un + ##aff
  EXPECT_EQ(m->encode("unx"), (Ids{0}));            // any unmatched rest makes the whole word unknown
  auto custom = build("WordPiece", R"({"unk_token": "?", "continuing_subword_prefix": "+", "max_input_chars_per_word": 4,
      "vocab": {"?": 0, "a": 1, "+b": 2, "+a": 3}})");
  EXPECT_EQ(custom->encode("aba"), (Ids{1, 2, 3}));
  EXPECT_EQ(custom->encode("abab"), (Ids{1, 2, 3, 2}));
  EXPECT_EQ(custom->encode("ababa"), (Ids{0}));  // longer than max_input_chars_per_word
}

TEST(TokenizerModels, MalformedModelsNameTheField) {
  EXPECT_EQ(error_of("BPE", R"({"vocab": {"a": 0}, "merges": ["a b"]})"),
            "model.merges[0]: token 'b' is not in the vocabulary");
  EXPECT_EQ(error_of("BPE", R"({"vocab": {"a": 0, "b": 1}, "merges": ["a b"]})"),
            "model.merges[0]: token 'ab' is not in the vocabulary");
  EXPECT_EQ(error_of("BPE", R"({"vocab": {"a": 0}, "merges": ["a"]})"), "model.merges[0]: expected \"a b\", got 'a'");
  EXPECT_EQ(error_of("BPE", R"({"vocab": {"a": 0}, "merges": [["a"]]})"), "model.merges[0]: expected a pair of strings");
  EXPECT_EQ(error_of("BPE", R"({"vocab": {"a": 0}, "merges": {}})"), "model.merges: expected an array");
  EXPECT_EQ(error_of("BPE", R"({"vocab": {"a": 0}, "unk_token": "<unk>"})"),
            "model.unk_token: '<unk>' is not in the vocabulary");
  EXPECT_EQ(error_of("BPE", R"({"vocab": {"a": 0}, "dropout": 1.5})"), "model.dropout: must be in [0, 1]");
  EXPECT_EQ(error_of("BPE", R"({"vocab": {"a": 0}, "dropout": "x"})"), "model.dropout: expected a number");
  EXPECT_EQ(error_of("WordPiece", R"({"vocab": {"a": 0}})"), "model.unk_token: '[UNK]' is not in the vocabulary");
  EXPECT_EQ(error_of("Unigram", R"({"vocab": {}, "unk_id": 3})"), "model.unk_id: 3 is not a vocabulary index");
  StrMap vocab;
  auto unsupported = make_model(json::parse("{}"), "model", "WordLevel", vocab, {});
  ASSERT_FALSE(unsupported.ok());
  EXPECT_EQ(unsupported.status().code(), Status::Code::kUnsupported);
  EXPECT_EQ(unsupported.status().message(), "model.type: model 'WordLevel' is not supported");
}

}  // namespace
}  // namespace optiq::tok
