// Canvas diffusion decoding: golden traces from shared/fixtures/dgemma-tiny (tokens and per-step
// accepted positions identical for the recorded seed), and sampler rules on a scripted fake model.
#include "decode/canvas.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include "io/model_dir.h"
#include "tests/decode/fake_model.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

using json = nlohmann::json;

std::vector<int32_t> ids_of(const json& j) {
  std::vector<int32_t> v;
  for (auto& e : j) v.push_back(e.get<int32_t>());
  return v;
}

void expect_matches_golden(const char* key, CanvasSampler sampler) {
  const std::string dir = test::fixture("dgemma-tiny");
  auto g = read_json_file(dir + "/golden.json");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto md = ModelDir::open(dir);
  ASSERT_TRUE(md.ok());
  auto opts = canvas_options_from_generation_config((*md)->generation_config);
  ASSERT_TRUE(opts.ok()) << opts.status().ToString();
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const json& ref = (*g)[key];
  CanvasOptions o = *opts;
  o.sampler = sampler;
  o.seed = ref["seed"].get<uint64_t>();
  o.max_new_tokens = ref["max_new_tokens"].get<int64_t>();
  if (ref.contains("tau")) o.threshold = ref["tau"].get<double>();
  ThreadPool pool(1);  // many small forwards: a spinning second thread only adds noise on a busy host
  auto r = canvas_generate(**m, pool, ids_of((*g)["prompt_ids"]), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tokens, ids_of(ref["tokens"]));
  EXPECT_EQ(r->retries, 0);
  ASSERT_EQ(r->canvases.size(), ref["canvases"].size());
  for (size_t c = 0; c < r->canvases.size(); ++c) {
    const json& rc = ref["canvases"][c];
    const CanvasTrace& tc = r->canvases[c];
    EXPECT_EQ(tc.argmax, ids_of(rc["argmax"])) << "canvas " << c;
    EXPECT_EQ(tc.eos_at, rc["eos_at"].is_null() ? -1 : rc["eos_at"].get<int>()) << "canvas " << c;
    ASSERT_EQ(tc.steps.size(), rc["steps"].size()) << "canvas " << c;
    for (size_t s = 0; s < tc.steps.size(); ++s) {
      EXPECT_EQ(tc.steps[s].accepted, ids_of(rc["steps"][s]["accepted"])) << "canvas " << c << " step " << s;
      EXPECT_EQ(tc.steps[s].argmax_changed, rc["steps"][s]["argmax_changed"].get<bool>())
          << "canvas " << c << " step " << s;
    }
  }
}

TEST(CanvasGolden, EntropyBoundTrace) { expect_matches_golden("entropy_bound", CanvasSampler::kEntropyBound); }
TEST(CanvasGolden, ConfidenceThresholdTrace) {
  expect_matches_golden("confidence_threshold", CanvasSampler::kConfidenceThreshold);
}

}  // namespace
}  // namespace optiq

namespace optiq {
namespace {

// A scripted canvas model (tests/decode/fake_model.h): decoder (kFull) steps get logits from a
// callback given the step index within the run and the canvas tokens; encoder forwards get zeros.
using LogitsFn = std::function<void(int, const std::vector<int32_t>&, float*)>;

class FakeCanvasModel {
 public:
  FakeCanvasModel(int L, int V, LogitsFn fn) : model_(info(L, V), script(V, std::move(fn))) {}
  operator const Model&() const { return model_; }
  const std::vector<test::FakeCall>& calls() const { return model_.calls; }
  int64_t decoder_calls() const {
    return std::count_if(calls().begin(), calls().end(), [](auto& c) { return c.mask == MaskMode::kFull; });
  }

