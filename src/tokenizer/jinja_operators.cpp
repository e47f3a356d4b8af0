// Jinja operators (see jinja_internal.h for the whole interpreter's layout), with Python's semantics:
// arithmetic (floor division and modulo round toward negative infinity; int overflow is an error, not a
// wrap), sequence concatenation and repetition, printf-style '%' on strings, ordering and `in`.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "tokenizer/jinja_internal.h"

namespace optiq::jinja::detail {

// ---- operators
Value Renderer::binary(const Node& n, const std::string& op, const Value& l, const Value& r) {
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

std::string Renderer::percent_format(const Node& n, const std::string& fmt, const Value& arg) {
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

bool Renderer::less(const Node& n, const Value& l, const Value& r) {
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

bool Renderer::contains(const Node& n, const Value& container, const Value& item) {
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

bool Renderer::compare(const Node& n, const std::string& op, const Value& l, const Value& r) {
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

}  // namespace optiq::jinja::detail
