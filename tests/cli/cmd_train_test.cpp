// `optiq train`: help, argument errors (exit 2 with usage), and a two-step run from a tiny config that
// writes a loadable model directory and refuses to resume with other arguments.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

namespace fs = std::filesystem;

TEST(CliTrain, HelpGoesToStdout) { expect_help("train", "usage: optiq train (--config CONFIG.json | --init MODEL_DIR)"); }

TEST(CliTrain, ArgumentErrorsExitTwoWithUsage) {
  TempDir t;
  const std::string base = "train --config " + shell_quote(t.str() + "/c.json") + " --data x -o " + shell_quote(t.str() + "/o");
  for (const auto& [args, msg] : std::vector<std::pair<std::string, std::string>>{
           {base + " --nope", "unknown option --nope"},
           {base + " --iters 0", "--iters must be positive"},
           {base + " --seq-length x", "--seq-length: not an integer: x"},
           {base + " --optimizer sgd", "only adamw is supported"},
           {base + " --objective canvas", "--objective must be ar or joint"},
           {base + " --lr-schedule linear", "--lr-schedule must be cosine or constant"},
           {base + " --init " + shell_quote(t.str()), "give exactly one of --config and --init"},
           {"train --config c.json -o o", "--data is required"},
       }) {
    const CliRun r = run_optiq(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, msg)) << args << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "usage: optiq train")) << args;
  }
}

TEST(CliTrain, TwoStepsWriteALoadableModel) {
  TempDir t;
  nlohmann::json cfg = nlohmann::json::parse(
      std::ifstream(std::string(OPTIQ_SOURCE_DIR) + "/models/dhara-brown-tiny/config.json"));
  cfg["hidden_size"] = 64;
  cfg["num_hidden_layers"] = 1;
  cfg["intermediate_size"] = 96;
  cfg["num_attention_heads"] = 2;
  cfg["num_key_value_heads"] = 1;
  std::ofstream(t.str() + "/c.json") << cfg.dump();
  std::string text;
  for (int i = 0; i < 40; ++i) text += "The jury said that the election was conducted well. ";
  std::ofstream(t.str() + "/train.txt") << text;
  const std::string args = "train --config " + shell_quote(t.str() + "/c.json") + " --data " +
                           shell_quote(t.str() + "/train.txt") + " -o " + shell_quote(t.str() + "/out") +
                           " --tokenizer " + shell_quote(std::string(OPTIQ_SOURCE_DIR) + "/models/dhara-brown-tiny") +
                           " --iters 2 --batch-size 2 --seq-length 64 --warmup 1 --threads 1";
  const CliRun r = run_optiq(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "Iter 2: train loss")) << r.out;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "training_state.safetensors"})
    EXPECT_TRUE(fs::exists(t.str() + "/out/" + f)) << f;
  const CliRun g = run_optiq("generate --model " + shell_quote(t.str() + "/out") + " --prompt The --max-tokens 4");
  EXPECT_EQ(g.exit_code, 0) << g.err;
  const CliRun bad = run_optiq(args + " --resume --learning-rate 1e-3");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.err, "cannot resume: learning_rate")) << bad.err;
}

}  // namespace
}  // namespace optiq::test
