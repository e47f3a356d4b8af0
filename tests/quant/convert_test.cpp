// End-to-end `convert` on dhara-tiny with a tiny calibration set: the written checkpoint loads, its
// dequantized weights equal the fake-quantized weights the sensitivity pass measured, the config
// follows the MLX layout, the uniform baseline is uniform, and the checkpoint file resumes.
#include "quant/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/model_dir.h"
#include "models/weight_loader.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

using json = nlohmann::json;

ConvertOptions small_options(const std::string& out) {
  ConvertOptions o;
  o.model_dir = test::fixture("dhara-tiny");
  o.out_dir = out;
  o.calibration_path = test::default_calibration_mix();
  o.n_calibration = 1;
  o.seq_len = 64;
  o.target_bpw = 4.5;
  return o;
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& toks, ThreadPool& pool) {
  std::vector<float> out(toks.size() * m.info().vocab_size);
  auto cache = m.make_cache(static_cast<int64_t>(toks.size()));
  ForwardBatch b;
  b.tokens = toks;
  EXPECT_TRUE(m.forward(b, *cache, out.data(), pool).ok());
  return out;
}

TEST(Convert, WrittenModelEqualsTheMeasuredFakeQuantization) {
  test::TempDir tmp;
  ThreadPool pool(1);  // tests run beside other jobs on 2 cores; one thread is fastest there
  auto r = convert_model(small_options(tmp.str()), pool);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->sensitivity.size(), 24u);
  EXPECT_GE(r->allocation.achieved_bpw, 4.5);
  // The embedding is unprobed and gets the allocation's maximum bits.
  ASSERT_TRUE(r->modules.count("model.embed_tokens"));
  EXPECT_EQ(r->modules.at("model.embed_tokens").bits, 8);

  auto src = ModelDir::open(test::fixture("dhara-tiny"));
  auto out = ModelDir::open(r->artifact_dir);
  ASSERT_TRUE(src.ok() && out.ok()) << out.status().ToString();
  const json& cfg = (*out)->config;
  ASSERT_TRUE(cfg.contains("quantization"));
  EXPECT_EQ(cfg["quantization"], cfg["quantization_config"]);
  EXPECT_EQ(cfg["quantization"]["mode"], "affine");

  // Every quantized module: an entry with its bits, and rows that dequantize to exactly the
  // override the sensitivity pass loads for that (module, bits).
  WeightLoader wl(**out);
  const auto cands = find_quantizable(*(*src)->tensors, 64);
  ASSERT_EQ(cands.size(), r->modules.size());
  LoadOptions all_fake;
  for (const auto& c : cands) {
    const ModuleQuant& q = r->modules.at(c.module);
    ASSERT_TRUE(cfg["quantization"].contains(c.module)) << c.module;
    EXPECT_EQ(cfg["quantization"][c.module]["bits"], q.bits);
    EXPECT_EQ(cfg["quantization"][c.module]["group_size"], 64);
    auto fake = fake_quant_override(*(*src)->tensors, c, q.bits, 64);
    ASSERT_TRUE(fake.ok());
    auto w = wl.linear(c.module, c.n_out, c.n_in);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE(w->quantized());
    EXPECT_EQ(w->quant.bits, q.bits);
    std::vector<float> row(static_cast<size_t>(c.n_in));
    const float* expect = reinterpret_cast<const float*>(fake->bytes->data());
    for (int64_t n = 0; n < c.n_out; ++n) {
      weight_row(*w, n, row.data());
      ASSERT_EQ(0, std::memcmp(row.data(), expect + n * c.n_in, row.size() * 4)) << c.module << " row " << n;
    }
    all_fake.tensor_overrides[c.module + ".weight"] = *fake;
  }
  // down_proj (352 inputs) stays bf16: no .scales, no entry.
  EXPECT_FALSE((*out)->tensors->contains("model.layers.0.mlp.down_proj.scales"));
  EXPECT_FALSE(cfg["quantization"].contains("model.layers.0.mlp.down_proj"));
  EXPECT_EQ((*out)->tensors->find("model.layers.0.mlp.down_proj.weight")->dtype, DType::kBF16);

  // The converted model runs like the bf16 model with every layer fake-quantized at once (dense
  // fp32 kernels vs the quantized kernels, which may round activations: engine-core tolerance).
  auto converted = load_model(r->artifact_dir);
  auto fake_model = load_model(test::fixture("dhara-tiny"), all_fake);
  ASSERT_TRUE(converted.ok() && fake_model.ok()) << converted.status().ToString();
  const std::vector<int32_t> toks = {84, 104, 101, 32, 99, 97, 116, 32, 115, 97, 116};
  auto a = logits_of(**converted, toks, pool), b = logits_of(**fake_model, toks, pool);
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
  std::printf("converted vs fake-quantized logits: max |diff| = %.3g\n", max_diff);
  EXPECT_LE(max_diff, 2e-3);

  // Metadata and copied files.
  auto meta = read_json_file(r->artifact_dir + "/optiq_metadata.json");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ((*meta)["method"], "optiq_mixed_precision");
  EXPECT_EQ((*meta)["reference"], "bf16");
  EXPECT_EQ((*meta)["per_layer"].size(), 24u);
  EXPECT_TRUE(std::filesystem::exists(r->artifact_dir + "/tokenizer.json"));
  EXPECT_TRUE(std::filesystem::exists(r->artifact_dir + "/tokenizer_config.json"));

  // uniform_4bit: global block only, every candidate at 4 bits, and it loads.
  auto uni = ModelDir::open(r->baseline_dir);
  ASSERT_TRUE(uni.ok());
  const json& ucfg = (*uni)->config["quantization"];
  EXPECT_EQ(ucfg.size(), 3u);  // group_size, bits, mode
  WeightLoader uwl(**uni);
  for (const auto& c : cands) {
    auto w = uwl.linear(c.module, c.n_out, c.n_in);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w->quant.bits, 4) << c.module;
  }
  EXPECT_TRUE(load_model(r->baseline_dir).ok());
}

