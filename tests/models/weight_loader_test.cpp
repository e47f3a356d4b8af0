// WeightLoader's MLX quantization rules (specs/mlx-format.md §3–§4): the load rule, malformed
// quantized checkpoints written with write_safetensors, stacked experts and tensor overrides.
#include "models/weight_loader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "io/model_dir.h"
#include "kernels/matmul_q.h"
#include "models/model.h"
#include "quant/mlx_affine.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

using json = nlohmann::json;

// A one-module checkpoint: `m.weight` [8, 64] quantized at `bits`/`gs` unless the caller edits it.
struct Ckpt {
  json config = json::object();
  std::vector<float> w;
  AffineQuantized q;
  // Extra/modified tensors; each entry's bytes live here.
  struct T {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<T> tensors;

  Ckpt(int bits, int gs, int64_t rows = 8, int64_t cols = 64) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> ud(-1, 1);
    w.resize(static_cast<size_t>(rows * cols));
    for (auto& v : w) v = round_bf16(ud(rng));
    q = affine_quantize(w.data(), rows, cols, bits, gs).value();
    const auto* pb = reinterpret_cast<const uint8_t*>(q.packed.data());
    tensors.push_back({"m.weight", DType::kU32, {rows, q.packed_cols()}, {pb, pb + q.packed.size() * 4}});
    tensors.push_back({"m.scales", DType::kBF16, {rows, q.n_groups()}, q.scales});
    tensors.push_back({"m.biases", DType::kBF16, {rows, q.n_groups()}, q.biases});
    config["quantization"] = {{"bits", bits}, {"group_size", gs}, {"mode", "affine"}};
  }
  T* tensor(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  void erase(const std::string& name) {
    std::erase_if(tensors, [&](const T& t) { return t.name == name; });
  }
  // Writes config.json + model.safetensors into `dir` and opens it.
  std::shared_ptr<ModelDir> write(const std::string& dir) const {
    std::ofstream(dir + "/config.json") << config.dump();
    std::vector<TensorToWrite> tw;
    for (auto& t : tensors) tw.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
    EXPECT_TRUE(write_safetensors(dir + "/model.safetensors", tw).ok());
    auto md = ModelDir::open(dir);
    EXPECT_TRUE(md.ok()) << md.status().ToString();
    return md.value();
  }
};

Status load_linear(const Ckpt& c, int64_t n_out = 8, int64_t n_in = 64, Weight* out = nullptr) {
  test::TempDir tmp;
  auto md = c.write(tmp.str());
  WeightLoader wl(*md);
  auto r = wl.linear("m", n_out, n_in);
  if (r.ok() && out) *out = *r;
  return r.ok() ? Status::Ok() : r.status();
}

void expect_error(const Status& st, const std::string& needle) {
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("m"), std::string::npos);
}

TEST(WeightLoaderQuant, GlobalRuleLoadsAndDequantizes) {
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    Ckpt c(bits, 32);
    test::TempDir tmp;
    auto md = c.write(tmp.str());
    WeightLoader wl(*md);
    auto w = wl.linear("m", 8, 64);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_EQ(w->quant.bits, bits);
    std::vector<float> expect(8 * 64), row(64);
    affine_dequantize(c.q, expect.data());
    for (int r = 0; r < 8; ++r) {
      dequantize_row(*w, r, row.data());
      for (int k = 0; k < 64; ++k) ASSERT_EQ(row[k], expect[r * 64 + k]);
    }
  }
}

TEST(WeightLoaderQuant, PerModuleEntryOverridesGlobal) {
  Ckpt c(6, 32);
  c.config["quantization"]["bits"] = 4;
  c.config["quantization"]["group_size"] = 64;
  c.config["quantization"]["m"] = {{"bits", 6}, {"group_size", 32}};
  Weight w;
  ASSERT_TRUE(load_linear(c, 8, 64, &w).ok());
  EXPECT_EQ(w.quant.bits, 6);
  EXPECT_EQ(w.quant.group_size, 32);
}

