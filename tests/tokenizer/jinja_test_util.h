// Shared by the Jinja tests: render a template through the public API, folding errors into the result
// so one EXPECT_EQ can check output and failure alike.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/jinja.h"

namespace optiq::test {

// The rendered text, or "PARSE ERROR: <message>" / "RENDER ERROR: <message>". strftime_now echoes its
// format in brackets so the output does not depend on the clock.
inline std::string render(const std::string& src, const nlohmann::ordered_json& ctx = nlohmann::ordered_json::object(),
                          jinja::Options o = {}) {
  o.strftime_now = [](const std::string& fmt) { return "[" + fmt + "]"; };
  auto t = jinja::Template::parse(src, o);
  if (!t.ok()) return "PARSE ERROR: " + t.status().message();
  auto r = (*t)->render(ctx);
  if (!r.ok()) return "RENDER ERROR: " + r.status().message();
  return *r;
}

}  // namespace optiq::test
