// The `optiq` dispatcher: usage, --help, unknown commands.
#include <gtest/gtest.h>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

// Help that was asked for goes to stdout, as every command's --help does.
TEST(CliMain, HelpListsEveryCommandAndExitsZero) {
  const CliRun r = run_optiq("--help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* cmd : {"generate", "bench", "init-random", "tokenize", "serve", "chat-template", "convert", "eval",
                          "lora", "train"})
    EXPECT_TRUE(contains(r.out, "  " + std::string(cmd) + " ")) << cmd << "\n" << r.out;
  EXPECT_TRUE(contains(r.out, "2 a usage error")) << r.out;
  const CliRun h = run_optiq("-h");
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_EQ(h.out, r.out);
}

// Every command (and lora subcommand) answers --help and -h on stdout with exit 0, and an unknown
// flag with the one usage-error format: exit 2, "optiq <command>: unknown option ...", the hint.
TEST(CliMain, EveryCommandHasHelpAndTheSameUsageErrors) {
  for (const char* cmd : {"generate", "bench", "init-random", "tokenize", "serve", "chat-template", "convert", "eval",
                          "lora train", "lora info", "lora fuse", "train"}) {
    SCOPED_TRACE(cmd);
    for (const char* h : {" --help", " -h"}) {
      const CliRun r = run_optiq(std::string(cmd) + h);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      EXPECT_TRUE(contains(r.out, "usage: optiq " + std::string(cmd))) << r.out;
      EXPECT_TRUE(r.err.empty()) << r.err;
    }
    expect_usage_error(run_optiq(std::string(cmd) + " --no-such-flag"), cmd, "unknown option --no-such-flag");
    expect_usage_error(run_optiq(std::string(cmd) + " --no-such-flag=1"), cmd, "unknown option --no-such-flag");
  }
}

TEST(CliMain, NoCommandIsAUsageError) {
  const CliRun r = run_optiq("");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "usage: optiq <command>")) << r.err;
}

TEST(CliMain, UnknownCommandIsNamed) {
  const CliRun r = run_optiq("frobnicate --x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "optiq: unknown command 'frobnicate'")) << r.err;
  EXPECT_TRUE(contains(r.err, "usage: optiq <command>"));
}

}  // namespace
}  // namespace optiq::test
