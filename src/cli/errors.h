// How every optiq command reports failure, in one place so that all commands read the same:
//
//   usage error    the command line is wrong: an unknown flag, a missing or invalid value, a missing
//                  required argument, or a flag that does not apply to the loaded model. Exit 2;
//                  stderr: "optiq <command>: <message>" and "Try 'optiq <command> --help' ...".
//   runtime error  the command line was fine but the work failed: a bad model file, I/O. Exit 1;
//                  stderr: "optiq <command>: <Status::ToString()>" (the library's message).
//
// `command` is the full command path as typed after `optiq` ("generate", "lora train").
#pragma once

#include <string>

#include "core/status.h"

namespace optiq::cli {

inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;

// Prints the usage error and returns kExitUsage.
int usage_error(const std::string& command, const std::string& message);

// Prints the Status and returns kExitRuntime.
int runtime_error(const std::string& command, const Status& s);

}  // namespace optiq::cli
