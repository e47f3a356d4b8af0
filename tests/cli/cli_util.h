// Runs the built `optiq` binary (OPTIQ_BINARY_DIR/optiq) for CLI tests: exit code, stdout and stderr,
// bounded in time by coreutils' `timeout` (exit 124 when it fires).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/test_util.h"

namespace optiq::test {

struct CliRun {
  int exit_code = -1;
  std::string out, err;
};

inline std::string optiq_binary() { return std::string(OPTIQ_BINARY_DIR) + "/optiq"; }

// Single-quotes `s` for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// `args` is appended to the command line as is (quote paths with shell_quote).
inline CliRun run_optiq(const std::string& args, int timeout_s = 60) {
  TempDir tmp;
  const std::string err_path = tmp.str() + "/stderr";
  const std::string cmd = "timeout -k 5 " + std::to_string(timeout_s) + " " + shell_quote(optiq_binary()) + " " +
                          args + " 2>" + shell_quote(err_path) + " </dev/null";
  CliRun r;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  return r;
}

inline bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// The dhara-tiny fixture as a shell argument.
inline std::string tiny_model_arg() { return shell_quote(fixture("dhara-tiny")); }

// `optiq <cmd> --help` exits 0 with `usage` on stdout.
inline void expect_help(const std::string& cmd, const std::string& usage) {
  const CliRun r = run_optiq(cmd + " --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, usage)) << r.out;
}

// A usage error (src/cli/errors.h): exit 2, "optiq <command>: " + a message containing `message`,
// and the hint to `optiq <command> --help`, on stderr.
inline void expect_usage_error(const CliRun& r, const std::string& command, const std::string& message) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "optiq " + command + ": ")) << r.err;
  EXPECT_TRUE(contains(r.err, message)) << "want \"" << message << "\" in:\n" << r.err;
  EXPECT_TRUE(contains(r.err, "'optiq " + command + " --help'")) << r.err;
}

// A runtime error: exit 1, "optiq <command>: " + the library's Status (containing `message`), and no
// --help hint (the command line was fine).
inline void expect_runtime_error(const CliRun& r, const std::string& command, const std::string& message) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "optiq " + command + ": ")) << r.err;
  EXPECT_TRUE(contains(r.err, message)) << "want \"" << message << "\" in:\n" << r.err;
  EXPECT_FALSE(contains(r.err, "--help'")) << r.err;
}

}  // namespace optiq::test
