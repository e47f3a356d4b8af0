// UTF-8 decoding with WHATWG-style replacement, character classes as Rust's char defines them, and
// the GPT-2 byte table: what the tokenizer pipeline and Jinja rely on.
#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

#include <set>

namespace optiq::unicode {
namespace {

TEST(Utf8, DecodesEveryLengthAndAdvances) {
  const std::string s = "a\u00e9\u20ac\U0001F600";  // 1, 2, 3 and 4 bytes
  size_t i = 0;
  EXPECT_EQ(decode_one(s, i), 'a');
  EXPECT_EQ(i, 1u);
  EXPECT_EQ(decode_one(s, i), 0xE9);
  EXPECT_EQ(i, 3u);
  EXPECT_EQ(decode_one(s, i), 0x20AC);
  EXPECT_EQ(i, 6u);
  EXPECT_EQ(decode_one(s, i), 0x1F600);
  EXPECT_EQ(i, 10u);
  EXPECT_EQ(count_chars(s), 4u);
  EXPECT_EQ(valid_char_len(s, 6), 4u);
  EXPECT_EQ(valid_char_len(s, 7), 0u);  // a continuation byte
}

// Each maximal invalid subpart becomes one U+FFFD (the WHATWG decoder / Python "replace" counts).
TEST(Utf8, InvalidSubpartsAreReplacedOneEach) {
  struct Case {
    std::string in;
    std::u32string want;
  };
  const Case cases[] = {
      {"\x80", U"\uFFFD"},                       // lone continuation
      {"\xC0\xAF", U"\uFFFD\uFFFD"},             // overlong lead: each byte
      {"\xE2\x82", U"\uFFFD"},                   // truncated 3-byte sequence: one subpart
      {"\xE2\x82x", U"\uFFFDx"},
      {"\xED\xA0\x80", U"\uFFFD\uFFFD\uFFFD"},   // surrogate: second byte out of range
      {"\xF4\x90\x80\x80", U"\uFFFD\uFFFD\uFFFD\uFFFD"},  // above U+10FFFF
      {"\xF0\x9F\x98", U"\uFFFD"},               // truncated 4-byte sequence
      {"ok\xFF", U"ok\uFFFD"},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(is_valid(c.in)) << c.in;
    EXPECT_EQ(to_u32(c.in), c.want) << c.in;
    EXPECT_EQ(sanitize(c.in), from_u32(c.want)) << c.in;
    EXPECT_TRUE(is_valid(sanitize(c.in)));
    EXPECT_EQ(count_chars(c.in), c.want.size()) << c.in;
  }
  EXPECT_TRUE(is_valid("plain \u00e9 \U0001F600"));
  EXPECT_EQ(sanitize("plain \u00e9"), "plain \u00e9");
}

TEST(Utf8, AppendAndFromU32RoundTripEveryPlane) {
  for (char32_t c : {U'\0', U'A', U'\u007F', U'\u0080', U'\u07FF', U'\u0800', U'\uFFFD', U'\U00010000',
                     U'\U0010FFFF'}) {
    std::string s;
    append(s, c);
    EXPECT_EQ(to_u32(s), std::u32string(1, c)) << static_cast<uint32_t>(c);
  }
  const std::u32string text = U"x\u00e9\u4e2d\U0001F600";
  EXPECT_EQ(to_u32(from_u32(text)), text);
}

TEST(CharClasses, FollowRustCharDefinitions) {
  for (char32_t c : {U' ', U'\t', U'\n', U'\u0085', U'\u00A0', U'\u2003', U'\u3000'}) EXPECT_TRUE(is_whitespace(c));
  for (char32_t c : {U'a', U'\u200B', U'\uFEFF'}) EXPECT_FALSE(is_whitespace(c));  // zero-width: not White_Space
  for (char32_t c : {U'a', U'Z', U'7', U'\u00e9', U'\u4e2d', U'\u0663', U'\u00BD'}) EXPECT_TRUE(is_alphanumeric(c));
  for (char32_t c : {U'_', U'-', U' ', U'\u00B7'}) EXPECT_FALSE(is_alphanumeric(c));
  EXPECT_TRUE(is_numeric(U'\u0663'));   // Arabic-Indic three (Nd)
  EXPECT_TRUE(is_numeric(U'\u2166'));   // Roman numeral seven (Nl)
  EXPECT_TRUE(is_numeric(U'\u00BD'));   // one half (No)
  EXPECT_FALSE(is_numeric(U'x'));
  for (char32_t c : {U'!', U'$', U'+', U'<', U'^', U'`', U'|', U'~', U'\u00BF', U'\u3001'})
    EXPECT_TRUE(is_punctuation(c)) << static_cast<uint32_t>(c);  // ASCII symbols count, as in BERT
  for (char32_t c : {U'a', U' ', U'\u00A9'}) EXPECT_FALSE(is_punctuation(c));  // © is a symbol (So)
  EXPECT_FALSE(is_alphanumeric(0x110000));  // beyond Unicode: unassigned
}

TEST(Case, LowerUpperAndInvalidBytes) {
  EXPECT_EQ(to_lower(U'A'), U'a');
  EXPECT_EQ(to_upper(U'\u00e9'), U'\u00c9');
  EXPECT_EQ(to_lower(U'\u0130'), U'i');  // İ → i (simple case mapping)
  EXPECT_EQ(lower("ÀB\xFF"), "àb\uFFFD");
  // One code point to one code point (utf8proc's mapping): ß → ẞ (U+1E9E), never the full mapping "SS".
  EXPECT_EQ(upper("straße"), "STRA\u1E9EE");
}

TEST(Normalize, FormsAndAsciiFastPath) {
  const std::string composed = "\u00e9", decomposed = "e\u0301";
  EXPECT_EQ(normalize(decomposed, NormForm::kNFC), composed);
  EXPECT_EQ(normalize(composed, NormForm::kNFD), decomposed);
  EXPECT_EQ(normalize("\uFB01", NormForm::kNFKC), "fi");  // ligature: compatibility forms only
  EXPECT_EQ(normalize("\uFB01", NormForm::kNFC), "\uFB01");
  EXPECT_EQ(normalize("\u2460", NormForm::kNFKD), "1");
  EXPECT_EQ(normalize("plain ascii", NormForm::kNFKD), "plain ascii");
  EXPECT_EQ(normalize("", NormForm::kNFC), "");
  EXPECT_EQ(normalize("e\xFF\u0301", NormForm::kNFC), "e\uFFFD\u0301");  // invalid bytes replaced first
}

TEST(ByteTable, IsABijectionOverTheBytesWithPrintableAsciiFixed) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = byte_to_char()[b];
    EXPECT_TRUE(seen.insert(c).second) << b;
    EXPECT_EQ(char_to_byte(c), b);
  }
  EXPECT_EQ(byte_to_char()['A'], U'A');
  EXPECT_EQ(byte_to_char()[' '], U'\u0120');  // GPT-2's Ġ
  EXPECT_EQ(byte_to_char()['\n'], U'\u010A');  // Ċ
  EXPECT_EQ(char_to_byte(U'\u4e2d'), -1);
}

}  // namespace
}  // namespace optiq::unicode
