// Jinja2 interpreter for chat templates (see jinja.h). Structure: a lexer that applies whitespace control
// and splits the source into text and tags, a recursive-descent parser producing Nodes, and a tree-walking
// evaluator over Python-like Values. Internal errors travel as exceptions (JinjaError) and are turned
// into Status at the public boundary.
#include "tokenizer/jinja.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <unordered_map>
#include <utf8proc.h>

#include "tokenizer/unicode.h"

namespace optiq::jinja {

namespace u = optiq::unicode;
using ojson = nlohmann::ordered_json;

class Renderer;

namespace {

constexpr size_t kMaxDepth = 200;             // parser nesting
constexpr size_t kMaxCallDepth = 64;          // macro recursion (each level is several C++ frames)
constexpr size_t kMaxOutput = 16u << 20;      // bytes of rendered text or of one string value
constexpr size_t kMaxIterations = 10'000'000; // loop iterations per render
constexpr size_t kMaxListSize = 1'000'000;    // elements produced by range() / repetition

struct JinjaError {
  std::string msg;
  int line = 0, col = 0;
};

[[noreturn]] void fail(const std::string& msg, int line = 0, int col = 0) { throw JinjaError{msg, line, col}; }

// ---------------------------------------------------------------------------------------------------
// Values

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

Value Value::make_dict() { Value v; v.t = T::kDict; v.dict = std::make_shared<Dict>(); return v; }

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

Value* Dict::find(const Value& k) {
  for (auto& [key, v] : items) if (equal(key, k)) return &v;
  return nullptr;
}

bool truthy(const Value& v) {
  switch (v.t) {
    case Value::T::kUndefined: case Value::T::kNone: return false;
    case Value::T::kBool: return v.b;
    case Value::T::kInt: return v.i != 0;
    case Value::T::kFloat: return v.f != 0.0;
    case Value::T::kStr: return !v.s.empty();
    case Value::T::kList: return !v.list->empty();
    case Value::T::kDict: return v.namespace_ || !v.dict->items.empty();
    case Value::T::kFunc: return true;
  }
  return false;
}

double as_double(const Value& v) { return v.t == Value::T::kFloat ? v.f : v.t == Value::T::kBool ? (v.b ? 1.0 : 0.0) : static_cast<double>(v.i); }
int64_t as_int(const Value& v) { return v.t == Value::T::kBool ? (v.b ? 1 : 0) : v.i; }

bool equal(const Value& a, const Value& b) {
  if (a.is_num() && b.is_num()) {
    if (a.t == Value::T::kFloat || b.t == Value::T::kFloat) return as_double(a) == as_double(b);
    return as_int(a) == as_int(b);
  }
  if (a.t != b.t) return false;
  switch (a.t) {
    case Value::T::kUndefined: case Value::T::kNone: return true;
    case Value::T::kStr: return a.s == b.s;
    case Value::T::kList:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k) if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case Value::T::kDict:
      if (a.dict == b.dict) return true;
      if (a.namespace_ || b.namespace_) return false;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (auto& [k, v] : a.dict->items) {
        const Value* o = b.dict->find(k);
        if (!o || !equal(v, *o)) return false;
      }
      return true;
    case Value::T::kFunc: return a.fn == b.fn;
    default: return false;
  }
}

const char* type_name(const Value& v) {
  switch (v.t) {
    case Value::T::kUndefined: return "Undefined";
    case Value::T::kNone: return "NoneType";
    case Value::T::kBool: return "bool";
    case Value::T::kInt: return "int";
    case Value::T::kFloat: return "float";
    case Value::T::kStr: return "str";
    case Value::T::kList: return v.tuple ? "tuple" : "list";
    case Value::T::kDict: return v.namespace_ ? "Namespace" : "dict";
    case Value::T::kFunc: return "function";
  }
  return "?";
}

// Python's repr(float): the shortest string that round-trips, in Python's layout.
std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[40];
  int prec = 1;
  for (; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  // buf = d.ddddde[+-]XX ; split mantissa digits and exponent
  std::string s(buf);
  size_t epos = s.find('e');
  int exp = std::atoi(s.c_str() + epos + 1);
  std::string mant = s.substr(0, epos);
  bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant) if (c != '.') digits += c;
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  } else if (exp < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else {
    size_t int_len = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_len) out = digits + std::string(int_len - digits.size(), '0') + ".0";
    else out = digits.substr(0, int_len) + "." + digits.substr(int_len);
  }
  return neg ? "-" + out : out;
}

bool py_printable(char32_t c) {
  if (c == ' ') return true;
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  auto cat = utf8proc_category(static_cast<int32_t>(c));
  return !(cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CS ||
           cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_ZS ||
           cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP);
}

std::string str_repr(const std::string& s) {
  bool has_sq = s.find('\'') != std::string::npos, has_dq = s.find('"') != std::string::npos;
  char q = has_sq && !has_dq ? '"' : '\'';
  std::string out(1, q);
  for (char32_t c : u::to_u32(s)) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<char32_t>(q)) { out += '\\'; out += q; }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (!py_printable(c)) {
      char buf[16];
      if (c < 0x100) std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      else if (c < 0x10000) std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      else std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    } else u::append(out, c);
  }
  out += q;
  return out;
}

std::string to_str(const Value& v, int depth = 0);

std::string repr(const Value& v, int depth) {
  if (v.t == Value::T::kStr) return str_repr(v.s);
  return to_str(v, depth);
}

std::string to_str(const Value& v, int depth) {
  if (depth > 100) fail("value nested too deeply to print");
  switch (v.t) {
    case Value::T::kUndefined: return "";
    case Value::T::kNone: return "None";
    case Value::T::kBool: return v.b ? "True" : "False";
    case Value::T::kInt: return std::to_string(v.i);
    case Value::T::kFloat: return float_repr(v.f);
    case Value::T::kStr: return v.s;
    case Value::T::kList: {
      std::string out = v.tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        out += repr((*v.list)[k], depth + 1);
        if (out.size() > kMaxOutput) fail("value too large to print");
      }
      if (v.tuple && v.list->size() == 1) out += ",";
      return out + (v.tuple ? ")" : "]");
    }
    case Value::T::kDict: {
      std::string out = v.namespace_ ? "<Namespace {" : "{";
      bool first = true;
      for (auto& [k, x] : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        out += repr(k, depth + 1) + ": " + repr(x, depth + 1);
        if (out.size() > kMaxOutput) fail("value too large to print");
      }
      return out + (v.namespace_ ? "}>" : "}");
    }
    case Value::T::kFunc: return "<function " + v.fn->name + ">";
  }
  return "";
}

Value from_json(const ojson& j, int depth = 0) {
  if (depth > 200) fail("input JSON nested too deeply");
  switch (j.type()) {
    case ojson::value_t::null: return Value::none();
    case ojson::value_t::boolean: return Value::boolean(j.get<bool>());
    case ojson::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case ojson::value_t::number_unsigned: {
      uint64_t x = j.get<uint64_t>();
      if (x > static_cast<uint64_t>(INT64_MAX)) return Value::real(static_cast<double>(x));
      return Value::integer(static_cast<int64_t>(x));
    }
    case ojson::value_t::number_float: return Value::real(j.get<double>());
    case ojson::value_t::string: return Value::str(j.get<std::string>());
    case ojson::value_t::array: {
      Value v = Value::make_list();
      for (auto& e : j) v.list->push_back(from_json(e, depth + 1));
      return v;
    }
    case ojson::value_t::object: {
      Value v = Value::make_dict();
      for (auto it = j.begin(); it != j.end(); ++it) v.dict->items.emplace_back(Value::str(it.key()), from_json(it.value(), depth + 1));
      return v;
    }
    default: return Value::none();
  }
}

// json.dumps(x, ensure_ascii, indent, separators, sort_keys)
struct JsonOpts {
  bool ensure_ascii = false;
  std::optional<std::string> indent;
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};

void json_str(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (char32_t c : u::to_u32(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
          char buf[16];
          if (c >= 0x10000) {
            char32_t v = c - 0x10000;
            std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)), static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
          } else {
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          }
          out += buf;
        } else {
          u::append(out, c);
        }
    }
  }
  out += '"';
}

void to_json(std::string& out, const Value& v, const JsonOpts& o, int level) {
  if (level > 100) fail("tojson: value nested too deeply");
  if (out.size() > kMaxOutput) fail("tojson: output too large");
  auto newline = [&](int lvl) {
    if (!o.indent) return;
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += *o.indent;
  };
  switch (v.t) {
    case Value::T::kUndefined: fail("tojson: Object of type Undefined is not JSON serializable");
    case Value::T::kNone: out += "null"; return;
    case Value::T::kBool: out += v.b ? "true" : "false"; return;
    case Value::T::kInt: out += std::to_string(v.i); return;
    case Value::T::kFloat:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
      else out += float_repr(v.f);
      return;
    case Value::T::kStr: json_str(out, v.s, o.ensure_ascii); return;
    case Value::T::kList: {
      if (v.list->empty()) { out += "[]"; return; }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += o.item_sep;
        newline(level + 1);
        to_json(out, (*v.list)[k], o, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Value::T::kDict: {
      if (v.namespace_) fail("tojson: Object of type Namespace is not JSON serializable");
      if (v.dict->items.empty()) { out += "{}"; return; }
      std::vector<const std::pair<Value, Value>*> items;
      for (auto& e : v.dict->items) items.push_back(&e);
      if (o.sort_keys) {
        for (auto* e : items) if (e->first.t != Value::T::kStr) fail("tojson: sort_keys needs string keys");
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first.s < b->first.s; });
      }
      out += '{';
      bool first = true;
      for (auto* e : items) {
        if (!first) out += o.item_sep;
        first = false;
        newline(level + 1);
        const Value& k = e->first;
        if (k.t == Value::T::kStr) json_str(out, k.s, o.ensure_ascii);
        else if (k.t == Value::T::kInt || k.t == Value::T::kFloat || k.t == Value::T::kBool || k.t == Value::T::kNone) {
          std::string ks;
          to_json(ks, k, o, level + 1);
          json_str(out, ks, o.ensure_ascii);
        } else fail(std::string("tojson: keys must be str, int, float, bool or None, not ") + type_name(k));
        out += o.key_sep;
        to_json(out, e->second, o, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    case Value::T::kFunc: fail("tojson: Object of type function is not JSON serializable");
  }
}

// ---------------------------------------------------------------------------------------------------
// Lexer: text and tags

enum class TagKind { kText, kExpr, kStmt };
struct Segment {
  TagKind kind;
  std::string text;  // text, or the inside of the tag
  int line, col;     // where the segment (tag) starts
};

struct Pos { int line = 1, col = 1; };

void advance_pos(Pos& p, std::string_view s) {
  for (char c : s) {
    if (c == '\n') { p.line++; p.col = 1; }
    else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) p.col++;
  }
}

bool is_py_space(char32_t c) { return u::is_whitespace(c) || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x1F; }

std::string rstrip_ws(const std::string& s) {
  std::u32string w = u::to_u32(s);
  size_t b = w.size();
  while (b > 0 && is_py_space(w[b - 1])) --b;
  return u::from_u32(std::u32string_view(w).substr(0, b));
}

std::string normalize_newlines(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '\r') {
      out += '\n';
      if (k + 1 < s.size() && s[k + 1] == '\n') ++k;
    } else out += s[k];
  }
  return out;
}