 private:
  static ModelInfo info(int L, int V) {
    ModelInfo i;
    i.model_type = "fake_canvas";
    i.vocab_size = V;
    i.canvas_length = L;
    i.eos_ids = {1};
    return i;
  }
  static test::FakeModel::ChunkScript script(int V, LogitsFn fn) {
    auto step = std::make_shared<int>(0);
    return [=](const test::FakeCall& c, float* out) {
      if (c.mask == MaskMode::kFull) {
        EXPECT_FALSE(c.write_cache);
        fn((*step)++, c.tokens, out);
      } else {
        std::fill(out, out + c.tokens.size() * V, 0.f);
      }
    };
  }
  test::FakeModel model_;
};

// Row with a single dominant token `tok` (logit `hi`, others 0).
void peaked(float* row, int V, int tok, float hi) {
  for (int v = 0; v < V; ++v) row[v] = 0.f;
  row[tok] = hi;
}

CanvasOptions fake_opts(CanvasSampler s) {
  CanvasOptions o;
  o.sampler = s;
  o.max_steps = 6;
  o.max_new_tokens = 4;
  o.seed = 5;
  o.t_min = o.t_max = 1.0;  // z = raw logits
  return o;
}

TEST(CanvasConfidence, RevealsAboveThresholdElseMostConfidentAndFreezes) {
  const int L = 4, V = 8;
  // Step 0: positions 0 and 2 are confident (token 3, 5); 1 and 3 are flat-ish with position 3
  // slightly more confident. Step 1: nothing reaches τ, so only position 3 is revealed.
  // Step 2: everything confident → remaining position 1 revealed; all revealed → stop.
  FakeCanvasModel m(L, V, [&](int step, const std::vector<int32_t>&, float* out) {
    const float hi = 20.f;
    peaked(out + 0 * V, V, 3, hi);
    peaked(out + 2 * V, V, 5, hi);
    if (step < 2) {
      peaked(out + 1 * V, V, 6, 0.5f);
      peaked(out + 3 * V, V, 7, 1.0f);
    } else {
      peaked(out + 1 * V, V, 6, hi);
      peaked(out + 3 * V, V, 7, hi);
    }
  });
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2, 4};
  auto r = canvas_generate(m, pool, prompt, fake_opts(CanvasSampler::kConfidenceThreshold));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->canvases.size(), 1u);
  const auto& steps = r->canvases[0].steps;
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].accepted, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(steps[1].accepted, (std::vector<int32_t>{3}));
  EXPECT_EQ(steps[2].accepted, (std::vector<int32_t>{1}));
  EXPECT_EQ(r->tokens, (std::vector<int32_t>{3, 6, 5, 7}));
  // Calls: prefill, then 3 decoder steps; revealed positions are frozen in later inputs.
  ASSERT_EQ(m.calls().size(), 4u);
  EXPECT_EQ(m.calls()[0].mask, MaskMode::kCausal);
  EXPECT_TRUE(m.calls()[0].write_cache);
  EXPECT_EQ(m.calls()[2].tokens[0], 3);
  EXPECT_EQ(m.calls()[2].tokens[2], 5);
  EXPECT_EQ(m.calls()[3].tokens[3], 7);
  for (size_t i = 1; i < m.calls().size(); ++i) {
    EXPECT_EQ(m.calls()[i].mask, MaskMode::kFull);
    EXPECT_EQ(m.calls()[i].pos0, 2);
  }
  // Self-conditioning: none at the first step, the previous step's z afterwards.
  EXPECT_TRUE(m.calls()[1].self_condition.empty());
  ASSERT_EQ(m.calls()[2].self_condition.size(), static_cast<size_t>(L * V));
  EXPECT_EQ(m.calls()[2].self_condition[0 * V + 3], 20.f);
  EXPECT_EQ(r->decoder_forwards, 3);
  EXPECT_EQ(r->retries, 0);
}

