// ModelDir: what a model directory must hold, errors that name the file, and the EOS id union.
#include "io/model_dir.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace optiq {
namespace {

// A directory with one tiny tensor and the given config.json / generation_config.json texts
// (an empty string leaves the file out).
void write_dir(const std::string& dir, const std::string& config, const std::string& gen = "") {
  const float w[2] = {1.f, 2.f};
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", {{"w", DType::kF32, {2}, w, sizeof w}}, {}).ok());
  if (!config.empty()) {
    ASSERT_TRUE(write_file_atomic(dir + "/config.json", config).ok());
  }
  if (!gen.empty()) {
    ASSERT_TRUE(write_file_atomic(dir + "/generation_config.json", gen).ok());
  }
}

TEST(ModelDir, OpensConfigGenerationConfigAndTensors) {
  test::TempDir t;
  write_dir(t.str(), R"({"model_type": "x", "eos_token_id": 5})", R"({"temperature": 0.5})");
  auto md = ModelDir::open(t.str());
  ASSERT_TRUE(md.ok()) << md.status().ToString();
  EXPECT_EQ((*md)->path, t.str());
  EXPECT_EQ((*md)->config["model_type"], "x");
  EXPECT_EQ((*md)->generation_config["temperature"], 0.5);
  ASSERT_NE((*md)->tensors->find("w"), nullptr);
}

TEST(ModelDir, GenerationConfigIsOptional) {
  test::TempDir t;
  write_dir(t.str(), R"({"model_type": "x"})");
  auto md = ModelDir::open(t.str());
  ASSERT_TRUE(md.ok()) << md.status().ToString();
  EXPECT_TRUE((*md)->generation_config.is_object());
  EXPECT_TRUE((*md)->generation_config.empty());
}

TEST(ModelDir, MissingDirectoryOrConfigIsNotFoundNamingThePath) {
  test::TempDir t;
  auto md = ModelDir::open(t.str() + "/nope");
  ASSERT_FALSE(md.ok());
  EXPECT_EQ(md.status().code(), Status::Code::kNotFound);
  EXPECT_NE(md.status().message().find("nope"), std::string::npos);
  write_dir(t.str(), "");
  md = ModelDir::open(t.str());
  ASSERT_FALSE(md.ok());
  EXPECT_EQ(md.status().code(), Status::Code::kNotFound);
  EXPECT_NE(md.status().message().find("config.json"), std::string::npos) << md.status().ToString();
}

TEST(ModelDir, BadJsonIsCorruptionNamingTheFile) {
  test::TempDir t;
  write_dir(t.str(), R"({"model_type": )");
  auto md = ModelDir::open(t.str());
  ASSERT_FALSE(md.ok());
  EXPECT_EQ(md.status().code(), Status::Code::kCorruption);
  EXPECT_NE(md.status().message().find("config.json"), std::string::npos) << md.status().ToString();
  EXPECT_NE(md.status().message().find("byte"), std::string::npos) << md.status().ToString();
  // The optional file is named when it is the broken one; a config that is not an object is refused.
  test::TempDir g;
  write_dir(g.str(), R"({"model_type": "x"})", "[1,");
  md = ModelDir::open(g.str());
  ASSERT_FALSE(md.ok());
  EXPECT_NE(md.status().message().find("generation_config.json"), std::string::npos) << md.status().ToString();
  test::TempDir a;
  write_dir(a.str(), "[1, 2]");
  md = ModelDir::open(a.str());
  ASSERT_FALSE(md.ok());
  EXPECT_NE(md.status().message().find("not a JSON object"), std::string::npos) << md.status().ToString();
}

TEST(ModelDir, MissingTensorsFail) {
  test::TempDir t;
  ASSERT_TRUE(write_file_atomic(t.str() + "/config.json", "{}").ok());
  EXPECT_FALSE(ModelDir::open(t.str()).ok());
}

TEST(ModelDir, EosIdsAreTheSortedUnionOfBothFiles) {
  test::TempDir t;
  write_dir(t.str(), R"({"eos_token_id": [106, 1]})", R"({"eos_token_id": [1, 50, "x"]})");
  auto md = ModelDir::open(t.str());
  ASSERT_TRUE(md.ok());
  EXPECT_EQ((*md)->eos_ids(), (std::vector<int32_t>{1, 50, 106}));  // non-integers ignored
  test::TempDir s;
  write_dir(s.str(), R"({"eos_token_id": 7})");
  md = ModelDir::open(s.str());
  ASSERT_TRUE(md.ok());
  EXPECT_EQ((*md)->eos_ids(), std::vector<int32_t>{7});
  test::TempDir n;
  write_dir(n.str(), R"({})");
  md = ModelDir::open(n.str());
  ASSERT_TRUE(md.ok());
  EXPECT_TRUE((*md)->eos_ids().empty());
}

TEST(ReadPositiveInt, AcceptsPositiveIntegersElseNamesTheKey) {
  const auto j = nlohmann::json::parse(R"({"a": 3, "b": 0, "c": 2.5, "d": "4"})");
  int64_t v = -1;
  ASSERT_TRUE(read_positive_int(j, "a", "config.json: ", &v).ok());
  EXPECT_EQ(v, 3);
  for (const char* k : {"b", "c", "d", "missing"}) {
    Status s = read_positive_int(j, k, "config.json: text_config.", &v);
    EXPECT_EQ(s.code(), Status::Code::kCorruption) << k;
    EXPECT_EQ(s.message(), std::string("config.json: text_config.") + k + " must be a positive integer");
  }
  EXPECT_EQ(v, 3);  // untouched on failure
}

TEST(ReadJsonFile, MissingFileIsNotFound) {
  auto j = read_json_file("/nonexistent/optiq/config.json");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), Status::Code::kNotFound);
  EXPECT_NE(j.status().message().find("/nonexistent/optiq/config.json"), std::string::npos);
}

}  // namespace
}  // namespace optiq
