// train/train_state: the resumable state file round-trips exactly and rejects foreign files.
#include "train/train_state.h"

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

LoraAdapter adapter(float base) {
  LoraAdapter ad;
  LoraModule m;
  m.in = 3;
  m.rank = 2;
  m.out = 4;
  for (int i = 0; i < 6; ++i) m.a.push_back(base + 0.1f * static_cast<float>(i));
  for (int i = 0; i < 8; ++i) m.b.push_back(base - 0.01f * static_cast<float>(i));
  ad.modules["model.layers.0.self_attn.q_proj"] = m;
  ad.modules["model.layers.1.mlp.up_proj"] = m;
  return ad;
}

TEST(TrainState, RoundTripsExactly) {
  test::TempDir dir;
  TrainState s;
  s.step = 42;
  s.params = adapter(1.0f);
  s.m = adapter(2.0f);
  s.v = adapter(3.0f);
  s.batches.rng = 0xFFFFFFFFFFFFFFF1ull;  // beyond 2^53: stored as a decimal string
  s.batches.order = {2, 0, 1};
  s.batches.pos = 1;
  s.noise_rng = 18446744073709551557ull;
  s.run = {{"learning_rate", 0.001}, {"seed", "3"}};
  const std::string path = dir.str() + "/" + kTrainStateFile;
  ASSERT_TRUE(save_train_state(path, s).ok());
  auto r = load_train_state(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->step, 42);
  EXPECT_EQ(r->batches.rng, s.batches.rng);
  EXPECT_EQ(r->batches.order, s.batches.order);
  EXPECT_EQ(r->batches.pos, 1);
  EXPECT_EQ(r->noise_rng, s.noise_rng);
  EXPECT_EQ(r->run, s.run);
  for (const auto* pair : {&r->params, &r->m, &r->v}) EXPECT_EQ(pair->modules.size(), 2u);
  EXPECT_EQ(r->params.modules.at("model.layers.1.mlp.up_proj").a, s.params.modules.at("model.layers.1.mlp.up_proj").a);
  EXPECT_EQ(r->m.modules.at("model.layers.0.self_attn.q_proj").b, s.m.modules.at("model.layers.0.self_attn.q_proj").b);
  EXPECT_EQ(r->v.modules.at("model.layers.0.self_attn.q_proj").in, 3);

  TrainState sgd = s;  // no moments
  sgd.m = LoraAdapter();
  sgd.v = LoraAdapter();
  ASSERT_TRUE(save_train_state(path, sgd).ok());
  auto r2 = load_train_state(path);
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(r2->m.modules.empty());
}

TEST(TrainState, RejectsMissingAndForeignFiles) {
  test::TempDir dir;
  EXPECT_EQ(load_train_state(dir.str() + "/none").status().code(), Status::Code::kNotFound);
  const std::string adapters = dir.str() + "/adapters.safetensors";
  ASSERT_TRUE(save_lora_weights(adapters, adapter(0.0f)).ok());
  auto r = load_train_state(adapters);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not an optiq training state"), std::string::npos);
}

}  // namespace
}  // namespace optiq
