// fuse_lora (quant/lora_fuse.cpp): the written checkpoint tensor by tensor (bf16 and MLX-quantized
// bases), the files around it, atomic output and errors; and, for a quantized base, how greedy decoding
// of the fused, re-quantized model compares with the unmerged adapter on the original weights.
#include "quant/lora_fuse.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "decode/generate.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "quant/mlx_affine.h"
#include "tests/lora_test_util.h"
#include "tests/models/conformance.h"
#include "tests/test_util.h"

namespace optiq::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<Model> load(const std::string& dir) {
  auto m = load_model(dir);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

// W + scale · (a b)ᵀ for one module, in double.
std::vector<double> expected_fused(const std::vector<float>& w, const LoraModule& m, float scale) {
  std::vector<double> out(w.begin(), w.end());
  for (int64_t o = 0; o < m.out; ++o)
    for (int64_t i = 0; i < m.in; ++i) {
      double d = 0;
      for (int64_t j = 0; j < m.rank; ++j) d += static_cast<double>(m.a[i * m.rank + j]) * m.b[j * m.out + o];
      out[o * m.in + i] += static_cast<double>(scale) * d;
    }
  return out;
}

std::vector<float> to_f32(const TensorView& v) {
  std::vector<float> out(static_cast<size_t>(v.numel()));
  convert_to_f32(v.dtype, v.data, out.data(), out.size());
  return out;
}

TEST(LoraFuse, Bf16BaseGetsRoundedFusedWeightsAndEverythingElseUnchanged) {
  const std::string base = fixture("dhara-tiny");
  auto m = load(base);
  const LoraAdapter ad = random_adapter(*m, 4, 2.f, 0.05f, 1, "layers.2.");
  TempDir tmp;
  const std::string out = tmp.str() + "/fused";
  auto st = fuse_lora(base, ad, out);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->dense_modules, 7);
  EXPECT_EQ(st->requantized_modules, 0);
  EXPECT_EQ(st->files_rewritten, 1);
  for (const auto& e : fs::directory_iterator(base)) {
    ASSERT_TRUE(fs::exists(fs::path(out) / e.path().filename())) << e.path();
    if (e.path().extension() != ".safetensors")
      EXPECT_EQ(slurp(e.path()), slurp(fs::path(out) / e.path().filename())) << e.path();
  }
  auto src = SafetensorsFile::open(base + "/model.safetensors");
  auto dst = SafetensorsFile::open(out + "/model.safetensors");
  ASSERT_TRUE(src.ok() && dst.ok());
  ASSERT_EQ((*src)->tensors().size(), (*dst)->tensors().size());
  int fused = 0;
  for (const auto& [name, v] : (*src)->tensors()) {
    const TensorView& w = (*dst)->tensors().at(name);
    ASSERT_EQ(w.dtype, v.dtype) << name;
    ASSERT_EQ(w.shape, v.shape) << name;
    const std::string module = name.substr(0, name.rfind('.'));
    const LoraModule* lm = ad.find(module);
    if (!lm || name.substr(name.rfind('.')) != ".weight") {
      EXPECT_EQ(std::memcmp(w.data, v.data, v.nbytes), 0) << name << " changed";
      continue;
    }
    ++fused;
    // Each fused weight is W + Δ rounded to bf16: within half a bf16 ulp (2^-9 relative), plus the
    // rare case where the fp32 intermediate lands on a bf16 tie.
    const auto before = to_f32(v);
    const auto want = expected_fused(before, *lm, ad.scale);
    const auto got = to_f32(w);
    size_t changed = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_LE(std::fabs(got[i] - want[i]), std::ldexp(std::fabs(want[i]), -8) + 1e-30) << name << " at " << i;
      changed += got[i] != before[i];
    }
    EXPECT_GT(changed, got.size() / 2) << name;
  }
  EXPECT_EQ(fused, 7);
  // Nothing left beside the output.
  for (const auto& e : fs::directory_iterator(tmp.path)) EXPECT_EQ(e.path().filename(), "fused");
}

