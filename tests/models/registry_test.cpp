// The model registry: model_type → loader and random-checkpoint writer. Every registered
// architecture's random checkpoint must load through load_model and forward.
#include "models/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "io/model_dir.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

// A tiny config per registered type: the fixture checkpoints' own config.json. A new architecture
// adds its fixture here (RandomCheckpointsLoadAndForward fails until it does).
const std::map<std::string, std::string> kTinyFixture = {
    {"dhara_ar", "dhara-tiny"},
    {"diffusion_gemma", "dgemma-tiny"},
};

nlohmann::json tiny_config(const std::string& type) {
  auto it = kTinyFixture.find(type);
  if (it == kTinyFixture.end()) return nullptr;
  auto cfg = read_json_file(test::fixture(it->second) + "/config.json");
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  return cfg.ok() ? *cfg : nlohmann::json();
}

// Logits [T, V] of a causal forward over `tokens` on the model in `dir`.
std::vector<float> forward_logits(const std::string& dir, const std::vector<int32_t>& tokens) {
  auto m = load_model(dir);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return {};
  ThreadPool pool(1);
  auto cache = (*m)->make_cache(static_cast<int64_t>(tokens.size()));
  std::vector<float> logits(tokens.size() * static_cast<size_t>((*m)->info().vocab_size));
  ForwardBatch b;
  b.tokens = tokens;
  Status s = (*m)->forward(b, *cache, logits.data(), pool);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return logits;
}

TEST(ModelRegistry, ListsEveryArchitectureOnce) {
  const auto types = registered_model_types();
  ASSERT_FALSE(types.empty());
  EXPECT_EQ(std::set<std::string>(types.begin(), types.end()).size(), types.size());
  for (const auto& t : types) EXPECT_NE(find_model_factory(t), nullptr) << t;
  EXPECT_EQ(find_model_factory("llama"), nullptr);
}

TEST(ModelRegistry, UnknownOrMissingModelTypeListsTheRegisteredOnes) {
  test::TempDir tmp;
  Status s = write_random_checkpoint({{"model_type", "llama"}, {"hidden_size", 8}}, tmp.str(), DType::kBF16, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kUnsupported) << s.ToString();
  EXPECT_NE(s.message().find("\"llama\""), std::string::npos) << s.ToString();
  for (const auto& t : registered_model_types()) EXPECT_NE(s.message().find(t), std::string::npos) << s.ToString();

  for (const nlohmann::json& cfg : {nlohmann::json{{"hidden_size", 8}}, nlohmann::json{{"model_type", 3}}}) {
    Status m = write_random_checkpoint(cfg, tmp.str(), DType::kBF16, 1);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.code(), Status::Code::kInvalidArgument) << m.ToString();
    EXPECT_NE(m.message().find("model_type"), std::string::npos) << m.ToString();
    for (const auto& t : registered_model_types()) EXPECT_NE(m.message().find(t), std::string::npos) << m.ToString();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.path / "model.safetensors"));
}

TEST(ModelRegistry, RandomCheckpointsLoadAndForward) {
  const std::vector<int32_t> tokens{3, 17, 5, 42, 9, 1};
  for (const std::string& type : registered_model_types()) {
    SCOPED_TRACE(type);
    const nlohmann::json cfg = tiny_config(type);
    ASSERT_TRUE(cfg.is_object()) << "no tiny config for registered type " << type;
    for (DType dt : {DType::kBF16, DType::kF32}) {
      test::TempDir a, b, c;
      ASSERT_TRUE(write_random_checkpoint(cfg, a.str(), dt, 5).ok());
      ASSERT_TRUE(write_random_checkpoint(cfg, b.str(), dt, 5).ok());
      ASSERT_TRUE(write_random_checkpoint(cfg, c.str(), dt, 6).ok());
      auto written = read_json_file(a.str() + "/config.json");
      ASSERT_TRUE(written.ok());
      EXPECT_EQ((*written)["model_type"], type);
      EXPECT_EQ((*written)["torch_dtype"], dt == DType::kF32 ? "float32" : "bfloat16");

      const auto la = forward_logits(a.str(), tokens), lb = forward_logits(b.str(), tokens),
                 lc = forward_logits(c.str(), tokens);
      ASSERT_FALSE(la.empty());
      double sum = 0, sum2 = 0;
      for (float v : la) {
        ASSERT_TRUE(std::isfinite(v));
        sum += v;
        sum2 += static_cast<double>(v) * v;
      }
      const double mean = sum / la.size(), sd = std::sqrt(std::max(0.0, sum2 / la.size() - mean * mean));
      EXPECT_GT(sd, 0.1) << "logits barely vary: the random weights do not reach the output";
      EXPECT_EQ(la, lb) << "same seed, different checkpoint";
      EXPECT_NE(la, lc) << "the seed does not change the weights";
    }
  }
}

TEST(ModelRegistry, WriterRejectsOtherDtypesAndBadConfigs) {
  test::TempDir tmp;
  for (const std::string& type : registered_model_types()) {
    const nlohmann::json cfg = tiny_config(type);
    ASSERT_TRUE(cfg.is_object()) << type;
    Status s = write_random_checkpoint(cfg, tmp.str(), DType::kF16, 1);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << type << ": " << s.ToString();
    nlohmann::json broken = cfg;
    (broken.contains("text_config") ? broken["text_config"] : broken).erase("hidden_size");
    Status b = write_random_checkpoint(broken, tmp.str(), DType::kBF16, 1);
    ASSERT_FALSE(b.ok()) << type;
    EXPECT_NE(b.message().find("hidden_size"), std::string::npos) << type << ": " << b.ToString();
  }
}

}  // namespace
}  // namespace optiq
