// Jinja lexer (see jinja_internal.h for the whole interpreter's layout): lex() splits a template into text
// and tags, applying Jinja's whitespace control; tokenize() splits one tag's body into expression tokens.
#include <cerrno>
#include <cstring>

#include "tokenizer/jinja_internal.h"

namespace optiq::jinja::detail {

namespace {

struct Pos { int line = 1, col = 1; };

void advance_pos(Pos& p, std::string_view s) {
  for (char c : s) {
    if (c == '\n') { p.line++; p.col = 1; }
    else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) p.col++;
  }
}

}  // namespace

bool is_py_space(char32_t c) { return u::is_whitespace(c) || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x1F; }

namespace {

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

}  // namespace

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

}  // namespace optiq::jinja::detail
