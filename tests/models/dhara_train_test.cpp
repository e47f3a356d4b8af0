// dhara's LoRA gradients against the float64 PyTorch references of ../shared/fixtures/lora: the
// model's part of the exact SGD step (the rows' token ids and target ranges come from case.json, so
// this checks the forward/backward alone; tests/cli checks the whole command).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/lora_adapter.h"
#include "models/model.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

struct Case {
  std::vector<TrainSequence> seqs;
  double loss = 0;
};

// L.5: inputs tokens[:-1]; row j−1 predicts token j for max(offset, 1) <= j <= length − 1; one mean
// over all the batch's targets.
Case ar_case(const std::string& dir) {
  std::ifstream f(dir + "/expected/case.json");
  const nlohmann::json c = nlohmann::json::parse(f);
  Case out;
  out.loss = c["loss"].get<double>();
  const double n_targets = c["n_targets"].get<double>();
  for (const auto& row : c["rows"]) {
    const auto tokens = row["tokens"].get<std::vector<int32_t>>();
    const int64_t lo = row["targets"][0].get<int64_t>(), hi = row["targets"][1].get<int64_t>();
    TrainSequence s;
    s.tokens.assign(tokens.begin(), tokens.end() - 1);
    s.targets.assign(s.tokens.size(), -1);
    for (int64_t j = lo; j <= hi; ++j) s.targets[static_cast<size_t>(j - 1)] = tokens[static_cast<size_t>(j)];
    s.weight = static_cast<float>(1.0 / n_targets);
    out.seqs.push_back(std::move(s));
  }
  return out;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

void check_case(const std::string& name, bool grad_checkpoint) {
  const std::string dir = test::fixture("lora/" + name);
  auto model = load_model(test::fixture("dhara-tiny"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const Trainable* tr = (*model)->trainable();
  ASSERT_NE(tr, nullptr);
  auto init = load_lora_weights(dir + "/init/adapters.safetensors");
  ASSERT_TRUE(init.ok()) << init.status().ToString();
  init->scale = 2.0f;  // init/adapter_config.json
  auto ref = load_lora_weights(dir + "/expected/gradients.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  const Case c = ar_case(dir);
  LoraAdapter grads = init->zeros_like();
  ThreadPool pool(2);
  TrainOptions opts;
  opts.grad_checkpoint = grad_checkpoint;
  auto stats = tr->accumulate_lora_gradients(c.seqs, *init, grads, opts, pool);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_NEAR(stats->loss, c.loss, 1e-4 * c.loss);
  double worst = 0;
  for (const auto& [module, g] : grads.modules) {
    const LoraModule* r = ref->find(module);
    ASSERT_NE(r, nullptr) << module;
    const double ea = rel_err(g.a, r->a), eb = rel_err(g.b, r->b);
    EXPECT_LE(ea, 1e-3) << module << ".lora_a";
    EXPECT_LE(eb, 1e-3) << module << ".lora_b";
    worst = std::max({worst, ea, eb});
  }
  std::printf("%s: loss %.9f (ref %.9f), worst relative L2 error %.3g\n", name.c_str(), stats->loss, c.loss, worst);
}

TEST(DharaTrain, TextRowsGradientMatchesReference) { check_case("dhara-tiny-text", true); }
TEST(DharaTrain, CompletionRowsGradientMatchesReference) { check_case("dhara-tiny-completion", true); }
TEST(DharaTrain, WithoutCheckpointingSameGradient) { check_case("dhara-tiny-text", false); }

}  // namespace
}  // namespace optiq
