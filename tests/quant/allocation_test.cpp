// Greedy allocation (specs/mlx-format.md §10) and static priorities (§11) on synthetic scores.
#include "quant/allocation.h"

#include <gtest/gtest.h>

namespace optiq {
namespace {

LayerSensitivity layer(const std::string& name, int64_t params, double kl4, double kl8) {
  LayerSensitivity s;
  s.name = name;
  s.params = params;
  s.kl = {{4, kl4}, {8, kl8}};
  return s;
}

// n_blocks blocks of MLP-only components (gate/up/down), so floors are capped at 1 per block.
std::vector<LayerSensitivity> mlp_blocks(int n_blocks, double base_kl) {
  std::vector<LayerSensitivity> v;
  for (int b = 0; b < n_blocks; ++b)
    for (const char* c : {"gate_proj", "up_proj", "down_proj"})
      v.push_back(layer("model.layers." + std::to_string(b) + ".mlp." + c, 100, base_kl * (1 + b % 3), 0.0));
  return v;
}

TEST(Allocation, NamesAndBlocks) {
  EXPECT_EQ(block_index("model.layers.12.self_attn.q_proj"), 12);
  EXPECT_EQ(block_index("language_model.model.layers.3.mlp.down_proj"), 3);
  EXPECT_EQ(block_index("lm_head"), -1);
  EXPECT_EQ(block_index("model.mylayers.3.x"), -1);
  EXPECT_TRUE(protected_by_name("lm_head"));
  EXPECT_TRUE(protected_by_name("model.embed_tokens"));
  EXPECT_TRUE(protected_by_name("model.layers.4.mlp.gate"));
  EXPECT_TRUE(protected_by_name("model.layers.4.mlp.router.proj"));
  EXPECT_TRUE(protected_by_name("model.layers.4.mlp.shared_expert.up_proj"));
  EXPECT_FALSE(protected_by_name("model.layers.4.mlp.gate_proj"));
  EXPECT_FALSE(protected_by_name("model.layers.4.self_attn.o_proj"));
}

TEST(Allocation, TargetIsAFloorAndEfficiencyOrdersUpgrades) {
  // One block in the middle of 5 (unprotected); no floors, so only the greedy loop upgrades.
  std::vector<LayerSensitivity> v;
  for (int b = 0; b < 5; ++b) v.push_back(layer("model.layers." + std::to_string(b) + ".mlp.up_proj", 1000, 0, 0));
  v.push_back(layer("model.layers.2.mlp.gate_proj", 1000, 5.0, 0.0));  // efficiency 5/4000
  v.push_back(layer("model.layers.2.mlp.down_proj", 4000, 8.0, 0.0));  // efficiency 8/16000, lower
  AllocationOptions o;
  o.n_floor_per_block = 0;
  o.max_low_bit_run = 100;  // keep the run guard out of this test
  o.target_bpw = 4.1;
  auto a = allocate_bits(v, o);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->bits.at("model.layers.2.mlp.gate_proj"), 8);
  EXPECT_EQ(a->bits.at("model.layers.2.mlp.down_proj"), 4);
  // 8·1000 + 4·(5000 + 4000) over 10000 = 4.4 ≥ 4.1: stops after one upgrade.
  EXPECT_NEAR(a->achieved_bpw, 4.4, 1e-12);
  EXPECT_EQ(a->n_greedy_upgrades, 1);
}

TEST(Allocation, ProtectedLayersUpgradeFirst) {
  // Blocks 0 and 4 are edges (n_protect 1); lm_head is outside any block. Tiny KLs ×100 beat the
  // middle's larger raw KL.
  std::vector<LayerSensitivity> v;
  for (int b = 0; b < 5; ++b)
    v.push_back(layer("model.layers." + std::to_string(b) + ".mlp.up_proj", 1000, b == 0 || b == 4 ? 0.02 : 1.0, 0));
  v.push_back(layer("lm_head", 1000, 0.02, 0));
  AllocationOptions o;
  o.n_floor_per_block = 0;
  o.max_low_bit_run = 100;
  o.target_bpw = 6.6;  // three of six layers at 8 bits: 6.0 < 6.6, so a 4th upgrade happens
  auto a = allocate_bits(v, o);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->bits.at("model.layers.0.mlp.up_proj"), 8);
  EXPECT_EQ(a->bits.at("model.layers.4.mlp.up_proj"), 8);
  EXPECT_EQ(a->bits.at("lm_head"), 8);
  EXPECT_EQ(a->n_greedy_upgrades, 4);
}