TEST(Convert, SensitivityCheckpointResumes) {
  test::TempDir tmp;
  ThreadPool pool(1);  // tests run beside other jobs on 2 cores; one thread is fastest there
  ConvertOptions o = small_options(tmp.str());
  o.skip_baselines = true;
  o.probe.block = false;
  o.seq_len = 32;
  auto first = convert_model(o, pool);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(tmp.str() + "/uniform_4bit"));
  const std::string ckpt = tmp.str() + "/sensitivity_checkpoint.json";
  auto j = read_json_file(ckpt);
  ASSERT_TRUE(j.ok());
  ASSERT_EQ((*j)["layers"].size(), 24u);
  // Edit one stored score: a resumed run must use it rather than re-measure.
  (*j)["layers"][5]["kl"]["4"] = 123.0;
  const std::string edited = (*j)["layers"][5]["name"];
  ASSERT_TRUE(write_file_atomic(ckpt, j->dump()).ok());
  auto second = convert_model(o, pool);
  ASSERT_TRUE(second.ok());
  for (auto& s : second->sensitivity)
    if (s.name == edited) {
      EXPECT_EQ(s.kl.at(4), 123.0);
    }
  // Other settings invalidate the checkpoint.
  o.group_size = 32;
  auto third = convert_model(o, pool);
  ASSERT_TRUE(third.ok());
  for (auto& s : third->sensitivity)
    if (s.name == edited) {
      EXPECT_NE(s.kl.at(4), 123.0);
    }
}

TEST(Convert, StaticMethodNeedsNoCalibration) {
  test::TempDir tmp;
  ThreadPool pool(1);
  ConvertOptions o = small_options(tmp.str());
  o.method = "static";
  o.calibration_path = tmp.str() + "/does-not-exist.jsonl";
  o.skip_baselines = true;
  auto r = convert_model(o, pool);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(std::filesystem::exists(tmp.str() + "/static_mixed/model.safetensors"));
  auto meta = read_json_file(tmp.str() + "/static_mixed/optiq_metadata.json");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ((*meta)["reference"], "structural_rules");
  EXPECT_TRUE(load_model(tmp.str() + "/static_mixed").ok());
}

TEST(Convert, RejectsBadOptions) {
  test::TempDir tmp;
  ThreadPool pool(1);
  ConvertOptions o = small_options(tmp.str());
  o.reference = "uniform_4bit";
  EXPECT_EQ(convert_model(o, pool).status().code(), Status::Code::kUnsupported);
  o = small_options(tmp.str());
  o.candidate_bits = {4, 7};
  EXPECT_FALSE(convert_model(o, pool).ok());
  o = small_options(tmp.str());
  o.group_size = 48;
  EXPECT_FALSE(convert_model(o, pool).ok());
  o = small_options(tmp.str());
  o.model_dir = test::fixture("dhara-tiny-mlx");  // already quantized
  EXPECT_FALSE(convert_model(o, pool).ok());
  // The library has no default calibration file (the CLI supplies the bundled one).
  o = small_options(tmp.str());
  o.calibration_path.clear();
  auto r = convert_model(o, pool);
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("calibration"), std::string::npos) << r.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(tmp.path / "optiq_mixed"));
}

}  // namespace
}  // namespace optiq