TEST(CanvasEntropyBound, AcceptsLowEntropyWithinBudgetAndStopsWhenStableAndConfident) {
  const int L = 4, V = 8;
  // All rows extremely peaked → entropies ≈ 0: every position fits the budget; argmax is stable
  // from step 2 on with mean entropy < 0.005, so the canvas stops after two steps.
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, 2 + i, 40.f);
  });
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2};
  auto r = canvas_generate(m, pool, prompt, fake_opts(CanvasSampler::kEntropyBound));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& steps = r->canvases[0].steps;
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_TRUE(steps[0].argmax_changed);
  EXPECT_FALSE(steps[1].argmax_changed);
  EXPECT_EQ(steps[0].accepted, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(r->tokens, (std::vector<int32_t>{2, 3, 4, 5}));
  // Accepted positions keep their (here certain) samples as the next step's input.
  EXPECT_EQ(m.calls()[2].tokens, (std::vector<int32_t>{2, 3, 4, 5}));
}

TEST(CanvasEntropyBound, BudgetStopsAfterSumOfLowerEntropiesExceedsGamma) {
  const int L = 4, V = 8;
  // Rows 1 and 3 are uniform (entropy ln 8 ≈ 2.08): the lowest of them is still accepted only if
  // the entropies ranked before it sum to ≤ γ. Rows 0 and 2 have ~0 entropy.
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    peaked(out + 0 * V, V, 3, 40.f);
    for (int v = 0; v < V; ++v) out[1 * V + v] = 0.f;
    peaked(out + 2 * V, V, 4, 40.f);
    for (int v = 0; v < V; ++v) out[3 * V + v] = 0.f;
  });
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2};
  CanvasOptions o = fake_opts(CanvasSampler::kEntropyBound);
  o.max_steps = 1;
  auto r = canvas_generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok());
  // Ranked: 0, 2 (≈0), then 1 (sum before ≈ 0 ≤ γ → accepted), then 3 (sum before ≈ 2.08 > γ).
  EXPECT_EQ(r->canvases[0].steps[0].accepted, (std::vector<int32_t>{0, 1, 2}));
}

// The temperature falls from t_max to t_min over the steps (temp = t_min + (t_max − t_min) ·
// remaining / max_steps), so the same raw logits grow more confident step by step: with τ = 0.9 and a
// margin of 3 in 8 tokens, p_max is 0.74, 0.82, 0.89 at temperatures 1, 0.875, 0.75 (one position
// revealed per step, the first most confident) and 0.95 at 0.625, which reveals the rest. Each
// step's self-conditioning input is the previous step's scaled logits.
TEST(CanvasConfidence, TemperatureScheduleScalesLogitsAndSelfConditioning) {
  const int L = 4, V = 8;
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, 2 + i, 3.f);
  });
  ThreadPool pool(1);
  CanvasOptions o = fake_opts(CanvasSampler::kConfidenceThreshold);
  o.t_min = 0.5;
  o.t_max = 1.0;
  o.max_steps = 4;
  auto r = canvas_generate(m, pool, std::vector<int32_t>{2}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& steps = r->canvases[0].steps;
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].accepted, std::vector<int32_t>{0});
  EXPECT_EQ(steps[1].accepted, std::vector<int32_t>{1});
  EXPECT_EQ(steps[2].accepted, std::vector<int32_t>{2});
  EXPECT_EQ(steps[3].accepted, std::vector<int32_t>{3});
  ASSERT_EQ(m.calls().size(), 5u);
  const double temps[] = {1.0, 0.875, 0.75};
  for (int s = 0; s < 3; ++s)
    for (int i = 0; i < L; ++i)
      EXPECT_FLOAT_EQ(m.calls()[2 + s].self_condition[i * V + 2 + i], static_cast<float>(3.0 / temps[s]))
          << "step " << s + 1 << " row " << i;
}

