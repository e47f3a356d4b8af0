// A Jinja2 interpreter for chat templates, matching Hugging Face's environment: Jinja2 3.x semantics in an
// ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loopcontrols extension, plus the
// globals raise_exception and strftime_now, and tojson as json.dumps(ensure_ascii=False).
//
// Values are Python-like (None, bool, int, float, str, list, dict in insertion order, namespace, macros);
// printing follows Python's str()/repr(). Unsupported syntax fails at parse time and runtime errors (including
// raise_exception) fail render(); both report line and column. Resource limits (nesting depth, output size,
// loop iterations) turn runaway templates into errors instead of crashes.
//
// Thread safety: a parsed Template is immutable; render() may run concurrently.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace optiq::jinja {

struct Node;

struct Options {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  // Formats the current time for strftime_now(format); defaults to the local clock.
  std::function<std::string(const std::string& format)> strftime_now;
};

class Template {
 public:
  ~Template();
  static Result<std::unique_ptr<Template>> parse(std::string_view source, Options options = {});
  // context: an object whose keys become template variables.
  Result<std::string> render(const nlohmann::ordered_json& context) const;

 private:
  Template();
  std::unique_ptr<Node> root_;
  Options options_;
};

}  // namespace optiq::jinja
