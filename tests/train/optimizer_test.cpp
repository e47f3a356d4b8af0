// train/optimizer: sgd, adam (no bias correction) and adamw (decoupled decay 0.01) exactly as L.6 writes
// them, element by element in fp32.
#include "train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>

namespace optiq {
namespace {

LoraAdapter one_module(std::vector<float> a, std::vector<float> b) {
  LoraAdapter ad;
  LoraModule m;
  m.in = static_cast<int64_t>(a.size());
  m.rank = 1;
  m.out = static_cast<int64_t>(b.size());
  m.a = std::move(a);
  m.b = std::move(b);
  ad.modules["x.q_proj"] = m;
  return ad;
}

TEST(Optimizer, Sgd) {
  LoraAdapter p = one_module({1.0f, -2.0f}, {0.5f});
  const LoraAdapter g = one_module({0.25f, 1.0f}, {-4.0f});
  Optimizer opt(OptimizerKind::kSgd, 0.1f, p);
  opt.step(p, g);
  EXPECT_EQ(p.modules["x.q_proj"].a[0], 1.0f - 0.1f * 0.25f);
  EXPECT_EQ(p.modules["x.q_proj"].a[1], -2.0f - 0.1f * 1.0f);
  EXPECT_EQ(p.modules["x.q_proj"].b[0], 0.5f - 0.1f * -4.0f);
  EXPECT_FALSE(opt.has_moments());
}

// The reference recurrence in fp32, written out.
void adam_ref(bool decoupled, float lr, float& w, float& m, float& v, float g) {
  if (decoupled) w = w * (1.0f - lr * 0.01f);
  m = 0.9f * m + (1.0f - 0.9f) * g;
  v = 0.999f * v + (1.0f - 0.999f) * (g * g);
  w = w - lr * m / (std::sqrt(v) + 1e-8f);
}

void check_adam(OptimizerKind kind) {
  const bool decoupled = kind == OptimizerKind::kAdamW;
  LoraAdapter p = one_module({1.0f, -2.0f, 0.0f}, {0.5f});
  Optimizer opt(kind, 0.01f, p);
  float w[4] = {1.0f, -2.0f, 0.0f, 0.5f}, m[4] = {}, v[4] = {};
  const float gs[3][4] = {{0.3f, -1.0f, 0.0f, 2.0f}, {0.1f, 0.5f, 1e-3f, -2.0f}, {-0.7f, 0.2f, 0.0f, 0.0f}};
  for (const auto& gv : gs) {
    const LoraAdapter g = one_module({gv[0], gv[1], gv[2]}, {gv[3]});
    opt.step(p, g);
    for (int i = 0; i < 4; ++i) adam_ref(decoupled, 0.01f, w[i], m[i], v[i], gv[i]);
  }
  const LoraModule& got = p.modules["x.q_proj"];
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got.a[static_cast<size_t>(i)], w[i]) << i;
  EXPECT_EQ(got.b[0], w[3]);
  EXPECT_EQ(opt.first_moment().modules.at("x.q_proj").a[0], m[0]);
  EXPECT_EQ(opt.second_moment().modules.at("x.q_proj").b[0], v[3]);
}

TEST(Optimizer, AdamWithoutBiasCorrection) {
  check_adam(OptimizerKind::kAdam);
  // First step from zero moments: m = 0.1 g, v = 0.001 g², so the step is lr·0.1/√0.001 ≈ 3.16·lr
  // per unit sign — bias-corrected Adam would step exactly lr.
  LoraAdapter p = one_module({0.0f}, {0.0f});
  Optimizer opt(OptimizerKind::kAdam, 0.01f, p);
  opt.step(p, one_module({1.0f}, {-1.0f}));
  EXPECT_NEAR(p.modules["x.q_proj"].a[0], -0.01 * 0.1 / std::sqrt(0.001), 1e-6);  // fp32 (1 − β) terms
}

TEST(Optimizer, AdamWDecaysThenAdam) { check_adam(OptimizerKind::kAdamW); }

TEST(Optimizer, MomentsRoundTripAndShapesChecked) {
  LoraAdapter p = one_module({1.0f, 2.0f}, {3.0f});
  Optimizer opt(OptimizerKind::kAdamW, 0.1f, p);
  EXPECT_TRUE(opt.set_moments(p, p).ok());
  EXPECT_EQ(opt.first_moment().modules.at("x.q_proj").a[1], 2.0f);
  const Status bad = opt.set_moments(one_module({1.0f}, {3.0f}), p);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("x.q_proj"), std::string::npos) << bad.message();
}

TEST(Optimizer, ParseNames) {
  EXPECT_EQ(*parse_optimizer("adamw"), OptimizerKind::kAdamW);
  EXPECT_EQ(*parse_optimizer("sgd"), OptimizerKind::kSgd);
  EXPECT_FALSE(parse_optimizer("lion").ok());
  EXPECT_STREQ(optimizer_name(OptimizerKind::kAdam), "adam");
}

}  // namespace
}  // namespace optiq
