// dhara against the independent reference in shared/fixtures (tolerance 2e-3 absolute on logits).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "io/safetensors.h"
#include "decode/generate.h"
#include "models/model.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

struct Golden {
  nlohmann::json j;
  std::unique_ptr<SafetensorsFile> st;
  std::vector<int32_t> prompt;
};

Golden load_golden(const std::string& dir) {
  Golden g;
  auto j = read_json_file(dir + "/golden.json");
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  g.j = *j;
  auto st = SafetensorsFile::open(dir + "/golden.safetensors");
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  g.st = std::move(st.value());
  for (auto& v : g.j["prompt_ids"]) g.prompt.push_back(v.get<int32_t>());
  return g;
}

double max_abs_diff(const float* a, const TensorView& ref) {
  std::vector<float> r(static_cast<size_t>(ref.numel()));
  convert_to_f32(ref.dtype, ref.data, r.data(), r.size());
  double m = 0;
  for (size_t i = 0; i < r.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - r[i]));
  return m;
}

class DharaGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(DharaGolden, CausalPromptLogits) {
  const std::string dir = test::fixture(GetParam());
  Golden g = load_golden(dir);
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ThreadPool pool(2);
  auto cache = (*m)->make_cache(512);
  const int64_t V = (*m)->info().vocab_size;
  std::vector<float> logits(g.prompt.size() * V);
  ForwardBatch b;
  b.tokens = g.prompt;
  ASSERT_TRUE((*m)->forward(b, *cache, logits.data(), pool).ok());
  const TensorView& ref = g.st->tensors().at("causal_prompt");
  ASSERT_EQ(ref.numel(), static_cast<int64_t>(logits.size()));
  const double diff = max_abs_diff(logits.data(), ref);
  std::printf("causal_prompt max |diff| = %.3g\n", diff);
  EXPECT_LE(diff, 2e-3);
}

// block_first_step: block-causal prefill, then 32 mask tokens under the global block mask.
TEST_P(DharaGolden, BlockFirstStepLogits) {
  const std::string dir = test::fixture(GetParam());
  Golden g = load_golden(dir);
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ThreadPool pool(2);
  const Model& model = **m;
  auto cache = model.make_cache(512);
  const int64_t V = model.info().vocab_size;
  const int B = g.j["block_len"].get<int>();
  std::vector<float> logits(static_cast<size_t>(B) * V);
  ForwardBatch pre;
  pre.tokens = g.prompt;
  pre.mask = MaskMode::kBlock;
  pre.block_len = B;
  pre.last_logits_only = true;
  ASSERT_TRUE(model.forward(pre, *cache, logits.data(), pool).ok());
  std::vector<int32_t> block(static_cast<size_t>(B), g.j["mask_token_id"].get<int32_t>());
  ForwardBatch step;
  step.tokens = block;
  step.pos0 = cache->length();
  step.mask = MaskMode::kBlock;
  step.block_len = B;
  step.write_cache = false;
  ASSERT_TRUE(model.forward(step, *cache, logits.data(), pool).ok());
  EXPECT_EQ(cache->length(), static_cast<int64_t>(g.prompt.size()));  // read-only step
  const double diff = max_abs_diff(logits.data(), g.st->tensors().at("block_first_step"));
  std::printf("block_first_step max |diff| = %.3g\n", diff);
  EXPECT_LE(diff, 2e-3);
}

