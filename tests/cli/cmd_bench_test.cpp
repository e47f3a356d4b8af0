// `optiq bench` and `optiq init-random`: help, usage errors, and errors that name their input. The
// speed runs themselves are exercised by tests/scripts/cli_bench.cmake and cli_init_random.cmake.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

TEST(CliBench, HelpGoesToStdout) {
  expect_help("bench", "usage: optiq bench");
  expect_help("init-random", "usage: optiq init-random --config CONFIG.json -o DIR");
}

TEST(CliBench, MissingModelNamesThePath) {
  TempDir t;
  const CliRun r = run_optiq("bench --model " + shell_quote(t.str() + "/absent"));
  expect_runtime_error(r, "bench", t.str() + "/absent");
}

TEST(CliBench, UsageErrorsExitTwo) {
  expect_usage_error(run_optiq("bench --gen-len 0"), "bench", "--gen-len must be >= 1, got 0");
  expect_usage_error(run_optiq("bench --repeats many"), "bench", "--repeats: not an integer: many");
  expect_usage_error(run_optiq("bench somewhere"), "bench", "unexpected argument 'somewhere'");
}

// Progress goes to stderr, one line per stage (so a slow run shows what it is doing); stdout keeps
// only the results (here the JSON, which must still parse); --quiet silences it.
TEST(CliBench, ProgressOnStderr) {
  const std::string args = "bench --model " + tiny_model_arg() + " --prompt-len 8 --gen-len 4 --repeats 1 --threads 1 --json";
  CliRun r = run_optiq(args + " --no-bandwidth");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "optiq bench: loading ")) << r.err;
  for (const char* mode : {"ar", "diffusion", "selfspec"}) {
    EXPECT_TRUE(contains(r.err, "optiq bench: " + std::string(mode) + ": warm-up")) << mode << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "optiq bench: " + std::string(mode) + ": run 1 of 1")) << mode << "\n" << r.err;
  }
  EXPECT_TRUE(contains(r.err, "block forward")) << r.err;
  ASSERT_TRUE(nlohmann::json::accept(r.out)) << r.out;
  // Forwards per token count the prompt's forward, as generate's tokens/forward does: AR is exactly 1.
  const auto fpt = nlohmann::json::parse(r.out)["forwards_per_token"];
  EXPECT_DOUBLE_EQ(fpt["ar"].get<double>(), 1.0) << r.out;
  EXPECT_GT(fpt["diffusion"].get<double>(), 0.0) << r.out;
  r = run_optiq("bench --model " + shell_quote(fixture("dgemma-tiny")) +
                " --prompt-len 4 --gen-len 4 --repeats 1 --threads 1 --no-bandwidth");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* sampler : {"entropy-bound", "confidence-threshold"})
    EXPECT_TRUE(contains(r.err, "optiq bench: " + std::string(sampler) + ": run 1 of 1")) << sampler << "\n" << r.err;
  r = run_optiq(args + " --no-bandwidth --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(CliBench, AdapterIsAppliedAndReported) {
  const CliRun r = run_optiq("bench --model " + tiny_model_arg() + " --adapter " +
                             shell_quote(fixture("lora/dhara-tiny-text/init")) +
                             " --prompt-len 8 --gen-len 4 --repeats 1 --threads 1 --no-bandwidth --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "\"adapter\": \"" + fixture("lora/dhara-tiny-text/init") + "\"")) << r.out;
}

TEST(CliInitRandom, UsageErrorsExitTwo) {
  expect_usage_error(run_optiq("init-random"), "init-random", "--config CONFIG.json is required");
  expect_usage_error(run_optiq("init-random --config c.json"), "init-random", "-o DIR is required");
  expect_usage_error(run_optiq("init-random --config c.json -o x --dtype f16"), "init-random",
                     "--dtype must be bf16 or f32, got 'f16'");
}

// Progress on stderr: a line before the weights are filled and one naming what was written.
TEST(CliInitRandom, ProgressOnStderr) {
  TempDir t;
  const std::string out = t.str() + "/random";
  const CliRun r = run_optiq("init-random --config " +
                             shell_quote(std::string(OPTIQ_SOURCE_DIR) + "/bench/configs/diffusion-gemma-tiny.json") +
                             " -o " + shell_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t filling = r.err.find("optiq init-random: filling diffusion_gemma weights");
  const size_t wrote = r.err.find("optiq init-random: wrote " + out + " (model.safetensors ");
  EXPECT_NE(filling, std::string::npos) << r.err;
  EXPECT_NE(wrote, std::string::npos) << r.err;
  EXPECT_LT(filling, wrote) << r.err;
  EXPECT_TRUE(std::ifstream(out + "/model.safetensors").good());
}

TEST(CliInitRandom, UnknownModelTypeListsTheRegisteredOnes) {
  TempDir t;
  const std::string cfg = t.str() + "/config.json";
  std::ofstream(cfg) << R"({"model_type": "no_such_arch", "hidden_size": 8})";
  const CliRun r = run_optiq("init-random --config " + shell_quote(cfg) + " -o " + shell_quote(t.str() + "/out"));
  expect_runtime_error(r, "init-random", "no_such_arch");
  EXPECT_TRUE(contains(r.err, "dhara_ar")) << r.err;
  EXPECT_TRUE(contains(r.err, "diffusion_gemma")) << r.err;
}

}  // namespace
}  // namespace optiq::test
