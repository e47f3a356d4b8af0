// UTF-8 and Unicode helpers shared by the tokenizer pipeline and the Jinja interpreter.
// All functions are pure and thread-safe; classification uses utf8proc's tables.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace optiq::unicode {

constexpr char32_t kReplacement = 0xFFFD;

// Decodes one code point at s[i], advancing i. Invalid or truncated sequences consume one maximal
// invalid subpart (as the WHATWG decoder and Python's "replace" handler do) and return -1.
int32_t decode_one(std::string_view s, size_t& i);
// Byte length of the valid UTF-8 character starting at s[i], or 0 if the bytes there are invalid.
size_t valid_char_len(std::string_view s, size_t i);
void append(std::string& out, char32_t cp);
bool is_valid(std::string_view s);
// Replaces every invalid subpart with U+FFFD.
std::string sanitize(std::string_view s);
// Code points of valid UTF-8 text (invalid subparts become U+FFFD).
std::u32string to_u32(std::string_view s);
std::string from_u32(std::u32string_view s);
size_t count_chars(std::string_view s);

// Rust's char::is_whitespace (Unicode White_Space).
bool is_whitespace(char32_t c);
// Rust's char::is_alphanumeric (categories L* and N*).
bool is_alphanumeric(char32_t c);
// Rust's char::is_numeric (categories Nd, Nl, No).
bool is_numeric(char32_t c);
// Unicode punctuation (categories P*) or ASCII punctuation (which includes symbols like $+<=>^`|~).
bool is_punctuation(char32_t c);
char32_t to_lower(char32_t c);
char32_t to_upper(char32_t c);
std::string lower(std::string_view s);
std::string upper(std::string_view s);

enum class NormForm { kNFC, kNFD, kNFKC, kNFKD };
std::string normalize(std::string_view s, NormForm form);

// GPT-2 byte-to-unicode table: byte b maps to the code point byte_to_char()[b]. char_to_byte() maps back
// (-1 for code points outside the table).
const char32_t* byte_to_char();
int char_to_byte(char32_t c);

}  // namespace optiq::unicode
