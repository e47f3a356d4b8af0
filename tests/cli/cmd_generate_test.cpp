// `optiq generate`: help, flag errors, and a short run on the dhara-tiny fixture.
#include <gtest/gtest.h>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

const std::string kModel = tiny_model_arg();

TEST(CliGenerate, HelpGoesToStdout) {
  expect_help("generate", "usage: optiq generate");
  expect_help("generate", "--mode ar|diffusion|selfspec");
}

TEST(CliGenerate, FlagErrorsAreNamed) {
  CliRun r = run_optiq("generate --model " + kModel);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "give exactly one of --prompt and --prompt-ids")) << r.err;
  r = run_optiq("generate --bogus 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "unknown option --bogus")) << r.err;
  r = run_optiq("generate --model " + kModel + " --prompt-ids 1,x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "--prompt-ids: not a token id: \"x\"")) << r.err;
  r = run_optiq("generate --model " + kModel + " --prompt-ids 84 --mode sideways");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "sideways")) << r.err;
  r = run_optiq("generate --model /nonexistent/model --prompt-ids 84");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "/nonexistent/model")) << r.err;
}

TEST(CliGenerate, ShortRunReportsItsCounts) {
  for (const char* mode : {"ar", "diffusion", "selfspec"}) {
    const CliRun r = run_optiq("generate --model " + kModel + " --prompt-ids 84,104,101 --max-tokens 4 --threads 1 --mode " +
                               mode);
    EXPECT_EQ(r.exit_code, 0) << mode << ": " << r.err;
    EXPECT_TRUE(contains(r.err, "prompt 3 tokens, generated ")) << mode << ": " << r.err;
  }
}

}  // namespace
}  // namespace optiq::test
