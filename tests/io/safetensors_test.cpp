// Safetensors reader/writer: round trip, sharding, and clear errors on malformed files.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/model.h"
#include "models/registry.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << data;
}

std::string open_error(const std::string& path) {
  auto r = SafetensorsFile::open(path);
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().ToString();
}

TEST(Safetensors, RoundTripAllDtypesAndMetadata) {
  test::TempDir tmp;
  const std::string path = tmp.str() + "/t.safetensors";
  std::vector<float> f32{1.5f, -2.f, 3.25f, 0.f, 7.f, 8.f};
  std::vector<uint16_t> bf16{f32_to_bf16(1.f), f32_to_bf16(-3.5f)};
  std::vector<uint16_t> f16{f32_to_f16(0.5f), f32_to_f16(-2.f), f32_to_f16(65504.f)};
  std::vector<uint32_t> u32{1, 0xffffffffu};
  std::vector<int32_t> i32{-5};
  std::vector<int8_t> i8{-1, 2, 3, 4};
  std::vector<uint8_t> u8{255};
  std::vector<TensorToWrite> ts{{"a.f32", DType::kF32, {2, 3}, f32.data(), 24},
                                {"b.bf16", DType::kBF16, {2}, bf16.data(), 4},
                                {"c.f16", DType::kF16, {3}, f16.data(), 6},
                                {"d.u32", DType::kU32, {2, 1}, u32.data(), 8},
                                {"e.i32", DType::kI32, {1}, i32.data(), 4},
                                {"f.i8", DType::kI8, {4}, i8.data(), 4},
                                {"g.u8", DType::kU8, {1}, u8.data(), 1},
                                {"h.empty", DType::kF32, {0, 4}, nullptr, 0}};
  ASSERT_TRUE(write_safetensors(path, ts, {{"format", "pt"}}).ok());
  auto st = SafetensorsFile::open(path);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ((*st)->metadata().at("format"), "pt");
  const auto& t = (*st)->tensors();
  ASSERT_EQ(t.size(), ts.size());
  EXPECT_EQ(t.at("a.f32").shape, (std::vector<int64_t>{2, 3}));
  std::vector<float> back(6);
  convert_to_f32(DType::kF32, t.at("a.f32").data, back.data(), 6);
  EXPECT_EQ(back, f32);
  convert_to_f32(DType::kBF16, t.at("b.bf16").data, back.data(), 2);
  EXPECT_EQ(back[1], -3.5f);
  convert_to_f32(DType::kF16, t.at("c.f16").data, back.data(), 3);
  EXPECT_EQ(back[2], 65504.f);
  EXPECT_EQ(static_cast<const uint32_t*>(t.at("d.u32").data)[1], 0xffffffffu);
  EXPECT_EQ(static_cast<const int8_t*>(t.at("f.i8").data)[0], -1);
  // No temp file left behind.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(tmp.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Safetensors, WriterRejectsSizeMismatchAndLeavesNoFile) {
  test::TempDir tmp;
  const std::string path = tmp.str() + "/bad.safetensors";
  std::vector<float> v(3);
  Status s = write_safetensors(path, {{"x", DType::kF32, {2, 2}, v.data(), 12}});
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Safetensors, MalformedFilesGiveErrorsNamingFileAndProblem) {
  test::TempDir tmp;
  const std::string p = tmp.str() + "/m.safetensors";
  {
    std::ofstream f(p, std::ios::binary);
    f << "abc";
  }
  EXPECT_NE(open_error(p).find("shorter than the 8-byte header"), std::string::npos);
  {
    std::ofstream f(p, std::ios::binary);
    uint64_t n = 1000;
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << "{}";
  }
  std::string e = open_error(p);
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("header length 1000 runs beyond the file"), std::string::npos) << e;
  write_raw(p, "{not json", "");
  EXPECT_NE(open_error(p).find("not valid JSON"), std::string::npos);
  write_raw(p, R"({"w": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}})", "x");
  e = open_error(p);
  EXPECT_NE(e.find("w: unknown dtype \"Q4\""), std::string::npos) << e;
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", "1234");
  EXPECT_NE(open_error(p).find("beyond the data block"), std::string::npos);
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", "12345678");
  e = open_error(p);
  EXPECT_NE(e.find("shape [3] F32 needs 12 bytes, data_offsets span 8"), std::string::npos) << e;
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", "123456789012");
  EXPECT_NE(open_error(p).find("overlapping"), std::string::npos);
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", "1234");
  EXPECT_NE(open_error(p).find("negative"), std::string::npos);
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", "12345678");
  EXPECT_NE(open_error(p).find("begin 8 > end 4"), std::string::npos);
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [1]}})", "1234");
  EXPECT_NE(open_error(p).find("data_offsets"), std::string::npos);
  write_raw(p, R"([1, 2])", "");
  EXPECT_NE(open_error(p).find("not a JSON object"), std::string::npos);
  EXPECT_EQ(SafetensorsFile::open(tmp.str() + "/missing.safetensors").status().code(), Status::Code::kIOError);
}