TEST(LoraFuse, QuantizedBaseIsRequantizedWithEachModulesBitsAndGroup) {
  const std::string base = fixture("dhara-tiny-mlx");  // mixed 4/5/6/8 bits, groups 32/64, one bf16 linear
  auto m = load(base);
  const LoraAdapter ad = random_adapter(*m, 4, 2.f, 0.05f, 2);
  TempDir tmp;
  const std::string out = tmp.str() + "/fused";
  auto st = fuse_lora(base, ad, out);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_GT(st->requantized_modules, 0);
  EXPECT_GT(st->dense_modules, 0);  // layer 0's down_proj stays bf16 in this checkpoint
  EXPECT_EQ(st->dense_modules + st->requantized_modules, static_cast<int64_t>(ad.modules.size()));
  EXPECT_EQ(slurp(base + "/config.json"), slurp(out + "/config.json"));
  auto src = SafetensorsFile::open(base + "/model.safetensors");
  auto dst = SafetensorsFile::open(out + "/model.safetensors");
  ASSERT_TRUE(src.ok() && dst.ok());
  const auto& S = (*src)->tensors();
  const auto& D = (*dst)->tensors();
  for (const auto& [module, lm] : ad.modules) {
    const TensorView& w0 = S.at(module + ".weight");
    const TensorView& w1 = D.at(module + ".weight");
    ASSERT_EQ(w0.shape, w1.shape) << module;
    ASSERT_EQ(w0.dtype, w1.dtype) << module;
    if (w0.dtype != DType::kU32) continue;
    const TensorView& s1 = D.at(module + ".scales");
    ASSERT_EQ(S.at(module + ".scales").shape, s1.shape);
    AffineQuantized q0, q1;
    for (auto [q, file] : {std::pair{&q0, &S}, {&q1, &D}}) {
      const TensorView& w = file->at(module + ".weight");
      const TensorView& sc = file->at(module + ".scales");
      const TensorView& bi = file->at(module + ".biases");
      q->rows = lm.out;
      q->cols = lm.in;
      q->bits = static_cast<int>(w.shape[1] * 32 / lm.in);
      q->group_size = static_cast<int>(lm.in / sc.shape[1]);
      q->scale_dtype = sc.dtype;
      q->packed.resize(static_cast<size_t>(w.numel()));
      std::memcpy(q->packed.data(), w.data, w.nbytes);
      q->scales.assign(static_cast<const uint8_t*>(sc.data), static_cast<const uint8_t*>(sc.data) + sc.nbytes);
      q->biases.assign(static_cast<const uint8_t*>(bi.data), static_cast<const uint8_t*>(bi.data) + bi.nbytes);
    }
    std::vector<float> w_old(static_cast<size_t>(lm.out * lm.in)), w_new(w_old.size());
    affine_dequantize(q0, w_old.data());
    affine_dequantize(q1, w_new.data());
    // The fused weight re-quantized on its own grid: each value within a quantization step of W + Δ
    // (half a step from rounding the code, up to another half where MLX's edge-exact scale clamps the
    // far end), plus the bf16 rounding of the stored scale (times the code, up to 2^bits − 1) and bias.
    const auto want = expected_fused(w_old, lm, ad.scale);
    std::vector<float> s(static_cast<size_t>(q1.rows * q1.n_groups())), b(s.size());
    convert_to_f32(q1.scale_dtype, q1.scales.data(), s.data(), s.size());
    convert_to_f32(q1.scale_dtype, q1.biases.data(), b.data(), b.size());
    const double n_bins = (1 << q1.bits) - 1;
    for (int64_t o = 0; o < lm.out; ++o)
      for (int64_t i = 0; i < lm.in; ++i) {
        const size_t g = static_cast<size_t>(o * q1.n_groups() + i / q1.group_size);
        const double step = std::fabs(s[g]);
        const double bound = step + std::ldexp(step * n_bins + std::fabs(b[g]), -8) + 1e-6;
        ASSERT_LE(std::fabs(w_new[o * lm.in + i] - want[o * lm.in + i]), bound) << module << " " << o << "," << i;
      }
  }
}

