#include "decode/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace optiq {
namespace {

TEST(RepetitionPenalty, HfSemanticsOncePerDistinctId) {
  std::vector<float> z{2.f, -2.f, 1.f, 0.f};
  SeenTokens seen(4);
  seen.add(std::vector<int32_t>{0, 1, 0, 1, 3});
  apply_repetition_penalty(z.data(), seen.ids(), 2.f);
  EXPECT_FLOAT_EQ(z[0], 1.f);   // positive: divided
  EXPECT_FLOAT_EQ(z[1], -4.f);  // negative: multiplied
  EXPECT_FLOAT_EQ(z[2], 1.f);   // unseen
  EXPECT_FLOAT_EQ(z[3], 0.f);
  std::vector<float> w{2.f, 2.f, 2.f, 2.f};
  std::vector<int32_t> extra{2, 2, 0};
  apply_repetition_penalty(w.data(), seen, extra, 2.f);
  EXPECT_FLOAT_EQ(w[0], 1.f);  // already seen: once
  EXPECT_FLOAT_EQ(w[2], 1.f);  // extra, once despite repeats
}

std::map<int32_t, int> histogram(SamplingParams p, std::vector<float> logits, int draws) {
  Sampler s(p);
  std::map<int32_t, int> h;
  for (int i = 0; i < draws; ++i) {
    auto z = logits;
    h[s.sample(z.data(), static_cast<int64_t>(z.size()))]++;
  }
  return h;
}

TEST(Sampler, GreedyIsArgmax) {
  SamplingParams p;
  auto h = histogram(p, {0.1f, 3.f, 2.9f}, 5);
  EXPECT_EQ(h[1], 5);
}

TEST(Sampler, TopKRestrictsToKBest) {
  SamplingParams p;
  p.temperature = 1.f;
  p.top_k = 2;
  p.seed = 3;
  auto h = histogram(p, {1.f, 0.9f, 0.8f, 0.7f}, 2000);
  EXPECT_EQ(h.count(2) + h.count(3), 0u);
  EXPECT_GT(h[0], 0);
  EXPECT_GT(h[1], 0);
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
  // probabilities ≈ 0.5, 0.3, 0.2 → top_p 0.7 keeps {0, 1}.
  SamplingParams p;
  p.temperature = 1.f;
  p.top_p = 0.7f;
  p.seed = 5;
  auto h = histogram(p, {std::log(0.5f), std::log(0.3f), std::log(0.2f)}, 3000);
  EXPECT_EQ(h.count(2), 0u);
  EXPECT_NEAR(h[0] / 3000.0, 0.5 / 0.8, 0.04);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.f;
  p.min_p = 0.6f;
  p.seed = 7;
  auto h = histogram(p, {std::log(0.6f), std::log(0.35f), std::log(0.05f)}, 2000);
  EXPECT_EQ(h.count(1) + h.count(2), 0u);  // 0.35 < 0.6 × 0.6
  p.min_p = 0.5f;  // 0.35 >= 0.5 × 0.6 survives, 0.05 does not
  auto h2 = histogram(p, {std::log(0.6f), std::log(0.35f), std::log(0.05f)}, 2000);
  EXPECT_GT(h2[1], 0);
  EXPECT_EQ(h2.count(2), 0u);
}

TEST(Sampler, TemperatureFlattensAndSeedReproduces) {
  SamplingParams p;
  p.temperature = 100.f;
  p.seed = 11;
  auto a = histogram(p, {2.f, 0.f}, 4000);
  EXPECT_NEAR(a[0] / 4000.0, 0.5, 0.05);
  auto b = histogram(p, {2.f, 0.f}, 4000);
  EXPECT_EQ(a, b);
}

TEST(SamplingParams, ValidateNamesTheField) {
  SamplingParams p;
  p.top_p = 0.f;
  EXPECT_NE(p.validate().message().find("top_p"), std::string::npos);
  p = {};
  p.temperature = -1;
  EXPECT_NE(p.validate().message().find("temperature"), std::string::npos);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_FALSE(p.validate().ok());
  EXPECT_TRUE(SamplingParams{}.validate().ok());
}

}  // namespace
}  // namespace optiq
