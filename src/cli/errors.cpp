#include "cli/errors.h"

#include <cstdio>

namespace optiq::cli {

int usage_error(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "optiq %s: %s\nTry 'optiq %s --help' for the options.\n", command.c_str(), message.c_str(),
               command.c_str());
  return kExitUsage;
}

int runtime_error(const std::string& command, const Status& s) {
  std::fprintf(stderr, "optiq %s: %s\n", command.c_str(), s.ToString().c_str());
  return kExitRuntime;
}

}  // namespace optiq::cli
