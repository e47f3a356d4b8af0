// The `optiq` dispatcher: usage, --help, unknown commands.
#include <gtest/gtest.h>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

TEST(CliMain, HelpListsEveryCommandAndExitsZero) {
  const CliRun r = run_optiq("--help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* cmd : {"generate", "bench", "init-random", "tokenize", "serve", "chat-template", "convert", "eval", "lora"})
    EXPECT_TRUE(contains(r.err, "  " + std::string(cmd) + " ")) << cmd << "\n" << r.err;
  EXPECT_EQ(run_optiq("-h").exit_code, 0);
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
