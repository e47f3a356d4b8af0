// Tokenizer tests against the reference fixtures (ids from @lenml/tokenizers 3.7.2, a port of HF tokenizers).
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <atomic>
#include <thread>

#include "tests/test_util.h"
#include "tokenizer/unicode.h"

namespace optiq {
namespace {

using nlohmann::json;

json load_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f);
}

// Loading the big vocabularies takes a moment; share one instance per fixture across tests.
const Tokenizer& fixture_tokenizer(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[name];
  if (!slot) {
    auto t = Tokenizer::from_dir(test::fixture("tokenizers/" + name));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    slot = std::move(t).value();
  }
  return *slot;
}

class TokenizerCases : public ::testing::TestWithParam<std::string> {};

// One test per tokenizer (loading the big vocabularies dominates): encode, round trip, streaming.
TEST_P(TokenizerCases, EncodeDecodeAndStreamMatchReference) {
  const Tokenizer& tok = fixture_tokenizer(GetParam());
  json cases = load_json(test::fixture("tokenizers/" + GetParam() + "/cases.json"));
  ASSERT_GT(cases["cases"].size(), 10u);
  for (auto& c : cases["cases"]) {
    std::string text = c["text"].get<std::string>();
    EXPECT_EQ(tok.encode(text, false), c["ids"].get<std::vector<int32_t>>()) << "text: " << text;
    EXPECT_EQ(tok.encode(text, true), c["ids_special"].get<std::vector<int32_t>>()) << "text: " << text;
  }

  // decode(encode(x)) == x
  for (auto& c : cases["cases"]) {
    std::string text = c["text"].get<std::string>();
    // All three tokenizers are lossless on valid UTF-8 (NFC for qwen3: the fixture texts are NFC already
    // except where noted by comparing against the normalized form).
    std::vector<int32_t> ids = tok.encode(text, false);
    std::string expect = GetParam() == "qwen3" ? unicode::normalize(text, unicode::NormForm::kNFC) : text;
    EXPECT_EQ(tok.decode(ids, false), expect) << "text: " << text;
    // Special tokens added by the post-processor disappear with skip_special_tokens.
    EXPECT_EQ(tok.decode(tok.encode(text, true), true), tok.decode(ids, true)) << "text: " << text;
  }

  // Streaming detokenization equals a full decode.
  for (auto& c : cases["cases"]) {
    std::string text = c["text"].get<std::string>();
    std::vector<int32_t> ids = tok.encode(text, true);
    StreamingDetokenizer sd(tok, true);
    std::string streamed;
    for (int32_t id : ids) {
      std::string piece = sd.push(id);
      EXPECT_TRUE(unicode::is_valid(piece));
      streamed += piece;
    }
    streamed += sd.flush();
    EXPECT_EQ(streamed, tok.decode(ids, true)) << "text: " << text;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerCases, ::testing::Values("gemma3", "llama3", "qwen3"));

TEST(Tokenizer, SpecialTokensAndVocab) {
  const Tokenizer& q = fixture_tokenizer("qwen3");
  EXPECT_EQ(q.token_to_id("<|im_start|>"), 151644);
  EXPECT_TRUE(q.is_special(151644));
  EXPECT_FALSE(q.is_special(*q.token_to_id("<think>")));  // added but not special
  EXPECT_FALSE(q.token_to_id("definitely not a token").has_value());
  EXPECT_EQ(q.eos_ids(), std::vector<int32_t>{151645});
  EXPECT_GE(q.vocab_size(), 151669);
  std::vector<int32_t> ids = q.encode("<|im_start|>user\nHi<|im_end|>", false);
  EXPECT_EQ(q.decode(ids, true), "user\nHi");
  EXPECT_EQ(q.decode(ids, false), "<|im_start|>user\nHi<|im_end|>");
  const Tokenizer& g = fixture_tokenizer("gemma3");
  EXPECT_EQ(g.eos_ids(), std::vector<int32_t>{106});
}

TEST(Tokenizer, StreamingSplitsMultibyteCharacters) {
  // gemma3 encodes unseen characters as byte-fallback tokens, qwen3 as byte-level pieces: either way one
  // character's bytes arrive over several tokens and must be emitted only once complete.
  for (const char* name : {"gemma3", "qwen3", "llama3"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    std::string text = "a\xF0\x9F\xA6\x80\xF0\x90\x8D\x88 \xE1\xBC\x80z";  // 🦀 𐍈 ἀ
    std::vector<int32_t> ids = tok.encode(text, false);
    StreamingDetokenizer sd(tok);
    std::string out;
    for (int32_t id : ids) {
      std::string p = sd.push(id);
      EXPECT_TRUE(unicode::is_valid(p)) << name;
      out += p;
    }
    out += sd.flush();
    EXPECT_EQ(out, text) << name;
  }
}

TEST(Tokenizer, StreamingFlushReplacesIncompleteBytes) {
  const Tokenizer& tok = fixture_tokenizer("gemma3");
  auto b0 = tok.token_to_id("<0xF0>");
  auto b1 = tok.token_to_id("<0x9F>");
  ASSERT_TRUE(b0 && b1);
  StreamingDetokenizer sd(tok);
  EXPECT_EQ(sd.push(*tok.token_to_id("a")), "a");
  EXPECT_EQ(sd.push(*b0), "");
  EXPECT_EQ(sd.push(*b1), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
  // Non-streaming decode follows HF: one U+FFFD per invalid byte token.
  std::vector<int32_t> ids = {*b0, *b1};
  EXPECT_EQ(tok.decode(ids, false), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Tokenizer, InvalidUtf8InputIsRepaired) {
  const Tokenizer& tok = fixture_tokenizer("llama3");
  std::vector<int32_t> a = tok.encode("ab\xFF" "cd", false);
  std::vector<int32_t> b = tok.encode("ab\xEF\xBF\xBD" "cd", false);
  EXPECT_EQ(a, b);
}

TEST(Tokenizer, ConcurrentEncodeIsConsistent) {
  const Tokenizer& tok = fixture_tokenizer("llama3");
  // The BPE word cache is shared between threads; results must not depend on interleaving.
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> expect;
  for (int k = 0; k < 7; ++k) {
    texts.push_back("The quick brown fox " + std::to_string(k) + " jumps over the lazy dog" + std::string(k, 'z') + " naïveté");
    expect.push_back(tok.encode(texts.back(), false));
  }
  std::vector<std::thread> th;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      for (int k = 0; k < 300; ++k)
        if (tok.encode(texts[(k + t) % 7], false) != expect[(k + t) % 7]) bad++;
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Tokenizer, DharaByteLevel) {
  auto r = Tokenizer::from_dir(test::fixture("dhara-tiny"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Tokenizer& tok = **r;
  std::string text = "Hello\n\xC3\xA9<|im_end|>";
  std::vector<int32_t> ids = tok.encode(text, true);
  std::vector<int32_t> expect = {'H', 'e', 'l', 'l', 'o', '\n', 0xC3, 0xA9, 258};
  EXPECT_EQ(ids, expect);
  EXPECT_EQ(tok.decode(ids, false), text);
  EXPECT_EQ(tok.decode(ids, true), "Hello\n\xC3\xA9");
  EXPECT_EQ(tok.eos_ids(), std::vector<int32_t>{258});
  ASSERT_TRUE(tok.has_chat_template());
  json msgs = json::array({{{"role", "user"}, {"content", "hi"}}});
  auto p = tok.apply_chat_template(msgs, json(), true);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Tokenizer, EosFromAllConfigFiles) {
  test::TempDir dir;
  namespace fs = std::filesystem;
  fs::copy_file(test::fixture("dhara-tiny/tokenizer.json"), dir.path / "tokenizer.json");
  fs::copy_file(test::fixture("dhara-tiny/tokenizer_config.json"), dir.path / "tokenizer_config.json");
  std::ofstream(dir.path / "generation_config.json") << R"({"eos_token_id": [256, 258]})";
  std::ofstream(dir.path / "config.json") << R"({"eos_token_id": 259})";
  auto r = Tokenizer::from_dir(dir.str());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->eos_ids(), (std::vector<int32_t>{256, 258, 259}));
}

// A number beyond double range is nlohmann's out_of_range, not parse_error: still a Corruption, not a throw.
TEST(Tokenizer, ConfigNumberOverflowIsCorruption) {
  test::TempDir dir;
  namespace fs = std::filesystem;
  fs::copy_file(test::fixture("dhara-tiny/tokenizer.json"), dir.path / "tokenizer.json");
  std::ofstream(dir.path / "config.json") << R"({"eos_token_id": 1e400})";
  auto r = Tokenizer::from_dir(dir.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("config.json: invalid JSON"), std::string::npos) << r.status().ToString();
}

TEST(Tokenizer, ChatTemplateJinjaFileBeside) {
  test::TempDir dir;
  namespace fs = std::filesystem;
  fs::copy_file(test::fixture("dhara-tiny/tokenizer.json"), dir.path / "tokenizer.json");
  std::ofstream(dir.path / "chat_template.jinja") << "{% for m in messages %}[{{ m.content }}]{% endfor %}\n";
  auto r = Tokenizer::from_dir(dir.str());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto p = (*r)->apply_chat_template(json::array({{{"role", "user"}, {"content", "x"}}}), json(), false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, "[x]");
}

TEST(Tokenizer, MalformedFilesFailWithContext) {
  auto bad = [](const std::string& content) {
    auto r = Tokenizer::from_json(json::parse(content), nlohmann::ordered_json::object());
    EXPECT_FALSE(r.ok()) << content;
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(bad(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})").find("merges[0]"), std::string::npos);
  EXPECT_NE(bad(R"({"model": {"type": "BPE", "vocab": {"a": "x"}}})").find("vocab"), std::string::npos);
  EXPECT_NE(bad(R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Nope"}})").find("pre_tokenizer"), std::string::npos);
  EXPECT_NE(bad(R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}})").find("regex"), std::string::npos);
  EXPECT_NE(bad(R"({"model": {"type": "Unigram", "vocab": [["a", "x"]]}})").find("vocab[0]"), std::string::npos);
  EXPECT_NE(bad(R"({"model": {"type": "Nope", "vocab": {}}})").find("Nope"), std::string::npos);
  auto missing = Tokenizer::from_dir("/nonexistent/dir");
  EXPECT_FALSE(missing.ok());
}

// Small synthetic tokenizers exercising components the fixtures do not use.
std::unique_ptr<Tokenizer> make(const std::string& j) {
  auto r = Tokenizer::from_json(json::parse(j), nlohmann::ordered_json::object());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(TokenizerComponents, MetaspaceWordPieceStyleBpeWithUnk) {
  auto t = make(R"({
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip"}]},
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true,
              "vocab": {"<unk>": 0, "\u2581": 1, "a": 2, "b": 3, "\u2581a": 4, "\u2581ab": 5, "\u2581b": 6},
              "merges": [["\u2581", "a"], ["\u2581a", "b"], ["\u2581", "b"]]}})");
  ASSERT_TRUE(t);
  // "  AB ｂxy " -> nfkc+lower+strip "ab bxy" -> ▁ab ▁bxy ; x,y unknown and fused
  EXPECT_EQ(t->encode("  AB \xEF\xBD\x82xy ", false), (std::vector<int32_t>{5, 6, 0}));
  std::vector<int32_t> ids = {5, 6};
  EXPECT_EQ(t->decode(ids, false), "ab b");
}

TEST(TokenizerComponents, SplitBehaviours) {
  auto mk = [](const std::string& behavior, bool invert) {
    return make(R"({"pre_tokenizer": {"type": "Split", "pattern": {"String": "-"}, "behavior": ")" + behavior +
                R"(", "invert": )" + (invert ? "true" : "false") + R"(},
      "model": {"type": "WordPiece", "unk_token": "?", "continuing_subword_prefix": "##",
                "vocab": {"?": 0, "a": 1, "-": 2, "a-": 3, "-a": 4, "--": 5, "b": 6}}})");
  };
  // text "a--b": pieces per behaviour (WordPiece maps whole pieces when in vocab)
  EXPECT_EQ(mk("Removed", false)->encode("a--b", false), (std::vector<int32_t>{1, 6}));
  EXPECT_EQ(mk("Isolated", false)->encode("a--b", false), (std::vector<int32_t>{1, 2, 2, 6}));
  EXPECT_EQ(mk("MergedWithPrevious", false)->encode("a--b", false), (std::vector<int32_t>{3, 2, 6}));
  EXPECT_EQ(mk("MergedWithNext", false)->encode("a--b", false), (std::vector<int32_t>{1, 2, 0}));
  EXPECT_EQ(mk("Contiguous", false)->encode("a--b", false), (std::vector<int32_t>{1, 5, 6}));
}

TEST(TokenizerComponents, AddedTokenStripAndSingleWord) {
  auto t = make(R"({
    "added_tokens": [
      {"id": 10, "content": "<m>", "lstrip": true, "rstrip": true, "single_word": false, "normalized": false, "special": true},
      {"id": 11, "content": "cat", "lstrip": false, "rstrip": false, "single_word": true, "normalized": false, "special": false}],
    "pre_tokenizer": {"type": "WhitespaceSplit"},
    "model": {"type": "WordPiece", "unk_token": "?", "vocab": {"?": 0, "x": 1, "y": 2, "cats": 3}}})");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("x  <m>  y", false), (std::vector<int32_t>{1, 10, 2}));
  EXPECT_EQ(t->encode("x cat y", false), (std::vector<int32_t>{1, 11, 2}));
  EXPECT_EQ(t->encode("cats", false), (std::vector<int32_t>{3}));  // single_word: no match inside a word
}

