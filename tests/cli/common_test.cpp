// cli/common.cpp's model resolution: Hugging Face ids on the command line (generate, tokenize, serve's
// model id), downloaded from the fake Hub of tests/io/fake_hub.h on loopback, then used offline.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/cli/cli_util.h"
#include "tests/io/fake_hub.h"

namespace optiq::test {
namespace {

const std::string kId = "optiq-test/dhara-tiny";
const std::string kGenerate = "generate --prompt-ids 84,104,101 --max-tokens 4 --threads 1 --model ";

// The child's Hub settings: this cache, this endpoint, no token from the developer's own setup.
struct HubEnv {
  TempDir home;
  ScopedEnv h, c, e, t, tp, off;
  explicit HubEnv(const std::string& endpoint)
      : h("HF_HOME", home.str()), c("HF_HUB_CACHE", home.str() + "/hub"), e("HF_ENDPOINT", endpoint),
        t("HF_TOKEN", ""), tp("HF_TOKEN_PATH", home.str() + "/no-token"), off("HF_HUB_OFFLINE", "0") {}
};

TEST(CliHubModel, GenerateDownloadsAnIdThenRunsOffline) {
  FakeHub hub;
  HubEnv env(hub.endpoint());
  CliRun r = run_optiq(kGenerate + kId);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "prompt 3 tokens, generated ")) << r.err;
  // stderr is a file here, not a TTY: one summary line per file, no bar.
  EXPECT_TRUE(contains(r.err, "optiq: downloaded model.safetensors (1.6 MB")) << r.err;
  EXPECT_FALSE(contains(r.err, "\r")) << r.err;
  EXPECT_EQ(hub.lfs_gets.load(), 1);

  // The cache now serves the id without the network, by flag or by environment.
  ScopedEnv dead("HF_ENDPOINT", "http://127.0.0.1:1");
  r = run_optiq(kGenerate + kId + " --offline");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(contains(r.err, "downloaded")) << r.err;
  {
    ScopedEnv off("HF_HUB_OFFLINE", "1");
    r = run_optiq("tokenize --model " + kId + " --text hello --ids");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(r.out.empty());
  }
  // @REVISION by commit sha, offline.
  r = run_optiq(kGenerate + kId + "@" + FakeHub::kSha + " --offline");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// optiq train --init takes an id like every other model argument.
TEST(CliHubModel, TrainInitsFromAnId) {
  FakeHub hub;
  HubEnv env(hub.endpoint());
  TempDir t;
  std::string text;
  for (int i = 0; i < 20; ++i) text += "The jury said that the election was conducted well. ";
  std::ofstream(t.str() + "/train.txt") << text;
  const CliRun r = run_optiq("train --init " + kId + " --data " + shell_quote(t.str() + "/train.txt") + " -o " +
                             shell_quote(t.str() + "/out") + " --tokenizer " + tiny_model_arg() +
                             " --objective ar --iters 1 --batch-size 1 --seq-length 32 --warmup 0 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "Iter 1: train loss")) << r.out;
  EXPECT_EQ(hub.lfs_gets.load(), 1);
}

TEST(CliHubModel, OfflineWithoutTheCacheIsAClearError) {
  HubEnv env("http://127.0.0.1:1");
  const CliRun r = run_optiq(kGenerate + kId + " --offline");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "offline")) << r.err;
  EXPECT_TRUE(contains(r.err, kId)) << r.err;
  EXPECT_TRUE(contains(r.err, "not in the Hugging Face cache")) << r.err;
}

TEST(CliHubModel, UnauthorizedSaysATokenIsNeeded) {
  FakeHub hub;
  hub.token = "hf_secret";
  HubEnv env(hub.endpoint());
  CliRun r = run_optiq(kGenerate + kId);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, kId + ": revision main was refused (HTTP 401")) << r.err;
  EXPECT_TRUE(contains(r.err, "HF_TOKEN")) << r.err;
  ScopedEnv token("HF_TOKEN", "hf_secret");
  r = run_optiq(kGenerate + kId);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(CliHubModel, ALocalDirectoryIsUsedAsGiven) {
  // No Hub at all: a directory path never touches the network.
  HubEnv env("http://127.0.0.1:1");
  const CliRun r = run_optiq(kGenerate + tiny_model_arg());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace optiq::test
