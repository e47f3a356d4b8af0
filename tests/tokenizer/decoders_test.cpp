// Decoders built from their tokenizer.json objects (src/tokenizer/decoders.cpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/pipeline_internal.h"

namespace optiq::tok {
namespace {

using nlohmann::json;
using Tokens = std::vector<std::string>;

// The tokens after decoding (decoders may merge or split them).
Tokens decode(const std::string& config, Tokens tokens, bool raw = false) {
  auto d = make_decoder(json::parse(config), "decoder");
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  if (!d.ok()) return {"<error>"};
  (*d)->decode(tokens, raw);
  return tokens;
}

std::string joined(const std::string& config, Tokens tokens, bool raw = false) {
  std::string out;
  for (auto& t : decode(config, std::move(tokens), raw)) out += t;
  return out;
}

const std::string kSp = "\xC4\xA0";           // Ġ: a space in the byte-level alphabet
const std::string kMeta = "\xE2\x96\x81";     // ▁
const std::string kFffd = "\xEF\xBF\xBD";     // U+FFFD

TEST(TokenizerDecoders, ByteLevelMapsBackToBytes) {
  // ö is the bytes C3 B6, written in the byte-level alphabet as Ã (U+00C3) and ¶ (U+00B6).
  EXPECT_EQ(decode(R"({"type": "ByteLevel"})", {kSp + "Hello", kSp + "w\xC3\x83\xC2\xB6rld"}),
            (Tokens{" Hello w\xC3\xB6rld"}));
  // A lone lead byte is invalid UTF-8: replaced for display, kept for the streaming detokenizer (raw).
  EXPECT_EQ(joined(R"({"type": "ByteLevel"})", {"\xC3\x83"}), kFffd);
  EXPECT_EQ(joined(R"({"type": "ByteLevel"})", {"\xC3\x83"}, /*raw=*/true), "\xC3");
  // A token with characters outside the alphabet (an added token, say) passes through unchanged.
  EXPECT_EQ(joined(R"({"type": "ByteLevel"})", {"a", "\xE4\xB8\xAD", kSp + "b"}), "a\xE4\xB8\xAD b");
}

TEST(TokenizerDecoders, ByteFallbackJoinsByteTokens) {
  EXPECT_EQ(decode(R"({"type": "ByteFallback"})", {"<0xE4>", "<0xB8>", "<0xAD>", "a", "<0x41>"}),
            (Tokens{"\xE4\xB8\xAD", "a", "A"}));
  // Bytes that do not form valid UTF-8: one U+FFFD per byte, or the bytes themselves when raw.
  EXPECT_EQ(decode(R"({"type": "ByteFallback"})", {"<0xE4>", "<0xB8>", "a"}), (Tokens{kFffd, kFffd, "a"}));
  EXPECT_EQ(decode(R"({"type": "ByteFallback"})", {"<0xE4>", "<0xB8>", "a"}, true), (Tokens{"\xE4\xB8", "a"}));
  // Only exact <0xHH> tokens are bytes (either hex case).
  EXPECT_EQ(decode(R"({"type": "ByteFallback"})", {"<0xZZ>", "<0x4>", "<0x6a>"}), (Tokens{"<0xZZ>", "<0x4>", "j"}));
}

TEST(TokenizerDecoders, FuseReplaceStrip) {
  EXPECT_EQ(decode(R"({"type": "Fuse"})", {"a", "b", "c"}), (Tokens{"abc"}));
  EXPECT_EQ(decode(R"({"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "})", {kMeta + "a", kMeta + "b"}),
            (Tokens{" a", " b"}));
  EXPECT_EQ(decode(R"({"type": "Replace", "pattern": {"Regex": "[0-9]+"}, "content": "#"})", {"a12b3"}), (Tokens{"a#b#"}));
  // Strip removes at most `start` leading and `stop` trailing copies of `content` from each token.
  EXPECT_EQ(decode(R"({"type": "Strip", "content": " ", "start": 1, "stop": 1})", {"  a  ", " b", "c"}),
            (Tokens{" a ", "b", "c"}));
  EXPECT_EQ(decode(R"({"type": "Strip", "content": "x", "start": 2, "stop": 0})", {"xxxa"}), (Tokens{"xa"}));
}

TEST(TokenizerDecoders, MetaspaceTurnsReplacementsIntoSpaces) {
  const Tokens tokens = {kMeta + "Hi", kMeta + "there", "!"};
  // The first token's leading ▁ was the added prefix: dropped unless the scheme never adds one.
  EXPECT_EQ(joined(R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"})", tokens), "Hi there!");
  EXPECT_EQ(joined(R"({"type": "Metaspace", "prepend_scheme": "first"})", tokens), "Hi there!");
  EXPECT_EQ(joined(R"({"type": "Metaspace", "prepend_scheme": "never"})", tokens), " Hi there!");
  EXPECT_EQ(joined(R"({"type": "Metaspace", "add_prefix_space": false})", tokens), " Hi there!");
}

TEST(TokenizerDecoders, WordPieceJoinsSubwordsAndCleansUp) {
  const Tokens tokens = {"hello", "##s", "!", "do", "n't", "i", "'m"};
  EXPECT_EQ(joined(R"({"type": "WordPiece", "prefix": "##", "cleanup": true})", tokens), "hellos! don't i'm");
  EXPECT_EQ(joined(R"({"type": "WordPiece", "cleanup": false})", tokens), "hellos ! do n't i 'm");
  EXPECT_EQ(joined(R"({"type": "WordPiece", "prefix": "@@", "cleanup": false})", {"a", "@@b", "##c"}), "ab ##c");
}

TEST(TokenizerDecoders, SequenceRunsInOrder) {
  EXPECT_EQ(decode(R"({"type": "Sequence", "decoders": [
                      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                      {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})",
                   {kMeta + "h", "<0xC3>", "<0xA9>", kMeta + "a"}),
            (Tokens{"h\xC3\xA9 a"}));
}

TEST(TokenizerDecoders, MalformedConfigsNameTheField) {
  auto error = [](const std::string& config) {
    auto d = make_decoder(json::parse(config), "decoder");
    EXPECT_FALSE(d.ok()) << config;
    return d.ok() ? std::string() : d.status().message();
  };
  EXPECT_EQ(error(R"({"type": "Strip", "content": " ", "start": -1})"), "decoder: start/stop must be >= 0");
  EXPECT_EQ(error(R"({"type": "Strip", "content": "ab"})"), "decoder.content: expected one character, got 'ab'");
  EXPECT_EQ(error(R"({"type": "Strip", "start": 1.5})"), "decoder.start: expected an integer, got 1.5");
  EXPECT_EQ(error(R"({"type": "Metaspace", "prepend_scheme": "twice"})"), "decoder.prepend_scheme: unknown value 'twice'");
  EXPECT_EQ(error(R"({"type": "Replace", "pattern": {"String": "a"}})"), "decoder.content: missing");
  EXPECT_EQ(error(R"({"type": "WordPiece", "cleanup": "yes"})"), "decoder.cleanup: expected a boolean, got \"yes\"");
  EXPECT_EQ(error(R"({"type": "Sequence", "decoders": {}})"), "decoder.decoders: expected an array");
  auto unsupported = make_decoder(json::parse(R"({"type": "CTC"})"), "decoder");
  ASSERT_FALSE(unsupported.ok());
  EXPECT_EQ(unsupported.status().code(), Status::Code::kUnsupported);
  EXPECT_EQ(unsupported.status().message(), "decoder.type: decoder 'CTC' is not supported");
}

}  // namespace
}  // namespace optiq::tok