TEST(Safetensors, ShardedDirectoryViaIndex) {
  test::TempDir tmp;
  std::vector<float> a{1, 2}, b{3};
  ASSERT_TRUE(write_safetensors(tmp.str() + "/model-00001-of-00002.safetensors", {{"a", DType::kF32, {2}, a.data(), 8}}).ok());
  ASSERT_TRUE(write_safetensors(tmp.str() + "/model-00002-of-00002.safetensors", {{"b", DType::kF32, {1}, b.data(), 4}}).ok());
  nlohmann::json idx = {{"metadata", {{"total_size", 12}}},
                        {"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  ASSERT_TRUE(write_file_atomic(tmp.str() + "/model.safetensors.index.json", idx.dump()).ok());
  auto store = TensorStore::open_dir(tmp.str());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_NE((*store)->find("b"), nullptr);
  EXPECT_EQ(static_cast<const float*>((*store)->find("b")->data)[0], 3.f);
  EXPECT_NE((*store)->file_of("b").find("00002"), std::string::npos);
  idx["weight_map"]["c"] = "model-00002-of-00002.safetensors";
  ASSERT_TRUE(write_file_atomic(tmp.str() + "/model.safetensors.index.json", idx.dump()).ok());
  auto bad = TensorStore::open_dir(tmp.str());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tensor c listed but not found"), std::string::npos);
}

// Malformed model checkpoints: each broken in one way, each error names the problem.
class BrokenCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_ = {{"model_type", "dhara_ar"}, {"hidden_size", 32}, {"num_hidden_layers", 1}, {"intermediate_size", 48},
            {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"head_dim", 16}, {"vocab_size", 40},
            {"mask_token_id", 39}, {"eos_token_id", 38}, {"max_position_embeddings", 64}};
    ASSERT_TRUE(write_random_dhara(cfg_, dir_.str(), DType::kBF16, 3).ok());
    auto st = SafetensorsFile::open(dir_.str() + "/model.safetensors");
    ASSERT_TRUE(st.ok());
    for (auto& [name, tv] : (*st)->tensors()) {
      auto& bytes = copies_[name];
      bytes.assign(static_cast<const uint8_t*>(tv.data), static_cast<const uint8_t*>(tv.data) + tv.nbytes);
      tensors_.push_back({name, tv.dtype, tv.shape, nullptr, tv.nbytes});
    }
    for (auto& t : tensors_) t.data = copies_[t.name].data();
  }
  std::string load_error() {
    EXPECT_TRUE(write_safetensors(dir_.str() + "/model.safetensors", tensors_).ok());
    auto m = load_model(dir_.str());
    EXPECT_FALSE(m.ok());
    return m.ok() ? "" : m.status().ToString();
  }
  TensorToWrite& tensor(const std::string& name) {
    for (auto& t : tensors_)
      if (t.name == name) return t;
    ADD_FAILURE() << "no tensor " << name;
    return tensors_[0];
  }
  test::TempDir dir_;
  nlohmann::json cfg_;
  std::map<std::string, std::vector<uint8_t>> copies_;
  std::vector<TensorToWrite> tensors_;
};