std::vector<Segment> lex(std::string_view src_in, const Options& opt) {
  std::string src = normalize_newlines(src_in);
  if (!src.empty() && src.back() == '\n') src.pop_back();  // keep_trailing_newline=False
  std::vector<Segment> segs;
  size_t pos = 0;
  Pos p;
  bool strip_next = false;  // previous tag ended with '-'
  bool line_starting = true;
  while (pos <= src.size()) {
    size_t open = std::string::npos;
    for (size_t k = pos; k + 1 < src.size(); ++k) {
      if (src[k] == '{' && (src[k + 1] == '{' || src[k + 1] == '%' || src[k + 1] == '#')) { open = k; break; }
    }
    std::string text = src.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    Pos text_pos = p;
    advance_pos(p, text);
    if (open == std::string::npos) {
      if (strip_next) text = u::from_u32([&] { std::u32string w = u::to_u32(text); size_t a = 0; while (a < w.size() && is_py_space(w[a])) ++a; return w.substr(a); }());
      if (!text.empty()) segs.push_back({TagKind::kText, text, text_pos.line, text_pos.col});
      break;
    }
    char kind = src[open + 1];
    char sign = open + 2 < src.size() ? src[open + 2] : 0;
    if (strip_next) {
      std::u32string w = u::to_u32(text);
      size_t a = 0;
      while (a < w.size() && is_py_space(w[a])) ++a;
      text = u::from_u32(std::u32string_view(w).substr(a));
    }
    if (sign == '-') {
      text = rstrip_ws(text);
    } else if (sign != '+' && opt.lstrip_blocks && kind != '{') {
      size_t l_pos = text.rfind('\n');
      l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
      if (l_pos > 0 || line_starting) {
        bool ws = true;
        for (size_t k = l_pos; k < text.size(); ++k) if (text[k] != ' ' && text[k] != '\t' && text[k] != '\f' && text[k] != '\v' && text[k] != '\r') { ws = false; break; }
        if (ws) text.resize(l_pos);
      }
    }
    if (!text.empty()) segs.push_back({TagKind::kText, text, text_pos.line, text_pos.col});
    Pos tag_pos = p;
    size_t body_start = open + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
    std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t end;
    if (kind == '#') {
      end = src.find("#}", body_start);
    } else {
      // Find the closing delimiter outside string literals.
      // Like Jinja's lexer, brackets are balanced first: `{{ {'a': {}} }}` ends at the last `}}`.
      end = std::string::npos;
      char quote = 0;
      int depth = 0;
      for (size_t k = body_start; k + 1 < src.size(); ++k) {
        char c = src[k];
        if (quote) {
          if (c == '\\') ++k;
          else if (c == quote) quote = 0;
          continue;
        }
        if (c == '\'' || c == '"') { quote = c; continue; }
        if (depth == 0 && c == close[0] && src[k + 1] == close[1]) { end = k; break; }
        if (c == '(' || c == '[' || c == '{') ++depth;
        else if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
      }
    }
    if (end == std::string::npos)
      fail(std::string("unclosed ") + (kind == '{' ? "'{{'" : kind == '%' ? "'{%'" : "comment"), tag_pos.line, tag_pos.col);
    bool rstrip = end > body_start && src[end - 1] == '-';
    bool keep = end > body_start && src[end - 1] == '+';
    std::string body = src.substr(body_start, end - body_start - ((rstrip || keep) ? 1 : 0));
    size_t after = end + 2;
    advance_pos(p, std::string_view(src).substr(open, after - open));
    strip_next = rstrip;
    line_starting = false;
    if (!rstrip && !keep && opt.trim_blocks && kind != '{' && after < src.size() && src[after] == '\n') {
      ++after;
      p.line++;
      p.col = 1;
      line_starting = true;
    }
    if (kind == '%') {
      // raw blocks: take everything up to {% endraw %} verbatim
      std::string b = body;
      size_t a = b.find_first_not_of(" \t\n\r");
      size_t z = b.find_last_not_of(" \t\n\r");
      if (a != std::string::npos && b.substr(a, z - a + 1) == "raw") {
        size_t k = after;
        size_t found = std::string::npos, tag_end = 0;
        while ((k = src.find("{%", k)) != std::string::npos) {
          size_t q = k + 2;
          bool minus = q < src.size() && src[q] == '-';
          if (minus || (q < src.size() && src[q] == '+')) ++q;
          while (q < src.size() && (src[q] == ' ' || src[q] == '\t' || src[q] == '\n')) ++q;
          if (src.compare(q, 6, "endraw") == 0) {
            size_t r = q + 6;
            while (r < src.size() && (src[r] == ' ' || src[r] == '\t' || src[r] == '\n')) ++r;
            bool rminus = r < src.size() && src[r] == '-';
            if (rminus) ++r;
            if (src.compare(r, 2, "%}") == 0) {
              found = k;
              tag_end = r + 2;
              std::string raw = src.substr(after, k - after);
              if (minus) raw = rstrip_ws(raw);
              if (!raw.empty()) segs.push_back({TagKind::kText, raw, p.line, p.col});
              strip_next = rminus;
              break;
            }
          }
          k += 2;
        }
        if (found == std::string::npos) fail("missing {% endraw %}", tag_pos.line, tag_pos.col);
        advance_pos(p, std::string_view(src).substr(after, tag_end - after));
        after = tag_end;
        if (!strip_next && opt.trim_blocks && after < src.size() && src[after] == '\n') { ++after; p.line++; p.col = 1; }
        pos = after;
        continue;
      }
    }
    if (kind != '#') segs.push_back({kind == '{' ? TagKind::kExpr : TagKind::kStmt, body, tag_pos.line, tag_pos.col});
    pos = after;
    if (pos >= src.size()) break;
  }
  return segs;
}

// ---------------------------------------------------------------------------------------------------
// Expression tokens

enum class Tok { kName, kStr, kInt, kFloat, kOp, kEnd };
struct Token {
  Tok kind;
  std::string s;
  int64_t i = 0;
  double f = 0;
  int line, col;
};

std::vector<Token> tokenize(const std::string& s, int line, int col) {
  std::vector<Token> out;
  size_t k = 0;
  Pos p{line, col + 2};
  auto at = [&](size_t upto) { advance_pos(p, std::string_view(s).substr(k, upto - k)); k = upto; };
  while (k < s.size()) {
    char c = s[k];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') { at(k + 1); continue; }
    Token t{Tok::kOp, "", 0, 0, p.line, p.col};
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = k;
      while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
      t.kind = Tok::kName;
      t.s = s.substr(k, e - k);
      at(e);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t e = k;
      bool is_float = false;
      while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
      if (e + 1 < s.size() && s[e] == '.' && std::isdigit(static_cast<unsigned char>(s[e + 1]))) {
        is_float = true;
        ++e;
        while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
      }
      if (e < s.size() && (s[e] == 'e' || s[e] == 'E')) {
        size_t q = e + 1;
        if (q < s.size() && (s[q] == '+' || s[q] == '-')) ++q;
        if (q < s.size() && std::isdigit(static_cast<unsigned char>(s[q]))) {
          is_float = true;
          e = q;
          while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
        }
      }
      std::string num;
      for (size_t q = k; q < e; ++q) if (s[q] != '_') num += s[q];
      if (is_float) { t.kind = Tok::kFloat; t.f = std::strtod(num.c_str(), nullptr); }
      else {
        t.kind = Tok::kInt;
        errno = 0;
        long long v = std::strtoll(num.c_str(), nullptr, 10);
        if (errno == ERANGE) fail("integer literal too large", p.line, p.col);
        t.i = v;
      }
      at(e);
    } else if (c == '\'' || c == '"') {
      size_t e = k + 1;
      std::string val;
      while (e < s.size() && s[e] != c) {
        if (s[e] == '\\' && e + 1 < s.size()) {
          char n = s[e + 1];
          e += 2;
          switch (n) {
            case 'n': val += '\n'; break;
            case 't': val += '\t'; break;
            case 'r': val += '\r'; break;
            case '\\': val += '\\'; break;
            case '\'': val += '\''; break;
            case '"': val += '"'; break;
            case 'a': val += '\a'; break;
            case 'b': val += '\b'; break;
            case 'f': val += '\f'; break;
            case 'v': val += '\v'; break;
            case '\n': break;
            case 'x': case 'u': case 'U': {
              size_t len = n == 'x' ? 2 : n == 'u' ? 4 : 8;
              if (e + len > s.size()) fail("truncated \\" + std::string(1, n) + " escape", p.line, p.col);
              char32_t cp = 0;
              for (size_t q = 0; q < len; ++q) {
                char h = s[e + q];
                int d = std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                if (d < 0) fail("invalid \\" + std::string(1, n) + " escape", p.line, p.col);
                cp = cp * 16 + static_cast<char32_t>(d);
              }
              if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = u::kReplacement;
              u::append(val, cp);
              e += len;
              break;
            }
            default:
              if (n >= '0' && n <= '7') {
                char32_t cp = static_cast<char32_t>(n - '0');
                for (int q = 0; q < 2 && e < s.size() && s[e] >= '0' && s[e] <= '7'; ++q, ++e) cp = cp * 8 + static_cast<char32_t>(s[e] - '0');
                u::append(val, cp);
              } else {
                val += '\\';
                val += n;
              }
          }
        } else {
          val += s[e++];
        }
      }
      if (e >= s.size()) fail("unterminated string literal", p.line, p.col);
      t.kind = Tok::kStr;
      t.s = val;
      at(e + 1);
    } else {
      static const char* ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                                  "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
      bool found = false;
      for (const char* op : ops) {
        size_t n = std::strlen(op);
        if (s.compare(k, n, op) == 0) {
          t.s = op;
          at(k + n);
          found = true;
          break;
        }
      }
      if (!found) fail(std::string("unexpected character '") + c + "'", p.line, p.col);
    }
    out.push_back(std::move(t));
  }
  out.push_back(Token{Tok::kEnd, "", 0, 0, p.line, p.col});
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// AST

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
  Value lit;                                 // literals
  std::vector<std::unique_ptr<Node>> kids;   // operands / statements
  std::vector<std::string> names;            // for-targets, set targets, macro params, kwarg names, compare ops
  std::vector<std::unique_ptr<Node>> extra;  // call kwargs values, macro defaults, else bodies
  bool flag = false;                         // test negation; for-loop recursive
};

namespace {

using NodeP = std::unique_ptr<Node>;

NodeP mk(NK k, int line, int col) {
  auto n = std::make_unique<Node>();
  n->kind = k;
  n->line = line;
  n->col = col;
  return n;
}

class ExprParser {
 public:
  ExprParser(std::vector<Token> toks, size_t& depth) : t_(std::move(toks)), depth_(depth) {}

  const Token& peek(size_t ahead = 0) const { return t_[std::min(p_ + ahead, t_.size() - 1)]; }
  bool at_end() const { return peek().kind == Tok::kEnd; }
  bool is_op(const char* op, size_t ahead = 0) const { return peek(ahead).kind == Tok::kOp && peek(ahead).s == op; }
  bool is_name(const char* n, size_t ahead = 0) const { return peek(ahead).kind == Tok::kName && peek(ahead).s == n; }
  Token next() { Token t = peek(); if (p_ < t_.size() - 1) ++p_; return t; }
  void expect_op(const char* op) {
    if (!is_op(op)) err(std::string("expected '") + op + "'");
    next();
  }
  std::string expect_name() {
    if (peek().kind != Tok::kName) err("expected a name");
    return next().s;
  }
  [[noreturn]] void err(const std::string& msg) const {
    const Token& t = peek();
    fail(msg + (t.kind == Tok::kEnd ? " at end of tag" : ", got '" + (t.kind == Tok::kStr ? "\"" + t.s + "\"" : t.kind == Tok::kInt ? std::to_string(t.i) : t.s) + "'"), t.line, t.col);
  }
  void expect_end() { if (!at_end()) err("unexpected token"); }

  struct DepthGuard {
    size_t& d;
    DepthGuard(size_t& d_, const Token& t) : d(d_) { if (++d > kMaxDepth) fail("expression nested too deeply", t.line, t.col); }
    ~DepthGuard() { --d; }
  };

  NodeP expression(bool with_cond = true) {
    DepthGuard g(depth_, peek());
    NodeP e = or_expr();
    if (with_cond && is_name("if")) {
      Token t = next();
      NodeP cond = or_expr();
      NodeP other;
      if (is_name("else")) { next(); other = expression(); }
      auto n = mk(NK::kCond, t.line, t.col);
      n->kids.push_back(std::move(cond));
      n->kids.push_back(std::move(e));
      if (other) n->kids.push_back(std::move(other));
      return n;
    }
    return e;
  }

  // Comma-separated expressions; a tuple if there is a comma (for `set a = 1, 2` and `for` iterables).
  NodeP tuple_or_expr() {
    const Token& start = peek();
    NodeP e = expression();
    if (!is_op(",")) return e;
    auto t = mk(NK::kTuple, start.line, start.col);
    t->kids.push_back(std::move(e));
    while (is_op(",")) {
      next();
      if (at_end() || is_op(")")) break;
      t->kids.push_back(expression());
    }
    return t;
  }