TEST(Allocation, FloorReservesAttentionSlots) {
  // A full-attention block: the two most sensitive attention projections take the floor, even
  // though the MLP's KL is higher.
  std::vector<LayerSensitivity> v;
  const std::string p = "model.layers.1.";
  v.push_back(layer(p + "self_attn.q_proj", 100, 0.3, 0));
  v.push_back(layer(p + "self_attn.k_proj", 100, 0.1, 0));
  v.push_back(layer(p + "self_attn.v_proj", 100, 0.5, 0));
  v.push_back(layer(p + "self_attn.o_proj", 100, 0.2, 0));
  v.push_back(layer(p + "mlp.up_proj", 100, 9.0, 0));
  for (int b : {0, 2}) v.push_back(layer("model.layers." + std::to_string(b) + ".mlp.up_proj", 100, 0, 0));
  AllocationOptions o;
  o.target_bpw = 1.0;  // no greedy upgrades
  o.n_protect = 0;
  auto a = allocate_bits(v, o);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->bits.at(p + "self_attn.v_proj"), 8);
  EXPECT_EQ(a->bits.at(p + "self_attn.q_proj"), 8);
  EXPECT_EQ(a->bits.at(p + "mlp.up_proj"), 4);
  EXPECT_EQ(a->bits.at(p + "self_attn.k_proj"), 4);
  // MLP-only blocks floor at most one component (their most sensitive).
  EXPECT_EQ(a->n_floor_raised, 2 + 1 + 1);
}

TEST(Allocation, LowBitRunGuardRaisesEveryThirdBlock) {
  // 8 MLP-only blocks, no floors, target below the minimum: every block is mostly 4-bit. One run
  // of 8 > 3 blocks: blocks 2 and 5 (3rd and 6th of the run) get one component raised.
  auto v = mlp_blocks(8, 0.1);
  AllocationOptions o;
  o.n_floor_per_block = 0;
  o.target_bpw = 1.0;
  auto a = allocate_bits(v, o);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->n_guard_raised, 2);
  for (int b = 0; b < 8; ++b) {
    int n8 = 0;
    for (const char* c : {"gate_proj", "up_proj", "down_proj"})
      n8 += a->bits.at("model.layers." + std::to_string(b) + ".mlp." + c) == 8;
    EXPECT_EQ(n8, b == 2 || b == 5 ? 1 : 0) << b;
  }
  // A short run (3 blocks) is left alone.
  auto a3 = allocate_bits(mlp_blocks(3, 0.1), o);
  ASSERT_TRUE(a3.ok());
  EXPECT_EQ(a3->n_guard_raised, 0);
}

TEST(Allocation, SixteenIsTheLosslessTier) {
  std::vector<LayerSensitivity> v;
  for (int b = 0; b < 3; ++b) {
    LayerSensitivity s;
    s.name = "model.layers." + std::to_string(b) + ".mlp.up_proj";
    s.params = 10;
    s.kl = {{4, 1.0 + b}, {8, 0.1}, {16, 0.0}};
    v.push_back(s);
  }
  AllocationOptions o;
  o.candidate_bits = {4, 8, 16};
  o.n_floor_per_block = 0;
  o.target_bpw = 16;
  auto a = allocate_bits(v, o);
  ASSERT_TRUE(a.ok());
  for (auto& [n, b] : a->bits) EXPECT_EQ(b, 16) << n;
}

TEST(Allocation, MissingKlIsAnError) {
  std::vector<LayerSensitivity> v = {layer("model.layers.0.mlp.up_proj", 10, 1, 0)};
  AllocationOptions o;
  o.candidate_bits = {2, 4};
  EXPECT_FALSE(allocate_bits(v, o).ok());
}

TEST(Allocation, StaticPrioritiesFollowStructure) {
  std::vector<QuantCandidate> c;
  auto add = [&](const std::string& m) {
    QuantCandidate q;
    q.module = m;
    q.n_out = q.n_in = 64;
    c.push_back(q);
  };
  add("lm_head");
  add("model.layers.0.mlp.up_proj");
  add("model.layers.1.mlp.up_proj");
  add("model.layers.5.mlp.up_proj");
  add("model.layers.5.self_attn.q_proj");
  add("model.layers.11.mlp.up_proj");
  auto s = static_sensitivity(c, {4, 8});
  auto p = [&](const std::string& n) {
    for (auto& l : s)
      if (l.name == n) return l.kl.at(4);
    return -1.0;
  };
  EXPECT_DOUBLE_EQ(p("lm_head"), 1.0);
  EXPECT_DOUBLE_EQ(p("model.layers.0.mlp.up_proj"), 0.9);
  EXPECT_DOUBLE_EQ(p("model.layers.11.mlp.up_proj"), 0.9);
  EXPECT_DOUBLE_EQ(p("model.layers.1.mlp.up_proj"), 0.65);
  EXPECT_GE(p("model.layers.5.mlp.up_proj"), 0.30);
  EXPECT_LE(p("model.layers.5.mlp.up_proj"), 0.45);
  EXPECT_NEAR(p("model.layers.5.self_attn.q_proj") - p("model.layers.5.mlp.up_proj"), 0.30, 1e-12);
  for (auto& l : s) EXPECT_EQ(l.kl.at(8), 0.0);
}

}  // namespace
}  // namespace optiq
