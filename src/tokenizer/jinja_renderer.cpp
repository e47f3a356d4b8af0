// Jinja renderer (see jinja_internal.h for the whole interpreter's layout): the tree walk over Nodes.
// Statements (blocks, if, for, set, macros, call and filter blocks) write to the output; expressions
// evaluate to Values, with attribute, item and slice access here and operators, methods and filters in
// their own files. Template's public API, the boundary where JinjaError becomes Status, is at the end.
#include <algorithm>

#include "tokenizer/jinja_internal.h"

namespace optiq::jinja {
namespace detail {

// ---- statements
Flow Renderer::exec(const Node& n, std::string& out) {
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

void Renderer::assign(const Node& n, const std::vector<std::string>& targets, Value v) {
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

List Renderer::iterate(const Node& n, const Value& v) {
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

Flow Renderer::exec_for(const Node& n, std::string& out) {
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

void Renderer::bind_targets(const Node& n, const Value& item) {
  if (n.names.size() == 1) { frames.back()[n.names[0]] = item; return; }
  List parts = iterate(n, item);
  if (parts.size() != n.names.size())
    err(n, "cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(n.names.size()) + " loop variables");
  for (size_t k = 0; k < parts.size(); ++k) frames.back()[n.names[k]] = parts[k];
}

Value Renderer::call_macro(const Node& m, Args& a, const Value* caller) {
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
Args Renderer::eval_args(const Node& n) {
  Args a;
  for (size_t k = 1; k < n.kids.size(); ++k) a.pos.push_back(eval(*n.kids[k]));
  for (size_t k = 0; k < n.names.size(); ++k) a.kw.emplace_back(n.names[k], eval(*n.extra[k]));
  return a;
}

Value Renderer::call_value(const Node& n, const Value& callee, Args& a) {
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

Value Renderer::eval(const Node& n) {
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

Value Renderer::make_fn(const std::string& name, std::function<Value(Renderer&, Args&)> f) {
  Value v;
  v.t = Value::T::kFunc;
  v.fn = std::make_shared<Callable>();
  v.fn->name = name;
  v.fn->fn = std::move(f);
  return v;
}

Value Renderer::get_attr(const Node& n, const Value& obj, const std::string& name) {
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

Value Renderer::bound(const Value& obj, const std::string& name) {
  Value self = obj;
  return make_fn(name, [self, name](Renderer& r, Args& a) {
    Node dummy;
    dummy.kind = NK::kCall;
    return r.call_method(dummy, self, name, a);
  });
}

Value Renderer::get_item(const Node& n, const Value& obj, const Value& key) {
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

void Renderer::slice_indices(int64_t len, std::optional<int64_t> a, std::optional<int64_t> b, int64_t step, int64_t& start, int64_t& stop) {
  auto clamp = [&](int64_t x, bool is_start) {
    if (x < 0) { x += len; if (x < 0) x = step < 0 ? -1 : 0; }
    else if (x >= len) x = step < 0 ? len - 1 : len;
    (void)is_start;
    return x;
  };
  start = a ? clamp(*a, true) : (step < 0 ? len - 1 : 0);
  stop = b ? clamp(*b, false) : (step < 0 ? -1 : len);
}

Value Renderer::slice(const Node& n, const Value& obj, std::optional<int64_t> a, std::optional<int64_t> b, std::optional<int64_t> c) {
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

}  // namespace detail

Template::Template() = default;
Template::~Template() = default;

Result<std::unique_ptr<Template>> Template::parse(std::string_view source, Options options) {
  try {
    std::unique_ptr<Template> t(new Template());
    t->root_ = detail::parse(detail::lex(source, options));
    t->options_ = std::move(options);
    return t;
  } catch (const detail::JinjaError& e) {
    return Status::InvalidArgument("template syntax error at line " + std::to_string(e.line) + ", column " +
                                   std::to_string(e.col) + ": " + e.msg);
  }
}

Result<std::string> Template::render(const ojson& context) const {
  try {
    detail::Renderer r(options_);
    r.frames.emplace_back();
    if (context.is_object())
      for (auto it = context.begin(); it != context.end(); ++it) r.frames[0][it.key()] = detail::from_json(it.value());
    r.frames.emplace_back();  // template-level assignments
    std::string out;
    r.exec(*root_, out);
    return out;
  } catch (const detail::JinjaError& e) {
    std::string where = e.line ? " (line " + std::to_string(e.line) + ", column " + std::to_string(e.col) + ")" : "";
    return Status::InvalidArgument("template error" + where + ": " + e.msg);
  }
}

}  // namespace optiq::jinja
