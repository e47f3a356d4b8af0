// Normalizers built from their tokenizer.json objects (src/tokenizer/normalizers.cpp).
#include <gtest/gtest.h>

#include <string>

#include "tokenizer/pipeline_internal.h"

namespace optiq::tok {
namespace {

using nlohmann::json;

std::string normalize(const std::string& config, const std::string& text) {
  auto n = make_normalizer(json::parse(config), "normalizer");
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return n.ok() ? (*n)->normalize(text) : std::string("<error>");
}

Status error_of(const std::string& config) {
  auto n = make_normalizer(json::parse(config), "normalizer");
  EXPECT_FALSE(n.ok()) << config;
  return n.ok() ? Status::Ok() : n.status();
}

TEST(TokenizerNormalizers, UnicodeForms) {
  const std::string composed = "\xC3\xA9";     // é
  const std::string decomposed = "e\xCC\x81";  // e + U+0301
  const std::string ligature = "\xEF\xAC\x81";  // ﬁ (compatibility-decomposes to "fi")
  EXPECT_EQ(normalize(R"({"type": "NFC"})", decomposed), composed);
  EXPECT_EQ(normalize(R"({"type": "NFD"})", composed), decomposed);
  EXPECT_EQ(normalize(R"({"type": "NFC"})", ligature), ligature);  // canonical forms keep compatibility characters
  EXPECT_EQ(normalize(R"({"type": "NFKC"})", ligature + decomposed), "fi" + composed);
  EXPECT_EQ(normalize(R"({"type": "NFKD"})", ligature + composed), "fi" + decomposed);
  EXPECT_EQ(normalize(R"({"type": "NFKC"})", "\xEF\xBD\x82"), "b");  // fullwidth ｂ
}

TEST(TokenizerNormalizers, LowercaseReplacePrependStrip) {
  EXPECT_EQ(normalize(R"({"type": "Lowercase"})", "\xC3\x80" "BcD"), "\xC3\xA0" "bcd");  // ÀBcD
  EXPECT_EQ(normalize(R"({"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"})", "a b  c"),
            "a\xE2\x96\x81" "b\xE2\x96\x81\xE2\x96\x81" "c");
  EXPECT_EQ(normalize(R"({"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "})", "a \t\n b"), "a b");
  EXPECT_EQ(normalize(R"({"type": "Prepend", "prepend": "\u2581"})", "hi"), "\xE2\x96\x81" "hi");
  EXPECT_EQ(normalize(R"({"type": "Prepend", "prepend": "\u2581"})", ""), "");  // nothing to prepend to
  // Strip removes Unicode whitespace (here an ideographic space U+3000), on the sides asked for.
  const std::string text = "\xE3\x80\x80 a b \n";
  EXPECT_EQ(normalize(R"({"type": "Strip"})", text), "a b");
  EXPECT_EQ(normalize(R"({"type": "Strip", "strip_left": true, "strip_right": false})", text), "a b \n");
  EXPECT_EQ(normalize(R"({"type": "Strip", "strip_left": false, "strip_right": true})", text), "\xE3\x80\x80 a b");
}

TEST(TokenizerNormalizers, BertNormalizer) {
  // Control characters dropped, whitespace to spaces, CJK characters padded, accents stripped, lowercased.
  EXPECT_EQ(normalize(R"({"type": "BertNormalizer"})", "H\xC3\xA9llo\x01\tW\xE4\xB8\xAD"), "hello w \xE4\xB8\xAD ");
  // strip_accents defaults to the lowercase flag; set explicitly it wins.
  EXPECT_EQ(normalize(R"({"type": "BertNormalizer", "lowercase": false})", "\xC3\x89t\xC3\xA9"), "\xC3\x89t\xC3\xA9");
  EXPECT_EQ(normalize(R"({"type": "BertNormalizer", "lowercase": true, "strip_accents": false})", "\xC3\x89t\xC3\xA9"),
            "\xC3\xA9t\xC3\xA9");
  EXPECT_EQ(normalize(R"({"type": "BertNormalizer", "lowercase": false, "strip_accents": true})", "\xC3\x89t\xC3\xA9"),
            "Ete");
  EXPECT_EQ(normalize(R"({"type": "BertNormalizer", "clean_text": false, "handle_chinese_chars": false,
                          "lowercase": false})",
                      "a\tb\xE4\xB8\xAD"),
            "a\tb\xE4\xB8\xAD");
}

TEST(TokenizerNormalizers, SequenceAppliesInOrder) {
  // Lowercase first: the Replace then sees "a" for the "A"; the other order leaves the "A" to lowercase.
  EXPECT_EQ(normalize(R"({"type": "Sequence", "normalizers": [{"type": "Lowercase"},
                          {"type": "Replace", "pattern": {"String": "a"}, "content": "x"}]})",
                      "Aa"),
            "xx");
  EXPECT_EQ(normalize(R"({"type": "Sequence", "normalizers": [
                          {"type": "Replace", "pattern": {"String": "a"}, "content": "x"}, {"type": "Lowercase"}]})",
                      "Aa"),
            "ax");
  EXPECT_EQ(normalize(R"({"type": "Sequence", "normalizers": []})", "As Is"), "As Is");
}

TEST(TokenizerNormalizers, MalformedConfigsNameTheField) {
  Status s = error_of(R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Nope"}]})");
  EXPECT_EQ(s.code(), Status::Code::kUnsupported);
  EXPECT_EQ(s.message(), "normalizer.normalizers[1].type: normalizer 'Nope' is not supported");
  s = error_of(R"({"type": "Sequence"})");
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "normalizer.normalizers: expected an array");
  EXPECT_EQ(error_of(R"({"type": "Replace", "content": "x"})").message(), "normalizer.pattern: missing");
  EXPECT_EQ(error_of(R"({"type": "Replace", "pattern": {"String": "a"}})").message(), "normalizer.content: missing");
  EXPECT_NE(error_of(R"({"type": "Replace", "pattern": {"Regex": "("}, "content": "x"})").message().find("normalizer.pattern"),
            std::string::npos);
  EXPECT_EQ(error_of(R"({"type": "Strip", "strip_left": "yes"})").message(),
            "normalizer.strip_left: expected a boolean, got \"yes\"");
  EXPECT_EQ(error_of(R"({"prepend": "x"})").message(), "normalizer.type: missing");
  EXPECT_EQ(error_of(R"(["NFC"])").message(), "normalizer: expected an object");
}

}  // namespace
}  // namespace optiq::tok
