// Jinja parser (see jinja_internal.h for the whole interpreter's layout): recursive descent over the
// lexer's segments. ExprParser reads one tag's tokens (Python-like precedence: conditional, or, and, not,
// comparisons, ~, + -, * / // %, unary, **, postfix); Parser nests statements into blocks.
#include <algorithm>

#include "tokenizer/jinja_internal.h"

namespace optiq::jinja::detail {

namespace {

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

}  // namespace

NodeP parse(std::vector<Segment> segs) { return Parser(std::move(segs)).parse(); }

}  // namespace optiq::jinja::detail
