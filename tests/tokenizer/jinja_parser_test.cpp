// Parser tests (src/tokenizer/jinja_parser.cpp): the shape of the trees it builds (precedence,
// statements) and its syntax errors, which carry line and column.
#include <gtest/gtest.h>

#include "tests/tokenizer/jinja_test_util.h"
#include "tokenizer/jinja_internal.h"

namespace optiq {
namespace {

using namespace jinja::detail;
using jinja::NK;
using jinja::Node;
using test::render;

// A Lisp-like dump of a tree: "(<kind>[:name] kids... [| extra...])"; literals print as repr(), names bare,
// absent children as "_".
std::string dump(const Node* n) {
  if (!n) return "_";
  static const char* kinds[] = {"block", "text", "out", "if", "for", "set", "setblock", "macro", "break", "continue",
                                "callblock", "filterblock", "lit", "name", "attr", "item", "slice", "call", "filter",
                                "test", "neg", "pos", "not", "bin", "and", "or", "cmp", "cond", "list", "tuple", "dict"};
  if (n->kind == NK::kLiteral) return repr(n->lit, 0);
  if (n->kind == NK::kName) return n->name;
  std::string s = std::string("(") + kinds[static_cast<int>(n->kind)];
  if (!n->name.empty()) s += ":" + n->name;
  for (auto& name : n->names) s += " " + name + "=";
  if (n->flag) s += " !";
  for (auto& k : n->kids) s += " " + dump(k.get());
  if (!n->extra.empty()) {
    s += " |";
    for (auto& k : n->extra) s += " " + dump(k.get());
  }
  return s + ")";
}

std::string tree(std::string_view src) { return dump(parse(lex(src, jinja::Options{})).get()); }

TEST(JinjaParser, ExpressionPrecedenceFollowsJinja) {
  EXPECT_EQ(tree("{{ 1 + 2 * 3 ** 2 }}"), "(block (out (bin:+ 1 (bin:* 2 (bin:** 3 2)))))");
  EXPECT_EQ(tree("{{ a ~ b + c }}"), "(block (out (bin:~ a (bin:+ b c))))");
  EXPECT_EQ(tree("{{ not a in b or c and d }}"), "(block (out (or (not (cmp in= a b)) (and c d))))");
  EXPECT_EQ(tree("{{ 1 < x <= 3 }}"), "(block (out (cmp <= <== 1 x 3)))");
  EXPECT_EQ(tree("{{ a not in b }}"), "(block (out (cmp notin= a b)))");
  // Filters and tests bind tighter than binary operators; call arguments go to kids, keywords to names/extra.
  EXPECT_EQ(tree("{{ 1 + x|join(', ', attribute='n') }}"), "(block (out (bin:+ 1 (filter:join attribute= x ', ' | 'n'))))");
  EXPECT_EQ(tree("{{ x is not divisibleby 3 }}"), "(block (out (test:divisibleby ! x 3)))");
  EXPECT_EQ(tree("{{ 'a' if x else 'b' }}|{{ 'a' if x }}"),
            "(block (out (cond x 'a' 'b')) (text:|) (out (cond x 'a')))");
  EXPECT_EQ(tree("{{ m.a[0][1:] }}"), "(block (out (slice (item (attr:a m) 0) | 1 _ _)))");
  EXPECT_EQ(tree("{{ ('a' 'b', [1], {'k': 2}, ()) }}"), "(block (out (tuple 'ab' (list 1) (dict 'k' | 2) (tuple))))");
}

TEST(JinjaParser, StatementsNestIntoBlocks) {
  EXPECT_EQ(tree("{% if a %}1{% elif b %}2{% else %}3{% endif %}"),
            "(block (if a (block (text:1)) b (block (text:2)) | (block (text:3))))");
  EXPECT_EQ(tree("{% for k, v in d if v %}x{% else %}y{% endfor %}"),
            "(block (for k= v= d (block (text:x)) v | (block (text:y))))");
  EXPECT_EQ(tree("{% set a, b = 1, 2 %}{% set ns.x = 3 %}"), "(block (set a= b= (tuple 1 2)) (set ns.x= 3))");
  EXPECT_EQ(tree("{% macro m(a, b=1) %}{{ a }}{% endmacro m %}"), "(block (macro:m a= b= (block (out a)) | _ 1))");
  EXPECT_EQ(tree("{% set x | trim %}y{% endset %}"), "(block (setblock x= (block (text:y)) | (filter:trim _)))");
  EXPECT_EQ(tree("{% for x in y %}{% break %}{% continue %}{% endfor %}"), "(block (for x= y (block (break) (continue)) _))");
}

TEST(JinjaParser, SyntaxErrorsNameTheProblemAndItsPosition) {
  const std::string pre = "PARSE ERROR: template syntax error at ";
  EXPECT_EQ(render("{{ 1 + }}"), pre + "line 1, column 8: expected an expression at end of tag");
  EXPECT_EQ(render("a\n  {{ f(x=1, 2) }}"), pre + "line 2, column 13: positional argument after keyword argument, got '2'");
  EXPECT_EQ(render("{% if x %}\nabc"), pre + "line 2, column 1: missing '{% endif %}' (template ended)");
  EXPECT_EQ(render("{% if x %}a{% else %}b{% else %}c{% endif %}"), pre + "line 1, column 23: unsupported or unknown tag 'else'");
  EXPECT_EQ(render("{% for x in y recursive %}{% endfor %}"), pre + "line 1, column 15: recursive loops are not supported, got 'recursive'");
  EXPECT_EQ(render("{% macro f(a=1, b) %}{% endmacro %}"), pre + "line 1, column 18: non-default argument follows default argument, got ')'");
  EXPECT_EQ(render("{{ x[1:2:3:4] }}"), pre + "line 1, column 12: too many ':' in slice, got '4'");
  EXPECT_EQ(render("{{ x y }}"), pre + "line 1, column 6: unexpected token, got 'y'");
  EXPECT_EQ(render("{% call(x) m() %}{% endcall %}"), pre + "line 1, column 8: call blocks with caller arguments are not supported, got '('");
}

TEST(JinjaParser, NestingLimitsFailCleanly) {
  std::string deep;
  for (int k = 0; k < 300; ++k) deep += "{% if 1 %}";
  EXPECT_NE(render(deep).find("blocks nested too deeply"), std::string::npos);
  EXPECT_NE(render("{{ " + std::string(300, '[') + std::string(300, ']') + " }}").find("expression nested too deeply"), std::string::npos);
  EXPECT_NE(render("{{ " + std::string(300, '-') + "1 }}").find("expression nested too deeply"), std::string::npos);
  // Depth is counted per nesting, not per tag: many sibling blocks are fine.
  std::string wide;
  for (int k = 0; k < 300; ++k) wide += "{% if 1 %}x{% endif %}";
  EXPECT_EQ(render(wide), std::string(300, 'x'));
}

}  // namespace
}  // namespace optiq