// stability_threshold counts consecutive unchanged argmax canvases: with 2, a canvas that is stable and
// confident from its second step stops after its third.
TEST(CanvasEntropyBound, StabilityThresholdCountsUnchangedSteps) {
  const int L = 4, V = 8;
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, 2 + i, 40.f);
  });
  ThreadPool pool(1);
  CanvasOptions o = fake_opts(CanvasSampler::kEntropyBound);
  o.stability_threshold = 2;
  auto r = canvas_generate(m, pool, std::vector<int32_t>{2}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& steps = r->canvases[0].steps;
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_TRUE(steps[0].argmax_changed);
  EXPECT_FALSE(steps[1].argmax_changed);
  EXPECT_FALSE(steps[2].argmax_changed);
}

TEST(CanvasGenerate, CutsAtFirstEosWithoutCommitting) {
  const int L = 4, V = 8;
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    const int toks[4] = {5, 6, 1, 7};  // EOS (1) at position 2
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, toks[i], 40.f);
  });
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2};
  CanvasOptions o = fake_opts(CanvasSampler::kConfidenceThreshold);
  o.max_new_tokens = 100;
  auto r = canvas_generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens, (std::vector<int32_t>{5, 6}));
  ASSERT_EQ(r->canvases.size(), 1u);
  EXPECT_EQ(r->canvases[0].eos_at, 2);
  EXPECT_EQ(r->encoder_forwards, 1);  // the prompt only: nothing committed after EOS
}

TEST(CanvasGenerate, SeveralCanvasesCommitArgmaxAndCutToMaxTokens) {
  const int L = 4, V = 8;
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, 2 + i, 40.f);
  });
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2, 3, 4};
  CanvasOptions o = fake_opts(CanvasSampler::kConfidenceThreshold);
  o.max_new_tokens = 6;
  auto r = canvas_generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens, (std::vector<int32_t>{2, 3, 4, 5, 2, 3}));
  ASSERT_EQ(r->canvases.size(), 2u);
  // One commit: kCausal, writing, the first argmax canvas at positions P..P+L−1.
  int commits = 0;
  for (auto& c : m.calls())
    if (c.mask == MaskMode::kCausal && c.pos0 == 3) {
      ++commits;
      EXPECT_TRUE(c.write_cache);
      EXPECT_EQ(c.tokens, (std::vector<int32_t>{2, 3, 4, 5}));
    }
  EXPECT_EQ(commits, 1);
  EXPECT_EQ(m.calls().back().pos0, 7);  // the second canvas decodes after the committed one
}

TEST(CanvasGenerate, RetriesEmptyRepliesWithNextSeeds) {
  const int L = 4, V = 8;
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, 1, 40.f);  // always EOS first
  });
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2};
  CanvasOptions o = fake_opts(CanvasSampler::kConfidenceThreshold);
  auto r = canvas_generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->tokens.empty());
  EXPECT_EQ(r->retries, 3);
  EXPECT_EQ(r->seed_used, o.seed + 3);
  EXPECT_EQ(r->encoder_forwards, 1);  // the prompt prefill is reused across retries
}

TEST(CanvasGenerate, CallerStopEndsWithoutRetrying) {
  const int L = 4, V = 8;
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, 1, 40.f);  // always EOS first: an empty reply
  });
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2};
  CanvasOptions o = fake_opts(CanvasSampler::kConfidenceThreshold);
  // A caller that wants no more after the first canvas gets no retries with other seeds.
  int canvases = 0;
  auto r = canvas_generate(m, pool, prompt, o, nullptr, [&](const CanvasTrace&) { return ++canvases < 1; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(canvases, 1);
  EXPECT_EQ(r->retries, 0);
  EXPECT_EQ(r->seed_used, o.seed);
}

TEST(CanvasGenerate, CancelPollStopsBeforeTheNextDenoisingStep) {
  const int L = 4, V = 8;
  FakeCanvasModel m(L, V, [&](int, const std::vector<int32_t>&, float* out) {
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, 2 + i, 1.f);  // unconfident: never all revealed
  });
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2};
  CanvasOptions o = fake_opts(CanvasSampler::kEntropyBound);
  o.max_steps = 50;
  o.max_new_tokens = 100;
  int polls = 0;
  auto r = canvas_generate(m, pool, prompt, o, nullptr, nullptr, [&] { return ++polls > 3; });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(polls, 4);
  EXPECT_EQ(r->decoder_forwards, 3);  // the fourth step never ran
  EXPECT_EQ(m.decoder_calls(), 3);
  EXPECT_TRUE(r->canvases.empty());   // the abandoned canvas is not reported
  EXPECT_TRUE(r->tokens.empty());
  EXPECT_EQ(r->retries, 0);           // an empty result after a cancel is not retried
}