TEST(WeightLoaderQuant, QuantizationConfigAloneIsHonoured) {
  Ckpt c(4, 64);
  c.config["quantization_config"] = c.config["quantization"];
  c.config.erase("quantization");
  Weight w;
  ASSERT_TRUE(load_linear(c, 8, 64, &w).ok());
  EXPECT_EQ(w.quant.bits, 4);
}

TEST(WeightLoaderQuant, FalseEntryKeepsModuleFloat) {
  Ckpt c(4, 64);
  c.tensors.clear();
  std::vector<uint8_t> bytes = encode_floats(c.w.data(), c.w.size(), DType::kBF16);
  c.tensors.push_back({"m.weight", DType::kBF16, {8, 64}, bytes});
  c.config["quantization"]["m"] = false;
  Weight w;
  ASSERT_TRUE(load_linear(c, 8, 64, &w).ok());
  EXPECT_FALSE(w.quantized());
  EXPECT_EQ(w.dtype, DType::kBF16);
}

TEST(WeightLoaderQuant, NoScalesNoEntryKeepsFloat) {
  Ckpt c(4, 64);
  c.tensors.clear();
  c.tensors.push_back({"m.weight", DType::kBF16, {8, 64}, encode_floats(c.w.data(), c.w.size(), DType::kBF16)});
  Weight w;
  ASSERT_TRUE(load_linear(c, 8, 64, &w).ok());
  EXPECT_FALSE(w.quantized());
}

TEST(WeightLoaderQuant, ScalesShapeMismatch) {
  Ckpt c(4, 32);
  Ckpt::T* s = c.tensor("m.scales");
  s->shape = {4, 4};  // same bytes, wrong shape
  expect_error(load_linear(c), "m.scales: shape [4, 4], expected [8, 2]");
}

TEST(WeightLoaderQuant, ScalesForWrongGroupSize) {
  Ckpt c(4, 32);
  c.config["quantization"]["group_size"] = 64;  // file written with gs 32
  expect_error(load_linear(c), "expected [8, 1] (group_size 64)");
}

TEST(WeightLoaderQuant, BitsOutsideTheSet) {
  Ckpt c(4, 32);
  c.config["quantization"]["bits"] = 7;
  expect_error(load_linear(c), "bits 7 not in {2,3,4,5,6,8}");
  Ckpt d(4, 32);
  d.config["quantization"]["m"] = {{"bits", 1}};
  expect_error(load_linear(d), "bits 1 not in");
  Ckpt e(4, 32);
  e.config["quantization"]["bits"] = "four";
  expect_error(load_linear(e), "quantization.bits must be an integer");
}

TEST(WeightLoaderQuant, PackedWidthInconsistentWithInputSize) {
  Ckpt c(4, 32);  // packed for 64 inputs
  c.config["quantization"]["bits"] = 8;  // config claims 8 bits: 64 inputs would need 16 words
  expect_error(load_linear(c), "packed shape [8, 8], expected [8, 16] for 64 inputs at 8 bits");
  Ckpt d(4, 32);
  // The model expects 128 inputs but the file packs 64.
  expect_error(load_linear(d, 8, 128), "its last dimension implies 64 inputs");
}

TEST(WeightLoaderQuant, MissingBiases) {
  Ckpt c(4, 32);
  c.erase("m.biases");
  expect_error(load_linear(c), "m.biases is missing");
}

TEST(WeightLoaderQuant, MissingScalesWithEntry) {
  Ckpt c(4, 32);
  c.erase("m.scales");
  c.config["quantization"]["m"] = {{"bits", 4}, {"group_size", 32}};
  expect_error(load_linear(c), "m.scales is missing");
}

TEST(WeightLoaderQuant, PackedWeightWithoutQuantizationIsAnError) {
  Ckpt c(4, 32);
  c.erase("m.scales");
  expect_error(load_linear(c), "packed U32 weight");
}

TEST(WeightLoaderQuant, ScalesWithoutQuantizationBlock) {
  Ckpt c(4, 32);
  c.config.erase("quantization");
  expect_error(load_linear(c), "no quantization block");
}

