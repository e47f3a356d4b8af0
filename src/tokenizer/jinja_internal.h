// Jinja2 interpreter for chat templates (see jinja.h), private to src/tokenizer and its tests: the types its
// parts share. Structure: a lexer that applies whitespace control and splits the source into text and tags,
// a recursive-descent parser producing Nodes, and a tree-walking evaluator (the Renderer) over Python-like
// Values. Internal errors travel as exceptions (JinjaError) and are turned into Status at the public boundary
// (Template::parse and Template::render). One file per part:
//   jinja_value.cpp      Value and its Python semantics: truthiness, equality, str()/repr(), JSON in and out
//   jinja_lexer.cpp      source -> Segments (text and tags, whitespace control); tag body -> Tokens
//   jinja_parser.cpp     Segments -> Node tree (recursive descent for expressions and statements)
//   jinja_renderer.cpp   the Renderer's tree walk: statements, expressions, attribute/item access; Template's API
//   jinja_operators.cpp  the Renderer's binary operators, %-formatting, comparisons and `in`
//   jinja_methods.cpp    the Renderer's methods of str, dict and list ('a'.split(), d.items(), ...)
//   jinja_filters.cpp    the Renderer's builtins: global functions (range, namespace, ...), tests and filters
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/jinja.h"
#include "tokenizer/unicode.h"

namespace optiq::jinja {

namespace u = optiq::unicode;
using ojson = nlohmann::ordered_json;

namespace detail {

class Renderer;

constexpr size_t kMaxDepth = 200;             // parser nesting
constexpr size_t kMaxCallDepth = 64;          // macro recursion (each level is several C++ frames)
constexpr size_t kMaxOutput = 16u << 20;      // bytes of rendered text or of one string value
constexpr size_t kMaxIterations = 10'000'000; // loop iterations per render
constexpr size_t kMaxListSize = 1'000'000;    // elements produced by range() / repetition

struct JinjaError {
  std::string msg;
  int line = 0, col = 0;
};

[[noreturn]] inline void fail(const std::string& msg, int line = 0, int col = 0) { throw JinjaError{msg, line, col}; }

// ---------------------------------------------------------------------------------------------------
// Values (jinja_value.cpp)

struct Value;
using List = std::vector<Value>;
struct Dict;
struct Callable;

struct Value {
  enum class T { kUndefined, kNone, kBool, kInt, kFloat, kStr, kList, kDict, kFunc };
  T t = T::kUndefined;
  bool b = false;
  bool tuple = false;      // a list that prints as a tuple
  bool namespace_ = false; // a dict created by namespace(); attribute-assignable
  int64_t i = 0;
  double f = 0;
  std::string s;           // kStr; for kUndefined: the name that was undefined (for messages)
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;
  std::shared_ptr<Callable> fn;

  static Value none() { Value v; v.t = T::kNone; return v; }
  static Value boolean(bool x) { Value v; v.t = T::kBool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.t = T::kInt; v.i = x; return v; }
  static Value real(double x) { Value v; v.t = T::kFloat; v.f = x; return v; }
  static Value str(std::string x) { Value v; v.t = T::kStr; v.s = std::move(x); return v; }
  static Value undefined(std::string name) { Value v; v.s = std::move(name); return v; }
  static Value make_list(List l = {}) { Value v; v.t = T::kList; v.list = std::make_shared<List>(std::move(l)); return v; }
  static Value make_dict();
  bool is_undef() const { return t == T::kUndefined; }
  bool is_num() const { return t == T::kInt || t == T::kFloat || t == T::kBool; }
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;
  Value* find(const Value& k);
  const Value* find(const Value& k) const { return const_cast<Dict*>(this)->find(k); }
  Value* find_str(std::string_view k) {
    for (auto& [key, v] : items) if (key.t == Value::T::kStr && key.s == k) return &v;
    return nullptr;
  }
  void set(const Value& k, Value v) {
    if (Value* e = find(k)) *e = std::move(v);
    else items.emplace_back(k, std::move(v));
  }
};

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* get(size_t idx, const char* name) const {
    for (auto& [k, v] : kw) if (k == name) return &v;
    return idx < pos.size() ? &pos[idx] : nullptr;
  }
};

struct Callable {
  std::string name;
  std::function<Value(Renderer&, Args&)> fn;
};

bool equal(const Value& a, const Value& b);
bool truthy(const Value& v);
double as_double(const Value& v);
int64_t as_int(const Value& v);
// Python's type name, for error messages.
const char* type_name(const Value& v);
// Python's repr(float): the shortest string that round-trips, in Python's layout.
std::string float_repr(double d);
// Python's repr(str).
std::string str_repr(const std::string& s);
// Python's str(v) and repr(v); depth bounds the recursion into containers.
std::string to_str(const Value& v, int depth = 0);
std::string repr(const Value& v, int depth);
Value from_json(const ojson& j, int depth = 0);

// json.dumps(x, ensure_ascii, indent, separators, sort_keys)
struct JsonOpts {
  bool ensure_ascii = false;
  std::optional<std::string> indent;
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};

// Appends json.dumps(v) to out; level is the nesting depth (for indent and the depth limit).
void to_json(std::string& out, const Value& v, const JsonOpts& o, int level);

// ---------------------------------------------------------------------------------------------------
// Lexer (jinja_lexer.cpp)

enum class TagKind { kText, kExpr, kStmt };
struct Segment {
  TagKind kind;
  std::string text;  // text, or the inside of the tag
  int line, col;     // where the segment (tag) starts
};

// Python's str.isspace(): Unicode White_Space plus the four ASCII separators U+001C..U+001F.
bool is_py_space(char32_t c);
// Splits the source into text and tags, applying whitespace control ({%- -%}, trim_blocks,
// lstrip_blocks) and raw blocks; comments are dropped.
std::vector<Segment> lex(std::string_view src_in, const Options& opt);

enum class Tok { kName, kStr, kInt, kFloat, kOp, kEnd };
struct Token {
  Tok kind;
  std::string s;
  int64_t i = 0;
  double f = 0;
  int line, col;
};

// Splits a tag body into tokens; (line, col) is where its tag starts, so tokens carry source positions.
std::vector<Token> tokenize(const std::string& s, int line, int col);

}  // namespace detail

