// What OptIQ's sensitivity pass probes (read from tensor names and shapes, never the architecture),
// the fake-quantized override it loads, and the fingerprint its checkpoints are keyed by. The measured
// path end to end (KL per layer, resume) is in tests/quant/convert_test.cpp.
#include "quant/sensitivity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "quant/mlx_affine.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

struct Store {
  test::TempDir dir;
  std::unique_ptr<TensorStore> tensors;
  std::vector<std::vector<uint8_t>> bytes;
};

// A checkpoint with the given 2-D (or 1-D) tensors, values w[i] = sin(i).
void make_store(Store& s, const std::vector<std::tuple<std::string, DType, std::vector<int64_t>>>& specs) {
  std::vector<TensorToWrite> out;
  for (auto& [name, dt, shape] : specs) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = std::sin(static_cast<float>(i));
    s.bytes.push_back(dt == DType::kI32 ? std::vector<uint8_t>(n * 4, 0) : encode_floats(v.data(), v.size(), dt));
    out.push_back({name, dt, shape, s.bytes.back().data(), s.bytes.back().size()});
  }
  ASSERT_TRUE(write_safetensors(s.dir.str() + "/model.safetensors", out).ok());
  auto t = TensorStore::open_dir(s.dir.str());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  s.tensors = std::move(t).value();
}

TEST(FindQuantizable, TwoDimensionalFloatLinearsOutsideNormsAndTowers) {
  Store s;
  make_store(s, {{"model.layers.0.mlp.up_proj.weight", DType::kBF16, {8, 64}},
                 {"model.layers.0.self_attn.q_proj.weight", DType::kF32, {4, 128}},
                 {"model.layers.0.self_attn.q_proj.bias", DType::kF32, {4}},
                 {"model.layers.0.input_layernorm.weight", DType::kBF16, {64}},
                 {"model.layers.0.q_norm.weight", DType::kBF16, {2, 64}},   // 2-D but a norm
                 {"model.layers.0.mlp.down_proj.weight", DType::kBF16, {8, 96}},  // 96 % 64 != 0
                 {"model.vision_tower.layer.fc.weight", DType::kBF16, {8, 64}},
                 {"model.layers.0.index.weight", DType::kI32, {8, 64}},
                 {"model.embed_tokens.weight", DType::kF16, {32, 64}}});
  const auto c = find_quantizable(*s.tensors, 64);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].module, "model.embed_tokens");  // sorted by name
  EXPECT_TRUE(c[0].embedding);
  EXPECT_EQ(c[0].dtype, DType::kF16);
  EXPECT_EQ(c[1].module, "model.layers.0.mlp.up_proj");
  EXPECT_FALSE(c[1].embedding);
  EXPECT_EQ(c[1].params(), 8 * 64);
  EXPECT_EQ(c[2].module, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(c[2].n_out, 4);
  EXPECT_EQ(c[2].n_in, 128);
  // With group 32 the down projection's 96 inputs divide.
  EXPECT_EQ(find_quantizable(*s.tensors, 32).size(), 4u);
}

TEST(FindQuantizable, SkipsModulesThatAreAlreadyQuantized) {
  Store s;
  make_store(s, {{"a.weight", DType::kBF16, {4, 64}}, {"a.scales", DType::kBF16, {4, 1}},
                 {"b.weight", DType::kBF16, {4, 64}}});
  const auto c = find_quantizable(*s.tensors, 64);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].module, "b");
}

TEST(FakeQuantOverride, IsTheDequantizedAffineQuantizationInF32) {
  Store s;
  make_store(s, {{"m.weight", DType::kBF16, {4, 64}}});
  const auto c = find_quantizable(*s.tensors, 32);
  ASSERT_EQ(c.size(), 1u);
  for (int bits : {2, 4, 8}) {
    auto o = fake_quant_override(*s.tensors, c[0], bits, 32);
    ASSERT_TRUE(o.ok()) << o.status().ToString();
    EXPECT_EQ(o->dtype, DType::kF32);
    EXPECT_EQ(o->shape, (std::vector<int64_t>{4, 64}));
    const TensorView* tv = s.tensors->find("m.weight");
    std::vector<float> w(256);
    convert_to_f32(tv->dtype, tv->data, w.data(), w.size());
    auto want = affine_fake_quantize(w.data(), 4, 64, bits, 32, DType::kBF16);
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(o->bytes->size(), want->size() * 4);
    EXPECT_EQ(std::memcmp(o->bytes->data(), want->data(), o->bytes->size()), 0) << bits;
  }
  EXPECT_FALSE(fake_quant_override(*s.tensors, c[0], 7, 32).ok());  // unsupported width
  QuantCandidate missing = c[0];
  missing.module = "nope";
  EXPECT_EQ(fake_quant_override(*s.tensors, missing, 4, 32).status().code(), Status::Code::kNotFound);
}

TEST(SensitivityFingerprint, ChangesWithEverySettingItCovers) {
  const std::vector<std::vector<int32_t>> chunks{{1, 2, 3}, {4, 5}};
  SensitivityOptions o;
  const std::string base = sensitivity_fingerprint("/tmp/m", chunks, o);
  EXPECT_EQ(base, sensitivity_fingerprint("/tmp/m", chunks, o));
  EXPECT_NE(base, sensitivity_fingerprint("/tmp/other", chunks, o));
  EXPECT_NE(base, sensitivity_fingerprint("/tmp/m", {{1, 2, 3}, {4, 6}}, o));
  EXPECT_NE(base, sensitivity_fingerprint("/tmp/m", {{1, 2}, {3, 4, 5}}, o));  // same tokens, other split
  SensitivityOptions b = o;
  b.bits = {4};
  EXPECT_NE(base, sensitivity_fingerprint("/tmp/m", chunks, b));
  b = o;
  b.group_size = 32;
  EXPECT_NE(base, sensitivity_fingerprint("/tmp/m", chunks, b));
  b = o;
  b.probe.seed = 1;
  EXPECT_NE(base, sensitivity_fingerprint("/tmp/m", chunks, b));
  b = o;
  b.checkpoint_path = "/tmp/elsewhere.json";  // where it is stored is not a setting
  EXPECT_EQ(base, sensitivity_fingerprint("/tmp/m", chunks, b));
}

TEST(MeasureSensitivity, RejectsUnsupportedBitsBeforeLoading) {
  SensitivityOptions o;
  o.bits = {4, 7};
  ThreadPool pool(1);
  auto r = measure_sensitivity("/nonexistent", {{1, 2}}, o, pool);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("7"), std::string::npos);
}

}  // namespace
}  // namespace optiq
