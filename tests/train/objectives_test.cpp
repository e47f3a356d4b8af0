// train/objectives: the exact sequences (tokens, targets, key_end, canvas_begin, weights) each
// objective builds from small hand-built rows (specs/optiq-surface.md L.5, L.8).
#include "train/objectives.h"

#include <gtest/gtest.h>

#include <numeric>

namespace optiq {
namespace {

TrainRow row(std::vector<int32_t> tokens, int64_t offset) {
  TrainRow r;
  r.tokens = std::move(tokens);
  r.offset = offset;
  r.full_length = static_cast<int64_t>(r.tokens.size());
  return r;
}

std::vector<int32_t> iota_ids(int n, int first) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

ObjectiveParams joint_params() {
  ObjectiveParams p;
  p.kind = Objective::kJoint;
  p.mask_token_id = 99;
  p.block_len = 32;
  return p;
}

TEST(ArObjective, TargetsAreTheRealTokensFromMaxOffsetOne) {
  const TrainRow r = row({10, 11, 12, 13, 14}, 0);
  EXPECT_EQ(ar_target_count(r), 4);
  const TrainSequence q = ar_sequence(r);
  EXPECT_EQ(q.tokens, (std::vector<int32_t>{10, 11, 12, 13}));  // tokens[:-1]
  EXPECT_EQ(q.targets, (std::vector<int32_t>{11, 12, 13, 14}));
  EXPECT_TRUE(q.key_end.empty());
  EXPECT_EQ(q.canvas_begin, -1);

  const TrainSequence m = ar_sequence(row({10, 11, 12, 13, 14}, 3));
  EXPECT_EQ(m.targets, (std::vector<int32_t>{-1, -1, 13, 14}));  // j = 3, 4
  EXPECT_EQ(ar_target_count(row({10}, 0)), 0);
  EXPECT_EQ(ar_target_count(row({10, 11, 12}, 7)), 0);  // offset past a truncated row
}

TEST(ArObjective, OneTokenWeightedMeanOverTheBatch) {
  const TrainRow a = row({1, 2, 3, 4}, 0), b = row({5, 6}, 0), c = row({7}, 0), d = row({1, 2, 3, 4, 5, 6}, 4);
  const TrainRow* rows[] = {&a, &b, &c, &d};
  SplitMix64 rng(0);
  ObjectiveParams p;
  BatchSequences bs = make_batch_sequences(rows, p, rng);
  ASSERT_EQ(bs.seqs.size(), 3u);  // c has no target
  EXPECT_EQ(bs.ar_targets, 3 + 1 + 2);
  for (const auto& q : bs.seqs) EXPECT_FLOAT_EQ(q.weight, 1.0f / 6);
  EXPECT_EQ(rng.state(), SplitMix64(0).state());  // ar draws nothing
  // Gradient accumulation over k = 4 batches scales every weight by 1/4.
  BatchSequences quarter = make_batch_sequences(rows, p, rng, 0.25f);
  for (const auto& q : quarter.seqs) EXPECT_FLOAT_EQ(q.weight, 0.25f / 6);
}

TEST(JointObjective, DiffusionSequenceOfADrawAfterAPrompt) {
  // n = 40, offset 5 → s = 5; blocks [5, 37) and [37, 69); the second is chosen, positions 37..39 real.
  const TrainRow r = row(iota_ids(40, 100), 5);
  ObjectiveParams p = joint_params();
  DiffusionNoise d;
  d.block_begin = 37;
  d.replaced = {38};
  const TrainSequence q = diffusion_sequence(r, d, p);
  ASSERT_EQ(q.tokens.size(), 69u);  // x[0:37] ‖ 32
  for (int j = 0; j < 37; ++j) EXPECT_EQ(q.tokens[static_cast<size_t>(j)], 100 + j);
  EXPECT_EQ(q.tokens[37], 137);  // kept
  EXPECT_EQ(q.tokens[38], 99);   // replaced
  EXPECT_EQ(q.tokens[39], 139);  // kept
  for (int j = 40; j < 69; ++j) EXPECT_EQ(q.tokens[static_cast<size_t>(j)], 99) << j;  // beyond n: mask, no target
  for (int j = 0; j < 69; ++j) EXPECT_EQ(q.targets[static_cast<size_t>(j)], j == 38 ? 138 : -1) << j;
  // Calls: [0, 5), [5, 37), [37, 69). Row r sees min(call end, (r/32 + 1)·32).
  for (int r_ = 0; r_ < 69; ++r_) {
    int64_t want;
    if (r_ < 5) want = 5;                     // call 0 ends at 5 inside global block 0
    else if (r_ < 32) want = 32;              // call 1 = [5, 37): block 0 rows see up to 32
    else if (r_ < 37) want = 37;              // call 1's rows in global block 1 see up to the call's end
    else if (r_ < 64) want = 64;              // call 2 = [37, 69): global block 1 rows see up to 64
    else want = 69;                           // global block 2 rows see the whole call
    EXPECT_EQ(q.key_end[static_cast<size_t>(r_)], want) << r_;
  }
  EXPECT_EQ(q.canvas_begin, -1);
}

TEST(JointObjective, KeyEndIsCausalAtLeastAndNeverBeyondTheSequence) {
  ObjectiveParams p = joint_params();
  for (int64_t offset : {0, 1, 31, 32, 33, 70}) {
    const TrainRow r = row(iota_ids(100, 0), offset);
    SplitMix64 rng(static_cast<uint64_t>(offset));
    const DiffusionNoise d = draw_diffusion_noise(r, p, rng);
    const int64_t s = std::max<int64_t>(offset, 1);
    EXPECT_EQ((d.block_begin - s) % 32, 0);
    EXPECT_LT(d.block_begin, 100);
    const TrainSequence q = diffusion_sequence(r, d, p);
    for (size_t t = 0; t < q.key_end.size(); ++t) {
      EXPECT_GT(q.key_end[t], static_cast<int64_t>(t));
      EXPECT_LE(q.key_end[t], static_cast<int64_t>(q.tokens.size()));
    }
    // The noisy block's rows always see the whole clean prefix.
    for (int64_t t = d.block_begin; t < d.block_begin + 32; ++t) EXPECT_GE(q.key_end[static_cast<size_t>(t)], d.block_begin);
  }
}

TEST(JointObjective, DrawOrderIsTheDocumentedOne) {
  const TrainRow r = row(iota_ids(80, 0), 10);  // s = 10: blocks at 10, 42, 74 (3 blocks)
  ObjectiveParams p = joint_params();
  SplitMix64 rng(42), ref(42);
  const DiffusionNoise d = draw_diffusion_noise(r, p, rng);
  const int64_t b0 = 10 + 32 * static_cast<int64_t>(ref.next() % 3);
  EXPECT_EQ(d.block_begin, b0);
  const double mask_p = (1 - 1e-3) * ref.uniform() + 1e-3;
  std::vector<int64_t> want;
  for (int64_t j = b0; j < std::min<int64_t>(80, b0 + 32); ++j)
    if (ref.uniform() < mask_p) want.push_back(j);
  if (want.empty()) want.push_back(b0 + static_cast<int64_t>(ref.next() % static_cast<uint64_t>(std::min<int64_t>(80, b0 + 32) - b0)));
  EXPECT_EQ(d.replaced, want);
  EXPECT_EQ(rng.state(), ref.state());
}

TEST(JointObjective, AtLeastOnePositionIsReplaced) {
  const TrainRow r = row({1, 2, 3}, 0);  // s = 1: one block [1, 33) with 2 real positions
  ObjectiveParams p = joint_params();
  p.mask_eps = 0;  // p = t: small t often replaces nothing, then one position is forced
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SplitMix64 rng(seed);
    const DiffusionNoise d = draw_diffusion_noise(r, p, rng);
    EXPECT_EQ(d.block_begin, 1);
    ASSERT_FALSE(d.replaced.empty());
    for (int64_t j : d.replaced) EXPECT_TRUE(j == 1 || j == 2);
  }
}

TEST(JointObjective, BatchWeightsArAndDiffusionSeparately) {
  const TrainRow a = row(iota_ids(10, 0), 0), b = row(iota_ids(6, 50), 2), c = row({7}, 0);
  const TrainRow* rows[] = {&a, &b, &c};
  ObjectiveParams p = joint_params();
  SplitMix64 rng(3), ref(3);
  BatchSequences bs = make_batch_sequences(rows, p, rng, 0.5f);
  // a: ar + diffusion, b: ar + diffusion, c: nothing.
  ASSERT_EQ(bs.seqs.size(), 4u);
  const DiffusionNoise da = draw_diffusion_noise(a, p, ref), db = draw_diffusion_noise(b, p, ref);
  const int64_t replaced = static_cast<int64_t>(da.replaced.size() + db.replaced.size());
  EXPECT_EQ(bs.ar_targets, 9 + 4);
  EXPECT_EQ(bs.noised_targets, replaced);
  EXPECT_EQ(bs.targets, 13 + replaced);
  EXPECT_TRUE(bs.seqs[0].key_end.empty());
  EXPECT_FLOAT_EQ(bs.seqs[0].weight, 0.5f / 13);
  EXPECT_EQ(bs.seqs[1].tokens, diffusion_sequence(a, da, p).tokens);
  EXPECT_EQ(bs.seqs[1].key_end, diffusion_sequence(a, da, p).key_end);
  EXPECT_FLOAT_EQ(bs.seqs[1].weight, 0.5f * 0.3f / static_cast<float>(replaced));
  EXPECT_FLOAT_EQ(bs.seqs[2].weight, 0.5f / 13);
  EXPECT_EQ(bs.seqs[3].targets, diffusion_sequence(b, db, p).targets);
  EXPECT_FLOAT_EQ(bs.seqs[3].weight, 0.5f * 0.3f / static_cast<float>(replaced));
}

ObjectiveParams canvas_params() {
  ObjectiveParams p;
  p.kind = Objective::kCanvas;
  p.canvas_length = 4;
  p.pad_token_id = 0;
  p.vocab_size = 1000;
  p.t_min = 0.4;
  p.t_max = 0.8;
  return p;
}

TEST(CanvasObjective, ChunksOfTheCompletionPaddedWithPad) {
  // prompt [1 2 3], completion [10 .. 15] (6 tokens) → 2 chunks of Lc = 4.
  const TrainRow r = row({1, 2, 3, 10, 11, 12, 13, 14, 15}, 3);
  ObjectiveParams p = canvas_params();
  EXPECT_EQ(canvas_chunk_count(r, p), 2);
  CanvasNoise n;
  n.corrupt = {1, 0, 1, 1};
  n.ids = {500, 0, 501, 502};
  const TrainSequence c0 = canvas_sequence(r, 0, n, p);
  EXPECT_EQ(c0.tokens, (std::vector<int32_t>{1, 2, 3, 500, 11, 501, 502}));
  EXPECT_EQ(c0.targets, (std::vector<int32_t>{-1, -1, -1, 10, -1, 12, 13}));
  EXPECT_EQ(c0.canvas_begin, 3);
  EXPECT_TRUE(c0.key_end.empty());
  const TrainSequence c1 = canvas_sequence(r, 1, n, p);
  EXPECT_EQ(c1.tokens, (std::vector<int32_t>{1, 2, 3, 10, 11, 12, 13, 500, 15, 501, 502}));
  EXPECT_EQ(c1.targets, (std::vector<int32_t>{-1, -1, -1, -1, -1, -1, -1, 14, -1, 0, 0}));  // pads are targets
  EXPECT_EQ(c1.canvas_begin, 7);
  EXPECT_EQ(canvas_chunk_count(row({1, 2, 3}, 3), p), 0);
}

TEST(CanvasObjective, NoiseDrawsAndBatchWeight) {
  ObjectiveParams p = canvas_params();
  SplitMix64 rng(5), ref(5);
  const CanvasNoise n = draw_canvas_noise(p, rng);
  const double t = 0.4 + 0.4 * ref.uniform();
  EXPECT_DOUBLE_EQ(n.t, t);
  for (size_t i = 0; i < 4; ++i) {
    const bool c = ref.uniform() < t;
    EXPECT_EQ(n.corrupt[i], c ? 1 : 0);
    if (c) {
      EXPECT_EQ(n.ids[i], ref.token(1000));
    }
  }
  EXPECT_EQ(rng.state(), ref.state());

  const TrainRow a = row({1, 2, 10, 11, 12, 13, 14}, 2), b = row({3, 20}, 1);
  const TrainRow* rows[] = {&a, &b};
  SplitMix64 r2(9);
  BatchSequences bs = make_batch_sequences(rows, p, r2);
  int64_t corrupted = 0;
  for (const auto& q : bs.seqs)
    for (int32_t t_ : q.targets) corrupted += t_ >= 0;
  EXPECT_EQ(bs.noised_targets, corrupted);
  EXPECT_EQ(bs.targets, corrupted);
  for (const auto& q : bs.seqs) EXPECT_FLOAT_EQ(q.weight, 1.0f / static_cast<float>(std::max<int64_t>(corrupted, 1)));
}

TEST(ObjectiveParams, FromModelInfoAndConfigs) {
  ModelInfo dhara;
  dhara.model_type = "dhara_ar";
  dhara.mask_token_id = 259;
  dhara.block_len = 32;
  dhara.supports_block = true;
  auto j = objective_params(Objective::kJoint, dhara, {}, {});
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->mask_token_id, 259);
  EXPECT_FALSE(objective_params(Objective::kCanvas, dhara, {}, {}).ok());
  EXPECT_EQ(default_objective(dhara), Objective::kAr);

