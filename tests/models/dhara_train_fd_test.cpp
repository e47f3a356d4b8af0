// dhara's LoRA gradients against central finite differences of the loss, on the bf16 fixture, its
// MLX-quantized twin and random configs, under causal, block-diffusion and bidirectional visibility.
// The loss is evaluated by the same fp32 code, whose rounding (~1e-7 of the loss) would swamp a
// small step, so the step is large (‖u‖ = 0.05·‖θ‖) and the O(h²) truncation error of the central
// difference is removed by Richardson extrapolation: (4·D(h/2) − D(h)) / 3, error O(h⁴). Both
// stay well below the 1e-3 relative tolerance on ∇f·u (the printed errors).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include "io/lora_adapter.h"
#include "models/model.h"
#include "models/registry.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

enum class Vis { kCausal, kBlock, kFull };

// A sequence of T random tokens with targets on about half the rows, visibility by mode; block
// visibility is the joint objective's: prefix [0, s) then 32-wide calls from s (row i of call c sees
// [0, min(end of c, (i/32 + 1)·32))).
TrainSequence make_seq(int64_t T, int64_t V, Vis vis, std::mt19937& rng) {
  TrainSequence s;
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(V) - 2);
  for (int64_t t = 0; t < T; ++t) {
    s.tokens.push_back(tok(rng));
    s.targets.push_back(rng() % 2 ? tok(rng) : -1);
  }
  s.targets[static_cast<size_t>(T - 1)] = tok(rng);
  const int64_t prefix = 5;
  if (vis == Vis::kBlock) {
    for (int64_t i = 0; i < T; ++i) {
      const int64_t call_end = i < prefix ? prefix : std::min(T, prefix + ((i - prefix) / 32 + 1) * 32);
      s.key_end.push_back(std::min(call_end, (i / 32 + 1) * 32));
    }
  } else if (vis == Vis::kFull) {
    s.key_end.assign(static_cast<size_t>(T), T);
  }
  s.weight = 0.37f;
  return s;
}

LoraAdapter random_adapter(const Trainable& tr, int64_t rank, std::mt19937& rng) {
  LoraAdapter ad;
  ad.scale = 2.0f;
  std::normal_distribution<float> nb(0.0f, 0.02f);
  for (const auto& [name, io] : tr.lora_targets(-1)) {
    LoraModule m;
    m.in = io.first;
    m.out = io.second;
    m.rank = rank;
    std::uniform_real_distribution<float> ua(-1.0f / std::sqrt(static_cast<float>(m.in)),
                                             1.0f / std::sqrt(static_cast<float>(m.in)));
    for (int64_t i = 0; i < m.in * rank; ++i) m.a.push_back(ua(rng));
    for (int64_t i = 0; i < rank * m.out; ++i) m.b.push_back(nb(rng));
    ad.modules[name] = std::move(m);
  }
  return ad;
}

// θ + h·u over every parameter.
LoraAdapter shifted(const LoraAdapter& p, const LoraAdapter& u, float h) {
  LoraAdapter out = p;
  for (auto& [name, m] : out.modules) {
    const LoraModule& d = u.modules.at(name);
    for (size_t i = 0; i < m.a.size(); ++i) m.a[i] += h * d.a[i];
    for (size_t i = 0; i < m.b.size(); ++i) m.b[i] += h * d.b[i];
  }
  return out;
}

