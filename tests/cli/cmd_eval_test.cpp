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
  expect_usage_error(run_optiq("eval " + kModel), "eval", "--task is required (kl or perplexity)");
  expect_usage_error(run_optiq("eval --task perplexity"), "eval", "MODEL_DIR is required");
  expect_usage_error(run_optiq("eval " + kModel + " --task kl"), "eval", "--task kl needs --reference DIR");
  expect_usage_error(run_optiq("eval " + kModel + " --task perplexity --seq-len 1"), "eval",
                     "--seq-len must be >= 2, got 1");
  expect_usage_error(run_optiq("eval " + kModel + " --task perplexity --seq-len x"), "eval",
                     "--seq-len: not an integer: x");
  expect_usage_error(run_optiq("eval " + kModel + " --task perplexity --nope"), "eval", "unknown option --nope");
  expect_usage_error(run_optiq("eval " + kModel + " other --task perplexity"), "eval", "unexpected argument 'other'");
}

// An unknown task is named and every valid one listed (the help's list, not a fixed string here).
TEST(CliEval, UnknownTaskListsTheValidOnes) {
  const CliRun r = run_optiq("eval " + kModel + " --task gsm8k");
  expect_usage_error(r, "eval", "unknown task 'gsm8k'; valid tasks: ");
  for (const char* task : {"kl", "perplexity"}) EXPECT_TRUE(contains(r.err, task)) << r.err;
}

// Without --text the held-out text is the bundled data/heldout/brown-heldout.txt, found next to the
// executable (as the default model is), not in a sibling ../shared checkout.
TEST(CliEval, DefaultTextIsTheBundledHeldout) {
  const CliRun r = run_optiq("eval " + kModel + " --task perplexity --seq-len 32 --max-windows 1 --threads 1 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string first_line = r.out.substr(0, r.out.find('\n'));  // "perplexity on <text> (...)"
  EXPECT_TRUE(contains(first_line, "/data/heldout/brown-heldout.txt")) << r.out;
  EXPECT_FALSE(contains(first_line, "shared")) << r.out;
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
  expect_runtime_error(r, "eval", "none.txt: cannot open held-out text");
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
  expect_runtime_error(r, "eval", "/nonexistent/ad/adapters.safetensors");
}

}  // namespace
}  // namespace optiq::test
