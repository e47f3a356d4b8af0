// Lexer tests (src/tokenizer/jinja_lexer.cpp): segmentation and whitespace control, checked on lex()'s
// segments and through rendering, and the expression tokenizer.
#include <gtest/gtest.h>

#include "tests/tokenizer/jinja_test_util.h"
#include "tokenizer/jinja_internal.h"

namespace optiq {
namespace {

using namespace jinja::detail;
using test::render;

// "T:<text>" / "E:<expr body>" / "S:<stmt body>" with "@line:col", one per segment.
std::vector<std::string> segments(std::string_view src, jinja::Options opt = {}) {
  std::vector<std::string> out;
  for (const Segment& s : lex(src, opt)) {
    const char* kind = s.kind == TagKind::kText ? "T" : s.kind == TagKind::kExpr ? "E" : "S";
    out.push_back(std::string(kind) + ":" + s.text + "@" + std::to_string(s.line) + ":" + std::to_string(s.col));
  }
  return out;
}

TEST(JinjaLexer, SplitsTextAndTagsWithPositionsAndDropsComments) {
  EXPECT_EQ(segments("a{{ x }}b\n{% if y %}c{# z #}d"),
            (std::vector<std::string>{"T:a@1:1", "E: x @1:2", "T:b\n@1:9", "S: if y @2:1", "T:c@2:11", "T:d@2:19"}));
  // Closing delimiters inside string literals and balanced brackets do not end the tag.
  EXPECT_EQ(segments("{{ '}}' }}{{ {'a': {}} }}"), (std::vector<std::string>{"E: '}}' @1:1", "E: {'a': {}} @1:11"}));
  // Columns count characters, not bytes.
  EXPECT_EQ(segments("é{{x}}"), (std::vector<std::string>{"T:é@1:1", "E:x@1:2"}));
}

TEST(JinjaLexer, NewlinesAreNormalizedAndOneTrailingNewlineDropped) {
  EXPECT_EQ(segments("a\r\nb\rc\n\n"), (std::vector<std::string>{"T:a\nb\nc\n@1:1"}));
  EXPECT_EQ(render("a\r\n{{ 1 }}\r\n"), "a\n1");
}

TEST(JinjaLexer, WhitespaceControl) {
  // trim_blocks removes the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render("{% if true %}\n  x\n  {% endif %}\ny"), "  x\ny");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("a\n{{- 'b' -}}\nc"), "abc");
  EXPECT_EQ(render("a\n  {%+ if true %}b{% endif %}"), "a\n  b");
  EXPECT_EQ(render("{{ 'x' }}\n"), "x");  // keep_trailing_newline=False
  EXPECT_EQ(render("{{ 'x' }}\n\n"), "x\n");
}

TEST(JinjaLexer, TrimAndLstripBlocksFollowTheOptions) {
  jinja::Options off;
  off.trim_blocks = false;
  off.lstrip_blocks = false;
  EXPECT_EQ(render("{% if true %}\n  x\n  {% endif %}\ny", {}, off), "\n  x\n  \ny");
  jinja::Options trim_only;
  trim_only.lstrip_blocks = false;
  EXPECT_EQ(render("{% if true %}\n  x\n  {% endif %}\ny", {}, trim_only), "  x\n  y");
  // '+%}' keeps the newline trim_blocks would remove; expression tags never trim.
  EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");
  EXPECT_EQ(render("{{ 1 }}\n{{ 2 }}"), "1\n2");
  // Comments are block-like for lstrip/trim; '-' strips whitespace of every kind, newlines included.
  EXPECT_EQ(render("a\n  {# c #}\nb"), "a\nb");
  EXPECT_EQ(render("a \t\n {#- c -#} \n b"), "ab");
}

TEST(JinjaLexer, RawBlocksAreVerbatim) {
  EXPECT_EQ(render("{% raw %}{{ x }}{% if %}{# c #}{% endraw %}"), "{{ x }}{% if %}{# c #}");
  EXPECT_EQ(render("{% raw %}a {%- endraw %}b"), "ab");
  EXPECT_NE(render("{% raw %}{{ x }}").find("missing {% endraw %}"), std::string::npos);
}

TEST(JinjaLexer, UnclosedTagsReportWhereTheyOpen) {
  EXPECT_EQ(render("ab\n  {{ x"), "PARSE ERROR: template syntax error at line 2, column 3: unclosed '{{'");
  EXPECT_EQ(render("{% if x %}\n{% if y"), "PARSE ERROR: template syntax error at line 2, column 1: unclosed '{%'");
  EXPECT_EQ(render("{# note"), "PARSE ERROR: template syntax error at line 1, column 1: unclosed comment");
}

// "<kind>:<text>@col" per token; strings and numbers show their value.
std::vector<std::string> tokens(const std::string& body) {
  std::vector<std::string> out;
  for (const Token& t : tokenize(body, 1, 1)) {
    std::string v = t.kind == Tok::kInt ? std::to_string(t.i) : t.kind == Tok::kFloat ? std::to_string(t.f) : t.s;
    const char* kind = t.kind == Tok::kName ? "N" : t.kind == Tok::kStr ? "S" : t.kind == Tok::kInt ? "I"
                     : t.kind == Tok::kFloat ? "F" : t.kind == Tok::kOp ? "O" : "END";
    out.push_back(std::string(kind) + ":" + v + "@" + std::to_string(t.col));
  }
  return out;
}

TEST(JinjaLexer, TokenizesNamesNumbersOperatorsAndStrings) {
  // Columns start after the two-character tag opener at column 1.
  EXPECT_EQ(tokens(" x.y|f(1_000, 2.5e3) // 2 ** -1"),
            (std::vector<std::string>{"N:x@4", "O:.@5", "N:y@6", "O:|@7", "N:f@8", "O:(@9", "I:1000@10", "O:,@15",
                                      "F:2500.000000@17", "O:)@22", "O://@24", "I:2@27", "O:**@29", "O:-@32",
                                      "I:1@33", "END:@34"}));
  // Escapes: \xNN, \uNNNN, octal, and unknown escapes kept as written (Python's rules).
  auto t = tokenize(R"('a\x41\u00e9\101\q' "it's")", 1, 1);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].s, "aAéA\\q");
  EXPECT_EQ(t[1].s, "it's");
  EXPECT_THROW(tokenize("99999999999999999999", 1, 1), JinjaError);
  EXPECT_THROW(tokenize("'abc", 1, 1), JinjaError);
  EXPECT_THROW(tokenize("a ; b", 1, 1), JinjaError);
  EXPECT_THROW(tokenize(R"('\u12')", 1, 1), JinjaError);
}

TEST(JinjaLexer, PythonWhitespaceIncludesTheAsciiSeparators) {
  EXPECT_TRUE(is_py_space(U' '));
  EXPECT_TRUE(is_py_space(U'\u3000'));
  EXPECT_TRUE(is_py_space(0x1F));
  EXPECT_FALSE(is_py_space(U'x'));
  EXPECT_FALSE(is_py_space(0x1B));
}

}  // namespace
}  // namespace optiq
