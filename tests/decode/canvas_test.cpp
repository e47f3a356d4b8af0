// Canvas diffusion decoding: golden traces from shared/fixtures/dgemma-tiny (tokens and per-step
// accepted positions identical for the recorded seed), and sampler rules on a scripted fake model.
#include "decode/canvas.h"

#include <gtest/gtest.h>

#include <cmath>

#include "io/model_dir.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

using json = nlohmann::json;

std::vector<int32_t> ids(const json& j) {
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
  ThreadPool pool(2);
  auto r = canvas_generate(**m, pool, ids((*g)["prompt_ids"]), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tokens, ids(ref["tokens"]));
  EXPECT_EQ(r->retries, 0);
  ASSERT_EQ(r->canvases.size(), ref["canvases"].size());
  for (size_t c = 0; c < r->canvases.size(); ++c) {
    const json& rc = ref["canvases"][c];
    const CanvasTrace& tc = r->canvases[c];
    EXPECT_EQ(tc.argmax, ids(rc["argmax"])) << "canvas " << c;
    EXPECT_EQ(tc.eos_at, rc["eos_at"].is_null() ? -1 : rc["eos_at"].get<int>()) << "canvas " << c;
    ASSERT_EQ(tc.steps.size(), rc["steps"].size()) << "canvas " << c;
    for (size_t s = 0; s < tc.steps.size(); ++s) {
      EXPECT_EQ(tc.steps[s].accepted, ids(rc["steps"][s]["accepted"])) << "canvas " << c << " step " << s;
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
