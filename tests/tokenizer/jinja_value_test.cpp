// Value tests (src/tokenizer/jinja_value.cpp): Python's truthiness, equality, str()/repr() and json.dumps,
// checked on Values directly.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tokenizer/jinja_internal.h"

namespace optiq {
namespace {

using namespace jinja::detail;
using ojson = nlohmann::ordered_json;

Value list(List l, bool tuple = false) {
  Value v = Value::make_list(std::move(l));
  v.tuple = tuple;
  return v;
}

Value dict(std::vector<std::pair<Value, Value>> items) {
  Value v = Value::make_dict();
  for (auto& [k, x] : items) v.dict->set(k, x);
  return v;
}

std::string dumps(const Value& v, JsonOpts o = {}) {
  std::string out;
  to_json(out, v, o, 0);
  return out;
}

TEST(JinjaValue, TruthinessFollowsPython) {
  EXPECT_FALSE(truthy(Value::undefined("x")));
  EXPECT_FALSE(truthy(Value::none()));
  EXPECT_FALSE(truthy(Value::integer(0)));
  EXPECT_FALSE(truthy(Value::real(0.0)));
  EXPECT_FALSE(truthy(Value::str("")));
  EXPECT_FALSE(truthy(list({})));
  EXPECT_FALSE(truthy(Value::make_dict()));
  EXPECT_TRUE(truthy(Value::real(-0.5)));
  EXPECT_TRUE(truthy(Value::str(" ")));
  EXPECT_TRUE(truthy(list({Value::none()})));
  Value ns = Value::make_dict();
  ns.namespace_ = true;
  EXPECT_TRUE(truthy(ns));  // an object, not a container
}

TEST(JinjaValue, EqualityCrossesNumericTypesAndIgnoresDictOrder) {
  EXPECT_TRUE(equal(Value::integer(1), Value::real(1.0)));
  EXPECT_TRUE(equal(Value::boolean(true), Value::integer(1)));
  EXPECT_FALSE(equal(Value::str("1"), Value::integer(1)));
  EXPECT_TRUE(equal(list({Value::integer(1), Value::str("a")}), list({Value::real(1.0), Value::str("a")}, true)));
  EXPECT_FALSE(equal(list({Value::integer(1)}), list({Value::integer(1), Value::integer(2)})));
  EXPECT_TRUE(equal(dict({{Value::str("a"), Value::integer(1)}, {Value::str("b"), Value::integer(2)}}),
                    dict({{Value::str("b"), Value::integer(2)}, {Value::str("a"), Value::integer(1)}})));
  EXPECT_TRUE(equal(Value::none(), Value::none()));
  // Namespaces compare by identity.
  Value a = Value::make_dict(), b = Value::make_dict();
  a.namespace_ = b.namespace_ = true;
  EXPECT_TRUE(equal(a, a));
  EXPECT_FALSE(equal(a, b));
}

TEST(JinjaValue, DictKeepsInsertionOrderAndOverwritesInPlace) {
  Value d = dict({{Value::str("b"), Value::integer(1)}, {Value::str("a"), Value::integer(2)}});
  d.dict->set(Value::str("b"), Value::integer(3));
  d.dict->set(Value::integer(1), Value::str("one"));
  EXPECT_EQ(to_str(d), "{'b': 3, 'a': 2, 1: 'one'}");
  // 1.0 and True hash like 1 in Python: the same key.
  ASSERT_NE(d.dict->find(Value::real(1.0)), nullptr);
  EXPECT_EQ(d.dict->find(Value::boolean(true))->s, "one");
  EXPECT_EQ(d.dict->find_str("zz"), nullptr);
}

TEST(JinjaValue, FloatReprMatchesPython) {
  EXPECT_EQ(float_repr(1.5), "1.5");
  EXPECT_EQ(float_repr(-0.0), "-0.0");
  EXPECT_EQ(float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(float_repr(1e16), "1e+16");
  EXPECT_EQ(float_repr(0.0001), "0.0001");
  EXPECT_EQ(float_repr(0.00001), "1e-05");
  EXPECT_EQ(float_repr(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(float_repr(123456789.125), "123456789.125");
  EXPECT_EQ(float_repr(-2.5e-300), "-2.5e-300");
  EXPECT_EQ(float_repr(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(float_repr(std::nan("")), "nan");
}

TEST(JinjaValue, StrAndReprMatchPython) {
  EXPECT_EQ(str_repr("a"), "'a'");
  EXPECT_EQ(str_repr("it's"), "\"it's\"");
  EXPECT_EQ(str_repr("it's \"x\""), "'it\\'s \"x\"'");
  EXPECT_EQ(str_repr("\x01\t\\é\u200b\U0001F600"), "'\\x01\\t\\\\é\\u200b\U0001F600'");
  EXPECT_EQ(to_str(Value::undefined("x")), "");
  EXPECT_EQ(to_str(list({Value::str("a"), Value::none(), Value::boolean(false)}, true)), "('a', None, False)");
  Value fn;
  fn.t = Value::T::kFunc;
  fn.fn = std::make_shared<Callable>();
  fn.fn->name = "range";
  EXPECT_EQ(to_str(fn), "<function range>");
  EXPECT_STREQ(type_name(list({}, true)), "tuple");
  EXPECT_STREQ(type_name(Value::undefined("")), "Undefined");
  // Printing is bounded: a list that contains itself fails instead of recursing forever.
  Value self = list({});
  self.list->push_back(self);
  EXPECT_THROW(to_str(self), JinjaError);
  self.list->clear();  // break the shared_ptr cycle
}

TEST(JinjaValue, FromJsonKeepsTypesAndOrder) {
  Value v = from_json(ojson::parse(R"({"z": [1, 2.5, "s", null, true], "a": {}, "big": 18446744073709551615})"));
  EXPECT_EQ(to_str(v), "{'z': [1, 2.5, 's', None, True], 'a': {}, 'big': 1.8446744073709552e+19}");
  EXPECT_EQ(v.dict->find_str("big")->t, Value::T::kFloat);  // beyond int64: Python would keep an int; we keep the magnitude
  ojson deep = ojson::array();
  for (int k = 0; k < 300; ++k) deep = ojson::array({deep});
  EXPECT_THROW(from_json(deep), JinjaError);
}

TEST(JinjaValue, ToJsonMatchesJsonDumps) {
  Value v = dict({{Value::str("k"), Value::str("é\"\n\x01")}, {Value::integer(1), list({Value::real(0.5), Value::none()})},
                  {Value::none(), Value::real(std::nan(""))}});
  EXPECT_EQ(dumps(v), "{\"k\": \"é\\\"\\n\\u0001\", \"1\": [0.5, null], \"null\": NaN}");
  JsonOpts ascii;
  ascii.ensure_ascii = true;
  EXPECT_EQ(dumps(Value::str("é\U0001F600"), ascii), "\"\\u00e9\\ud83d\\ude00\"");
  JsonOpts compact;
  compact.item_sep = ",";
  compact.key_sep = ":";
  compact.indent = "\t";
  EXPECT_EQ(dumps(dict({{Value::str("a"), list({Value::integer(1), Value::integer(2)})}}), compact), "{\n\t\"a\":[\n\t\t1,\n\t\t2\n\t]\n}");
  EXPECT_THROW(dumps(Value::undefined("x")), JinjaError);
  Value ns = Value::make_dict();
  ns.namespace_ = true;
  EXPECT_THROW(dumps(ns), JinjaError);
  JsonOpts sorted;
  sorted.sort_keys = true;
  EXPECT_THROW(dumps(dict({{Value::integer(1), Value::none()}}), sorted), JinjaError);
}

}  // namespace
}  // namespace optiq