// ---------------------------------------------------------------------------------------------------
// AST (jinja_parser.cpp). Node lives in optiq::jinja because jinja.h's Template holds the root.

enum class NK {
  // statements
  kBlock, kText, kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kBreak, kContinue, kCallBlock, kFilterBlock,
  // expressions
  kLiteral, kName, kAttr, kItem, kSlice, kCall, kFilter, kTest, kNeg, kPos, kNot, kBinary, kAnd, kOr,
  kCompare, kCond, kList, kTuple, kDict,
};

struct Node {
  NK kind;
  int line = 0, col = 0;
  std::string name;                          // names, ops, filter/test names, attribute names
  detail::Value lit;                         // literals
  std::vector<std::unique_ptr<Node>> kids;   // operands / statements
  std::vector<std::string> names;            // for-targets, set targets, macro params, kwarg names, compare ops
  std::vector<std::unique_ptr<Node>> extra;  // call kwargs values, macro defaults, else bodies
  bool flag = false;                         // test negation; for-loop recursive
};

namespace detail {

using NodeP = std::unique_ptr<Node>;

// Parses the segments of a whole template into a kBlock root.
NodeP parse(std::vector<Segment> segs);

// ---------------------------------------------------------------------------------------------------
// Evaluation: the Renderer's members are defined across the files named beside each group.

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  Renderer(const Options& opt) : opt_(opt) {}

  std::vector<std::unordered_map<std::string, Value>> frames;
  const Options& opt_;
  size_t iterations = 0;
  size_t call_depth = 0;
  int loop_depth = 0;

  Value lookup(const std::string& name) {
    for (size_t k = frames.size(); k-- > 0;) {
      auto it = frames[k].find(name);
      if (it != frames[k].end()) return it->second;
    }
    return Value::undefined(name);
  }

  [[noreturn]] void err(const Node& n, const std::string& msg) { fail(msg, n.line, n.col); }

  void check_size(const Node& n, size_t sz) {
    if (sz > kMaxOutput) err(n, "output exceeds the size limit");
  }

  // ---- statements (jinja_renderer.cpp)
  Flow exec(const Node& n, std::string& out);
  void assign(const Node& n, const std::vector<std::string>& targets, Value v);
  List iterate(const Node& n, const Value& v);
  Flow exec_for(const Node& n, std::string& out);
  void bind_targets(const Node& n, const Value& item);
  Value call_macro(const Node& m, Args& a, const Value* caller);

  // ---- expressions (jinja_renderer.cpp)
  Args eval_args(const Node& n);
  Value call_value(const Node& n, const Value& callee, Args& a);
  Value eval(const Node& n);
  Value make_fn(const std::string& name, std::function<Value(Renderer&, Args&)> f);
  Value get_attr(const Node& n, const Value& obj, const std::string& name);
  Value bound(const Value& obj, const std::string& name);
  Value get_item(const Node& n, const Value& obj, const Value& key);
  static void slice_indices(int64_t len, std::optional<int64_t> a, std::optional<int64_t> b, int64_t step, int64_t& start, int64_t& stop);
  Value slice(const Node& n, const Value& obj, std::optional<int64_t> a, std::optional<int64_t> b, std::optional<int64_t> c);

  // ---- operators (jinja_operators.cpp)
  Value binary(const Node& n, const std::string& op, const Value& l, const Value& r);
  std::string percent_format(const Node& n, const std::string& fmt, const Value& arg);
  bool less(const Node& n, const Value& l, const Value& r);
  bool contains(const Node& n, const Value& container, const Value& item);
  bool compare(const Node& n, const std::string& op, const Value& l, const Value& r);

  // ---- methods of str, dict and list (jinja_methods.cpp)
  static std::string arg_str(const Node& n, Renderer& r, const Value* v, const char* what);
  static std::u32string strip_chars(const std::u32string& w, const Value* chars, bool left, bool right);
  static std::string title(const std::string& s);
  static std::string capitalize(const std::string& s);
  Value split(const Node& n, const std::string& s, const Value* sep, const Value* maxsplit_v, bool from_right);
  std::string str_format(const Node& n, const std::string& fmt, Args& a);
  Value call_method(const Node& n, const Value& obj, const std::string& name, Args& a);
  std::string py_replace(const Node& n, const std::string& s, const std::string& from, const std::string& to, int64_t count);

  // ---- globals, tests and filters (jinja_filters.cpp)
  Value global(const std::string& name);
  bool apply_test(const Node& n, const std::string& name, const Value& v, Args& a);
  Value attr_path(const Node& n, const Value& v, const std::string& path);
  Value sort_key(const Value& v, bool case_sensitive);
  Value apply_filter(const Node& n, Value v);
  Value filter(const Node& n, const std::string& name, Value v, Args& a);
};

}  // namespace detail
}  // namespace optiq::jinja
