// `optiq bench` and `optiq init-random`: help, usage errors, and errors that name their input. The
// speed runs themselves are exercised by tests/scripts/cli_bench.cmake and cli_init_random.cmake.
#include <gtest/gtest.h>

#include <fstream>

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
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "absent")) << r.err;
}

TEST(CliBench, AdapterIsAppliedAndReported) {
  const CliRun r = run_optiq("bench --model " + tiny_model_arg() + " --adapter " +
                             shell_quote(fixture("lora/dhara-tiny-text/init")) +
                             " --prompt-len 8 --gen-len 4 --repeats 1 --threads 1 --no-bandwidth --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "\"adapter\": \"" + fixture("lora/dhara-tiny-text/init") + "\"")) << r.out;
}

TEST(CliInitRandom, UsageErrorsExitTwo) {
  const CliRun r = run_optiq("init-random");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "usage: optiq init-random")) << r.err;
}

TEST(CliInitRandom, UnknownModelTypeListsTheRegisteredOnes) {
  TempDir t;
  const std::string cfg = t.str() + "/config.json";
  std::ofstream(cfg) << R"({"model_type": "no_such_arch", "hidden_size": 8})";
  const CliRun r = run_optiq("init-random --config " + shell_quote(cfg) + " -o " + shell_quote(t.str() + "/out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "no_such_arch")) << r.err;
  EXPECT_TRUE(contains(r.err, "dhara_ar")) << r.err;
  EXPECT_TRUE(contains(r.err, "diffusion_gemma")) << r.err;
}

}  // namespace
}  // namespace optiq::test
