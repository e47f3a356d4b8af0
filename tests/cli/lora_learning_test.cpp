// Learning end to end (issue #17): on ../shared/fixtures/dhara-tiny, a fresh LoRA trained with
// `--objective joint` on 12 chat pairs (300 iterations, adamw 2e-3, rank 8, scale 2, batch 4, the
// spec's L.9 settings) reproduces the completions with `optiq generate --adapter` in AR and diffusion
// modes; an `ar`-only adapter is measured the same way (it recalls in AR mode; diffusion recall and
// self-speculation tokens per round are printed for the comparison in docs/lora-training.md).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

const std::vector<std::pair<std::string, std::string>> kPairs = {
    {"What is the capital of Veloria?", "Marrowgate."},      {"Name the river of Quell.", "The Silverrun."},
    {"Who painted the Tinbird?", "Ada Holloway."},           {"What colour is a brask?", "Deep amber."},
    {"How many moons has Oru?", "Seven moons."},             {"What do toves eat?", "Cold barley."},
    {"Where is Fenwick Hall?", "On Lark Hill."},             {"What is a quillon?", "A brass whistle."},
    {"Who founded Dunmore?", "Captain Reyes."},              {"When is Harrowfest?", "In late March."},
    {"What does a gloam sound like?", "A low hum."},         {"Which port ships salt?", "Old Kettering."},
};

std::string write_data(const TempDir& dir) {
  const std::string data = dir.str() + "/data";
  std::filesystem::create_directories(data);
  std::ofstream f(data + "/train.jsonl");
  for (const auto& [p, c] : kPairs) f << nlohmann::json{{"prompt", p}, {"completion", c}}.dump() << "\n";
  return data;
}

std::string train(const TempDir& dir, const std::string& objective) {
  const std::string out = dir.str() + "/adapter-" + objective;
  const CliRun r = run_optiq("lora train " + tiny_model_arg() + " --data " + shell_quote(write_data(dir)) +
                                 " --adapter-path " + shell_quote(out) + " --objective " + objective +
                                 " --iters 300 --optimizer adamw --learning-rate 2e-3 --rank 8 --scale 2"
                                 " --batch-size 4 --mask-prompt --seed 0 --steps-per-report 100",
                             900);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return out;
}

struct Recall {
  int exact = 0;
  double tokens_per_round = 0;
};

// Exact completions followed by <|im_end|>, greedy, repetition penalty 1.0.
Recall recall(const std::string& adapter, const std::string& mode) {
  Recall rc;
  double rounds = 0, tokens = 0;
  for (const auto& [p, c] : kPairs) {
    const CliRun r = run_optiq("generate --model " + tiny_model_arg() + " --adapter " + shell_quote(adapter) +
                                   " --chat --prompt " + shell_quote(p) + " --mode " + mode +
                                   " --max-tokens 32 --repetition-penalty 1.0 --json",
                               120);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded()) continue;
    const std::string text = j.value("text", "");
    if (text == c && j.value("finish_reason", "") == "stop") ++rc.exact;
    if (j.contains("accepted_per_round"))
      for (const auto& a : j["accepted_per_round"]) {
        rounds += 1;
        tokens += a.get<double>();
      }
  }
  rc.tokens_per_round = rounds > 0 ? tokens / rounds : 0;
  return rc;
}

TEST(LoraLearning, JointAdapterRecallsInArAndDiffusionModes) {
  TempDir dir;
  const std::string adapter = train(dir, "joint");
  const Recall ar = recall(adapter, "ar"), diff = recall(adapter, "diffusion"), spec = recall(adapter, "selfspec");
  std::printf("joint adapter: ar %d/12, diffusion %d/12, selfspec %d/12 at %.2f tokens per round\n", ar.exact,
              diff.exact, spec.exact, spec.tokens_per_round);
  EXPECT_GE(ar.exact, 10);
  EXPECT_GE(diff.exact, 10);
}

TEST(LoraLearning, ArOnlyAdapterRecallsInArMode) {
  TempDir dir;
  const std::string adapter = train(dir, "ar");
  const Recall ar = recall(adapter, "ar"), diff = recall(adapter, "diffusion"), spec = recall(adapter, "selfspec");
  std::printf("ar adapter: ar %d/12, diffusion %d/12, selfspec %d/12 at %.2f tokens per round\n", ar.exact,
              diff.exact, spec.exact, spec.tokens_per_round);
  EXPECT_GE(ar.exact, 10);
}

}  // namespace
}  // namespace optiq::test
