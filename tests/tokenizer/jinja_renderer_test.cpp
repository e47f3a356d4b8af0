// Renderer tests (src/tokenizer/jinja_renderer.cpp): the reference renders of real chat templates (Jinja2
// 3.1.2 in HF's environment), statements, expression evaluation and runtime errors, through the public API.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_util.h"
#include "tests/tokenizer/jinja_test_util.h"
#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace optiq {
namespace {

using ojson = nlohmann::ordered_json;
using test::render;

TEST(ChatTemplateFixtures, EveryRenderIsByteIdenticalAndEveryErrorRaised) {
  std::ifstream f(test::fixture("tokenizers/templates.json"));
  ASSERT_TRUE(f.good());
  ojson all = ojson::parse(f);
  size_t n_ok = 0, n_err = 0;
  for (auto& [name, cases] : all["templates"].items()) {
    auto tok = Tokenizer::from_dir(test::fixture("tokenizers/" + name));
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    ASSERT_TRUE((*tok)->has_chat_template());
    for (auto& [case_name, c] : cases.items()) {
      const ojson& in = c["input"];
      ojson extra = ojson::object();
      for (auto& [k, v] : in.items())
        if (k != "messages" && k != "tools" && k != "add_generation_prompt") extra[k] = v;
      bool gen = in.value("add_generation_prompt", true);
      auto r = (*tok)->apply_chat_template(in["messages"], in.contains("tools") ? in["tools"] : ojson(), gen, extra);
      if (c.contains("error")) {
        EXPECT_FALSE(r.ok()) << name << "/" << case_name << " rendered: " << (r.ok() ? *r : "");
        ++n_err;
      } else {
        ASSERT_TRUE(r.ok()) << name << "/" << case_name << ": " << r.status().ToString();
        EXPECT_EQ(*r, c["output"].get<std::string>()) << name << "/" << case_name;
        ++n_ok;
      }
    }
  }
  EXPECT_GT(n_ok, 10u);
  EXPECT_GT(n_err, 1u);
}

TEST(JinjaRenderer, ExpressionsAndPythonStringification) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 7 / 2 }}"), "7|3|-4|1|2|1024|3.5");
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.0, {'k': [2]}] }}"), "[1, 'a', None, True, 1.0, {'k': [2]}]");
  EXPECT_EQ(render("{{ none }}|{{ True }}|{{ 1e20 }}|{{ 0.1 + 0.2 }}|{{ 1e-5 }}|{{ (1, 2) }}|{{ (1,) }}"),
            "None|True|1e+20|0.30000000000000004|1e-05|(1, 2)|(1,)");
  EXPECT_EQ(render("{{ \"it's\" }}|{{ ['it\\'s', \"q\\\"\", 'a\\nb'] }}"), "it's|[\"it's\", 'q\"', 'a\\nb']");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }}|{{ 'ab' * 3 }}|{{ 'x' if 0 else 'y' }}|{{ 'x' if 1 }}|{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}"),
            "a1None|ababab|y|x|True|False");
  EXPECT_EQ(render("{{ 'b' in 'abc' }}|{{ 2 not in [1, 2] }}|{{ 'k' in {'k': 1} }}|{{ not 0 and 'x' or 'y' }}"), "True|False|True|x");
  EXPECT_EQ(render("{{ 'abcdef'[1:4] }}|{{ 'abcdef'[::-1] }}|{{ [1,2,3,4][-2:] }}|{{ [1,2,3,4][::2] }}|{{ 'héllo'[1] }}|{{ [1,2][5] }}"),
            "bcd|fedcba|[3, 4]|[1, 3]|é|");
  EXPECT_EQ(render("{{ '%s=%d' % ('x', 3) }}|{{ '{} and {}'.format(1, 'b') }}|{{ '{0}{0}'.format('z') }}"), "x=3|1 and b|zz");
}

TEST(JinjaRenderer, ControlFlowLoopsAndScopes) {
  EXPECT_EQ(render("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "103TrueFalse3;212FalseFalse3;321FalseTrue3;");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}|{% for x in [1,2,3,4] if x is even %}{{ x }}{% endfor %}"), "empty|24");
  EXPECT_EQ(render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "0134");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}"), "a=1,b=2,");
  EXPECT_EQ(render("{% for x in 'ab' %}{{ loop.previtem }}{{ x }}{{ loop.nextitem }}|{{ loop.cycle('o', 'e') }} {% endfor %}"), "ab|o ab|e ");
  // set in a loop does not leak; namespace does.
  EXPECT_EQ(render("{% set x = 1 %}{% set ns = namespace(y=1) %}{% for i in [1] %}{% set x = 2 %}{% set ns.y = 2 %}{% endfor %}{{ x }}{{ ns.y }}"), "12");
  EXPECT_EQ(render("{% if 0 %}a{% elif 1 %}b{% else %}c{% endif %}"), "b");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set blk %}x{{ 1 + 1 }}{% endset %}{{ blk }}"), "12|x2");
  EXPECT_EQ(render("{% macro m(a, b='d') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(1, b=2) }}{{ m('x', 'y') }}"), "<1d><12><xy>");
  EXPECT_EQ(render("{# comment #}a{% raw %}{{ x }}{% endraw %}b"), "a{{ x }}b");
  EXPECT_EQ(render("{{ strftime_now('%d %b') }}"), "[%d %b]");
}

