// Jinja values (see jinja_internal.h for the whole interpreter's layout): Python-like truthiness, equality,
// str() and repr() (byte-identical to CPython's, floats included), and conversion from the JSON context and
// to JSON (tojson, as json.dumps).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utf8proc.h>

#include "tokenizer/jinja_internal.h"

namespace optiq::jinja::detail {

Value Value::make_dict() { Value v; v.t = T::kDict; v.dict = std::make_shared<Dict>(); return v; }

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

Value from_json(const ojson& j, int depth) {
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

}  // namespace optiq::jinja::detail