TEST(CanvasGenerate, SameSeedSameRunDifferentSeedDifferentCanvas) {
  const int L = 4, V = 64;
  // Logits depend on the input tokens, so the random initial canvas shows in the output.
  auto fn = [&](int, const std::vector<int32_t>& toks, float* out) {
    for (int i = 0; i < L; ++i) peaked(out + i * V, V, 2 + toks[i] % 60, 3.f);
  };
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2};
  CanvasOptions o = fake_opts(CanvasSampler::kEntropyBound);
  FakeCanvasModel a(L, V, fn), b(L, V, fn), c(L, V, fn);
  auto ra = canvas_generate(a, pool, prompt, o);
  auto rb = canvas_generate(b, pool, prompt, o);
  o.seed += 1;
  auto rc = canvas_generate(c, pool, prompt, o);
  ASSERT_TRUE(ra.ok() && rb.ok() && rc.ok());
  EXPECT_EQ(canvas_result_to_json(*ra), canvas_result_to_json(*rb));
  EXPECT_NE(a.calls()[1].tokens, c.calls()[1].tokens);
}

TEST(CanvasOptionsTest, FromGenerationConfigAndErrors) {
  auto o = canvas_options_from_generation_config(nlohmann::json::parse(
      R"({"max_new_tokens": 32, "max_denoising_steps": 12, "t_min": 0.3, "t_max": 0.9,
          "sampler_config": {"entropy_bound": 0.2}, "stability_threshold": 2,
          "confidence_threshold": 0.01, "eos_token_id": [1, 106, 50]})"));
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->max_new_tokens, 32);
  EXPECT_EQ(o->max_steps, 12);
  EXPECT_DOUBLE_EQ(o->t_min, 0.3);
  EXPECT_DOUBLE_EQ(o->entropy_bound, 0.2);
  EXPECT_EQ(o->stability_threshold, 2);
  EXPECT_TRUE(o->eos_ids.empty());  // the model's union of config and generation_config ids
  EXPECT_FALSE(canvas_options_from_generation_config(nlohmann::json::parse(R"({"t_min": "x"})")).ok());
  EXPECT_FALSE(canvas_options_from_generation_config(nlohmann::json::parse(R"({"max_denoising_steps": 0})")).ok());
  EXPECT_TRUE(parse_canvas_sampler("entropy-bound").ok());
  EXPECT_FALSE(parse_canvas_sampler("greedy").ok());
}

TEST(CanvasGenerate, RejectsBadArguments) {
  FakeCanvasModel m(4, 8, [](int, const std::vector<int32_t>&, float*) {});
  ThreadPool pool(1);
  std::vector<int32_t> empty, prompt{2};
  EXPECT_FALSE(canvas_generate(m, pool, empty, fake_opts(CanvasSampler::kEntropyBound)).ok());
  CanvasOptions o = fake_opts(CanvasSampler::kEntropyBound);
  o.max_steps = 0;
  EXPECT_FALSE(canvas_generate(m, pool, prompt, o).ok());
  o = fake_opts(CanvasSampler::kConfidenceThreshold);
  o.threshold = 1.5;
  EXPECT_FALSE(canvas_generate(m, pool, prompt, o).ok());
}

