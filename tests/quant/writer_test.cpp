// The MLX checkpoint writer (specs/mlx-format.md §3–§7) on a synthetic float checkpoint: what it
// writes for quantized and float modules, the config blocks, copied files, and what it refuses.
#include "quant/writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/model_dir.h"
#include "quant/mlx_affine.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

struct Source {
  test::TempDir dir;
  std::vector<float> a, b, norm;
  Source(const std::string& config = R"({"model_type": "x", "_name_or_path": "/home/me/x"})") {
    a.resize(8 * 64);
    b.resize(4 * 128);
    norm.assign(64, 1.f);
    for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.1f * static_cast<float>(i));
    for (size_t i = 0; i < b.size(); ++i) b[i] = std::cos(0.3f * static_cast<float>(i));
    EXPECT_TRUE(write_safetensors(dir.str() + "/model.safetensors",
                                  {{"a.weight", DType::kF32, {8, 64}, a.data(), a.size() * 4},
                                   {"b.weight", DType::kF32, {4, 128}, b.data(), b.size() * 4},
                                   {"norm.weight", DType::kF32, {64}, norm.data(), norm.size() * 4}})
                    .ok());
    EXPECT_TRUE(write_file_atomic(dir.str() + "/config.json", config).ok());
    EXPECT_TRUE(write_file_atomic(dir.str() + "/generation_config.json", R"({"temperature": 0})").ok());
    EXPECT_TRUE(write_file_atomic(dir.str() + "/tokenizer.json", "{\"tok\": 1}\n").ok());
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(QuantizedWriter, WritesPackedModulesFloatRestConfigBlocksAndCopies) {
  Source src;
  test::TempDir out;
  QuantizedModelSpec spec;
  spec.modules["a"] = {4, 64};
  spec.metadata = {{"method", "test"}};
  ASSERT_TRUE(write_quantized_model(src.dir.str(), out.str(), spec).ok());
  auto md = ModelDir::open(out.str());
  ASSERT_TRUE(md.ok()) << md.status().ToString();
  const TensorStore& t = *(*md)->tensors;
  // a: U32 [8, 64·4/32], scales/biases [8, 1] in the source dtype, equal to affine_quantize's.
  const TensorView* w = t.find("a.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::kU32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{8, 8}));
  auto q = affine_quantize(src.a.data(), 8, 64, 4, 64, DType::kF32);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(std::memcmp(w->data, q->packed.data(), w->nbytes), 0);
  ASSERT_NE(t.find("a.scales"), nullptr);
  EXPECT_EQ(t.find("a.scales")->dtype, DType::kF32);
  EXPECT_EQ(t.find("a.biases")->shape, (std::vector<int64_t>{8, 1}));
  // Modules outside the plan stay float and unchanged, with no scales.
  const TensorView* b = t.find("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kF32);
  EXPECT_EQ(std::memcmp(b->data, src.b.data(), b->nbytes), 0);
  EXPECT_FALSE(t.contains("b.scales"));
  EXPECT_TRUE(t.contains("norm.weight"));
  EXPECT_EQ(t.metadata().at("format"), "mlx");
  // config: the source's plus identical quantization blocks with a per-module entry; no local path.
  const auto& cfg = (*md)->config;
  EXPECT_EQ(cfg["model_type"], "x");
  EXPECT_FALSE(cfg.contains("_name_or_path"));
  EXPECT_EQ(cfg["quantization"], cfg["quantization_config"]);
  EXPECT_EQ(cfg["quantization"]["bits"], 4);
  EXPECT_EQ(cfg["quantization"]["group_size"], 64);
  EXPECT_EQ(cfg["quantization"]["mode"], "affine");
  EXPECT_EQ(cfg["quantization"]["a"], (nlohmann::json{{"bits", 4}, {"group_size", 64}}));
  EXPECT_FALSE(cfg["quantization"].contains("b"));
  EXPECT_EQ(slurp(out.str() + "/tokenizer.json"), "{\"tok\": 1}\n");
  EXPECT_EQ((*md)->generation_config["temperature"], 0);
  auto meta = read_json_file(out.str() + "/optiq_metadata.json");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ((*meta)["method"], "test");
}

TEST(QuantizedWriter, UniformRecipesWriteOnlyTheGlobalBlock) {
  Source src;
  test::TempDir out;
  QuantizedModelSpec spec;
  spec.per_module_entries = false;
  spec.global_bits = 8;
  spec.global_group_size = 32;
  spec.modules["a"] = {8, 32};
  spec.modules["b"] = {8, 32};
  ASSERT_TRUE(write_quantized_model(src.dir.str(), out.str(), spec).ok());
  auto cfg = read_json_file(out.str() + "/config.json");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ((*cfg)["quantization"], (nlohmann::json{{"bits", 8}, {"group_size", 32}, {"mode", "affine"}}));
  EXPECT_FALSE(std::ifstream(out.str() + "/optiq_metadata.json").good());  // no metadata given
  // A module that differs from the global block needs per-module entries.
  spec.modules["b"] = {4, 32};
  test::TempDir out2;
  Status s = write_quantized_model(src.dir.str(), out2.str(), spec);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("b:"), std::string::npos) << s.ToString();
}

TEST(QuantizedWriter, RefusesBadPlansNamingTheModule) {
  Source src;
  test::TempDir out;
  auto expect_refused = [&](const std::string& mod, ModuleQuant q, const char* needle) {
    QuantizedModelSpec spec;
    spec.modules[mod] = q;
    Status s = write_quantized_model(src.dir.str(), out.str(), spec);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << mod << ": " << s.ToString();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.ToString();
  };
  expect_refused("missing", {4, 64}, "missing");
  expect_refused("norm", {4, 64}, "not a 2-D float weight");
  expect_refused("b", {4, 128 * 2}, "b");   // group larger than the row
  expect_refused("a", {7, 64}, "a");        // unsupported width
  QuantizedModelSpec bad_global;
  bad_global.global_bits = 7;
  EXPECT_EQ(write_quantized_model(src.dir.str(), out.str(), bad_global).code(), Status::Code::kInvalidArgument);
}

TEST(QuantizedWriter, RefusesAnAlreadyQuantizedSource) {
  Source src(R"({"model_type": "x", "quantization": {"bits": 4, "group_size": 64}})");
  test::TempDir out;
  Status s = write_quantized_model(src.dir.str(), out.str(), QuantizedModelSpec{});
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("already quantized"), std::string::npos);
}

}  // namespace
}  // namespace optiq