  NodeP or_expr() {
    NodeP l = and_expr();
    while (is_name("or")) {
      Token t = next();
      auto n = mk(NK::kOr, t.line, t.col);
      n->kids.push_back(std::move(l));
      n->kids.push_back(and_expr());
      l = std::move(n);
    }
    return l;
  }
  NodeP and_expr() {
    NodeP l = not_expr();
    while (is_name("and")) {
      Token t = next();
      auto n = mk(NK::kAnd, t.line, t.col);
      n->kids.push_back(std::move(l));
      n->kids.push_back(not_expr());
      l = std::move(n);
    }
    return l;
  }
  NodeP not_expr() {
    if (is_name("not")) {
      Token t = next();
      DepthGuard g(depth_, t);
      auto n = mk(NK::kNot, t.line, t.col);
      n->kids.push_back(not_expr());
      return n;
    }
    return compare();
  }
  NodeP compare() {
    NodeP l = concat();
    NodeP chain;
    while (true) {
      std::string op;
      const Token& t = peek();
      if (t.kind == Tok::kOp && (t.s == "==" || t.s == "!=" || t.s == "<" || t.s == ">" || t.s == "<=" || t.s == ">=")) op = t.s, next();
      else if (is_name("in")) op = "in", next();
      else if (is_name("not") && is_name("in", 1)) { next(); next(); op = "notin"; }
      else break;
      if (!chain) {
        chain = mk(NK::kCompare, t.line, t.col);
        chain->kids.push_back(std::move(l));
      }
      chain->names.push_back(op);
      chain->kids.push_back(concat());
    }
    return chain ? std::move(chain) : std::move(l);
  }
  NodeP binary(NodeP l, const Token& t, NodeP r) {
    auto n = mk(NK::kBinary, t.line, t.col);
    n->name = t.s;
    n->kids.push_back(std::move(l));
    n->kids.push_back(std::move(r));
    return n;
  }
  NodeP concat() {
    NodeP l = additive();
    while (is_op("~")) { Token t = next(); l = binary(std::move(l), t, additive()); }
    return l;
  }
  NodeP additive() {
    NodeP l = multiplicative();
    while (is_op("+") || is_op("-")) { Token t = next(); l = binary(std::move(l), t, multiplicative()); }
    return l;
  }
  NodeP multiplicative() {
    NodeP l = unary();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) { Token t = next(); l = binary(std::move(l), t, unary()); }
    return l;
  }
  NodeP unary() {
    if (is_op("-") || is_op("+")) {
      Token t = next();
      DepthGuard g(depth_, t);
      auto n = mk(t.s == "-" ? NK::kNeg : NK::kPos, t.line, t.col);
      n->kids.push_back(unary());
      return n;
    }
    return power();
  }
  NodeP power() {
    NodeP l = postfix(primary());
    if (is_op("**")) {
      Token t = next();
      DepthGuard g(depth_, t);
      return binary(std::move(l), t, unary());
    }
    return l;
  }
  void call_args(Node& n) {
    // n.kids[0] is the callee; positional args follow in kids, kwargs in names/extra.
    expect_op("(");
    while (!is_op(")")) {
      if (peek().kind == Tok::kName && is_op("=", 1)) {
        n.names.push_back(next().s);
        next();
        n.extra.push_back(expression());
      } else {
        if (!n.names.empty()) err("positional argument after keyword argument");
        n.kids.push_back(expression());
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
  }
  NodeP postfix(NodeP e) {
    while (true) {
      if (is_op(".")) {
        Token t = next();
        auto n = mk(NK::kAttr, t.line, t.col);
        if (peek().kind == Tok::kInt) n->name = std::to_string(next().i);
        else n->name = expect_name();
        n->kids.push_back(std::move(e));
        e = std::move(n);
      } else if (is_op("[")) {
        Token t = next();
        DepthGuard g(depth_, t);
        NodeP parts[3];
        bool slice = false;
        int idx = 0;
        while (true) {
          if (is_op(":")) {
            slice = true;
            next();
            if (++idx > 2) err("too many ':' in slice");
            continue;
          }
          if (is_op("]")) break;
          if (parts[idx]) err("expected ':' or ']'");
          parts[idx] = expression();
        }
        expect_op("]");
        if (slice) {
          auto n = mk(NK::kSlice, t.line, t.col);
          n->kids.push_back(std::move(e));
          for (auto& p : parts) n->extra.push_back(std::move(p));
          e = std::move(n);
        } else {
          if (!parts[0]) err("empty subscript");
          auto n = mk(NK::kItem, t.line, t.col);
          n->kids.push_back(std::move(e));
          n->kids.push_back(std::move(parts[0]));
          e = std::move(n);
        }
      } else if (is_op("(")) {
        const Token& t = peek();
        DepthGuard g(depth_, t);
        auto n = mk(NK::kCall, t.line, t.col);
        n->kids.push_back(std::move(e));
        call_args(*n);
        e = std::move(n);
      } else if (is_op("|")) {
        Token t = next();
        DepthGuard g(depth_, t);
        auto n = mk(NK::kFilter, t.line, t.col);
        n->name = expect_name();
        while (is_op(".")) { next(); n->name += "." + expect_name(); }
        n->kids.push_back(std::move(e));
        if (is_op("(")) call_args(*n);
        e = std::move(n);
      } else if (is_name("is")) {
        Token t = next();
        DepthGuard g(depth_, t);
        auto n = mk(NK::kTest, t.line, t.col);
        if (is_name("not")) { next(); n->flag = true; }
        n->name = peek().kind == Tok::kName ? next().s : "";
        if (n->name.empty()) {
          if (is_op("==") || is_op("!=") || is_op("<") || is_op(">") || is_op("<=") || is_op(">=")) n->name = next().s;
          else err("expected a test name");
        }
        n->kids.push_back(std::move(e));
        if (is_op("(")) call_args(*n);
        else if (!at_end() && (peek().kind == Tok::kStr || peek().kind == Tok::kInt || peek().kind == Tok::kFloat ||
                               (peek().kind == Tok::kName && !is_name("and") && !is_name("or") && !is_name("else") &&
                                !is_name("if") && !is_name("in") && !is_name("not") && !is_name("is")))) {
          n->kids.push_back(postfix(primary()));  // `x is divisibleby 3`, `x is sameas none`
        }
        e = std::move(n);
      } else {
        return e;
      }
    }
  }
  NodeP primary() {
    Token t = peek();
    DepthGuard g(depth_, t);
    switch (t.kind) {
      case Tok::kStr: {
        next();
        std::string s = t.s;
        while (peek().kind == Tok::kStr) s += next().s;  // adjacent literals concatenate
        auto n = mk(NK::kLiteral, t.line, t.col);
        n->lit = Value::str(std::move(s));
        return n;
      }
      case Tok::kInt: { next(); auto n = mk(NK::kLiteral, t.line, t.col); n->lit = Value::integer(t.i); return n; }
      case Tok::kFloat: { next(); auto n = mk(NK::kLiteral, t.line, t.col); n->lit = Value::real(t.f); return n; }
      case Tok::kName: {
        next();
        auto n = mk(NK::kLiteral, t.line, t.col);
        if (t.s == "true" || t.s == "True") n->lit = Value::boolean(true);
        else if (t.s == "false" || t.s == "False") n->lit = Value::boolean(false);
        else if (t.s == "none" || t.s == "None") n->lit = Value::none();
        else { n->kind = NK::kName; n->name = t.s; }
        return n;
      }
      case Tok::kOp:
        if (t.s == "(") {
          next();
          if (is_op(")")) { next(); auto n = mk(NK::kTuple, t.line, t.col); return n; }
          NodeP e = expression();
          if (is_op(",")) {
            auto tup = mk(NK::kTuple, t.line, t.col);
            tup->kids.push_back(std::move(e));
            while (is_op(",")) {
              next();
              if (is_op(")")) break;
              tup->kids.push_back(expression());
            }
            e = std::move(tup);
          }
          expect_op(")");
          return e;
        }
        if (t.s == "[") {
          next();
          auto n = mk(NK::kList, t.line, t.col);
          while (!is_op("]")) {
            n->kids.push_back(expression());
            if (!is_op(",")) break;
            next();
          }
          expect_op("]");
          return n;
        }
        if (t.s == "{") {
          next();
          auto n = mk(NK::kDict, t.line, t.col);
          while (!is_op("}")) {
            n->kids.push_back(expression());
            expect_op(":");
            n->extra.push_back(expression());
            if (!is_op(",")) break;
            next();
          }
          expect_op("}");
          return n;
        }
        break;
      default: break;
    }
    err("expected an expression");
  }

 private:
  std::vector<Token> t_;
  size_t p_ = 0;
  size_t& depth_;
};

// Statement parser over segments.
class Parser {
 public:
  explicit Parser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

  NodeP parse() {
    auto root = mk(NK::kBlock, 1, 1);
    std::string end = body(*root, {});
    if (!end.empty()) fail("unexpected '" + end + "'", last_line_, last_col_);
    return root;
  }

 private:
  // Parses statements into `block` until a tag whose first word is in `stops`; returns that word
  // (the tag's tokens are left in cur_ for the caller) or "" at the end of input.
  std::string body(Node& block, const std::vector<std::string>& stops) {
    if (++depth_ > kMaxDepth) fail("blocks nested too deeply", segs_.empty() ? 1 : segs_[std::min(i_, segs_.size() - 1)].line, 1);
    struct Dec { size_t& d; ~Dec() { --d; } } dec{depth_};
    while (i_ < segs_.size()) {
      const Segment& sg = segs_[i_++];
      last_line_ = sg.line;
      last_col_ = sg.col;
      if (sg.kind == TagKind::kText) {
        auto n = mk(NK::kText, sg.line, sg.col);
        n->name = sg.text;
        block.kids.push_back(std::move(n));
        continue;
      }
      ExprParser ep(tokenize(sg.text, sg.line, sg.col), expr_depth_);
      if (sg.kind == TagKind::kExpr) {
        auto n = mk(NK::kOutput, sg.line, sg.col);
        n->kids.push_back(ep.expression());
        ep.expect_end();
        block.kids.push_back(std::move(n));
        continue;
      }
      if (ep.peek().kind != Tok::kName) ep.err("expected a statement name");
      std::string kw = ep.next().s;
      if (std::find(stops.begin(), stops.end(), kw) != stops.end()) {
        cur_ = std::make_unique<ExprParser>(std::move(ep));
        return kw;
      }
      block.kids.push_back(statement(kw, ep, sg));
    }
    if (!stops.empty()) fail("missing '{% " + stops.back() + " %}' (template ended)", last_line_, last_col_);
    return "";
  }

  NodeP statement(const std::string& kw, ExprParser& ep, const Segment& sg) {
    if (kw == "if") {
      auto n = mk(NK::kIf, sg.line, sg.col);
      n->kids.push_back(ep.expression());
      ep.expect_end();
      while (true) {
        auto b = mk(NK::kBlock, sg.line, sg.col);
        std::string end = body(*b, {"elif", "else", "endif"});
        n->kids.push_back(std::move(b));
        if (end == "elif") {
          n->kids.push_back(cur_->expression());
          cur_->expect_end();
          continue;
        }
        if (end == "else") {
          cur_->expect_end();
          auto eb = mk(NK::kBlock, sg.line, sg.col);
          body(*eb, {"endif"});
          cur_->expect_end();
          n->extra.push_back(std::move(eb));
        } else {
          cur_->expect_end();
        }
        return n;
      }
    }
    if (kw == "for") {
      auto n = mk(NK::kFor, sg.line, sg.col);
      n->names.push_back(ep.expect_name());
      while (ep.is_op(",")) { ep.next(); n->names.push_back(ep.expect_name()); }
      if (!ep.is_name("in")) ep.err("expected 'in'");
      ep.next();
      // The iterable cannot contain a bare conditional (its `if` is the loop filter).
      NodeP iter = ep.expression(false);
      if (ep.is_op(",")) {
        auto tup = mk(NK::kTuple, iter->line, iter->col);
        tup->kids.push_back(std::move(iter));
        while (ep.is_op(",")) { ep.next(); tup->kids.push_back(ep.expression(false)); }
        iter = std::move(tup);
      }
      n->kids.push_back(std::move(iter));
      NodeP filt;
      if (ep.is_name("if")) { ep.next(); filt = ep.expression(false); }
      if (ep.is_name("recursive")) ep.err("recursive loops are not supported");
      ep.expect_end();
      auto b = mk(NK::kBlock, sg.line, sg.col);
      std::string end = body(*b, {"else", "endfor"});
      n->kids.push_back(std::move(b));
      n->kids.push_back(std::move(filt));  // may be null
      cur_->expect_end();
      if (end == "else") {
        auto eb = mk(NK::kBlock, sg.line, sg.col);
        body(*eb, {"endfor"});
        cur_->expect_end();
        n->extra.push_back(std::move(eb));
      }
      return n;
    }
    if (kw == "set") {
      std::vector<std::string> targets;
      targets.push_back(ep.expect_name());
      if (ep.is_op(".")) { ep.next(); targets[0] += "." + ep.expect_name(); }
      while (ep.is_op(",")) { ep.next(); targets.push_back(ep.expect_name()); }
      if (ep.is_op("=")) {
        ep.next();
        auto n = mk(NK::kSet, sg.line, sg.col);
        n->names = targets;
        n->kids.push_back(ep.tuple_or_expr());
        ep.expect_end();
        return n;
      }
      if (targets.size() != 1) ep.err("expected '='");
      auto n = mk(NK::kSetBlock, sg.line, sg.col);
      n->names = targets;
      // optional filters: {% set x | upper %}
      while (ep.is_op("|")) {
        ep.next();
        auto f = mk(NK::kFilter, sg.line, sg.col);
        f->name = ep.expect_name();
        f->kids.push_back(nullptr);
        if (ep.is_op("(")) ep.call_args(*f);
        n->extra.push_back(std::move(f));
      }
      ep.expect_end();
      auto b = mk(NK::kBlock, sg.line, sg.col);
      body(*b, {"endset"});
      cur_->expect_end();
      n->kids.push_back(std::move(b));
      return n;
    }
    if (kw == "macro") {
      auto n = mk(NK::kMacro, sg.line, sg.col);
      n->name = ep.expect_name();
      ep.expect_op("(");
      while (!ep.is_op(")")) {
        n->names.push_back(ep.expect_name());
        if (ep.is_op("=")) { ep.next(); n->extra.push_back(ep.expression()); }
        else {
          if (!n->extra.empty() && n->extra.back()) ep.err("non-default argument follows default argument");
          n->extra.push_back(nullptr);
        }
        if (!ep.is_op(",")) break;
        ep.next();
      }
      ep.expect_op(")");
      ep.expect_end();
      auto b = mk(NK::kBlock, sg.line, sg.col);
      body(*b, {"endmacro"});
      if (cur_->peek().kind == Tok::kName) cur_->next();  // {% endmacro name %}
      cur_->expect_end();
      n->kids.push_back(std::move(b));
      return n;
    }
    if (kw == "call") {
      auto n = mk(NK::kCallBlock, sg.line, sg.col);
      if (ep.is_op("(")) ep.err("call blocks with caller arguments are not supported");
      n->kids.push_back(ep.expression());
      ep.expect_end();
      if (n->kids[0]->kind != NK::kCall) fail("expected a macro call after 'call'", sg.line, sg.col);
      auto b = mk(NK::kBlock, sg.line, sg.col);
      body(*b, {"endcall"});
      cur_->expect_end();
      n->kids.push_back(std::move(b));
      return n;
    }
    if (kw == "filter") {
      auto n = mk(NK::kFilterBlock, sg.line, sg.col);
      do {
        if (!n->extra.empty()) ep.next();
        auto f = mk(NK::kFilter, sg.line, sg.col);
        f->name = ep.expect_name();
        f->kids.push_back(nullptr);
        if (ep.is_op("(")) ep.call_args(*f);
        n->extra.push_back(std::move(f));
      } while (ep.is_op("|"));
      ep.expect_end();
      auto b = mk(NK::kBlock, sg.line, sg.col);
      body(*b, {"endfilter"});
      cur_->expect_end();
      n->kids.push_back(std::move(b));
      return n;
    }
    if (kw == "generation") {
      // transformers' assistant-mask marker: renders its body unchanged.
      ep.expect_end();
      auto b = mk(NK::kBlock, sg.line, sg.col);
      body(*b, {"endgeneration"});
      cur_->expect_end();
      return b;
    }
    if (kw == "break" || kw == "continue") {
      ep.expect_end();
      return mk(kw == "break" ? NK::kBreak : NK::kContinue, sg.line, sg.col);
    }
    fail("unsupported or unknown tag '" + kw + "'", sg.line, sg.col);
  }

  std::vector<Segment> segs_;
  size_t i_ = 0;
  size_t depth_ = 0, expr_depth_ = 0;
  int last_line_ = 1, last_col_ = 1;
  std::unique_ptr<ExprParser> cur_;
};

// ---------------------------------------------------------------------------------------------------
// Evaluation

enum class Flow { kNormal, kBreak, kContinue };

struct MacroDef {
  const Node* node;
};

}  // namespace

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