TEST(LoraFuse, ErrorsLeaveNothingBehind) {
  const std::string base = fixture("dhara-tiny");
  auto m = load(base);
  LoraAdapter ad = random_adapter(*m, 2, 1.f, 0.05f, 3, "layers.0.mlp");
  TempDir tmp;
  // A module the model does not have: refused before anything is written.
  LoraAdapter bad = ad;
  bad.name = "bad";
  bad.modules["model.layers.7.mlp.up_proj"] = ad.modules.begin()->second;
  auto r = fuse_lora(base, bad, tmp.str() + "/out");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("adapter bad: module model.layers.7.mlp.up_proj is not a linear"),
            std::string::npos)
      << r.status().message();
  EXPECT_TRUE(fs::is_empty(tmp.path));
  // An existing, non-empty output directory.
  fs::create_directories(tmp.path / "full");
  std::ofstream(tmp.path / "full" / "x") << "x";
  r = fuse_lora(base, ad, tmp.str() + "/full");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("already exists"), std::string::npos) << r.status().message();
  // An empty one is fine (and trailing slashes are).
  fs::create_directories(tmp.path / "empty");
  EXPECT_TRUE(fuse_lora(base, ad, tmp.str() + "/empty/").ok());
  EXPECT_TRUE(fs::exists(tmp.path / "empty" / "model.safetensors"));
  // The model directory itself.
  r = fuse_lora(base, ad, base);
  ASSERT_FALSE(r.ok());
}

// How the fused, re-quantized model decodes against the unmerged adapter on the quantized base
// (documented in the adapter branch's report): greedy AR tokens over a few prompts. The adapter is
// applied exactly in one and rounded onto the 4–8-bit grids in the other, so agreement is not exact;
// the bound only catches a fusion that lost the adapter (then the fused model would decode as the base).
TEST(LoraFuse, QuantizedFusedDecodeTracksTheUnmergedAdapter) {
  const std::string base = fixture("dhara-tiny-mlx");
  auto m = load(base);
  const LoraAdapter ad = random_adapter(*m, 8, 4.f, 0.05f, 4);
  TempDir tmp;
  ASSERT_TRUE(fuse_lora(base, ad, tmp.str() + "/fused").ok());
  auto fused = load(tmp.str() + "/fused");
  auto view = with_adapter(*m, std::make_shared<const LoraAdapter>(ad));
  ThreadPool pool(2);
  GenerateOptions o;
  o.max_new_tokens = 32;
  o.stop_ids = {-1};  // fixed length
  int agree_fused = 0, agree_base = 0, total = 0, prefix_sum = 0;
  for (uint64_t seed : {21, 22, 23, 24, 25, 26}) {
    const std::vector<int32_t> prompt = random_ids(12, m->info().vocab_size, seed);
    auto a = generate(*view, pool, prompt, o);
    auto f = generate(*fused, pool, prompt, o);
    auto b = generate(*m, pool, prompt, o);
    ASSERT_TRUE(a.ok() && f.ok() && b.ok());
    int prefix = 0;
    bool same = true;
    for (size_t i = 0; i < a->tokens.size(); ++i) {
      agree_fused += a->tokens[i] == f->tokens[i];
      agree_base += a->tokens[i] == b->tokens[i];
      same = same && a->tokens[i] == f->tokens[i];
      prefix += same;
      ++total;
    }
    prefix_sum += prefix;
  }
  std::printf("dhara-tiny-mlx + rank-8 adapter, 6 prompts x 32 greedy tokens: fused+requantized agrees with the "
              "unmerged adapter on %d/%d tokens (mean common prefix %.1f); the base model on %d/%d\n",
              agree_fused, total, prefix_sum / 6.0, agree_base, total);
  EXPECT_GT(agree_fused, agree_base);
}

}  // namespace
}  // namespace optiq::test
