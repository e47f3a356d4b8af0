// dhara against the independent reference in shared/fixtures (tolerance 2e-3 absolute on logits).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "io/safetensors.h"
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

INSTANTIATE_TEST_SUITE_P(Fixtures, DharaGolden, ::testing::Values("dhara-tiny", "dhara-tiny-mlx"));

}  // namespace
}  // namespace optiq
