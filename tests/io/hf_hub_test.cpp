// io/hf_hub: ids, the download filter, the cache layout, resumed and corrupted downloads, offline use and
// tokens, against the fake Hub of tests/io/fake_hub.h on loopback (no real network).
#include "io/hf_hub.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/io/fake_hub.h"

namespace optiq::test {
namespace {

namespace fs = std::filesystem;

bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

struct HubTest : ::testing::Test {
  FakeHub hub;
  TempDir cache;
  HubOptions opts() {
    HubOptions o;
    o.cache_dir = cache.str();
    o.endpoint = hub.endpoint();
    o.progress = nullptr;
    return o;
  }
  fs::path repo_dir() const { return cache.path / "models--optiq-test--dhara-tiny"; }
  fs::path snapshot() const { return repo_dir() / "snapshots" / FakeHub::kSha; }
  fs::path weights_blob() { return repo_dir() / "blobs" / sha256_hex(hub.file("model.safetensors")); }
};

// An endpoint nothing listens on (port 1, tcpmux, is unused on Linux hosts): any network use fails fast.
std::string dead_endpoint() { return "http://127.0.0.1:1"; }

TEST(HfHubId, ParsesOrgNameAndRevision) {
  auto id = parse_hub_repo_id("mlx-community/dhara-250m-OptiQ-4bit");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->org, "mlx-community");
  EXPECT_EQ(id->name, "dhara-250m-OptiQ-4bit");
  EXPECT_EQ(id->revision, "main");
  id = parse_hub_repo_id("org/name@v1.0");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->revision, "v1.0");
  for (const char* bad : {"name", "/abs/path", "./org/name", "a/b/c", "org/..", "../x", "org/name@", "org/na me", "-o/x"})
    EXPECT_FALSE(parse_hub_repo_id(bad).ok()) << bad;
}

TEST(HfHubId, DownloadFilterKeepsWhatAModelNeeds) {
  for (const char* f : {"config.json", "model.safetensors", "model-00001-of-00002.safetensors",
                        "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json", "chat_template.jinja", "generation_config.json",
                        "preprocessor_config.json", "adapter_config.json", "adapters.safetensors"})
    EXPECT_TRUE(hub_file_wanted(f)) << f;
  for (const char* f : {"README.md", ".gitattributes", "pytorch_model.bin", "onnx/model.onnx", "original/model.safetensors",
                        "tokenizer.model", "model.gguf"})
    EXPECT_FALSE(hub_file_wanted(f)) << f;
}

TEST(HfHubId, OptionsComeFromTheEnvironment) {
  TempDir home;
  std::ofstream(home.path / "token") << "hf_secret\n";
  ScopedEnv h("HF_HOME", home.str()), c("HF_HUB_CACHE", ""), e("HF_ENDPOINT", "http://mirror.example/"),
      t("HF_TOKEN", ""), tp("HF_TOKEN_PATH", ""), off("HF_HUB_OFFLINE", "1");
  ::unsetenv("HF_HUB_CACHE");
  ::unsetenv("HF_TOKEN");
  ::unsetenv("HF_TOKEN_PATH");
  HubOptions o = hub_options_from_env();
  EXPECT_EQ(o.cache_dir, home.str() + "/hub");
  EXPECT_EQ(o.endpoint, "http://mirror.example");
  EXPECT_EQ(o.token, "hf_secret");
  EXPECT_TRUE(o.offline);
  ScopedEnv c2("HF_HUB_CACHE", "/elsewhere"), t2("HF_TOKEN", "from_env"), off2("HF_HUB_OFFLINE", "0");
  o = hub_options_from_env();
  EXPECT_EQ(o.cache_dir, "/elsewhere");
  EXPECT_EQ(o.token, "from_env");
  EXPECT_FALSE(o.offline);
}

TEST_F(HubTest, DownloadsIntoTheCacheLayout) {
  auto dir = resolve_model_path("optiq-test/dhara-tiny", opts());
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_EQ(*dir, snapshot().string());
  EXPECT_EQ(read_text(repo_dir() / "refs" / "main"), FakeHub::kSha);
  const fs::path weights = snapshot() / "model.safetensors";
  ASSERT_TRUE(fs::is_symlink(weights));
  EXPECT_EQ(fs::read_symlink(weights), fs::path("../../blobs") / sha256_hex(hub.file("model.safetensors")));
  EXPECT_EQ(read_bytes(weights.string()), hub.file("model.safetensors"));
  EXPECT_EQ(read_bytes((snapshot() / "tokenizer.json").string()), hub.file("tokenizer.json"));
  EXPECT_FALSE(fs::exists(snapshot() / "README.md"));  // filtered out
  EXPECT_FALSE(fs::exists(snapshot() / "onnx"));
  EXPECT_EQ(hub.lfs_gets.load(), 1);
  // A second resolve asks the API for the revision but downloads nothing.
  auto again = resolve_model_path("optiq-test/dhara-tiny@main", opts());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *dir);
  EXPECT_EQ(hub.lfs_gets.load(), 1);
  EXPECT_EQ(hub.api_calls.load(), 2);
}