  // ---- statements
  Flow exec(const Node& n, std::string& out) {
    switch (n.kind) {
      case NK::kBlock:
        for (auto& k : n.kids) {
          Flow f = exec(*k, out);
          if (f != Flow::kNormal) return f;
        }
        return Flow::kNormal;
      case NK::kText: out += n.name; check_size(n, out.size()); return Flow::kNormal;
      case NK::kOutput: {
        Value v = eval(*n.kids[0]);
        out += to_str(v);
        check_size(n, out.size());
        return Flow::kNormal;
      }
      case NK::kIf: {
        size_t k = 0;
        for (; k + 1 < n.kids.size(); k += 2)
          if (truthy(eval(*n.kids[k]))) return exec(*n.kids[k + 1], out);
        if (!n.extra.empty()) return exec(*n.extra[0], out);
        return Flow::kNormal;
      }
      case NK::kFor: return exec_for(n, out);
      case NK::kSet: {
        Value v = eval(*n.kids[0]);
        assign(n, n.names, std::move(v));
        return Flow::kNormal;
      }
      case NK::kSetBlock: {
        std::string body;
        Flow f = exec(*n.kids[0], body);
        (void)f;
        Value v = Value::str(std::move(body));
        for (auto& fnode : n.extra) v = apply_filter(*fnode, std::move(v));
        assign(n, n.names, std::move(v));
        return Flow::kNormal;
      }
      case NK::kMacro: {
        Value v;
        v.t = Value::T::kFunc;
        v.fn = std::make_shared<Callable>();
        v.fn->name = n.name;
        const Node* node = &n;
        v.fn->fn = [node](Renderer& r, Args& a) { return r.call_macro(*node, a, nullptr); };
        frames.back()[n.name] = v;
        return Flow::kNormal;
      }
      case NK::kCallBlock: {
        const Node& call = *n.kids[0];
        Value callee = eval(*call.kids[0]);
        Args a = eval_args(call);
        Value caller;
        caller.t = Value::T::kFunc;
        caller.fn = std::make_shared<Callable>();
        caller.fn->name = "caller";
        const Node* body = n.kids[1].get();
        caller.fn->fn = [body](Renderer& r, Args&) {
          std::string s;
          r.frames.emplace_back();
          r.exec(*body, s);
          r.frames.pop_back();
          return Value::str(std::move(s));
        };
        a.kw.emplace_back("caller", caller);
        out += to_str(call_value(call, callee, a));
        check_size(n, out.size());
        return Flow::kNormal;
      }
      case NK::kFilterBlock: {
        std::string body;
        exec(*n.kids[0], body);
        Value v = Value::str(std::move(body));
        for (auto& fnode : n.extra) v = apply_filter(*fnode, std::move(v));
        out += to_str(v);
        check_size(n, out.size());
        return Flow::kNormal;
      }
      case NK::kBreak:
        if (!loop_depth) err(n, "'break' outside a loop");
        return Flow::kBreak;
      case NK::kContinue:
        if (!loop_depth) err(n, "'continue' outside a loop");
        return Flow::kContinue;
      default: err(n, "internal: not a statement");
    }
  }

  void assign(const Node& n, const std::vector<std::string>& targets, Value v) {
    if (targets.size() == 1) {
      const std::string& t = targets[0];
      size_t dot = t.find('.');
      if (dot != std::string::npos) {
        Value obj = lookup(t.substr(0, dot));
        if (obj.t != Value::T::kDict || !obj.namespace_) err(n, "cannot assign attribute on non-namespace object '" + t.substr(0, dot) + "'");
        obj.dict->set(Value::str(t.substr(dot + 1)), std::move(v));
        return;
      }
      frames.back()[t] = std::move(v);
      return;
    }
    List items = iterate(n, v);
    if (items.size() != targets.size())
      err(n, "cannot unpack " + std::to_string(items.size()) + " values into " + std::to_string(targets.size()) + " names");
    for (size_t k = 0; k < targets.size(); ++k) frames.back()[targets[k]] = items[k];
  }

  List iterate(const Node& n, const Value& v) {
    switch (v.t) {
      case Value::T::kList: return *v.list;
      case Value::T::kUndefined: return {};
      case Value::T::kStr: {
        List out;
        size_t i = 0;
        if (v.s.size() > kMaxListSize) err(n, "string too long to iterate");
        while (i < v.s.size()) {
          size_t a = i;
          u::decode_one(v.s, i);
          out.push_back(Value::str(v.s.substr(a, i - a)));
        }
        return out;
      }
      case Value::T::kDict: {
        if (v.namespace_) err(n, "'Namespace' object is not iterable");
        List out;
        for (auto& [k, x] : v.dict->items) out.push_back(k);
        return out;
      }
      default: err(n, std::string("'") + type_name(v) + "' object is not iterable");
    }
  }

