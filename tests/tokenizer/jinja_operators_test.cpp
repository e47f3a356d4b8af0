// Operator tests (src/tokenizer/jinja_operators.cpp): Python's arithmetic, sequence operators,
// '%'-formatting, ordering and `in`, through rendering.
#include <gtest/gtest.h>

#include "tests/tokenizer/jinja_test_util.h"

namespace optiq {
namespace {

using test::render;

TEST(JinjaOperators, ArithmeticFollowsPython) {
  // Floor division and modulo round toward negative infinity, for floats too.
  EXPECT_EQ(render("{{ -7.5 // 2 }}|{{ -7.5 % 2 }}|{{ 7 % -3 }}|{{ 2 ** -1 }}|{{ 2.0 ** 3 }}|{{ True + True }}|{{ 1 - 0.5 }}"),
            "-4.0|0.5|-2|0.5|8.0|2|0.5");
  EXPECT_EQ(render("{{ [1] + [2] }}|{{ (1,) + (2,) }}|{{ (1,) * 3 }}|{{ 3 * 'ab' }}|{{ 'ab' * -1 }}|{{ [0] * 0 }}"),
            "[1, 2]|(1, 2)|(1, 1, 1)|ababab||[]");
  EXPECT_EQ(render("{{ 'a' ~ [1] ~ 2.0 }}"), "a[1]2.0");
}

TEST(JinjaOperators, ArithmeticErrorsAreReported) {
  EXPECT_NE(render("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
  EXPECT_NE(render("{{ 1 // 0 }}").find("integer division or modulo by zero"), std::string::npos);
  EXPECT_NE(render("{{ 1.0 % 0 }}").find("float division by zero"), std::string::npos);
  // Python's ints are unbounded; ours are 64-bit and overflow is an error, never a wrap.
  EXPECT_NE(render("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render("{{ 2 ** 64 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render("{{ [1] + 'a' }}").find("unsupported operand type(s) for +: 'list' and 'str'"), std::string::npos);
  EXPECT_NE(render("{{ x + 1 }}").find("'x' is undefined"), std::string::npos);
  EXPECT_NE(render("{{ [1] * 2000000 }}").find("list too large"), std::string::npos);
}

TEST(JinjaOperators, PercentFormatting) {
  EXPECT_EQ(render("{{ '%5.2f|%-3d|%x|%r|%s|%%' % (3.14159, 7, 255, 'a', none) }}"), " 3.14|7  |ff|'a'|None|%");
  EXPECT_EQ(render("{{ '%s' % [1, 2] }}|{{ '%d' % 2.9 }}"), "[1, 2]|2");
  EXPECT_NE(render("{{ '%s %s' % ('a',) }}").find("not enough arguments for format string"), std::string::npos);
  EXPECT_NE(render("{{ '%s' % ('a', 'b') }}").find("not all arguments converted"), std::string::npos);
  EXPECT_NE(render("{{ '%d' % 'x' }}").find("a number is required"), std::string::npos);
  EXPECT_NE(render("{{ '%q' % 1 }}").find("unsupported format character 'q'"), std::string::npos);
}

TEST(JinjaOperators, ComparisonsAndMembership) {
  EXPECT_EQ(render("{{ [1, 2] < [1, 3] }}|{{ [1] < [1, 0] }}|{{ 'a' < 'b' }}|{{ 1 < 1.5 }}|{{ 1 == 1.0 }}|{{ 'a' != 'a' }}|{{ 2 >= 2 > 1 }}"),
            "True|True|True|True|True|False|True");
  EXPECT_EQ(render("{{ 1 in [1.0] }}|{{ 'x' in none_such }}|{{ [1, 2] in [[1, 2]] }}|{{ 'ab' not in 'cab' }}"), "True|False|True|False");
  EXPECT_NE(render("{{ 1 < 'a' }}").find("'<' not supported between instances of 'int' and 'str'"), std::string::npos);
  EXPECT_NE(render("{{ 1 in 'abc' }}").find("'in <string>' requires string as left operand, not int"), std::string::npos);
  EXPECT_NE(render("{{ 1 in 5 }}").find("argument of type 'int' is not iterable"), std::string::npos);
}

}  // namespace
}  // namespace optiq
