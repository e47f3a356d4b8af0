// `optiq eval`: help, argument errors, and perplexity on a given text file. KL and perplexity on
// converted models run in tests/scripts/quant_cli.cmake.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

const std::string kModel = tiny_model_arg();

TEST(CliEval, HelpGoesToStdout) {
  expect_help("eval", "usage: optiq eval MODEL_DIR --task kl|perplexity");
}

TEST(CliEval, ArgumentErrorsExitTwo) {
  CliRun r = run_optiq("eval " + kModel);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "MODEL_DIR and --task kl|perplexity are required")) << r.err;
  r = run_optiq("eval " + kModel + " --task kl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--task kl needs --reference DIR")) << r.err;
  r = run_optiq("eval " + kModel + " --task perplexity --seq-len 1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "invalid value '1' for --seq-len")) << r.err;
  r = run_optiq("eval " + kModel + " --task perplexity --nope");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown option --nope")) << r.err;
}

TEST(CliEval, PerplexityOnAGivenTextAndAMissingText) {
  TempDir t;
  const std::string text = t.str() + "/heldout.txt";
  {
    std::ofstream f(text);
    for (int i = 0; i < 20; ++i) f << "The man said that he would come back to the house in the morning. ";
  }
  CliRun r = run_optiq("eval " + kModel + " --task perplexity --text " + shell_quote(text) +
                       " --seq-len 32 --max-windows 2 --threads 1 --quiet");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("perplexity +nll/token"))) << r.out;
  r = run_optiq("eval " + kModel + " --task perplexity --text " + shell_quote(t.str() + "/none.txt") + " --quiet");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "none.txt: cannot open held-out text")) << r.err;
}

// --adapter applies to MODEL_DIR only: its row is labelled with the adapter and differs from the
// base model's (the --baseline row here).
TEST(CliEval, PerplexityWithAnAdapter) {
  TempDir t;
  const std::string text = t.str() + "/heldout.txt";
  {
    std::ofstream f(text);
    for (int i = 0; i < 20; ++i) f << "The man said that he would come back to the house in the morning. ";
  }
  const std::string adapter = fixture("lora/dhara-tiny-text/init");
  CliRun r = run_optiq("eval " + kModel + " --task perplexity --text " + shell_quote(text) + " --adapter " +
                       shell_quote(adapter) + " --baseline " + kModel + " --seq-len 32 --max-windows 2 --threads 1 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch with, without;
  ASSERT_TRUE(std::regex_search(r.out, with, std::regex(" \\+ " + adapter + " +([0-9.]+)"))) << r.out;
  ASSERT_TRUE(std::regex_search(r.out, without, std::regex("dhara-tiny +([0-9.]+)"))) << r.out;
  EXPECT_NE(with[1].str(), without[1].str()) << r.out;
  r = run_optiq("eval " + kModel + " --task perplexity --text " + shell_quote(text) + " --adapter /nonexistent/ad --quiet");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "/nonexistent/ad/adapters.safetensors")) << r.err;
}

}  // namespace
}  // namespace optiq::test