TEST(TokenizerComponents, UnigramViterbiWithFusedUnknown) {
  auto t = make(R"({
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
    "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false,
              "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -2.0], ["ab", -1.5], ["\u2581", -1.0], ["\u2581ab", -2.0]]}})");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("ab", false), (std::vector<int32_t>{5}));         // "▁ab" beats "▁" + "ab"
  EXPECT_EQ(t->encode("abab", false), (std::vector<int32_t>{5, 3}));    // best path: ▁ab + ab
  EXPECT_EQ(t->encode("acca", false), (std::vector<int32_t>{4, 1, 0, 1}));  // "cc" fused into one <unk>
  std::vector<int32_t> ids = {5, 3};
  EXPECT_EQ(t->decode(ids, false), "abab");
}

TEST(TokenizerComponents, TemplateProcessingAndDigits) {
  auto t = make(R"({
    "added_tokens": [{"id": 0, "content": "[CLS]", "special": true}, {"id": 1, "content": "[SEP]", "special": true}],
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, {"type": "Punctuation"}]},
    "post_processor": {"type": "TemplateProcessing", "single": "[CLS] $A [SEP]", "pair": "[CLS] $A [SEP] $B:1 [SEP]:1",
                       "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [0], "tokens": ["[CLS]"]},
                                          "[SEP]": {"id": "[SEP]", "ids": [1], "tokens": ["[SEP]"]}}},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 2, "1": 3, "2": 4, "!": 5, "x": 6}}})");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("x12!", true), (std::vector<int32_t>{0, 6, 3, 4, 5, 1}));
  EXPECT_EQ(t->encode("x12!", false), (std::vector<int32_t>{6, 3, 4, 5}));
}

TEST(TokenizerComponents, ByteFallbackAndStripDecoders) {
  auto t = make(R"({
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
              "vocab": {"<unk>": 0, "<0xC3>": 1, "<0xA9>": 2, "\u2581": 3, "h": 4, "\u2581h": 5},
              "merges": ["\u2581 h"]}})");
  ASSERT_TRUE(t);
  std::vector<int32_t> ids = t->encode("h\xC3\xA9 h", false);
  EXPECT_EQ(ids, (std::vector<int32_t>{5, 1, 2, 5}));
  EXPECT_EQ(t->decode(ids, false), "h\xC3\xA9 h");
}

}  // namespace
}  // namespace optiq