TEST(JinjaRenderer, CallFilterAndSetBlocks) {
  EXPECT_EQ(render("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}x{% endcall %}"), "<x>");
  EXPECT_EQ(render("{% filter upper %}ab{{ 'c' }}{% endfilter %}|{% set x | upper %}ab{% endset %}{{ x }}"), "ABC|AB");
  // transformers' {% generation %} marker renders its body unchanged.
  EXPECT_EQ(render("a{% generation %}b{% endgeneration %}c"), "abc");
}

TEST(JinjaRenderer, MacrosSeeTemplateScopeAndCollectExtraKeywords) {
  // A macro sees the template's variables, not the locals of the loop that calls it.
  EXPECT_EQ(render("{% macro m() %}[{{ y }}]{% endmacro %}{% for y in [1] %}{{ m() }}{% endfor %}"), "[]");
  EXPECT_EQ(render("{% set g = 5 %}{% macro m() %}{{ g }}{% endmacro %}{{ m() }}"), "5");
  EXPECT_EQ(render("{% macro m(a) %}{{ kwargs }}{{ varargs }}{% endmacro %}{{ m(1, z=2) }}"), "{'z': 2}()");
  EXPECT_EQ(render("{% macro m(a, b=a ~ '!') %}{{ b }}{% endmacro %}{{ m('x') }}"), "x!");
  EXPECT_NE(render("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}").find("takes 1 arguments, got 2"), std::string::npos);
}

TEST(JinjaRenderer, AccessAndUnpacking) {
  ojson ctx = {{"m", {{"role", "user"}, {"parts", {"a", "b"}}}}};
  EXPECT_EQ(render("{{ m.role }}|{{ m['role'] }}|{{ m.parts[-1] }}|{{ m.parts[0] }}|{{ m.missing }}|{{ m.parts[9] }}", ctx),
            "user|user|b|a||");
  EXPECT_EQ(render("{{ [1,2,3,4,5][1:-1:2] }}|{{ 'abc'[-10:10] }}|{{ [1,2,3][::-2] }}|{{ (1, 2, 3)[1:] }}"), "[2, 4]|abc|[3, 1]|(2, 3)");
  EXPECT_EQ(render("{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }},{% endfor %}"), "3,7,");
  EXPECT_EQ(render("{{ -(1.5) }}|{{ +True }}|{{ not none }}|{{ 0 or '' or 'z' }}|{{ 1 and 0 }}"), "-1.5|1|True|z|0");
  EXPECT_NE(render("{% for a, b in [(1, 2, 3)] %}{% endfor %}").find("cannot unpack 3 values into 2"), std::string::npos);
  EXPECT_NE(render("{{ 'abc'[::0] }}").find("slice step cannot be zero"), std::string::npos);
  EXPECT_NE(render("{{ 5[0:1] }}").find("'int' object is not subscriptable"), std::string::npos);
  EXPECT_NE(render("{% for x in 5 %}{% endfor %}").find("'int' object is not iterable"), std::string::npos);
  EXPECT_NE(render("{{ {[1]: 2} }}").find("unhashable type: 'list'"), std::string::npos);
}

TEST(JinjaRenderer, LoopControlOutsideALoopAndContextShapes) {
  EXPECT_NE(render("{% break %}").find("'break' outside a loop"), std::string::npos);
  // A macro body runs outside the caller's loop.
  EXPECT_NE(render("{% macro m() %}{% continue %}{% endmacro %}{% for x in [1] %}{{ m() }}{% endfor %}").find("'continue' outside a loop"),
            std::string::npos);
  // Context keys become variables, JSON types become Python values; a non-object context adds none.
  EXPECT_EQ(render("{{ n }}|{{ f }}|{{ b }}|{{ z }}|{{ l }}", {{"n", 3}, {"f", 0.5}, {"b", true}, {"z", nullptr}, {"l", {1, "x"}}}),
            "3|0.5|True|None|[1, 'x']");
  EXPECT_EQ(render("[{{ x }}]", ojson::array({1})), "[]");
}

TEST(JinjaRenderer, ErrorsCarryLineAndColumn) {
  std::string e = render("line1\n{% if x %}\n{{ 1 + }}\n{% endif %}");
  EXPECT_NE(e.find("PARSE ERROR"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  e = render("{% for x in y %}");
  EXPECT_NE(e.find("endfor"), std::string::npos) << e;
  e = render("{% include 'x' %}");
  EXPECT_NE(e.find("unsupported"), std::string::npos) << e;
  e = render("\n\n  {{ raise_exception('boom') }}");
  EXPECT_NE(e.find("RENDER ERROR"), std::string::npos) << e;
  EXPECT_NE(e.find("boom"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  EXPECT_NE(render("{{ 1 + 'a' }}").find("unsupported operand"), std::string::npos);
  EXPECT_NE(render("{{ x.y }}").find("'x' is undefined"), std::string::npos);
  EXPECT_NE(render("{% set l = [] %}{{ l.append(1) }}").find("unsafe"), std::string::npos);
  EXPECT_NE(render("{{ 'a' * 100000000 }}").find("RENDER ERROR"), std::string::npos);
  EXPECT_NE(render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").find("too deep"), std::string::npos);
  EXPECT_NE(render("{{ " + std::string(5000, '(') + " }}").find("PARSE ERROR"), std::string::npos);
}

}  // namespace
}  // namespace optiq
