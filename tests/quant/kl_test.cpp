// KL probes on dhara-tiny: row counts per mode, zero KL against itself, positive KL for a
// fake-quantized layer.
#include "quant/kl.h"

#include <gtest/gtest.h>

#include <cmath>

#include "io/model_dir.h"
#include "quant/sensitivity.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

std::vector<std::vector<int32_t>> two_chunks() {
  std::vector<std::vector<int32_t>> c(2, std::vector<int32_t>(64));
  for (int i = 0; i < 64; ++i) {
    c[0][i] = 97 + (i * 7) % 26;
    c[1][i] = 65 + (i * 3) % 26;
  }
  return c;
}

TEST(KlProbes, RowsPerModeAndSelfKlIsZero) {
  auto m = load_model(test::fixture("dhara-tiny"));
  ASSERT_TRUE(m.ok());
  ThreadPool pool(1);  // tests run beside other jobs on 2 cores; one thread is fastest there
  ProbeOptions o;
  std::vector<int64_t> rows;
  ASSERT_TRUE(run_probes(**m, two_chunks()[0], 0, o, pool, [&](int mode, int64_t r, const float*) {
                EXPECT_EQ(mode, static_cast<int>(rows.size()));
                rows.push_back(r);
              }).ok());
  // causal 64 rows; block B = 32 at fractions 1, .75, .5, .25 → 32, 24, 16, 8 masked rows.
  EXPECT_EQ(rows, (std::vector<int64_t>{64, 32, 24, 16, 8}));

  auto ref = ReferenceLogits::compute(**m, two_chunks(), o, pool);
  ASSERT_TRUE(ref.ok());
  EXPECT_TRUE(ref->has_block());
  auto kv = ref->compare(**m, pool);
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->causal.size(), 128u);
  EXPECT_EQ(kv->block.size(), 2u * (32 + 24 + 16 + 8));
  for (float x : kv->causal) EXPECT_LT(x, 1e-6);
  for (float x : kv->block) EXPECT_LT(x, 1e-6);

  o.block = false;
  auto causal_only = ReferenceLogits::compute(**m, two_chunks(), o, pool);
  ASSERT_TRUE(causal_only.ok());
  EXPECT_FALSE(causal_only->has_block());
}

TEST(KlProbes, FakeQuantizedLayerHasPositiveKlThatShrinksWithBits) {
  const std::string dir = test::fixture("dhara-tiny");
  auto md = ModelDir::open(dir);
  ASSERT_TRUE(md.ok());
  auto cands = find_quantizable(*(*md)->tensors, 64);
  // dhara-tiny: 4 layers × (q, k, v, o, gate, up) + the embedding; down_proj (352 inputs) is not.
  ASSERT_EQ(cands.size(), 25u);
  for (auto& c : cands) EXPECT_EQ(c.module.find("down_proj"), std::string::npos) << c.module;
  int n_embed = 0;
  for (auto& c : cands) n_embed += c.embedding;
  EXPECT_EQ(n_embed, 1);

  auto base = load_model(dir);
  ASSERT_TRUE(base.ok());
  ThreadPool pool(1);  // tests run beside other jobs on 2 cores; one thread is fastest there
  auto ref = ReferenceLogits::compute(**base, two_chunks(), ProbeOptions{}, pool);
  ASSERT_TRUE(ref.ok());
  QuantCandidate up;
  for (auto& c : cands)
    if (c.module == "model.layers.1.mlp.up_proj") up = c;
  double score[2];
  int i = 0;
  for (int bits : {2, 8}) {
    LoadOptions lo;
    auto o = fake_quant_override(*(*md)->tensors, up, bits, 64);
    ASSERT_TRUE(o.ok());
    lo.tensor_overrides["model.layers.1.mlp.up_proj.weight"] = *o;
    auto m = load_model(dir, lo);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    auto kv = ref->compare(**m, pool);
    ASSERT_TRUE(kv.ok());
    score[i++] = kv->score();
  }
  EXPECT_GT(score[1], 0.0);
  EXPECT_GT(score[0], 10 * score[1]);
}

TEST(KlValues, MeanAndQuantile) {
  std::vector<float> v = {4, 1, 3, 2, 5};
  EXPECT_DOUBLE_EQ(KlValues::mean(v), 3.0);
  EXPECT_DOUBLE_EQ(KlValues::quantile(v, 0.5), 3.0);
  EXPECT_DOUBLE_EQ(KlValues::quantile(v, 0.95), 4.8);
  EXPECT_DOUBLE_EQ(KlValues::quantile({}, 0.95), 0.0);
}

}  // namespace
}  // namespace optiq