// draft_after_causal_prefill: causal prefill, then [anchor] + 7 masks under the global block mask.
TEST_P(DharaGolden, DraftAfterCausalPrefillLogits) {
  const std::string dir = test::fixture(GetParam());
  Golden g = load_golden(dir);
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ThreadPool pool(2);
  const Model& model = **m;
  auto cache = model.make_cache(512);
  const int64_t V = model.info().vocab_size;
  const TensorView& ref = g.st->tensors().at("draft_after_causal_prefill");
  const int k = static_cast<int>(ref.shape[0]);
  std::vector<float> logits(static_cast<size_t>(k) * V);
  ForwardBatch pre;
  pre.tokens = g.prompt;
  pre.last_logits_only = true;
  ASSERT_TRUE(model.forward(pre, *cache, logits.data(), pool).ok());
  // anchor = greedy AR next token with repetition penalty 1.3 over the prompt.
  SeenTokens seen(V);
  seen.add(g.prompt);
  apply_repetition_penalty(logits.data(), seen.ids(), 1.3f);
  const int32_t anchor = argmax(logits.data(), V);
  EXPECT_EQ(anchor, g.j["ar_greedy"]["tokens"][0].get<int32_t>());
  std::vector<int32_t> draft(static_cast<size_t>(k), g.j["mask_token_id"].get<int32_t>());
  draft[0] = anchor;
  ForwardBatch d;
  d.tokens = draft;
  d.pos0 = cache->length();
  d.mask = MaskMode::kBlock;
  d.block_len = g.j["block_len"].get<int>();
  d.write_cache = false;
  ASSERT_TRUE(model.forward(d, *cache, logits.data(), pool).ok());
  const double diff = max_abs_diff(logits.data(), ref);
  std::printf("draft_after_causal_prefill max |diff| = %.3g\n", diff);
  EXPECT_LE(diff, 2e-3);
}

std::vector<int32_t> ids_of(const nlohmann::json& a) {
  std::vector<int32_t> v;
  for (auto& x : a) v.push_back(x.get<int32_t>());
  return v;
}

GenerateResult run_trace(const std::string& dir, const nlohmann::json& trace, DecodeMode mode, const Golden& g) {
  auto m = load_model(dir);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  ThreadPool pool(2);
  GenerateOptions o;
  o.mode = mode;
  o.max_new_tokens = trace["max_new_tokens"].get<int>();
  o.sampling.repetition_penalty = trace["repetition_penalty"].get<float>();
  if (trace.contains("threshold")) o.threshold = trace["threshold"].get<float>();
  if (trace.contains("block_len")) o.block_len = trace["block_len"].get<int>();
  if (trace.contains("draft_len")) o.draft_len = trace["draft_len"].get<int>();
  o.stop_ids = {g.j["stop_token_id"].get<int32_t>()};
  auto r = generate(**m, pool, g.prompt, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : GenerateResult{};
}

TEST_P(DharaGolden, ArGreedyTraces) {
  const std::string dir = test::fixture(GetParam());
  Golden g = load_golden(dir);
  for (const char* name : {"ar_greedy", "ar_greedy_no_penalty"}) {
    auto r = run_trace(dir, g.j[name], DecodeMode::kAR, g);
    EXPECT_EQ(r.tokens, ids_of(g.j[name]["tokens"])) << name;
  }
}

TEST_P(DharaGolden, BlockDiffusionTrace) {
  const std::string dir = test::fixture(GetParam());
  Golden g = load_golden(dir);
  const auto& t = g.j["block_diffusion"];
  auto r = run_trace(dir, t, DecodeMode::kDiffusion, g);
  EXPECT_EQ(r.tokens, ids_of(t["tokens"]));
  std::vector<std::vector<std::vector<int>>> expect = t["committed_per_step"].get<decltype(expect)>();
  EXPECT_EQ(r.committed_per_step, expect);
}

TEST_P(DharaGolden, SelfSpeculationTrace) {
  const std::string dir = test::fixture(GetParam());
  Golden g = load_golden(dir);
  const auto& t = g.j["self_speculation"];
  auto r = run_trace(dir, t, DecodeMode::kSelfSpec, g);
  EXPECT_EQ(r.tokens, ids_of(t["tokens"]));
  EXPECT_EQ(r.accepted_per_round, t["accepted_per_round"].get<std::vector<int>>());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DharaGolden, ::testing::Values("dhara-tiny", "dhara-tiny-mlx"));

}  // namespace
}  // namespace optiq
