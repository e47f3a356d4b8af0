// Jinja's builtins (see jinja_internal.h for the whole interpreter's layout): the global functions
// (range, namespace, dict, raise_exception, strftime_now), the tests (`x is odd`) and the filters
// (`x|tojson`), as Jinja2 3.x defines them.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <ctime>

#include "tokenizer/jinja_internal.h"

namespace optiq::jinja::detail {

// ---- globals
Value Renderer::global(const std::string& name) {
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

// ---- tests
bool Renderer::apply_test(const Node& n, const std::string& name, const Value& v, Args& a) {
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
Value Renderer::attr_path(const Node& n, const Value& v, const std::string& path) {
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
Value Renderer::sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.t == Value::T::kStr) return Value::str(u::lower(v.s));
  return v;
}

Value Renderer::apply_filter(const Node& n, Value v) {
  Args a;
  for (size_t k = 1; k < n.kids.size(); ++k) a.pos.push_back(eval(*n.kids[k]));
  for (size_t k = 0; k < n.names.size(); ++k) a.kw.emplace_back(n.names[k], eval(*n.extra[k]));
  return filter(n, n.name, std::move(v), a);
}

Value Renderer::filter(const Node& n, const std::string& name, Value v, Args& a) {
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

}  // namespace optiq::jinja::detail