TEST_F(HubTest, ResolvesACompleteCacheByBranchOrShaWithoutNetwork) {
  ASSERT_TRUE(resolve_model_path("optiq-test/dhara-tiny", opts()).ok());
  HubOptions o = opts();
  o.endpoint = dead_endpoint();
  o.offline = true;
  for (const std::string& id : {std::string("optiq-test/dhara-tiny"), std::string("optiq-test/dhara-tiny@main"),
                               std::string("optiq-test/dhara-tiny@") + FakeHub::kSha}) {
    auto dir = resolve_model_path(id, o);
    ASSERT_TRUE(dir.ok()) << id << ": " << dir.status().ToString();
    EXPECT_EQ(*dir, snapshot().string()) << id;
  }
  // Online but unreachable: a sha needs no network; a branch falls back to the cached ref.
  o.offline = false;
  auto by_sha = resolve_model_path(std::string("optiq-test/dhara-tiny@") + FakeHub::kSha, o);
  ASSERT_TRUE(by_sha.ok()) << by_sha.status().ToString();
  auto by_branch = resolve_model_path("optiq-test/dhara-tiny", o);
  ASSERT_TRUE(by_branch.ok()) << by_branch.status().ToString();
  EXPECT_EQ(*by_branch, snapshot().string());
}

TEST_F(HubTest, OfflineWithoutACompleteCacheNamesWhatIsMissing) {
  HubOptions o = opts();
  o.offline = true;
  auto r = resolve_model_path("optiq-test/dhara-tiny", o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.status().message(), "offline")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), "optiq-test/dhara-tiny")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), "refs/main")) << r.status().message();
  EXPECT_EQ(hub.api_calls.load(), 0);

  o.offline = false;
  ASSERT_TRUE(resolve_model_path("optiq-test/dhara-tiny", o).ok());
  fs::remove(weights_blob());  // the snapshot's link now dangles
  o.offline = true;
  r = resolve_model_path("optiq-test/dhara-tiny", o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.status().message(), "incomplete")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), "model.safetensors")) << r.status().message();
  // Online, the missing blob is fetched again.
  o.offline = false;
  ASSERT_TRUE(resolve_model_path("optiq-test/dhara-tiny", o).ok());
  EXPECT_EQ(read_bytes((snapshot() / "model.safetensors").string()), hub.file("model.safetensors"));
}

TEST_F(HubTest, ADroppedConnectionIsResumedWithRange) {
  hub.drop_first_get_at = 500000;
  auto dir = resolve_model_path("optiq-test/dhara-tiny", opts());
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_EQ(read_bytes((snapshot() / "model.safetensors").string()), hub.file("model.safetensors"));
  ASSERT_EQ(hub.ranges.size(), 2u);
  EXPECT_EQ(hub.ranges[0], "");
  EXPECT_EQ(hub.ranges[1], "bytes=500000-");
}

TEST_F(HubTest, AnInterruptedDownloadResumesOnTheNextRun) {
  hub.drop_first_get_at = 300000;
  HubOptions o = opts();
  o.retries = 0;
  auto r = resolve_model_path("optiq-test/dhara-tiny", o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.status().message(), "interrupted after 300000 bytes")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), "resumed by the next run")) << r.status().message();
  const fs::path part = weights_blob().string() + ".incomplete";
  ASSERT_TRUE(fs::exists(part));
  EXPECT_EQ(fs::file_size(part), 300000u);
  auto dir = resolve_model_path("optiq-test/dhara-tiny", o);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_FALSE(fs::exists(part));
  EXPECT_EQ(read_bytes((snapshot() / "model.safetensors").string()), hub.file("model.safetensors"));
  ASSERT_EQ(hub.ranges.size(), 2u);
  EXPECT_EQ(hub.ranges[1], "bytes=300000-");
}

TEST_F(HubTest, ACorruptedDownloadIsFetchedAgainOnce) {
  hub.corrupt_next_get = true;
  auto dir = resolve_model_path("optiq-test/dhara-tiny", opts());
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_EQ(hub.lfs_gets.load(), 2);
  EXPECT_EQ(read_bytes((snapshot() / "model.safetensors").string()), hub.file("model.safetensors"));

  TempDir other;
  HubOptions o = opts();
  o.cache_dir = other.str();
  hub.corrupt_always = true;
  auto r = resolve_model_path("optiq-test/dhara-tiny", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_TRUE(has(r.status().message(), "model.safetensors: sha256")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), "downloaded twice")) << r.status().message();
  for (const auto& e : fs::directory_iterator(other.path / "models--optiq-test--dhara-tiny" / "blobs"))
    EXPECT_NE(e.path().filename(), sha256_hex(hub.file("model.safetensors"))) << "a corrupted blob was kept";
}

TEST_F(HubTest, UnauthorizedSaysATokenIsNeeded) {
  hub.token = "hf_secret";
  auto r = resolve_model_path("optiq-test/dhara-tiny", opts());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.status().message(), "optiq-test/dhara-tiny")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), "HTTP 401")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), "token")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), "HF_TOKEN")) << r.status().message();
  HubOptions o = opts();
  o.token = "hf_secret";
  auto ok = resolve_model_path("optiq-test/dhara-tiny", o);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST_F(HubTest, AnUnknownRepoIsNotFound) {
  auto r = resolve_model_path("optiq-test/no-such-model", opts());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(has(r.status().message(), "optiq-test/no-such-model")) << r.status().message();
}

TEST_F(HubTest, ALocalDirectoryWinsOverAnId) {
  TempDir work;
  fs::create_directories(work.path / "optiq-test" / "dhara-tiny");
  const fs::path old = fs::current_path();
  fs::current_path(work.path);
  auto r = resolve_model_path("optiq-test/dhara-tiny", opts());
  fs::current_path(old);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "optiq-test/dhara-tiny");
  EXPECT_EQ(hub.api_calls.load(), 0);
  // Paths that are no id pass through for the loader to report.
  auto p = resolve_model_path("/nonexistent/model", opts());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, "/nonexistent/model");
}

}  // namespace
}  // namespace optiq::test