TEST(ExpandImagePrompt, ExpandsPlaceholdersWithDelimitersAndRows) {
  ModelInfo info;
  info.model_type = "x";
  info.hidden_size = 2;
  info.image_token_id = 9;
  info.boi_token_id = 8;
  info.eoi_token_id = 7;
  ImageEmbedding im;
  im.n_tokens = 2;
  im.embeds = {1, 2, 3, 4};
  std::vector<int32_t> ids{2, 9, 5};
  PromptEmbeds pe;
  auto r = expand_image_prompt(ids, info, std::span<const ImageEmbedding>(&im, 1), &pe);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (std::vector<int32_t>{2, 8, 9, 9, 7, 5}));
  EXPECT_EQ(pe.override_rows, (std::vector<bool>{false, false, true, true, false, false}));
  EXPECT_EQ(pe.embeds[2 * 2 + 0], 1.f);
  EXPECT_EQ(pe.embeds[3 * 2 + 1], 4.f);
  // Placeholder count must match the images.
  std::vector<int32_t> two{9, 9};
  EXPECT_FALSE(expand_image_prompt(two, info, std::span<const ImageEmbedding>(&im, 1), &pe).ok());
}

}  // namespace
}  // namespace optiq

namespace optiq {
namespace {

// The path the CLI and server take for an image prompt: embed_image → expand_image_prompt →
// canvas_generate. The expansion reproduces the fixture's mm_prompt_ids, and the run is
// reproducible for a seed.
TEST(CanvasImagePrompt, ImagePromptExpandsAndGenerates) {
  const std::string dir = test::fixture("dgemma-tiny");
  auto g = read_json_file(dir + "/golden.json");
  ASSERT_TRUE(g.ok());
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const ModelInfo& info = (*m)->info();
  std::ifstream in(dir + "/image_24x24_rgb8.bin", std::ios::binary);
  std::vector<uint8_t> rgb((std::istreambuf_iterator<char>(in)), {});
  ThreadPool pool(1);
  auto img = (*m)->embed_image(rgb, 24, 24, pool);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  // mm_prompt_ids with its boi + 4 × image + eoi block collapsed to one placeholder.
  std::vector<int32_t> ids;
  for (auto& e : (*g)["mm_prompt_ids"]) {
    const int32_t t = e.get<int32_t>();
    if (t == info.boi_token_id || t == info.eoi_token_id) continue;
    if (t == info.image_token_id && !ids.empty() && ids.back() == t) continue;
    ids.push_back(t);
  }
  PromptEmbeds pe;
  auto expanded = expand_image_prompt(ids, info, std::span<const ImageEmbedding>(&*img, 1), &pe);
  ASSERT_TRUE(expanded.ok()) << expanded.status().ToString();
  EXPECT_EQ(*expanded, ids_of((*g)["mm_prompt_ids"]));
  CanvasOptions o;
  o.sampler = CanvasSampler::kConfidenceThreshold;
  o.max_steps = 12;
  o.max_new_tokens = 20;
  o.seed = 3;
  auto r1 = canvas_generate(**m, pool, *expanded, o, &pe);
  auto r2 = canvas_generate(**m, pool, *expanded, o, &pe);
  ASSERT_TRUE(r1.ok() && r2.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->tokens, r2->tokens);
  EXPECT_LE(r1->tokens.size(), 20u);
  EXPECT_EQ(r1->prompt_tokens, static_cast<int64_t>(expanded->size()));
  // The image changes the reply's context: the same ids without soft tokens decode differently.
  PromptEmbeds zero = pe;
  std::fill(zero.embeds.begin(), zero.embeds.end(), 0.f);
  auto r3 = canvas_generate(**m, pool, *expanded, o, &zero);
  ASSERT_TRUE(r3.ok());
  EXPECT_NE(canvas_result_to_json(*r1)["canvases"], canvas_result_to_json(*r3)["canvases"]);
}

}  // namespace
}  // namespace optiq
