// Full-parameter training of dhara: every weight's gradient against directional finite differences
// (Richardson-extrapolated central differences of the fp32 loss, as dhara_train_fd_test.cpp), a
// saved checkpoint that loads and computes the model's logits, and SGD steps that lower the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "models/model.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

std::vector<TrainSequence> batch_of(int64_t V, uint32_t seed, bool block) {
  std::mt19937 rng(seed);
  std::vector<TrainSequence> out;
  for (int64_t T : {40, 23}) {
    TrainSequence s;
    for (int64_t t = 0; t < T; ++t) s.tokens.push_back(static_cast<int32_t>(rng() % (V - 1)));
    for (int64_t t = 0; t < T; ++t) s.targets.push_back(t + 1 < T ? s.tokens[t + 1] : -1);
    if (block)
      for (int64_t t = 0; t < T; ++t) s.key_end.push_back(std::min<int64_t>(T, (t / 8 + 1) * 8));
    s.weight = 1.0f / 61.0f;
    out.push_back(std::move(s));
  }
  return out;
}

void directional_check(bool block) {
  auto model = load_model(test::fixture("dhara-tiny"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto full = (*model)->trainable()->make_full_trainable();
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  FullTrainable& tr = **full;
  ThreadPool pool(2);
  const auto batch = batch_of((*model)->info().vocab_size, block ? 3 : 2, block);
  ParamSet grads = zeros_like(tr.parameters());
  auto base = tr.accumulate_gradients(batch, grads, TrainOptions{}, pool);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  const ParamSet theta = tr.parameters();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int dir = 0; dir < 2; ++dir) {
    // Each tensor moves by 1e-3 of its own RMS along a random direction.
    ParamSet u = zeros_like(theta);
    double analytic = 0;
    for (auto& [name, t] : u) {
      const auto& th = theta.at(name).data;
      double ss = 0;
      for (float v : th) ss += v * v;
      const float k = static_cast<float>(1e-3 * std::sqrt(ss / th.size() + 1e-12));
      const auto& g = grads.at(name).data;
      for (size_t i = 0; i < t.data.size(); ++i) {
        t.data[i] = k * nd(rng);
        analytic += static_cast<double>(g[i]) * t.data[i];
      }
    }
    auto loss_at = [&](float h) {
      for (auto& [name, t] : tr.parameters())
        for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = theta.at(name).data[i] + h * u.at(name).data[i];
      ParamSet scratch = zeros_like(theta);
      auto r = tr.accumulate_gradients(batch, scratch, TrainOptions{}, pool);
      EXPECT_TRUE(r.ok());
      return r->loss;
    };
    auto central = [&](float h) { return (loss_at(h) - loss_at(-h)) / (2.0 * h); };
    const double numeric = (4.0 * central(0.5f) - central(1.0f)) / 3.0;
    std::printf("full, %s, direction %d: analytic %.6g numeric %.6g relative error %.2e\n", block ? "block" : "causal",
                dir, analytic, numeric, std::abs(analytic - numeric) / std::abs(numeric));
    EXPECT_NEAR(analytic, numeric, 1e-3 * std::abs(numeric));
  }
  tr.parameters() = theta;
}

TEST(DharaTrainFull, EveryWeightsGradientMatchesFiniteDifferencesCausal) { directional_check(false); }
TEST(DharaTrainFull, EveryWeightsGradientMatchesFiniteDifferencesBlock) { directional_check(true); }

TEST(DharaTrainFull, SgdStepsLowerTheLossAndTheSavedModelComputesTheSameLogits) {
  auto model = load_model(test::fixture("dhara-tiny"));
  ASSERT_TRUE(model.ok());
  auto full = (*model)->trainable()->make_full_trainable();
  ASSERT_TRUE(full.ok());
  FullTrainable& tr = **full;
  ThreadPool pool(2);
  const auto batch = batch_of((*model)->info().vocab_size, 4, false);
  double first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    ParamSet g = zeros_like(tr.parameters());
    auto r = tr.accumulate_gradients(batch, g, TrainOptions{}, pool);
    ASSERT_TRUE(r.ok());
    (step == 0 ? first : last) = r->loss;
    for (auto& [name, t] : tr.parameters())
      for (size_t i = 0; i < t.data.size(); ++i) t.data[i] -= 0.5f * g.at(name).data[i];
  }
  EXPECT_LT(last, first - 0.1) << "first " << first << " last " << last;
  // The trained weights, saved and loaded, give the loss the trainer computes.
  test::TempDir tmp;
  ASSERT_TRUE(tr.save(tmp.str(), DType::kF32).ok());
  auto saved = load_model(tmp.str());
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  ParamSet g = zeros_like(tr.parameters());
  auto trainer_loss = tr.accumulate_gradients(batch, g, TrainOptions{}, pool);
  LoraAdapter none, none_g;
  auto saved_loss = (*saved)->trainable()->accumulate_lora_gradients(batch, none, none_g, TrainOptions{}, pool);
  ASSERT_TRUE(trainer_loss.ok() && saved_loss.ok());
  EXPECT_NEAR(saved_loss->loss, trainer_loss->loss, 1e-5 * trainer_loss->loss);
  // And the inference forward of the saved model agrees with the training forward's loss on row 0.
  const TrainSequence& s = batch[0];
  auto cache = (*saved)->make_cache(64);
  const int64_t V = (*saved)->info().vocab_size, T = static_cast<int64_t>(s.tokens.size());
  std::vector<float> logits(static_cast<size_t>(T * V));
  ForwardBatch fb;
  fb.tokens = s.tokens;
  ASSERT_TRUE((*saved)->forward(fb, *cache, logits.data(), pool).ok());
  double ce = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (s.targets[t] < 0) continue;
    const float* z = logits.data() + t * V;
    double mx = -1e30, sum = 0;
    for (int64_t i = 0; i < V; ++i) mx = std::max<double>(mx, z[i]);
    for (int64_t i = 0; i < V; ++i) sum += std::exp(z[i] - mx);
    ce += (mx + std::log(sum) - z[s.targets[t]]) * s.weight;
  }
  std::vector<TrainSequence> one = {s};
  auto one_loss = (*saved)->trainable()->accumulate_lora_gradients(one, none, none_g, TrainOptions{}, pool);
  ASSERT_TRUE(one_loss.ok());
  EXPECT_NEAR(ce, one_loss->loss, 1e-4 * ce);
}

}  // namespace
}  // namespace optiq
