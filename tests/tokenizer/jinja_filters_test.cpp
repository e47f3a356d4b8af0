// Builtins tests (src/tokenizer/jinja_filters.cpp): filters, tests and global functions as Jinja2 3.x
// defines them (tojson as HF's, json.dumps with ensure_ascii=False), through rendering.
#include <gtest/gtest.h>

#include "tests/tokenizer/jinja_test_util.h"

namespace optiq {
namespace {

using ojson = nlohmann::ordered_json;
using test::render;

TEST(JinjaFilters, Filters) {
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

TEST(JinjaFilters, TextFilters) {
  EXPECT_EQ(render("{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb\\n\\nc'|indent(2, true, true) }}|{{ 'x'|indent('> ', first=true) }}"),
            "a\n  b\n\n  c|  a\n  b\n  \n  c|> x");
  EXPECT_EQ(render("[{{ 'ab'|center(6) }}]|[{{ 'abc'|center(6) }}]|[{{ 'abcdef'|center(2) }}]"), "[  ab  ]|[ abc  ]|[abcdef]");
  EXPECT_EQ(render("{{ '<a href=\"x\">&'|e }}|{{ 'one two  three'|wordcount }}|{{ 'abc'|reverse }}|{{ 'hi there'|title }}|{{ 'hI'|capitalize }}"),
            "&lt;a href=&#34;x&#34;&gt;&amp;|3|cba|Hi There|Hi");
  EXPECT_EQ(render("{{ '%s-%s'|format(1, 2) }}|{{ 'xax'|trim('x') }}|{{ undefined_name|trim }}|{{ 'aaa'|replace('a', 'b', 2) }}"), "1-2|a||bba");
}

TEST(JinjaFilters, NumberFilters) {
  EXPECT_EQ(render("{{ ' 42 '|int }}|{{ '3.9'|int }}|{{ 'x'|int(7) }}|{{ 3.9|int }}|{{ true|int }}|{{ '1.5'|float }}|{{ 'x'|float }}|{{ 2|float }}"),
            "42|3|7|3|1|1.5|0.0|2.0");
  EXPECT_EQ(render("{{ 2.567|round(2) }}|{{ 2.1|round(method='ceil') }}|{{ 2.9|round(0, 'floor') }}|{{ (-3)|abs }}|{{ (-1.5)|abs }}"),
            "2.57|3.0|2.0|3|1.5");
  ojson ctx = {{"users", ojson::array({{{"name", "b"}, {"age", 3}}, {{"name", "A"}, {"age", 1}}})}};
  EXPECT_EQ(render("{{ users|sum(attribute='age') }}|{{ [0.5, 1]|sum(start=1) }}|{{ users|min(attribute='age') }}|{{ users|max(attribute='name') }}", ctx),
            "4|2.5|{'name': 'A', 'age': 1}|{'name': 'b', 'age': 3}");
  EXPECT_EQ(render("{{ [3, 1]|min }}|{{ ['b', 'A']|max }}|{{ ['b', 'A']|max(case_sensitive=true) }}|{{ []|max }}"), "1|b|b|");
  EXPECT_NE(render("{{ 'x'|abs }}").find("bad operand type for abs(): 'str'"), std::string::npos);
}

TEST(JinjaFilters, CollectionFilters) {
  ojson ctx = {{"d", {{"a", 1}, {"b", 2}}}, {"u", ojson::array({{{"n", "x"}}, {{"n", "y"}, {"k", 1}}})}};
  EXPECT_EQ(render("{{ d|dictsort(by='value', reverse=true) }}|{{ d|attr('a') }}|{{ [1, 2]|tojson(separators=(',', ':')) }}", ctx),
            "[('b', 2), ('a', 1)]||[1,2]");
  EXPECT_EQ(render("{{ u|map(attribute='k', default=0)|list }}|{{ u|selectattr('k')|list|length }}|{{ [0, 1, '', 'a']|select|list }}", ctx),
            "[0, 1]|1|[1, 'a']");
  EXPECT_EQ(render("{{ ['B', 'a', 'b']|unique|list }}|{{ ['B', 'a', 'b']|unique(case_sensitive=true)|list }}|{{ ['b', 'A', 'c']|sort(reverse=true) }}"),
            "['B', 'a']|['B', 'a', 'b']|['c', 'b', 'A']");
  EXPECT_EQ(render("{{ [1, [2]]|first }}|{{ []|first }}|{{ 'ab'|list }}|{{ none_such|list }}|{{ none_such|length }}"), "1||['a', 'b']|[]|0");
  EXPECT_NE(render("{{ [1, 2, 3]|batch(2) }}").find("filter 'batch' is not supported"), std::string::npos);
  EXPECT_NE(render("{{ 1|nosuch }}").find("no filter named 'nosuch'"), std::string::npos);
  EXPECT_NE(render("{{ 1|length }}").find("object of type 'int' has no len()"), std::string::npos);
  EXPECT_NE(render("{{ [1, 'a']|sort }}").find("'<' not supported"), std::string::npos);
}

TEST(JinjaFilters, Tests) {
  ojson ctx = {{"s", "x"}, {"n", 1}, {"f", 1.5}, {"l", ojson::array()}, {"m", ojson::object()}, {"z", nullptr}, {"b", false}};
  EXPECT_EQ(render("{{ s is string }}{{ n is number }}{{ f is number }}{{ l is sequence }}{{ m is mapping }}{{ z is none }}"
                   "{{ b is false }}{{ b is boolean }}{{ q is undefined }}{{ s is defined }}{{ l is iterable }}{{ n is integer }}", ctx),
            "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(render("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 2 is equalto 2 }}{{ 'a' is in 'abc' }}{{ m is not string }}{{ n is true }}", ctx),
            "TrueTrueTrueTrueTrueTrueFalse");
}

TEST(JinjaFilters, MoreTests) {
  EXPECT_EQ(render("{{ none is none }}{{ 1 is callable }}{{ range is callable }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ 3 is gt 2 }}"
                   "{{ 3 is ge 3 }}{{ 2 is lt 3 }}{{ 3 is ne 3 }}{{ 1.5 is float }}{{ 1 is float }}{{ 2 is le 1 }}"),
            "TrueFalseTrueTrueTrueTrueTrueTrueFalseTrueFalseFalse");
  EXPECT_NE(render("{{ 1 is nosuch }}").find("no test named 'nosuch'"), std::string::npos);
  EXPECT_NE(render("{{ 1.5 is odd }}").find("needs an integer"), std::string::npos);
  EXPECT_NE(render("{{ 3 is divisibleby 0 }}").find("divisibleby needs a non-zero integer"), std::string::npos);
}

TEST(JinjaFilters, GlobalFunctions) {
  EXPECT_EQ(render("{{ range(5, 0, -2)|list }}|{{ range(3)|list }}|{{ range(2, 4)|list }}"), "[5, 3, 1]|[0, 1, 2]|[2, 3]");
  EXPECT_EQ(render("{{ dict(a=1) }}|{{ namespace(a=1) }}|{{ dict({'b': 2}, a=1) }}|{{ namespace({'x': 1}).x }}"),
            "{'a': 1}|<Namespace {'a': 1}>|{'b': 2, 'a': 1}|1");
  EXPECT_EQ(render("{{ strftime_now() }}"), "[%Y-%m-%d]");
  EXPECT_NE(render("{{ range(1, 2, 0) }}").find("range() arg 3 must not be zero"), std::string::npos);
  EXPECT_NE(render("{{ range('a') }}").find("range() arguments must be integers"), std::string::npos);
  EXPECT_NE(render("{{ range(2000000) }}").find("range() too large"), std::string::npos);
  EXPECT_NE(render("{{ dict(1) }}").find("must be a mapping"), std::string::npos);
  EXPECT_NE(render("{{ raise_exception(message='m') }}").find("TemplateError: m"), std::string::npos);
}

}  // namespace
}  // namespace optiq
