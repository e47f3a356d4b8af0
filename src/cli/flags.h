// Minimal flag parsing for subcommands: --name value, --name=value, boolean --name.
#pragma once

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "models/model.h"

namespace optiq::cli {

class Flags {
 public:
  // `bool_flags` take no value; "-h" means "--help" wherever "--help" is one. Unknown flags are an
  // error naming the flag (report it with usage_error, cli/errors.h).
  static Result<Flags> parse(int argc, char** argv, const std::set<std::string>& value_flags,
                             const std::set<std::string>& bool_flags) {
    Flags f;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0 && !(a.size() == 2 && a[0] == '-')) {
        f.positional_.push_back(a);
        continue;
      }
      std::string name = a, value;
      bool has_value = false;
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
      if (name == "-h" && bool_flags.count("--help")) name = "--help";
      if (bool_flags.count(name)) {
        if (has_value) return Status::InvalidArgument(name + " takes no value");
        f.values_[name] = "1";
        continue;
      }
      if (!value_flags.count(name)) return Status::InvalidArgument("unknown option " + name);
      if (!has_value) {
        if (i + 1 >= argc) return Status::InvalidArgument(name + " needs a value");
        value = argv[++i];
      }
      f.values_[name] = value;
      f.all_[name].push_back(value);
    }
    return f;
  }
  bool has(const std::string& n) const { return values_.count(n) > 0; }
  // Every value given for a repeatable flag, in order (str() returns the last).
  std::vector<std::string> all(const std::string& n) const {
    auto it = all_.find(n);
    return it == all_.end() ? std::vector<std::string>{} : it->second;
  }
  std::string str(const std::string& n, const std::string& def = "") const {
    auto it = values_.find(n);
    return it == values_.end() ? def : it->second;
  }
  Result<double> num(const std::string& n, double def) const {
    auto it = values_.find(n);
    if (it == values_.end()) return def;
    char* end = nullptr;
    double v = std::strtod(it->second.c_str(), &end);
    if (end == it->second.c_str() || *end != '\0') return Status::InvalidArgument(n + ": not a number: " + it->second);
    return v;
  }
  Result<long long> integer(const std::string& n, long long def) const {
    auto it = values_.find(n);
    if (it == values_.end()) return def;
    char* end = nullptr;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (end == it->second.c_str() || *end != '\0') return Status::InvalidArgument(n + ": not an integer: " + it->second);
    return v;
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> all_;
  std::vector<std::string> positional_;
};

// `rel` (e.g. "data/calibration/default.jsonl") under the directory above the executable's
// (/proc/self/exe): build/optiq → the checkout's models/ and data/, wherever it is run from. NotFound
// (naming the path looked at, then `instead`, e.g. "pass --model DIR") when it is missing.
Result<std::string> bundled_path(const std::string& rel, const std::string& instead);

// A model argument (--model, a MODEL_DIR positional) as a directory: an existing local directory as
// given, a Hugging Face id ORG/NAME[@REVISION] through the Hub cache, downloading what is missing
// unless `offline` (--offline) or HF_HUB_OFFLINE=1 (io/hf_hub.h, docs/models.md).
Result<std::string> resolve_model_arg(const std::string& arg, bool offline);

// --model resolved by resolve_model_arg (with --offline), or the bundled default model
// models/dhara-brown-small.
Result<std::string> model_dir_flag(const Flags& f);

// --adapter DIR: the adapter directory loaded (io/lora_adapter.h), checked against `base`
// (validate_adapter) and applied by the returned view of `base` (with_adapter), which `base` must
// outlive. Errors name the directory.
Result<std::unique_ptr<Model>> adapted_model(const Model& base, const std::string& adapter_dir);

}  // namespace optiq::cli