TEST_F(BrokenCheckpoint, LoadsWhenIntact) {
  ASSERT_TRUE(write_safetensors(dir_.str() + "/model.safetensors", tensors_).ok());
  auto m = load_model(dir_.str());
  EXPECT_TRUE(m.ok()) << m.status().ToString();
}

TEST_F(BrokenCheckpoint, MissingTensor) {
  std::erase_if(tensors_, [](auto& t) { return t.name == "model.layers.0.mlp.up_proj.weight"; });
  EXPECT_NE(load_error().find("missing tensor model.layers.0.mlp.up_proj.weight"), std::string::npos);
}

TEST_F(BrokenCheckpoint, WrongShape) {
  auto& t = tensor("model.layers.0.mlp.up_proj.weight");
  t.shape = {32, 48};  // transposed
  std::string e = load_error();
  EXPECT_NE(e.find("model.layers.0.mlp.up_proj.weight: shape [32, 48], config implies [48, 32]"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
}

TEST_F(BrokenCheckpoint, WrongDtype) {
  auto& t = tensor("model.layers.0.self_attn.q_norm.weight");
  t.dtype = DType::kI8;
  t.shape = {32};  // 32 bytes reinterpreted as I8
  std::string e = load_error();
  EXPECT_NE(e.find("q_norm.weight: dtype I8, expected F32, BF16 or F16"), std::string::npos) << e;
}

TEST_F(BrokenCheckpoint, Truncated) {
  ASSERT_TRUE(write_safetensors(dir_.str() + "/model.safetensors", tensors_).ok());
  const auto path = dir_.str() + "/model.safetensors";
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  auto m = load_model(dir_.str());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("beyond the data block"), std::string::npos) << m.status().ToString();
}

TEST_F(BrokenCheckpoint, BadHeader) {
  const auto path = dir_.str() + "/model.safetensors";
  write_raw(path, "{\"model.norm.weight\": {\"dtype\": \"BF16\", \"shape\": [32], ", "");
  auto m = load_model(dir_.str());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("not valid JSON"), std::string::npos);
}

TEST_F(BrokenCheckpoint, ConfigErrors) {
  cfg_["num_key_value_heads"] = 3;
  ASSERT_TRUE(write_file_atomic(dir_.str() + "/config.json", cfg_.dump()).ok());
  auto m = load_model(dir_.str());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("not a multiple of num_key_value_heads"), std::string::npos);
  cfg_["model_type"] = "llama_unknown";
  ASSERT_TRUE(write_file_atomic(dir_.str() + "/config.json", cfg_.dump()).ok());
  m = load_model(dir_.str());
  EXPECT_EQ(m.status().code(), Status::Code::kUnsupported);
  ASSERT_TRUE(write_file_atomic(dir_.str() + "/config.json", "{\"model_type\": ").ok());
  m = load_model(dir_.str());
  EXPECT_NE(m.status().message().find("config.json: invalid JSON"), std::string::npos) << m.status().ToString();
}

}  // namespace
}  // namespace optiq

namespace optiq {
namespace {

// release_pages drops mapped pages of a file tensor without changing what reads return, and leaves
// memory that is not one of the store's mappings alone.
TEST(Safetensors, ReleasedPagesReadBackUnchanged) {
  test::TempDir tmp;
  std::vector<float> big(1 << 16);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i) * 0.5f;
  ASSERT_TRUE(write_safetensors(tmp.str() + "/model.safetensors",
                                {{"w", DType::kF32, {static_cast<int64_t>(big.size())}, big.data(), big.size() * 4}})
                  .ok());
  auto store = TensorStore::open_dir(tmp.str());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const TensorView* w = (*store)->find("w");
  ASSERT_NE(w, nullptr);
  (*store)->release_pages(w->data, big.size() * 4);
  EXPECT_EQ(std::memcmp(w->data, big.data(), big.size() * 4), 0);
  std::vector<float> heap = big;
  (*store)->release_pages(heap.data(), heap.size() * 4);  // not a mapping: untouched
  EXPECT_EQ(heap, big);
}

}  // namespace
}  // namespace optiq
