// Chat-template tests: the reference renders (Jinja2 3.1.2 in HF's environment) and interpreter unit tests.
#include "tokenizer/jinja.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"

namespace optiq {
namespace {

using ojson = nlohmann::ordered_json;

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

std::string render(const std::string& src, const ojson& ctx = ojson::object()) {
  jinja::Options o;
  o.strftime_now = [](const std::string& fmt) { return "[" + fmt + "]"; };
  auto t = jinja::Template::parse(src, o);
  if (!t.ok()) return "PARSE ERROR: " + t.status().message();
  auto r = (*t)->render(ctx);
  if (!r.ok()) return "RENDER ERROR: " + r.status().message();
  return *r;
}

TEST(Jinja, ExpressionsAndPythonStringification) {
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

TEST(Jinja, StringMethods) {
  EXPECT_EQ(render("{{ '  hi  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\\n\\nhi'.lstrip('\\n') }}|{{ 'hi  '.rstrip() }}"), "hi|hi|hi|hi");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a<t>b<t>c'.split('<t>')[-1] }}"),
            "['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|c");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aXa'.replace('a', 'b') }}|{{ 'hello world'.title() }}"),
            "True|True|bXb|Hello World");
  EXPECT_EQ(render("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'abc'.find('c') }}|{{ '-'.join(['a', 'b']) }}"), "ABab|2|a-b");
}

TEST(Jinja, Filters) {
  ojson ctx = {{"xs", {3, 1, 2, 1}}, {"users", ojson::array({{{"name", "b"}, {"age", 3}}, {{"name", "A"}, {"age", 1}}})},
               {"d", {{"b", 1}, {"a", 2}}}};
  EXPECT_EQ(render("{{ xs|length }}|{{ xs|first }}|{{ xs|last }}|{{ xs|sort }}|{{ xs|unique|list }}|{{ xs|reverse|list }}|{{ xs|sum }}|{{ xs|max }}", ctx),
            "4|3|1|[1, 1, 2, 3]|[3, 1, 2]|[1, 2, 1, 3]|7|3");
  EXPECT_EQ(render("{{ users|map(attribute='name')|join(', ') }}|{{ users|selectattr('age', 'gt', 2)|map(attribute='name')|list }}|"
                   "{{ users|rejectattr('age', 'equalto', 3)|list|length }}|{{ users|sort(attribute='name')|map(attribute='age')|list }}", ctx),
            "b, A|['b']|1|[1, 3]");
  EXPECT_EQ(render("{{ d|dictsort }}|{{ d|items|list }}|{{ xs|select('odd')|list }}|{{ xs|reject('odd')|list }}|{{ ['a','B']|map('upper')|list }}", ctx),
            "[('a', 2), ('b', 1)]|[('b', 1), ('a', 2)]|[3, 1, 1]|[2]|['A', 'B']");
  EXPECT_EQ(render("{{ missing|default('dflt') }}|{{ ''|default('e', true) }}|{{ ' x '|trim }}|{{ 'a'|upper }}{{ 'B'|lower }}|{{ 'aa'|replace('a', 'b') }}|{{ 42|string }}|{{ '7'|int + 1 }}"),
            "dflt|e|x|Ab|bb|42|8");
  EXPECT_EQ(render("{{ d|tojson }}|{{ {'k': 'é\"\\n', 'n': [1, 2.5, none, true]}|tojson }}", ctx),
            "{\"b\": 1, \"a\": 2}|{\"k\": \"é\\\"\\n\", \"n\": [1, 2.5, null, true]}");
  EXPECT_EQ(render("{{ {'a': [1, {}], 'b': {}}|tojson(indent=2) }}"), "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": {}\n}");
  EXPECT_EQ(render("{{ {'é': 1}|tojson(ensure_ascii=true) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}"), "{\"\\u00e9\": 1}|{\"a\": 2, \"b\": 1}");
}

TEST(Jinja, Tests) {
  ojson ctx = {{"s", "x"}, {"n", 1}, {"f", 1.5}, {"l", ojson::array()}, {"m", ojson::object()}, {"z", nullptr}, {"b", false}};
  EXPECT_EQ(render("{{ s is string }}{{ n is number }}{{ f is number }}{{ l is sequence }}{{ m is mapping }}{{ z is none }}"
                   "{{ b is false }}{{ b is boolean }}{{ q is undefined }}{{ s is defined }}{{ l is iterable }}{{ n is integer }}", ctx),
            "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(render("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 2 is equalto 2 }}{{ 'a' is in 'abc' }}{{ m is not string }}{{ n is true }}", ctx),
            "TrueTrueTrueTrueTrueTrueFalse");
}

TEST(Jinja, ControlFlowLoopsAndScopes) {
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

TEST(Jinja, WhitespaceControl) {
  // trim_blocks removes the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render("{% if true %}\n  x\n  {% endif %}\ny"), "  x\ny");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("a\n{{- 'b' -}}\nc"), "abc");
  EXPECT_EQ(render("a\n  {%+ if true %}b{% endif %}"), "a\n  b");
  EXPECT_EQ(render("{{ 'x' }}\n"), "x");  // keep_trailing_newline=False
  EXPECT_EQ(render("{{ 'x' }}\n\n"), "x\n");
}

TEST(Jinja, ErrorsCarryLineAndColumn) {
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