TEST(WeightLoaderQuant, UnsupportedModeAndLegacyMethod) {
  Ckpt c(4, 32);
  c.config["quantization"]["mode"] = "mxfp4";
  expect_error(load_linear(c), "only affine");
  Ckpt d(4, 32);
  d.config.erase("quantization");
  d.config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  expect_error(load_linear(d), "quant_method");
}

TEST(WeightLoaderQuant, StackedExpertsSplitIntoViews) {
  const int64_t E = 3, N = 8, K = 64;
  Ckpt c(5, 32, E * N, K);
  c.tensor("m.weight")->shape = {E, N, K * 5 / 32};
  c.tensor("m.scales")->shape = {E, N, K / 32};
  c.tensor("m.biases")->shape = {E, N, K / 32};
  test::TempDir tmp;
  auto md = c.write(tmp.str());
  WeightLoader wl(*md);
  auto ex = wl.experts("m", E, N, K);
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  ASSERT_EQ(ex->size(), 3u);
  std::vector<float> all(E * N * K), row(K);
  affine_dequantize(c.q, all.data());
  for (int64_t e = 0; e < E; ++e)
    for (int64_t r = 0; r < N; ++r) {
      dequantize_row((*ex)[e], r, row.data());
      for (int64_t k = 0; k < K; ++k) ASSERT_EQ(row[k], all[(e * N + r) * K + k]);
    }
  EXPECT_FALSE(wl.experts("m", 2, N, K).ok());  // wrong expert count
}

// Overriding a quantized module's weight with its own dequantization makes it dense and leaves
// the model's logits unchanged up to kernel arithmetic: the quantized matmul may round activations
// (int8 per group on the VNNI and AMX paths), so the engine-core logit tolerance (2e-3) applies.
TEST(WeightLoaderQuant, TensorOverrideReplacesQuantizedModule) {
  const std::string dir = test::fixture("dhara-tiny-mlx");
  auto md = ModelDir::open(dir);
  ASSERT_TRUE(md.ok());
  WeightLoader wl(**md);
  const std::string mod = "model.layers.1.mlp.up_proj";
  auto w = wl.linear(mod, 352, 128);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->quantized());
  auto bytes = std::make_shared<std::vector<uint8_t>>(352 * 128 * 4);
  float* f = reinterpret_cast<float*>(bytes->data());
  for (int r = 0; r < 352; ++r) weight_row(*w, r, f + r * 128);
  LoadOptions opts;
  opts.tensor_overrides[mod + ".weight"] = {DType::kF32, {352, 128}, bytes};
  auto base = load_model(dir);
  auto over = load_model(dir, opts);
  ASSERT_TRUE(base.ok() && over.ok()) << over.status().ToString();
  ThreadPool pool(1);
  std::vector<int32_t> toks = {72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100};
  std::vector<float> a(toks.size() * 260), b(a.size());
  ForwardBatch fb;
  fb.tokens = toks;
  auto ca = (*base)->make_cache(64), cb = (*over)->make_cache(64);
  ASSERT_TRUE((*base)->forward(fb, *ca, a.data(), pool).ok());
  ASSERT_TRUE((*over)->forward(fb, *cb, b.data(), pool).ok());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
  std::printf("override vs quantized logits: max |diff| = %.3g\n", max_diff);
  EXPECT_LE(max_diff, 2e-3);

  // Bad overrides are errors, not crashes.
  LoadOptions bad;
  bad.tensor_overrides["no.such.weight"] = {DType::kF32, {1}, std::make_shared<std::vector<uint8_t>>(4)};
  EXPECT_FALSE(load_model(dir, bad).ok());
  LoadOptions short_bytes;
  short_bytes.tensor_overrides[mod + ".weight"] = {DType::kF32, {352, 128}, std::make_shared<std::vector<uint8_t>>(8)};
  EXPECT_FALSE(load_model(dir, short_bytes).ok());
  LoadOptions wrong_shape;
  wrong_shape.tensor_overrides[mod + ".weight"] = {DType::kF32, {128, 352}, bytes};
  EXPECT_FALSE(load_model(dir, wrong_shape).ok());
}