  Flow exec_for(const Node& n, std::string& out) {
    Value seq = eval(*n.kids[0]);
    List items = iterate(*n.kids[0], seq);
    const Node* filt = n.kids[2].get();
    if (filt) {
      List kept;
      for (auto& it : items) {
        frames.emplace_back();
        bind_targets(n, it);
        bool ok = truthy(eval(*filt));
        frames.pop_back();
        if (ok) kept.push_back(it);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (!n.extra.empty()) {
        frames.emplace_back();
        exec(*n.extra[0], out);
        frames.pop_back();
      }
      return Flow::kNormal;
    }
    ++loop_depth;
    size_t len = items.size();
    Value outer_loop = lookup("loop");
    for (size_t k = 0; k < len; ++k) {
      if (++iterations > kMaxIterations) err(n, "too many loop iterations");
      frames.emplace_back();
      Value loop = Value::make_dict();
      auto& d = *loop.dict;
      d.set(Value::str("index"), Value::integer(static_cast<int64_t>(k + 1)));
      d.set(Value::str("index0"), Value::integer(static_cast<int64_t>(k)));
      d.set(Value::str("revindex"), Value::integer(static_cast<int64_t>(len - k)));
      d.set(Value::str("revindex0"), Value::integer(static_cast<int64_t>(len - k - 1)));
      d.set(Value::str("first"), Value::boolean(k == 0));
      d.set(Value::str("last"), Value::boolean(k + 1 == len));
      d.set(Value::str("length"), Value::integer(static_cast<int64_t>(len)));
      d.set(Value::str("depth"), Value::integer(loop_depth));
      d.set(Value::str("depth0"), Value::integer(loop_depth - 1));
      d.set(Value::str("previtem"), k > 0 ? items[k - 1] : Value::undefined("loop.previtem"));
      d.set(Value::str("nextitem"), k + 1 < len ? items[k + 1] : Value::undefined("loop.nextitem"));
      Value cycle;
      cycle.t = Value::T::kFunc;
      cycle.fn = std::make_shared<Callable>();
      cycle.fn->name = "loop.cycle";
      cycle.fn->fn = [k](Renderer&, Args& a) {
        if (a.pos.empty()) fail("no items for cycling given");
        return a.pos[k % a.pos.size()];
      };
      d.set(Value::str("cycle"), cycle);
      frames.back()["loop"] = loop;
      bind_targets(n, items[k]);
      Flow f = exec(*n.kids[1], out);
      frames.pop_back();
      if (f == Flow::kBreak) break;
    }
    --loop_depth;
    (void)outer_loop;
    return Flow::kNormal;
  }

  void bind_targets(const Node& n, const Value& item) {
    if (n.names.size() == 1) { frames.back()[n.names[0]] = item; return; }
    List parts = iterate(n, item);
    if (parts.size() != n.names.size())
      err(n, "cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(n.names.size()) + " loop variables");
    for (size_t k = 0; k < parts.size(); ++k) frames.back()[n.names[k]] = parts[k];
  }

  Value call_macro(const Node& m, Args& a, const Value* caller) {
    if (++call_depth > kMaxCallDepth) { --call_depth; fail("macro recursion too deep", m.line, m.col); }
    std::unordered_map<std::string, Value> frame;
    size_t np = m.names.size();
    if (a.pos.size() > np) fail("macro '" + m.name + "' takes " + std::to_string(np) + " arguments, got " + std::to_string(a.pos.size()), m.line, m.col);
    std::vector<bool> set(np, false);
    for (size_t k = 0; k < a.pos.size(); ++k) { frame[m.names[k]] = a.pos[k]; set[k] = true; }
    Value kwargs = Value::make_dict();
    for (auto& [k, v] : a.kw) {
      auto it = std::find(m.names.begin(), m.names.end(), k);
      if (it == m.names.end()) {
        if (k == "caller") { frame["caller"] = v; continue; }
        kwargs.dict->set(Value::str(k), v);
        continue;
      }
      frame[k] = v;
      set[static_cast<size_t>(it - m.names.begin())] = true;
    }
    // Defaults are evaluated in the macro's frame, so they may refer to earlier parameters.
    frames.push_back(std::move(frame));
    for (size_t k = 0; k < np; ++k) {
      if (set[k]) continue;
      frames.back()[m.names[k]] = m.extra[k] ? eval(*m.extra[k]) : Value::undefined(m.names[k]);
    }
    frames.back()["kwargs"] = kwargs;
    Value varargs = Value::make_list();
    varargs.tuple = true;
    frames.back()["varargs"] = varargs;
    (void)caller;
    // Macros see the template's top-level variables, not the caller's locals.
    std::vector<std::unordered_map<std::string, Value>> saved;
    saved.swap(frames);
    frames.push_back(saved[0]);
    if (saved.size() > 2) frames.push_back(saved[1]);  // template-level assignments (incl. the macro itself)
    frames.push_back(std::move(saved.back()));
    saved.pop_back();
    int saved_loop = loop_depth;
    loop_depth = 0;
    std::string out;
    try {
      exec(*m.kids[0], out);
    } catch (...) {
      frames.swap(saved);
      loop_depth = saved_loop;
      --call_depth;
      throw;
    }
    frames.swap(saved);
    loop_depth = saved_loop;
    --call_depth;
    return Value::str(std::move(out));
  }

  // ---- expressions
  Args eval_args(const Node& n) {
    Args a;
    for (size_t k = 1; k < n.kids.size(); ++k) a.pos.push_back(eval(*n.kids[k]));
    for (size_t k = 0; k < n.names.size(); ++k) a.kw.emplace_back(n.names[k], eval(*n.extra[k]));
    return a;
  }

  Value call_value(const Node& n, const Value& callee, Args& a) {
    if (callee.t != Value::T::kFunc) {
      if (callee.is_undef()) err(n, "'" + callee.s + "' is undefined");
      err(n, std::string("'") + type_name(callee) + "' object is not callable");
    }
    try {
      return callee.fn->fn(*this, a);
    } catch (JinjaError& e) {
      if (e.line == 0) { e.line = n.line; e.col = n.col; }
      throw;
    }
  }

  Value eval(const Node& n) {
    switch (n.kind) {
      case NK::kLiteral: return n.lit;
      case NK::kName: {
        Value v = lookup(n.name);
        if (v.is_undef()) return global(n.name);
        return v;
      }
      case NK::kAttr: {
        Value obj = eval(*n.kids[0]);
        return get_attr(n, obj, n.name);
      }
      case NK::kItem: {
        Value obj = eval(*n.kids[0]);
        Value key = eval(*n.kids[1]);
        return get_item(n, obj, key);
      }
      case NK::kSlice: {
        Value obj = eval(*n.kids[0]);
        std::optional<int64_t> p[3];
        for (int k = 0; k < 3; ++k) {
          if (!n.extra[k]) continue;
          Value v = eval(*n.extra[k]);
          if (v.t == Value::T::kNone) continue;
          if (v.t != Value::T::kInt && v.t != Value::T::kBool) err(n, "slice indices must be integers or None");
          p[k] = as_int(v);
        }
        return slice(n, obj, p[0], p[1], p[2]);
      }
      case NK::kCall: {
        const Node& fnode = *n.kids[0];
        if (fnode.kind == NK::kAttr) {
          Value obj = eval(*fnode.kids[0]);
          Args a = eval_args(n);
          return call_method(n, obj, fnode.name, a);
        }
        Value callee = eval(fnode);
        Args a = eval_args(n);
        return call_value(n, callee, a);
      }
      case NK::kFilter: {
        Value v = eval(*n.kids[0]);
        return apply_filter(n, std::move(v));
      }
      case NK::kTest: {
        Value v = eval(*n.kids[0]);
        Args a = eval_args(n);
        bool r = apply_test(n, n.name, v, a);
        return Value::boolean(n.flag ? !r : r);
      }
      case NK::kNeg: case NK::kPos: {
        Value v = eval(*n.kids[0]);
        if (v.t == Value::T::kFloat) return Value::real(n.kind == NK::kNeg ? -v.f : v.f);
        if (v.t == Value::T::kInt || v.t == Value::T::kBool) {
          int64_t x = as_int(v);
          if (n.kind == NK::kPos) return Value::integer(x);
          if (x == INT64_MIN) err(n, "integer overflow");
          return Value::integer(-x);
        }
        err(n, std::string("bad operand type for unary ") + (n.kind == NK::kNeg ? "-" : "+") + ": '" + type_name(v) + "'");
      }
      case NK::kNot: return Value::boolean(!truthy(eval(*n.kids[0])));
      case NK::kAnd: {
        Value l = eval(*n.kids[0]);
        if (!truthy(l)) return l;
        return eval(*n.kids[1]);
      }
      case NK::kOr: {
        Value l = eval(*n.kids[0]);
        if (truthy(l)) return l;
        return eval(*n.kids[1]);
      }
      case NK::kCond: {
        if (truthy(eval(*n.kids[0]))) return eval(*n.kids[1]);
        if (n.kids.size() > 2) return eval(*n.kids[2]);
        return Value::undefined("");
      }
      case NK::kBinary: {
        Value l = eval(*n.kids[0]);
        Value r = eval(*n.kids[1]);
        return binary(n, n.name, l, r);
      }
      case NK::kCompare: {
        Value l = eval(*n.kids[0]);
        for (size_t k = 0; k < n.names.size(); ++k) {
          Value r = eval(*n.kids[k + 1]);
          if (!compare(n, n.names[k], l, r)) return Value::boolean(false);
          l = std::move(r);
        }
        return Value::boolean(true);
      }
      case NK::kList: case NK::kTuple: {
        Value v = Value::make_list();
        v.tuple = n.kind == NK::kTuple;
        for (auto& k : n.kids) v.list->push_back(eval(*k));
        return v;
      }
      case NK::kDict: {
        Value v = Value::make_dict();
        for (size_t k = 0; k < n.kids.size(); ++k) {
          Value key = eval(*n.kids[k]);
          if (key.t == Value::T::kList && !key.tuple) err(n, "unhashable type: 'list'");
          if (key.t == Value::T::kDict) err(n, "unhashable type: 'dict'");
          v.dict->set(key, eval(*n.extra[k]));
        }
        return v;
      }
      default: err(n, "internal: not an expression");
    }
  }

  Value make_fn(const std::string& name, std::function<Value(Renderer&, Args&)> f) {
    Value v;
    v.t = Value::T::kFunc;
    v.fn = std::make_shared<Callable>();
    v.fn->name = name;
    v.fn->fn = std::move(f);
    return v;
  }

  Value global(const std::string& name) {
    if (name == "range") {
      return make_fn("range", [](Renderer&, Args& a) {
        if (a.pos.empty() || a.pos.size() > 3) fail("range expected 1 to 3 arguments");
        for (auto& v : a.pos) if (v.t != Value::T::kInt && v.t != Value::T::kBool) fail("range() arguments must be integers");
        int64_t start = 0, stop, step = 1;
        if (a.pos.size() == 1) stop = as_int(a.pos[0]);
        else { start = as_int(a.pos[0]); stop = as_int(a.pos[1]); if (a.pos.size() == 3) step = as_int(a.pos[2]); }
        if (step == 0) fail("range() arg 3 must not be zero");
        Value out = Value::make_list();
        for (int64_t x = start; step > 0 ? x < stop : x > stop;) {
          if (out.list->size() >= kMaxListSize) fail("range() too large");
          out.list->push_back(Value::integer(x));
          if (__builtin_add_overflow(x, step, &x)) break;
        }
        return out;
      });
    }
    if (name == "namespace") {
      return make_fn("namespace", [](Renderer&, Args& a) {
        Value v = Value::make_dict();
        v.namespace_ = true;
        for (auto& p : a.pos) {
          if (p.t != Value::T::kDict) fail("namespace() positional argument must be a mapping");
          for (auto& [k, x] : p.dict->items) v.dict->set(k, x);
        }
        for (auto& [k, x] : a.kw) v.dict->set(Value::str(k), x);
        return v;
      });
    }
    if (name == "dict") {
      return make_fn("dict", [](Renderer&, Args& a) {
        Value v = Value::make_dict();
        for (auto& p : a.pos) {
          if (p.t != Value::T::kDict) fail("dict() positional argument must be a mapping");
          for (auto& [k, x] : p.dict->items) v.dict->set(k, x);
        }
        for (auto& [k, x] : a.kw) v.dict->set(Value::str(k), x);
        return v;
      });
    }
    if (name == "raise_exception") {
      return make_fn("raise_exception", [](Renderer&, Args& a) -> Value {
        const Value* m = a.get(0, "message");
        fail("TemplateError: " + (m ? to_str(*m) : std::string()));
      });
    }
    if (name == "strftime_now") {
      return make_fn("strftime_now", [](Renderer& r, Args& a) {
        const Value* f = a.get(0, "format");
        std::string fmt = f ? to_str(*f) : std::string("%Y-%m-%d");
        if (r.opt_.strftime_now) return Value::str(r.opt_.strftime_now(fmt));
        std::time_t now = std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        char buf[512];
        size_t len = fmt.size() < 200 ? std::strftime(buf, sizeof(buf), fmt.c_str(), &tm) : 0;
        return Value::str(std::string(buf, len));
      });
    }
    return Value::undefined(name);
  }

  Value get_attr(const Node& n, const Value& obj, const std::string& name) {
    switch (obj.t) {
      case Value::T::kUndefined: err(n, "'" + (obj.s.empty() ? std::string("value") : obj.s) + "' is undefined");
      case Value::T::kDict: {
        if (!obj.namespace_ && (name == "items" || name == "keys" || name == "values" || name == "get"))
          return bound(obj, name);
        const Value* v = obj.dict->find_str(name);
        return v ? *v : Value::undefined(name);
      }
      case Value::T::kStr: case Value::T::kList: return bound(obj, name);
      default: return Value::undefined(name);
    }
  }

  Value bound(const Value& obj, const std::string& name) {
    Value self = obj;
    return make_fn(name, [self, name](Renderer& r, Args& a) {
      Node dummy;
      dummy.kind = NK::kCall;
      return r.call_method(dummy, self, name, a);
    });
  }

  Value get_item(const Node& n, const Value& obj, const Value& key) {
    switch (obj.t) {
      case Value::T::kUndefined: err(n, "'" + (obj.s.empty() ? std::string("value") : obj.s) + "' is undefined");
      case Value::T::kDict: {
        const Value* v = obj.dict->find(key);
        if (v) return *v;
        if (key.t == Value::T::kStr) return get_attr(n, obj, key.s);
        return Value::undefined(to_str(key));
      }
      case Value::T::kList: case Value::T::kStr: {
        if (key.t == Value::T::kStr) return get_attr(n, obj, key.s);
        if (key.t != Value::T::kInt && key.t != Value::T::kBool) return Value::undefined(to_str(key));
        int64_t idx = as_int(key);
        if (obj.t == Value::T::kList) {
          int64_t len = static_cast<int64_t>(obj.list->size());
          if (idx < 0) idx += len;
          if (idx < 0 || idx >= len) return Value::undefined("[" + std::to_string(as_int(key)) + "]");
          return (*obj.list)[static_cast<size_t>(idx)];
        }
        std::u32string w = u::to_u32(obj.s);
        int64_t len = static_cast<int64_t>(w.size());
        if (idx < 0) idx += len;
        if (idx < 0 || idx >= len) return Value::undefined("[" + std::to_string(as_int(key)) + "]");
        std::string out;
        u::append(out, w[static_cast<size_t>(idx)]);
        return Value::str(out);
      }
      default: return Value::undefined(to_str(key));
    }
  }

  static void slice_indices(int64_t len, std::optional<int64_t> a, std::optional<int64_t> b, int64_t step, int64_t& start, int64_t& stop) {
    auto clamp = [&](int64_t x, bool is_start) {
      if (x < 0) { x += len; if (x < 0) x = step < 0 ? -1 : 0; }
      else if (x >= len) x = step < 0 ? len - 1 : len;
      (void)is_start;
      return x;
    };
    start = a ? clamp(*a, true) : (step < 0 ? len - 1 : 0);
    stop = b ? clamp(*b, false) : (step < 0 ? -1 : len);
  }

  Value slice(const Node& n, const Value& obj, std::optional<int64_t> a, std::optional<int64_t> b, std::optional<int64_t> c) {
    int64_t step = c.value_or(1);
    if (step == 0) err(n, "slice step cannot be zero");
    if (step == INT64_MIN) step = -INT64_MAX;
    auto pick = [&](int64_t len, auto&& emit) {
      int64_t start, stop;
      slice_indices(len, a, b, step, start, stop);
      if (step > 0) for (int64_t k = start; k < stop; k += step) { emit(k); if (stop - k <= step) break; }
      else for (int64_t k = start; k > stop; k += step) { emit(k); if (k - stop <= -step) break; }
    };
    if (obj.t == Value::T::kList) {
      Value out = Value::make_list();
      out.tuple = obj.tuple;
      pick(static_cast<int64_t>(obj.list->size()), [&](int64_t k) { out.list->push_back((*obj.list)[static_cast<size_t>(k)]); });
      return out;
    }
    if (obj.t == Value::T::kStr) {
      std::u32string w = u::to_u32(obj.s), o;
      pick(static_cast<int64_t>(w.size()), [&](int64_t k) { o.push_back(w[static_cast<size_t>(k)]); });
      return Value::str(u::from_u32(o));
    }
    if (obj.is_undef()) err(n, "'" + obj.s + "' is undefined");
    err(n, std::string("'") + type_name(obj) + "' object is not subscriptable");
  }

  // ---- operators
  Value binary(const Node& n, const std::string& op, const Value& l, const Value& r) {
    if (op == "~") {
      std::string s = to_str(l) + to_str(r);
      check_size(n, s.size());
      return Value::str(std::move(s));
    }
    if ((l.is_undef() || r.is_undef())) err(n, "'" + (l.is_undef() ? l.s : r.s) + "' is undefined");
    if (op == "+") {
      if (l.t == Value::T::kStr && r.t == Value::T::kStr) { check_size(n, l.s.size() + r.s.size()); return Value::str(l.s + r.s); }
      if (l.t == Value::T::kList && r.t == Value::T::kList) {
        Value out = Value::make_list(*l.list);
        out.tuple = l.tuple;
        if (l.list->size() + r.list->size() > kMaxListSize) err(n, "list too large");
        out.list->insert(out.list->end(), r.list->begin(), r.list->end());
        return out;
      }
    }
    if (op == "*") {
      const Value* seq = l.t == Value::T::kStr || l.t == Value::T::kList ? &l : r.t == Value::T::kStr || r.t == Value::T::kList ? &r : nullptr;
      const Value* cnt = seq == &l ? &r : &l;
      if (seq && (cnt->t == Value::T::kInt || cnt->t == Value::T::kBool)) {
        int64_t times = std::max<int64_t>(0, as_int(*cnt));
        if (seq->t == Value::T::kStr) {
          if (times && seq->s.size() * static_cast<uint64_t>(times) > kMaxOutput) err(n, "string too large");
          std::string out;
          for (int64_t k = 0; k < times; ++k) out += seq->s;
          return Value::str(std::move(out));
        }
        if (times && seq->list->size() * static_cast<uint64_t>(times) > kMaxListSize) err(n, "list too large");
        Value out = Value::make_list();
        out.tuple = seq->tuple;
        for (int64_t k = 0; k < times; ++k) out.list->insert(out.list->end(), seq->list->begin(), seq->list->end());
        return out;
      }
    }
    if (op == "%" && l.t == Value::T::kStr) return Value::str(percent_format(n, l.s, r));
    if (!l.is_num() || !r.is_num())
      err(n, std::string("unsupported operand type(s) for ") + op + ": '" + type_name(l) + "' and '" + type_name(r) + "'");
    bool fl = l.t == Value::T::kFloat || r.t == Value::T::kFloat;
    if (op == "/") {
      double d = as_double(r);
      if (d == 0.0) err(n, "division by zero");
      return Value::real(as_double(l) / d);
    }
    if (op == "**") {
      if (!fl && as_int(r) >= 0) {
        int64_t base = as_int(l), e = as_int(r), res = 1;
        while (e > 0) {
          if (e & 1) { if (__builtin_mul_overflow(res, base, &res)) err(n, "integer overflow"); }
          e >>= 1;
          if (e && __builtin_mul_overflow(base, base, &base)) err(n, "integer overflow");
        }
        return Value::integer(res);
      }
      return Value::real(std::pow(as_double(l), as_double(r)));
    }
    if (fl) {
      double a = as_double(l), b = as_double(r);
      if (op == "+") return Value::real(a + b);
      if (op == "-") return Value::real(a - b);
      if (op == "*") return Value::real(a * b);
      if (b == 0.0) err(n, "float division by zero");
      if (op == "//") return Value::real(std::floor(a / b));
      if (op == "%") { double m = std::fmod(a, b); if (m != 0 && ((m < 0) != (b < 0))) m += b; return Value::real(m); }
    } else {
      int64_t a = as_int(l), b = as_int(r), res = 0;
      if (op == "+") { if (__builtin_add_overflow(a, b, &res)) err(n, "integer overflow"); return Value::integer(res); }
      if (op == "-") { if (__builtin_sub_overflow(a, b, &res)) err(n, "integer overflow"); return Value::integer(res); }
      if (op == "*") { if (__builtin_mul_overflow(a, b, &res)) err(n, "integer overflow"); return Value::integer(res); }
      if (b == 0) err(n, "integer division or modulo by zero");
      if (a == INT64_MIN && b == -1) err(n, "integer overflow");
      if (op == "//") { int64_t q = a / b; if ((a % b != 0) && ((a < 0) != (b < 0))) --q; return Value::integer(q); }
      if (op == "%") { int64_t m = a % b; if (m != 0 && ((m < 0) != (b < 0))) m += b; return Value::integer(m); }
    }
    err(n, "unknown operator " + op);
  }

  std::string percent_format(const Node& n, const std::string& fmt, const Value& arg) {
    List args;
    if (arg.t == Value::T::kList && arg.tuple) args = *arg.list;
    else args.push_back(arg);
    size_t ai = 0;
    std::string out;
    for (size_t k = 0; k < fmt.size(); ++k) {
      if (fmt[k] != '%') { out += fmt[k]; continue; }
      if (++k >= fmt.size()) err(n, "incomplete format");
      if (fmt[k] == '%') { out += '%'; continue; }
      std::string spec = "%";
      while (k < fmt.size() && std::strchr("-+ #0123456789.", fmt[k])) spec += fmt[k++];
      if (k >= fmt.size() || spec.size() > 10) err(n, "incomplete format");
      char conv = fmt[k];
      if (ai >= args.size()) err(n, "not enough arguments for format string");
      const Value& v = args[ai++];
      char buf[128];
      if (conv == 's' || conv == 'r') { out += conv == 's' ? to_str(v) : repr(v, 0); check_size(n, out.size()); continue; }
      if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
        if (!v.is_num()) err(n, "%d format: a number is required");
        spec += "ll";
        spec += conv == 'i' ? 'd' : conv;
        std::snprintf(buf, sizeof(buf), spec.c_str(), static_cast<long long>(v.t == Value::T::kFloat ? static_cast<long long>(v.f) : as_int(v)));
        out += buf;
        continue;
      }
      if (conv == 'f' || conv == 'e' || conv == 'g' || conv == 'F' || conv == 'E' || conv == 'G') {
        if (!v.is_num()) err(n, "%f format: a number is required");
        spec += conv;
        std::snprintf(buf, sizeof(buf), spec.c_str(), as_double(v));
        out += buf;
        continue;
      }
      err(n, std::string("unsupported format character '") + conv + "'");
    }
    if (ai < args.size() && !(arg.t == Value::T::kDict)) err(n, "not all arguments converted during string formatting");
    return out;
  }

  bool less(const Node& n, const Value& l, const Value& r) {
    if (l.is_num() && r.is_num()) {
      if (l.t == Value::T::kFloat || r.t == Value::T::kFloat) return as_double(l) < as_double(r);
      return as_int(l) < as_int(r);
    }
    if (l.t == Value::T::kStr && r.t == Value::T::kStr) return l.s < r.s;
    if (l.t == Value::T::kList && r.t == Value::T::kList) {
      size_t m = std::min(l.list->size(), r.list->size());
      for (size_t k = 0; k < m; ++k) {
        if (equal((*l.list)[k], (*r.list)[k])) continue;
        return less(n, (*l.list)[k], (*r.list)[k]);
      }
      return l.list->size() < r.list->size();
    }
    err(n, std::string("'<' not supported between instances of '") + type_name(l) + "' and '" + type_name(r) + "'");
  }

  bool contains(const Node& n, const Value& container, const Value& item) {
    switch (container.t) {
      case Value::T::kStr:
        if (item.t != Value::T::kStr) err(n, "'in <string>' requires string as left operand, not " + std::string(type_name(item)));
        return container.s.find(item.s) != std::string::npos;
      case Value::T::kList:
        for (auto& x : *container.list) if (equal(x, item)) return true;
        return false;
      case Value::T::kDict: return container.dict->find(item) != nullptr;
      case Value::T::kUndefined: return false;
      default: err(n, std::string("argument of type '") + type_name(container) + "' is not iterable");
    }
  }

  bool compare(const Node& n, const std::string& op, const Value& l, const Value& r) {
    if (op == "==") return equal(l, r);
    if (op == "!=") return !equal(l, r);
    if (op == "in") return contains(n, r, l);
    if (op == "notin") return !contains(n, r, l);
    if (op == "<") return less(n, l, r);
    if (op == ">") return less(n, r, l);
    if (op == "<=") return !less(n, r, l);
    if (op == ">=") return !less(n, l, r);
    err(n, "unknown comparison " + op);
  }

  // ---- methods of str, dict and list
  static std::string arg_str(const Node& n, Renderer& r, const Value* v, const char* what) {
    if (!v || v->t != Value::T::kStr) r.err(n, std::string(what) + " must be a string");
    return v->s;
  }

  static std::u32string strip_chars(const std::u32string& w, const Value* chars, bool left, bool right) {
    std::u32string set;
    bool ws = !chars || chars->t == Value::T::kNone;
    if (!ws) set = u::to_u32(chars->s);
    auto strip_it = [&](char32_t c) { return ws ? is_py_space(c) : set.find(c) != std::u32string::npos; };
    size_t a = 0, b = w.size();
    if (left) while (a < b && strip_it(w[a])) ++a;
    if (right) while (b > a && strip_it(w[b - 1])) --b;
    return w.substr(a, b - a);
  }

  static std::string title(const std::string& s) {
    std::u32string w = u::to_u32(s);
    bool prev_cased = false;
    for (auto& c : w) {
      bool cased = u::to_lower(c) != u::to_upper(c);
      if (cased) c = prev_cased ? u::to_lower(c) : u::to_upper(c);
      prev_cased = cased;
    }
    return u::from_u32(w);
  }

  static std::string capitalize(const std::string& s) {
    std::u32string w = u::to_u32(s);
    for (size_t k = 0; k < w.size(); ++k) w[k] = k == 0 ? u::to_upper(w[k]) : u::to_lower(w[k]);
    return u::from_u32(w);
  }

  Value split(const Node& n, const std::string& s, const Value* sep, const Value* maxsplit_v, bool from_right) {
    int64_t maxsplit = -1;
    if (maxsplit_v && maxsplit_v->t != Value::T::kNone) {
      if (maxsplit_v->t != Value::T::kInt) err(n, "maxsplit must be an integer");
      maxsplit = maxsplit_v->i;
    }
    Value out = Value::make_list();
    if (!sep || sep->t == Value::T::kNone) {
      std::u32string w = u::to_u32(s);
      std::vector<std::u32string> parts;
      if (!from_right) {
        size_t k = 0;
        while (k < w.size()) {
          while (k < w.size() && is_py_space(w[k])) ++k;
          if (k >= w.size()) break;
          if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
            size_t e = w.size();
            while (e > k && is_py_space(w[e - 1])) --e;
            parts.push_back(w.substr(k, e - k));
            break;
          }
          size_t e = k;
          while (e < w.size() && !is_py_space(w[e])) ++e;
          parts.push_back(w.substr(k, e - k));
          k = e;
        }
      } else {
        size_t k = w.size();
        while (k > 0) {
          while (k > 0 && is_py_space(w[k - 1])) --k;
          if (k == 0) break;
          if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
            size_t a = 0;
            while (a < k && is_py_space(w[a])) ++a;
            parts.push_back(w.substr(a, k - a));
            break;
          }
          size_t a = k;
          while (a > 0 && !is_py_space(w[a - 1])) --a;
          parts.push_back(w.substr(a, k - a));
          k = a;
        }
        std::reverse(parts.begin(), parts.end());
      }
      if (parts.size() > kMaxListSize) err(n, "split: too many parts");
      for (auto& p : parts) out.list->push_back(Value::str(u::from_u32(p)));
      return out;
    }
    if (sep->t != Value::T::kStr) err(n, "must be str or None, not " + std::string(type_name(*sep)));
    if (sep->s.empty()) err(n, "empty separator");
    std::vector<std::string> parts;
    if (!from_right) {
      size_t pos = 0;
      while (true) {
        size_t k = s.find(sep->s, pos);
        if (k == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit)) { parts.push_back(s.substr(pos)); break; }
        parts.push_back(s.substr(pos, k - pos));
        pos = k + sep->s.size();
      }
    } else {
      size_t end = s.size();
      while (true) {
        size_t k = end >= sep->s.size() ? s.rfind(sep->s, end - sep->s.size()) : std::string::npos;
        if (k == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit)) { parts.push_back(s.substr(0, end)); break; }
        parts.push_back(s.substr(k + sep->s.size(), end - k - sep->s.size()));
        end = k;
      }
      std::reverse(parts.begin(), parts.end());
    }
    if (parts.size() > kMaxListSize) err(n, "split: too many parts");
    for (auto& p : parts) out.list->push_back(Value::str(std::move(p)));
    return out;
  }

  std::string str_format(const Node& n, const std::string& fmt, Args& a) {
    std::string out;
    size_t auto_idx = 0;
    for (size_t k = 0; k < fmt.size(); ++k) {
      char c = fmt[k];
      if (c == '{') {
        if (k + 1 < fmt.size() && fmt[k + 1] == '{') { out += '{'; ++k; continue; }
        size_t e = fmt.find('}', k);
        if (e == std::string::npos) err(n, "Single '{' encountered in format string");
        std::string field = fmt.substr(k + 1, e - k - 1);
        std::string spec;
        size_t colon = field.find(':');
        if (colon != std::string::npos) { spec = field.substr(colon + 1); field = field.substr(0, colon); }
        if (!field.empty() && field.find('!') != std::string::npos) field = field.substr(0, field.find('!'));
        const Value* v = nullptr;
        if (field.empty()) {
          if (auto_idx >= a.pos.size()) err(n, "Replacement index out of range for positional args tuple");
          v = &a.pos[auto_idx++];
        } else if (std::all_of(field.begin(), field.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); })) {
          size_t idx = std::strtoul(field.c_str(), nullptr, 10);
          if (idx >= a.pos.size()) err(n, "Replacement index out of range for positional args tuple");
          v = &a.pos[idx];
        } else {
          for (auto& [kk, vv] : a.kw) if (kk == field) v = &vv;
          if (!v) err(n, "KeyError: '" + field + "'");
        }
        if (!spec.empty()) {
          if (spec.size() > 1 && spec[0] == '.' && spec.back() == 'f' && v->is_num()) {
            int prec = std::atoi(spec.c_str() + 1);
            char buf[400];
            std::snprintf(buf, sizeof(buf), "%.*f", std::clamp(prec, 0, 50), as_double(*v));
            out += buf;
          } else err(n, "format spec '" + spec + "' is not supported");
        } else out += to_str(*v);
        check_size(n, out.size());
        k = e;
      } else if (c == '}') {
        if (k + 1 < fmt.size() && fmt[k + 1] == '}') ++k;
        else err(n, "Single '}' encountered in format string");
        out += '}';
      } else out += c;
    }
    return out;
  }

  Value call_method(const Node& n, const Value& obj, const std::string& name, Args& a) {
    if (obj.t == Value::T::kStr) {
      const std::string& s = obj.s;
      auto arg = [&](size_t i, const char* nm) { return a.get(i, nm); };
      if (name == "startswith" || name == "endswith") {
        const Value* p = arg(0, "prefix");
        if (!p) err(n, name + "() takes at least 1 argument");
        std::vector<std::string> cands;
        if (p->t == Value::T::kStr) cands.push_back(p->s);
        else if (p->t == Value::T::kList) { for (auto& x : *p->list) { if (x.t != Value::T::kStr) err(n, name + " first arg must be str or a tuple of str"); cands.push_back(x.s); } }
        else err(n, name + " first arg must be str or a tuple of str, not " + type_name(*p));
        for (auto& c : cands) {
          if (name == "startswith" ? s.compare(0, c.size(), c) == 0 : (s.size() >= c.size() && s.compare(s.size() - c.size(), c.size(), c) == 0))
            return Value::boolean(true);
        }
        return Value::boolean(false);
      }
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const Value* c = arg(0, "chars");
        if (c && c->t != Value::T::kStr && c->t != Value::T::kNone) err(n, name + " arg must be None or str");
        return Value::str(u::from_u32(strip_chars(u::to_u32(s), c, name != "rstrip", name != "lstrip")));
      }
      if (name == "split" || name == "rsplit") return split(n, s, arg(0, "sep"), arg(1, "maxsplit"), name == "rsplit");
      if (name == "splitlines") {
        Value out = Value::make_list();
        size_t pos = 0;
        while (pos < s.size()) {
          size_t e = s.find_first_of("\r\n", pos);
          if (e == std::string::npos) { out.list->push_back(Value::str(s.substr(pos))); break; }
          out.list->push_back(Value::str(s.substr(pos, e - pos)));
          pos = e + ((s[e] == '\r' && e + 1 < s.size() && s[e + 1] == '\n') ? 2 : 1);
        }
        return out;
      }
      if (name == "replace") {
        std::string from = arg_str(n, *this, arg(0, "old"), "replace() old");
        std::string to = arg_str(n, *this, arg(1, "new"), "replace() new");
        const Value* cnt = arg(2, "count");
        int64_t count = cnt && cnt->t == Value::T::kInt ? cnt->i : -1;
        return Value::str(py_replace(n, s, from, to, count));
      }
      if (name == "upper") return Value::str(u::upper(s));
      if (name == "lower") return Value::str(u::lower(s));
      if (name == "title") return Value::str(title(s));
      if (name == "capitalize") return Value::str(capitalize(s));
      if (name == "format") return Value::str(str_format(n, s, a));
      if (name == "find" || name == "rfind" || name == "index" || name == "count") {
        std::string sub = arg_str(n, *this, arg(0, "sub"), (name + "() argument").c_str());
        if (name == "count") {
          if (sub.empty()) return Value::integer(static_cast<int64_t>(u::count_chars(s) + 1));
          int64_t c = 0;
          for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++c;
          return Value::integer(c);
        }
        size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
        if (p == std::string::npos) {
          if (name == "index") err(n, "substring not found");
          return Value::integer(-1);
        }
        return Value::integer(static_cast<int64_t>(u::count_chars(std::string_view(s).substr(0, p))));
      }
      if (name == "join") {
        const Value* it = arg(0, "iterable");
        if (!it) err(n, "join() takes exactly one argument");
        std::string out;
        List items = iterate(n, *it);
        for (size_t k = 0; k < items.size(); ++k) {
          if (items[k].t != Value::T::kStr) err(n, "sequence item " + std::to_string(k) + ": expected str instance, " + type_name(items[k]) + " found");
          if (k) out += s;
          out += items[k].s;
          check_size(n, out.size());
        }
        return Value::str(out);
      }
      if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum" || name == "isupper" || name == "islower") {
        std::u32string w = u::to_u32(s);
        if (w.empty()) return Value::boolean(false);
        bool ok = true, any_cased = false;
        for (char32_t c : w) {
          if (name == "isdigit") ok &= utf8proc_category(static_cast<int32_t>(c)) == UTF8PROC_CATEGORY_ND;
          else if (name == "isalpha") { auto cat = utf8proc_category(static_cast<int32_t>(c)); ok &= cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO; }
          else if (name == "isspace") ok &= is_py_space(c);
          else if (name == "isalnum") ok &= u::is_alphanumeric(c);
          else {
            bool cased = u::to_lower(c) != u::to_upper(c);
            any_cased |= cased;
            if (cased) ok &= name == "isupper" ? u::to_upper(c) == c : u::to_lower(c) == c;
          }
        }
        if (name == "isupper" || name == "islower") ok &= any_cased;
        return Value::boolean(ok);
      }
      err(n, "'str' object has no attribute '" + name + "'");
    }
    if (obj.t == Value::T::kDict && !obj.namespace_) {
      if (name == "items" || name == "keys" || name == "values") {
        Value out = Value::make_list();
        for (auto& [k, v] : obj.dict->items) {
          if (name == "keys") out.list->push_back(k);
          else if (name == "values") out.list->push_back(v);
          else { Value t = Value::make_list({k, v}); t.tuple = true; out.list->push_back(t); }
        }
        return out;
      }
      if (name == "get") {
        const Value* k = a.get(0, "key");
        if (!k) err(n, "get expected at least 1 argument");
        const Value* v = obj.dict->find(*k);
        if (v) return *v;
        const Value* d = a.get(1, "default");
        return d ? *d : Value::none();
      }
      if (name == "update" || name == "pop" || name == "setdefault" || name == "clear" || name == "popitem")
        err(n, "SecurityError: access to attribute '" + name + "' of 'dict' object is unsafe");
      const Value* v = obj.dict->find_str(name);
      if (v) return call_value(n, *v, a);
      err(n, "'dict' object has no attribute '" + name + "'");
    }
    if (obj.t == Value::T::kList) {
      if (name == "append" || name == "extend" || name == "pop" || name == "insert" || name == "remove" ||
          name == "clear" || name == "sort" || name == "reverse")
        err(n, "SecurityError: access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe");
      if (name == "index" || name == "count") {
        const Value* x = a.get(0, "value");
        if (!x) err(n, name + "() takes exactly one argument");
        int64_t c = 0;
        for (size_t k = 0; k < obj.list->size(); ++k) {
          if (!equal((*obj.list)[k], *x)) continue;
          if (name == "index") return Value::integer(static_cast<int64_t>(k));
          ++c;
        }
        if (name == "index") err(n, "value is not in list");
        return Value::integer(c);
      }
      err(n, std::string("'") + type_name(obj) + "' object has no attribute '" + name + "'");
    }
    Value attr = get_attr(n, obj, name);
    return call_value(n, attr, a);
  }

  std::string py_replace(const Node& n, const std::string& s, const std::string& from, const std::string& to, int64_t count) {
    std::string out;
    if (from.empty()) {
      // Python inserts `to` between characters and at both ends.
      size_t i = 0;
      int64_t done = 0;
      while (true) {
        if (count < 0 || done < count) { out += to; ++done; }
        if (i >= s.size()) break;
        size_t a = i;
        u::decode_one(s, i);
        out.append(s, a, i - a);
        check_size(n, out.size());
      }
      return out;
    }
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
      size_t k = s.find(from, pos);
      if (k == std::string::npos) break;
      out.append(s, pos, k - pos);
      out += to;
      pos = k + from.size();
      ++done;
      check_size(n, out.size());
    }
    out.append(s, pos, std::string::npos);
    return out;
  }

  // ---- tests
  bool apply_test(const Node& n, const std::string& name, const Value& v, Args& a) {
    const Value* arg = a.get(0, "other");
    auto need = [&]() -> const Value& { if (!arg) err(n, "test '" + name + "' needs an argument"); return *arg; };
    if (name == "defined") return !v.is_undef();
    if (name == "undefined") return v.is_undef();
    if (name == "none") return v.t == Value::T::kNone;
    if (name == "boolean") return v.t == Value::T::kBool;
    if (name == "true") return v.t == Value::T::kBool && v.b;
    if (name == "false") return v.t == Value::T::kBool && !v.b;
    if (name == "integer") return v.t == Value::T::kInt;
    if (name == "float") return v.t == Value::T::kFloat;
    if (name == "number") return v.is_num();
    if (name == "string") return v.t == Value::T::kStr;
    if (name == "mapping") return v.t == Value::T::kDict && !v.namespace_;
    if (name == "iterable") return v.t == Value::T::kStr || v.t == Value::T::kList || (v.t == Value::T::kDict && !v.namespace_) || v.is_undef();
    if (name == "sequence") return v.t == Value::T::kStr || v.t == Value::T::kList || (v.t == Value::T::kDict && !v.namespace_);
    if (name == "callable") return v.t == Value::T::kFunc;
    if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return equal(v, need());
    if (name == "ne" || name == "!=") return !equal(v, need());
    if (name == "lt" || name == "lessthan" || name == "<") return less(n, v, need());
    if (name == "gt" || name == "greaterthan" || name == ">") return less(n, need(), v);
    if (name == "le" || name == "<=") return !less(n, need(), v);
    if (name == "ge" || name == ">=") return !less(n, v, need());
    if (name == "in") return contains(n, need(), v);
    if (name == "odd" || name == "even" || name == "divisibleby") {
      if (v.t != Value::T::kInt && v.t != Value::T::kBool) err(n, "test '" + name + "' needs an integer");
      int64_t x = as_int(v);
      if (name == "odd") return x % 2 != 0;
      if (name == "even") return x % 2 == 0;
      const Value& d = need();
      if (d.t != Value::T::kInt || d.i == 0) err(n, "divisibleby needs a non-zero integer");
      if (d.i == -1) return true;
      return x % d.i == 0;
    }
    if (name == "lower") return v.t == Value::T::kStr && u::lower(v.s) == v.s;
    if (name == "upper") return v.t == Value::T::kStr && u::upper(v.s) == v.s;
    err(n, "no test named '" + name + "'");
  }

  // ---- filters
  Value attr_path(const Node& n, const Value& v, const std::string& path) {
    Value cur = v;
    size_t pos = 0;
    while (pos <= path.size()) {
      size_t e = path.find('.', pos);
      std::string part = path.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
      bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
      if (cur.is_undef()) return cur;
      cur = digits && part.size() < 18 ? get_item(n, cur, Value::integer(std::stoll(part))) : get_item(n, cur, Value::str(part));
      if (e == std::string::npos) break;
      pos = e + 1;
    }
    return cur;
  }

  // Sort key comparison: case-insensitive for strings unless case_sensitive.
  Value sort_key(const Value& v, bool case_sensitive) {
    if (!case_sensitive && v.t == Value::T::kStr) return Value::str(u::lower(v.s));
    return v;
  }

  Value apply_filter(const Node& n, Value v) {
    Args a;
    for (size_t k = 1; k < n.kids.size(); ++k) a.pos.push_back(eval(*n.kids[k]));
    for (size_t k = 0; k < n.names.size(); ++k) a.kw.emplace_back(n.names[k], eval(*n.extra[k]));
    return filter(n, n.name, std::move(v), a);
  }

  Value filter(const Node& n, const std::string& name, Value v, Args& a) {
    auto arg = [&](size_t i, const char* nm) { return a.get(i, nm); };
    auto bool_arg = [&](size_t i, const char* nm, bool def) { const Value* x = arg(i, nm); return x ? truthy(*x) : def; };
    if (name == "trim") {
      if (v.is_undef()) return Value::str("");
      return Value::str(u::from_u32(strip_chars(u::to_u32(to_str(v)), arg(0, "chars"), true, true)));
    }
    if (name == "length" || name == "count") {
      switch (v.t) {
        case Value::T::kStr: return Value::integer(static_cast<int64_t>(u::count_chars(v.s)));
        case Value::T::kList: return Value::integer(static_cast<int64_t>(v.list->size()));
        case Value::T::kDict: return Value::integer(static_cast<int64_t>(v.dict->items.size()));
        case Value::T::kUndefined: return Value::integer(0);
        default: err(n, std::string("object of type '") + type_name(v) + "' has no len()");
      }
    }
    if (name == "tojson") {
      JsonOpts o;
      if (const Value* e = arg(0, "ensure_ascii")) o.ensure_ascii = truthy(*e);
      if (const Value* ind = arg(1, "indent"); ind && ind->t != Value::T::kNone) {
        if (ind->t == Value::T::kInt) o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(ind->i, 0, 64)), ' ');
        else if (ind->t == Value::T::kStr) o.indent = ind->s;
        else err(n, "tojson: indent must be an integer or a string");
        o.item_sep = ",";
      }
      if (const Value* sep = arg(2, "separators"); sep && sep->t != Value::T::kNone) {
        if (sep->t != Value::T::kList || sep->list->size() != 2 || (*sep->list)[0].t != Value::T::kStr || (*sep->list)[1].t != Value::T::kStr)
          err(n, "tojson: separators must be a pair of strings");
        o.item_sep = (*sep->list)[0].s;
        o.key_sep = (*sep->list)[1].s;
      }
      if (const Value* sk = arg(3, "sort_keys")) o.sort_keys = truthy(*sk);
      std::string out;
      try {
        to_json(out, v, o, 0);
      } catch (JinjaError& e) {
        e.line = n.line;
        e.col = n.col;
        throw;
      }
      return Value::str(std::move(out));
    }
    if (name == "string") return Value::str(to_str(v));
    if (name == "safe" || name == "forceescape") return v;
    if (name == "e" || name == "escape") {
      std::string s = to_str(v), out;
      for (char c : s) {
        switch (c) {
          case '&': out += "&amp;"; break;
          case '<': out += "&lt;"; break;
          case '>': out += "&gt;"; break;
          case '"': out += "&#34;"; break;
          case '\'': out += "&#39;"; break;
          default: out += c;
        }
      }
      return Value::str(out);
    }
    if (name == "lower") return Value::str(u::lower(to_str(v)));
    if (name == "upper") return Value::str(u::upper(to_str(v)));
    if (name == "title") return Value::str(title(to_str(v)));
    if (name == "capitalize") return Value::str(capitalize(to_str(v)));
    if (name == "replace") {
      std::string s = to_str(v);
      const Value* from = arg(0, "old");
      const Value* to = arg(1, "new");
      if (!from || !to) err(n, "replace needs old and new");
      const Value* cnt = arg(2, "count");
      return Value::str(py_replace(n, s, to_str(*from), to_str(*to), cnt && cnt->t == Value::T::kInt ? cnt->i : -1));
    }
    if (name == "join") {
      const Value* sep = arg(0, "d");
      const Value* attr = arg(1, "attribute");
      std::string out, d = sep ? to_str(*sep) : "";
      List items = iterate(n, v);
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += d;
        out += to_str(attr ? attr_path(n, items[k], to_str(*attr)) : items[k]);
        check_size(n, out.size());
      }
      return Value::str(out);
    }
    if (name == "first" || name == "last") {
      List items = iterate(n, v);
      if (items.empty()) return Value::undefined(name);
      return name == "first" ? items.front() : items.back();
    }
    if (name == "default" || name == "d") {
      const Value* def = arg(0, "default_value");
      bool boolean = bool_arg(1, "boolean", false);
      if (v.is_undef() || (boolean && !truthy(v))) return def ? *def : Value::str("");
      return v;
    }
    if (name == "items") {
      if (v.is_undef()) return Value::make_list();
      if (v.t != Value::T::kDict) err(n, "items filter: can only get item pairs from a mapping");
      Args none;
      return call_method(n, v, "items", none);
    }
    if (name == "list") return Value::make_list(iterate(n, v));
    if (name == "reverse") {
      if (v.t == Value::T::kStr) { std::u32string w = u::to_u32(v.s); std::reverse(w.begin(), w.end()); return Value::str(u::from_u32(w)); }
      List items = iterate(n, v);
      std::reverse(items.begin(), items.end());
      return Value::make_list(std::move(items));
    }
    if (name == "map") {
      List items = iterate(n, v);
      Value out = Value::make_list();
      const Value* attr = nullptr;
      for (auto& [k, x] : a.kw) if (k == "attribute") attr = &x;
      if (attr) {
        const Value* def = nullptr;
        for (auto& [k, x] : a.kw) if (k == "default") def = &x;
        for (auto& it : items) {
          Value r = attr_path(n, it, to_str(*attr));
          out.list->push_back(r.is_undef() && def ? *def : r);
        }
        return out;
      }
      if (a.pos.empty() || a.pos[0].t != Value::T::kStr) err(n, "map: expected a filter name or attribute=");
      std::string fname = a.pos[0].s;
      Args rest;
      rest.pos.assign(a.pos.begin() + 1, a.pos.end());
      rest.kw = a.kw;
      for (auto& it : items) out.list->push_back(filter(n, fname, it, rest));
      return out;
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      bool by_attr = name == "selectattr" || name == "rejectattr";
      bool want = name == "select" || name == "selectattr";
      List items = iterate(n, v);
      size_t base = 0;
      std::string attr;
      if (by_attr) {
        if (a.pos.empty() || a.pos[0].t != Value::T::kStr) err(n, name + ": expected an attribute name");
        attr = a.pos[0].s;
        base = 1;
      }
      std::string test;
      if (a.pos.size() > base) {
        if (a.pos[base].t != Value::T::kStr) err(n, name + ": expected a test name");
        test = a.pos[base].s;
      }
      Args targs;
      if (a.pos.size() > base + 1) targs.pos.assign(a.pos.begin() + static_cast<long>(base) + 1, a.pos.end());
      Value out = Value::make_list();
      for (auto& it : items) {
        Value x = by_attr ? attr_path(n, it, attr) : it;
        bool r = test.empty() ? truthy(x) : apply_test(n, test, x, targs);
        if (r == want) out.list->push_back(it);
      }
      return out;
    }
    if (name == "unique") {
      bool cs = bool_arg(0, "case_sensitive", false);
      const Value* attr = arg(1, "attribute");
      List items = iterate(n, v);
      Value out = Value::make_list();
      List seen;
      for (auto& it : items) {
        Value key = sort_key(attr ? attr_path(n, it, to_str(*attr)) : it, cs);
        bool dup = false;
        for (auto& s : seen) if (equal(s, key)) { dup = true; break; }
        if (dup) continue;
        seen.push_back(key);
        out.list->push_back(it);
      }
      return out;
    }
    if (name == "sort") {
      bool rev = bool_arg(0, "reverse", false);
      bool cs = bool_arg(1, "case_sensitive", false);
      const Value* attr = arg(2, "attribute");
      List items = iterate(n, v);
      std::vector<std::pair<Value, Value>> keyed;
      for (auto& it : items) keyed.emplace_back(sort_key(attr ? attr_path(n, it, to_str(*attr)) : it, cs), it);
      std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) { return rev ? less(n, y.first, x.first) : less(n, x.first, y.first); });
      Value out = Value::make_list();
      for (auto& [k, it] : keyed) out.list->push_back(it);
      return out;
    }
    if (name == "dictsort") {
      if (v.t != Value::T::kDict) err(n, "dictsort: expected a mapping");
      bool cs = bool_arg(0, "case_sensitive", false);
      const Value* by = arg(1, "by");
      bool by_value = by && to_str(*by) == "value";
      bool rev = bool_arg(2, "reverse", false);
      auto items = v.dict->items;
      std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
        Value kx = sort_key(by_value ? x.second : x.first, cs), ky = sort_key(by_value ? y.second : y.first, cs);
        return rev ? less(n, ky, kx) : less(n, kx, ky);
      });
      Value out = Value::make_list();
      for (auto& [k, x] : items) { Value t = Value::make_list({k, x}); t.tuple = true; out.list->push_back(t); }
      return out;
    }
    if (name == "int") {
      const Value* def = arg(0, "default");
      Value d = def ? *def : Value::integer(0);
      if (v.t == Value::T::kInt) return v;
      if (v.t == Value::T::kBool) return Value::integer(v.b);
      if (v.t == Value::T::kFloat) return std::isfinite(v.f) && std::fabs(v.f) < 9e18 ? Value::integer(static_cast<int64_t>(v.f)) : d;
      if (v.t == Value::T::kStr) {
        std::string s = u::from_u32(strip_chars(u::to_u32(v.s), nullptr, true, true));
        errno = 0;
        char* end = nullptr;
        long long x = std::strtoll(s.c_str(), &end, 10);
        if (!s.empty() && end && *end == 0 && errno == 0) return Value::integer(x);
        double f = std::strtod(s.c_str(), &end);
        if (!s.empty() && end && *end == 0 && std::isfinite(f) && std::fabs(f) < 9e18) return Value::integer(static_cast<int64_t>(f));
      }
      return d;
    }
    if (name == "float") {
      const Value* def = arg(0, "default");
      if (v.is_num()) return Value::real(as_double(v));
      if (v.t == Value::T::kStr) {
        char* end = nullptr;
        double f = std::strtod(v.s.c_str(), &end);
        if (!v.s.empty() && end && *end == 0) return Value::real(f);
      }
      return def ? *def : Value::real(0.0);
    }
    if (name == "abs") {
      if (v.t == Value::T::kFloat) return Value::real(std::fabs(v.f));
      if (v.t == Value::T::kInt || v.t == Value::T::kBool) { int64_t x = as_int(v); if (x == INT64_MIN) err(n, "integer overflow"); return Value::integer(x < 0 ? -x : x); }
      err(n, std::string("bad operand type for abs(): '") + type_name(v) + "'");
    }
    if (name == "round") {
      if (!v.is_num()) err(n, "round: expected a number");
      const Value* p = arg(0, "precision");
      int64_t prec = p && p->t == Value::T::kInt ? std::clamp<int64_t>(p->i, -20, 20) : 0;
      const Value* m = arg(1, "method");
      std::string method = m ? to_str(*m) : "common";
      double scale = std::pow(10.0, static_cast<double>(prec));
      double x = as_double(v) * scale;
      double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
      return Value::real(r / scale);
    }
    if (name == "sum") {
      const Value* attr = arg(0, "attribute");
      const Value* start = arg(1, "start");
      Value acc = start ? *start : Value::integer(0);
      for (auto& it : iterate(n, v)) acc = binary(n, "+", acc, attr ? attr_path(n, it, to_str(*attr)) : it);
      return acc;
    }
    if (name == "min" || name == "max") {
      List items = iterate(n, v);
      if (items.empty()) return Value::undefined(name);
      bool cs = bool_arg(0, "case_sensitive", false);
      const Value* attr = arg(1, "attribute");
      size_t best = 0;
      for (size_t k = 1; k < items.size(); ++k) {
        Value kb = sort_key(attr ? attr_path(n, items[best], to_str(*attr)) : items[best], cs);
        Value kk = sort_key(attr ? attr_path(n, items[k], to_str(*attr)) : items[k], cs);
        if (name == "min" ? less(n, kk, kb) : less(n, kb, kk)) best = k;
      }
      return items[best];
    }
    if (name == "indent") {
      const Value* w = arg(0, "width");
      std::string pad = w ? (w->t == Value::T::kStr ? w->s : std::string(static_cast<size_t>(std::clamp<int64_t>(as_int(*w), 0, 256)), ' ')) : "    ";
      bool first = bool_arg(1, "first", false), blank = bool_arg(2, "blank", false);
      std::string s = to_str(v), out;
      size_t pos = 0;
      bool is_first = true;
      while (true) {
        size_t e = s.find('\n', pos);
        std::string line = s.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
        if ((!is_first || first) && (blank || !line.empty())) out += pad;
        out += line;
        check_size(n, out.size());
        if (e == std::string::npos) break;
        out += '\n';
        pos = e + 1;
        is_first = false;
      }
      return Value::str(out);
    }
    if (name == "wordcount") {
      Value parts = split(n, to_str(v), nullptr, nullptr, false);
      return Value::integer(static_cast<int64_t>(parts.list->size()));
    }
    if (name == "center") {
      const Value* w = arg(0, "width");
      int64_t width = w && w->t == Value::T::kInt ? std::clamp<int64_t>(w->i, 0, 4096) : 80;
      std::string s = to_str(v);
      int64_t len = static_cast<int64_t>(u::count_chars(s));
      if (len >= width) return Value::str(s);
      int64_t total = width - len, left = total / 2 + (total & width & 1);
      return Value::str(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(total - left), ' '));
    }
    if (name == "attr") {
      const Value* nm = arg(0, "name");
      if (!nm) err(n, "attr needs a name");
      if (v.t == Value::T::kDict && !v.namespace_) return Value::undefined(to_str(*nm));  // attributes, not items
      return get_attr(n, v, to_str(*nm));
    }
    if (name == "format") {
      Args rest;
      rest.pos = a.pos;
      Value t = Value::make_list(rest.pos);
      t.tuple = true;
      return Value::str(percent_format(n, to_str(v), t));
    }
    if (name == "batch" || name == "slice") err(n, "filter '" + name + "' is not supported");
    err(n, "no filter named '" + name + "'");
  }
};

Template::Template() = default;
Template::~Template() = default;

Result<std::unique_ptr<Template>> Template::parse(std::string_view source, Options options) {
  try {
    std::unique_ptr<Template> t(new Template());
    t->root_ = Parser(lex(source, options)).parse();
    t->options_ = std::move(options);
    return t;
  } catch (const JinjaError& e) {
    return Status::InvalidArgument("template syntax error at line " + std::to_string(e.line) + ", column " +
                                   std::to_string(e.col) + ": " + e.msg);
  }
}

Result<std::string> Template::render(const ojson& context) const {
  try {
    Renderer r(options_);
    r.frames.emplace_back();
    if (context.is_object())
      for (auto it = context.begin(); it != context.end(); ++it) r.frames[0][it.key()] = from_json(it.value());
    r.frames.emplace_back();  // template-level assignments
    std::string out;
    r.exec(*root_, out);
    return out;
  } catch (const JinjaError& e) {
    std::string where = e.line ? " (line " + std::to_string(e.line) + ", column " + std::to_string(e.col) + ")" : "";
    return Status::InvalidArgument("template error" + where + ": " + e.msg);
  }
}

}  // namespace optiq::jinja