void check_directional(const std::string& model_dir, Vis vis, int64_t T, uint64_t seed) {
  auto model = load_model(model_dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const Trainable* tr = (*model)->trainable();
  ASSERT_NE(tr, nullptr);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const int64_t V = (*model)->info().vocab_size;
  std::vector<TrainSequence> batch = {make_seq(T, V, vis, rng), make_seq(T / 2 + 3, V, vis, rng)};
  const LoraAdapter params = random_adapter(*tr, 3, rng);
  ThreadPool pool(2);
  TrainOptions opts;
  LoraAdapter grads = params.zeros_like();
  auto base = tr->accumulate_lora_gradients(batch, params, grads, opts, pool);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  double theta_norm = 0;
  for (const auto& [n, m] : params.modules) {
    for (float v : m.a) theta_norm += v * v;
    for (float v : m.b) theta_norm += v * v;
  }
  theta_norm = std::sqrt(theta_norm);
  for (int dir = 0; dir < 2; ++dir) {
    LoraAdapter u = params.zeros_like();
    std::normal_distribution<float> nd(0.0f, 1.0f);
    double un = 0;
    for (auto& [n, m] : u.modules) {
      for (float& v : m.a) {
        v = nd(rng);
        un += v * v;
      }
      for (float& v : m.b) {
        v = nd(rng);
        un += v * v;
      }
    }
    const float k = static_cast<float>(0.05 * theta_norm / std::sqrt(un));
    double analytic = 0;
    for (auto& [n, m] : u.modules) {
      const LoraModule& g = grads.modules.at(n);
      for (size_t i = 0; i < m.a.size(); ++i) analytic += static_cast<double>(g.a[i]) * (m.a[i] *= k);
      for (size_t i = 0; i < m.b.size(); ++i) analytic += static_cast<double>(g.b[i]) * (m.b[i] *= k);
    }
    LoraAdapter scratch = params.zeros_like();
    auto central = [&](float h) {
      auto plus = tr->accumulate_lora_gradients(batch, shifted(params, u, h), scratch, opts, pool);
      auto minus = tr->accumulate_lora_gradients(batch, shifted(params, u, -h), scratch, opts, pool);
      EXPECT_TRUE(plus.ok() && minus.ok());
      return (plus->loss - minus->loss) / (2.0 * h);
    };
    const double numeric = (4.0 * central(0.5f) - central(1.0f)) / 3.0;
    std::printf("direction %d: relative error %.2e\n", dir, std::abs(analytic - numeric) / std::abs(numeric));
    EXPECT_NEAR(analytic, numeric, 1e-3 * std::abs(numeric) + 1e-7)
        << "direction " << dir << ": loss " << base->loss << ", analytic " << analytic << ", numeric " << numeric;
  }
}

std::string random_model(const std::string& dir, const nlohmann::json& overrides) {
  nlohmann::json cfg = {{"model_type", "dhara_ar"}, {"hidden_size", 64},       {"num_hidden_layers", 2},
                        {"intermediate_size", 96},  {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                        {"head_dim", 16},           {"vocab_size", 97},         {"mask_token_id", 96},
                        {"rope_theta", 10000.0}};
  cfg.update(overrides);
  EXPECT_TRUE(write_random_checkpoint(cfg, dir, DType::kF32, 7).ok());
  return dir;
}

class DharaTrainFd : public ::testing::TestWithParam<Vis> {};

TEST_P(DharaTrainFd, Bf16Fixture) { check_directional(test::fixture("dhara-tiny"), GetParam(), 70, 1); }
TEST_P(DharaTrainFd, QuantizedFixture) { check_directional(test::fixture("dhara-tiny-mlx"), GetParam(), 70, 2); }
TEST_P(DharaTrainFd, RandomConfigWithoutQkNormOrSoftcapAndTwoCanons) {
  test::TempDir tmp;
  const std::string dir = random_model(tmp.str() + "/m", {{"use_qk_norm", false}, {"use_logit_softcap", false},
                                                          {"canon_set", "AC"}, {"canon_kernel", 3}});
  check_directional(dir, GetParam(), 45, 3);
}
TEST_P(DharaTrainFd, RandomConfigHeadDimNotAMultipleOf16) {
  test::TempDir tmp;
  const std::string dir = random_model(tmp.str() + "/m", {{"head_dim", 10}, {"num_key_value_heads", 1}});
  check_directional(dir, GetParam(), 40, 4);
}

INSTANTIATE_TEST_SUITE_P(Masks, DharaTrainFd, ::testing::Values(Vis::kCausal, Vis::kBlock, Vis::kFull),
                         [](const auto& info) {
                           return std::string(info.param == Vis::kCausal ? "Causal"
                                              : info.param == Vis::kBlock ? "Block"
                                                                          : "Full");
                         });

TEST(DharaTrain, AdapterForAnotherModelIsAnError) {
  auto model = load_model(test::fixture("dhara-tiny"));
  ASSERT_TRUE(model.ok());
  LoraAdapter ad;
  LoraModule m;
  m.in = 64;
  m.out = 128;
  m.rank = 2;
  m.a.assign(128, 0.0f);
  m.b.assign(256, 0.0f);
  ad.modules["model.layers.0.self_attn.q_proj"] = m;
  LoraAdapter g = ad.zeros_like();
  ThreadPool pool(1);
  std::mt19937 rng(1);
  std::vector<TrainSequence> batch = {make_seq(8, 260, Vis::kCausal, rng)};
  auto r = (*model)->trainable()->accumulate_lora_gradients(batch, ad, g, TrainOptions{}, pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().ToString().find("model.layers.0.self_attn.q_proj"), std::string::npos);
  ad.modules.clear();
  ad.modules["model.layers.9.mlp.up_proj"] = m;
  g = ad.zeros_like();
  r = (*model)->trainable()->accumulate_lora_gradients(batch, ad, g, TrainOptions{}, pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().ToString().find("not a LoRA target"), std::string::npos);
}

}  // namespace
}  // namespace optiq