// The same checks surface through load_model on a whole checkpoint (a copy of dhara-tiny-mlx with
// an edited config), naming the config/tensor file and the module.
TEST(WeightLoaderQuant, BrokenMlxCheckpointFailsToLoadWithContext) {
  const std::string src = test::fixture("dhara-tiny-mlx");
  auto try_config = [&](const std::function<void(json&)>& edit) {
    test::TempDir tmp;
    for (const char* f : {"model.safetensors", "generation_config.json"})
      std::filesystem::copy_file(src + "/" + f, tmp.str() + "/" + f);
    auto cfg = read_json_file(src + "/config.json");
    EXPECT_TRUE(cfg.ok());
    edit(*cfg);
    std::ofstream(tmp.str() + "/config.json") << cfg->dump();
    auto m = load_model(tmp.str());
    return m.ok() ? Status::Ok() : m.status();
  };
  Status s = try_config([](json& c) { c["quantization"]["model.layers.2.self_attn.v_proj"]["bits"] = 7; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.layers.2.self_attn.v_proj: quantization bits 7"), std::string::npos) << s.ToString();
  s = try_config([](json& c) { c["quantization"]["model.layers.2.self_attn.v_proj"]["group_size"] = 64; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("v_proj.scales: shape [64, 4], expected [64, 2]"), std::string::npos) << s.ToString();
  s = try_config([](json& c) { c["quantization"]["model.layers.3.mlp.down_proj"]["bits"] = 4; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("packed shape [128, 55], expected [128, 44]"), std::string::npos) << s.ToString();
  // Removing the per-module entry leaves the global 4-bit g64 rule, which 352 inputs cannot satisfy.
  s = try_config([](json& c) { c["quantization"].erase("model.layers.3.mlp.down_proj"); });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("input size 352 is not a multiple of group_size 64"), std::string::npos) << s.ToString();
}

// An independent quantizer wrote dhara-tiny-mlx from dhara-tiny: re-quantizing the bf16 weights
// with the per-module bits/group sizes of its config must reproduce its tensors byte for byte.
TEST(WeightLoaderQuant, RequantizingDharaTinyReproducesTheMlxFixture) {
  auto src = ModelDir::open(test::fixture("dhara-tiny"));
  auto ref = ModelDir::open(test::fixture("dhara-tiny-mlx"));
  ASSERT_TRUE(src.ok() && ref.ok());
  const json& qc = (*ref)->config["quantization"];
  int checked = 0;
  for (const std::string& name : (*ref)->tensors->names()) {
    const std::string suffix = ".scales";
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string mod = name.substr(0, name.size() - suffix.size());
    int bits = qc["bits"], gs = qc["group_size"];
    if (qc.contains(mod)) {
      bits = qc[mod]["bits"];
      gs = qc[mod]["group_size"];
    }
    const TensorView* w = (*src)->tensors->find(mod + ".weight");
    ASSERT_NE(w, nullptr) << mod;
    std::vector<float> f(static_cast<size_t>(w->numel()));
    convert_to_f32(w->dtype, w->data, f.data(), f.size());
    auto q = affine_quantize(f.data(), w->shape[0], w->shape[1], bits, gs, w->dtype);
    ASSERT_TRUE(q.ok()) << mod;
    const TensorView* pw = (*ref)->tensors->find(mod + ".weight");
    const TensorView* ps = (*ref)->tensors->find(mod + ".scales");
    const TensorView* pb = (*ref)->tensors->find(mod + ".biases");
    ASSERT_EQ(pw->nbytes, q->packed.size() * 4) << mod;
    EXPECT_EQ(0, std::memcmp(pw->data, q->packed.data(), pw->nbytes)) << mod << " packed codes differ";
    ASSERT_EQ(ps->nbytes, q->scales.size());
    EXPECT_EQ(0, std::memcmp(ps->data, q->scales.data(), ps->nbytes)) << mod << " scales differ";
    EXPECT_EQ(0, std::memcmp(pb->data, q->biases.data(), pb->nbytes)) << mod << " biases differ";
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

}  // namespace
}  // namespace optiq
