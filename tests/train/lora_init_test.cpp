// train/lora_init: fresh LoRA init (L.1) and --resume-adapter-file checks (L.2).
#include "train/lora_init.h"

#include <gtest/gtest.h>

#include <cmath>

#include "decode/rng.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

const LoraTargets kTargets = {{"model.layers.0.self_attn.q_proj", {6, 4}}, {"model.layers.0.mlp.down_proj", {9, 6}}};

TEST(LoraInit, UniformAZeroBFromTheSeed) {
  auto ad = init_lora_adapter(kTargets, 3, 2.0f, 11);
  ASSERT_TRUE(ad.ok());
  EXPECT_EQ(ad->scale, 2.0f);
  SplitMix64 ref(11);
  for (const auto& [name, io] : kTargets) {
    const LoraModule& m = ad->modules.at(name);
    EXPECT_EQ(m.in, io.first);
    EXPECT_EQ(m.out, io.second);
    EXPECT_EQ(m.rank, 3);
    ASSERT_EQ(m.a.size(), static_cast<size_t>(io.first * 3));
    const double bound = 1.0 / std::sqrt(static_cast<double>(io.first));
    for (float x : m.a) {
      EXPECT_EQ(x, static_cast<float>((2.0 * ref.uniform() - 1.0) * bound));  // target order, row-major
      EXPECT_LE(std::abs(x), bound);
    }
    for (float x : m.b) EXPECT_EQ(x, 0.0f);
    EXPECT_EQ(m.b.size(), static_cast<size_t>(3 * io.second));
  }
  EXPECT_FALSE(init_lora_adapter(kTargets, 0, 1.0f, 0).ok());
  EXPECT_FALSE(init_lora_adapter({}, 4, 1.0f, 0).ok());
}

TEST(LoraInit, ResumeFileKeepsItsModulesAndChecksThem) {
  test::TempDir dir;
  const std::string path = dir.str() + "/a.safetensors";
  auto ad = init_lora_adapter({kTargets[0]}, 2, 1.0f, 1);
  ASSERT_TRUE(save_lora_weights(path, *ad).ok());

  auto r = load_resume_adapter(path, kTargets, 0, 4.0f);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->modules.size(), 1u);  // only the file's module
  EXPECT_EQ(r->scale, 4.0f);
  EXPECT_EQ(r->modules.at("model.layers.0.self_attn.q_proj").a, ad->modules.at("model.layers.0.self_attn.q_proj").a);
  EXPECT_TRUE(load_resume_adapter(path, kTargets, 2, 1.0f).ok());

  auto wrong_rank = load_resume_adapter(path, kTargets, 8, 1.0f);
  ASSERT_FALSE(wrong_rank.ok());
  EXPECT_NE(wrong_rank.status().message().find("rank 2, --rank says 8"), std::string::npos);

  auto other_model = load_resume_adapter(path, {{"model.layers.0.self_attn.q_proj", {6, 5}}}, 0, 1.0f);
  ASSERT_FALSE(other_model.ok());
  EXPECT_NE(other_model.status().message().find("model.layers.0.self_attn.q_proj is 6 → 4"), std::string::npos)
      << other_model.status().message();
  auto missing = load_resume_adapter(path, {kTargets[1]}, 0, 1.0f);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("not a LoRA target of this model"), std::string::npos);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

}  // namespace
}  // namespace optiq