  ModelInfo dg;
  dg.model_type = "diffusion_gemma";
  dg.canvas_length = 16;
  dg.vocab_size = 1024;
  EXPECT_EQ(default_objective(dg), Objective::kCanvas);
  EXPECT_FALSE(objective_params(Objective::kJoint, dg, {}, {}).ok());
  nlohmann::json cfg = {{"text_config", {{"pad_token_id", 3}}}};
  auto c = objective_params(Objective::kCanvas, dg, cfg, {{"t_min", 0.2}, {"t_max", 0.5}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->pad_token_id, 3);
  EXPECT_DOUBLE_EQ(c->t_min, 0.2);
  EXPECT_DOUBLE_EQ(c->t_max, 0.5);
  EXPECT_EQ(c->canvas_length, 16);
  auto d = objective_params(Objective::kCanvas, dg, {{"pad_token_id", 7}}, {{"pad_token_id", 0}});
  EXPECT_EQ(d->pad_token_id, 0);  // generation_config.json first
  EXPECT_DOUBLE_EQ(d->t_min, 0.4);
  EXPECT_FALSE(objective_params(Objective::kCanvas, dg, {{"pad_token_id", "x"}}, {}).ok());

  EXPECT_EQ(*parse_objective("joint"), Objective::kJoint);
  EXPECT_FALSE(parse_objective("diffusion").ok());
}

}  // namespace
}  // namespace optiq
