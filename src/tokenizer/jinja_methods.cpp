// Methods of str, dict and list callable from templates (see jinja_internal.h for the whole interpreter's
// layout), following Python; methods that would mutate a value are refused, as in Jinja's sandbox.
#include <algorithm>
#include <cstdio>
#include <utf8proc.h>

#include "tokenizer/jinja_internal.h"

namespace optiq::jinja::detail {

// ---- methods of str, dict and list
std::string Renderer::arg_str(const Node& n, Renderer& r, const Value* v, const char* what) {
  if (!v || v->t != Value::T::kStr) r.err(n, std::string(what) + " must be a string");
  return v->s;
}

std::u32string Renderer::strip_chars(const std::u32string& w, const Value* chars, bool left, bool right) {
  std::u32string set;
  bool ws = !chars || chars->t == Value::T::kNone;
  if (!ws) set = u::to_u32(chars->s);
  auto strip_it = [&](char32_t c) { return ws ? is_py_space(c) : set.find(c) != std::u32string::npos; };
  size_t a = 0, b = w.size();
  if (left) while (a < b && strip_it(w[a])) ++a;
  if (right) while (b > a && strip_it(w[b - 1])) --b;
  return w.substr(a, b - a);
}

std::string Renderer::title(const std::string& s) {
  std::u32string w = u::to_u32(s);
  bool prev_cased = false;
  for (auto& c : w) {
    bool cased = u::to_lower(c) != u::to_upper(c);
    if (cased) c = prev_cased ? u::to_lower(c) : u::to_upper(c);
    prev_cased = cased;
  }
  return u::from_u32(w);
}

std::string Renderer::capitalize(const std::string& s) {
  std::u32string w = u::to_u32(s);
  for (size_t k = 0; k < w.size(); ++k) w[k] = k == 0 ? u::to_upper(w[k]) : u::to_lower(w[k]);
  return u::from_u32(w);
}

Value Renderer::split(const Node& n, const std::string& s, const Value* sep, const Value* maxsplit_v, bool from_right) {
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

std::string Renderer::str_format(const Node& n, const std::string& fmt, Args& a) {
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

Value Renderer::call_method(const Node& n, const Value& obj, const std::string& name, Args& a) {
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

std::string Renderer::py_replace(const Node& n, const std::string& s, const std::string& from, const std::string& to, int64_t count) {
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

}  // namespace optiq::jinja::detail
