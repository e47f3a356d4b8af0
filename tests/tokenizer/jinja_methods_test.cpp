// Method tests (src/tokenizer/jinja_methods.cpp): methods of str, dict and list as Python defines them,
// and the sandbox's refusal of mutating ones, through rendering.
#include <gtest/gtest.h>

#include "tests/tokenizer/jinja_test_util.h"

namespace optiq {
namespace {

using ojson = nlohmann::ordered_json;
using test::render;

TEST(JinjaMethods, StringMethods) {
  EXPECT_EQ(render("{{ '  hi  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\\n\\nhi'.lstrip('\\n') }}|{{ 'hi  '.rstrip() }}"), "hi|hi|hi|hi");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a<t>b<t>c'.split('<t>')[-1] }}"),
            "['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|c");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aXa'.replace('a', 'b') }}|{{ 'hello world'.title() }}"),
            "True|True|bXb|Hello World");
  EXPECT_EQ(render("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'abc'.find('c') }}|{{ '-'.join(['a', 'b']) }}"), "ABab|2|a-b");
}

TEST(JinjaMethods, MoreStringMethods) {
  EXPECT_EQ(render("{{ 'a\\nb\\r\\nc'.splitlines() }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'a b  c'.rsplit(None, 1) }}|{{ 'a b'.rsplit() }}"),
            "['a', 'b', 'c']|['a,b', 'c']|['a b', 'c']|['a', 'b']");
  EXPECT_EQ(render("{{ 'aaa'.count('a') }}|{{ 'abc'.count('') }}|{{ 'héllo'.find('l') }}|{{ 'abcabc'.rfind('b') }}|{{ 'abc'.find('z') }}"),
            "3|4|2|4|-1");
  EXPECT_EQ(render("{{ 'Hello'.isalpha() }}{{ '12'.isdigit() }}{{ ' '.isspace() }}{{ 'AB'.isupper() }}{{ 'A1'.islower() }}{{ ''.isalpha() }}"),
            "TrueTrueTrueTrueFalseFalse");
  EXPECT_EQ(render("{{ 'hELLO wORLD'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'ab'.replace('', '-') }}"), "Hello world|bba|-a-b-");
  EXPECT_EQ(render("{{ '{:.2f}'.format(3.14159) }}|{{ '{a}-{{}}'.format(a=1) }}"), "3.14|1-{}");
  EXPECT_NE(render("{{ 'abc'.index('z') }}").find("substring not found"), std::string::npos);
  EXPECT_NE(render("{{ '{}'.format() }}").find("Replacement index out of range"), std::string::npos);
  EXPECT_NE(render("{{ 'a'.split('') }}").find("empty separator"), std::string::npos);
  EXPECT_NE(render("{{ '-'.join([1]) }}").find("sequence item 0: expected str instance, int found"), std::string::npos);
  EXPECT_NE(render("{{ 'a'.nosuch() }}").find("'str' object has no attribute 'nosuch'"), std::string::npos);
}

TEST(JinjaMethods, DictAndListMethodsReadButNeverMutate) {
  ojson ctx = {{"d", {{"a", 1}}}, {"l", {1, 2, 1}}};
  EXPECT_EQ(render("{{ d.get('x') }}|{{ d.get('x', 5) }}|{{ d.get('a') }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d.items()|list }}", ctx),
            "None|5|1|['a']|[1]|[('a', 1)]");
  EXPECT_EQ(render("{{ l.count(1) }}|{{ l.index(2) }}", ctx), "2|1");
  EXPECT_NE(render("{{ d.update({}) }}", ctx).find("SecurityError: access to attribute 'update' of 'dict' object is unsafe"), std::string::npos);
  EXPECT_NE(render("{{ l.pop() }}", ctx).find("unsafe"), std::string::npos);
  EXPECT_EQ(render("{{ d }}|{{ l }}", ctx), "{'a': 1}|[1, 2, 1]");
  EXPECT_NE(render("{{ l.index(7) }}", ctx).find("value is not in list"), std::string::npos);
  EXPECT_NE(render("{{ l.nosuch() }}", ctx).find("'list' object has no attribute 'nosuch'"), std::string::npos);
  // A callable stored in a namespace can be called as a method.
  EXPECT_EQ(render("{% set ns = namespace(f=range) %}{{ ns.f(3)|list }}"), "[0, 1, 2]");
}

}  // namespace
}  // namespace optiq
