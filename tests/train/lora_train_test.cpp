// train/lora_train: the loop driven by a scripted fake Trainable (tests/train/fake_trainable.h): the
// exact SGD step, gradient accumulation, checkpoints, progress and validation, and an interrupted run
// resumed from its last checkpoint writing bit for bit what the uninterrupted run writes.
#include "train/lora_train.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/safetensors.h"
#include "tests/test_util.h"
#include "tests/train/fake_trainable.h"
#include "train/batches.h"
#include "train/lora_init.h"
#include "train/train_state.h"

namespace optiq {
namespace {

namespace fs = std::filesystem;

Dataset dataset_of(const std::vector<std::vector<int32_t>>& rows, int64_t offset = 0, const std::string& name = "train.jsonl") {
  Dataset d;
  d.path = name;
  int64_t line = 1;
  for (const auto& t : rows) {
    TrainRow r;
    r.tokens = t;
    r.offset = offset;
    r.full_length = static_cast<int64_t>(t.size());
    r.line = line++;
    d.rows.push_back(r);
  }
  return d;
}

Dataset some_rows(int n, int first = 1) {
  std::vector<std::vector<int32_t>> rows;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> t;
    for (int j = 0; j < 3 + (i * 7) % 11; ++j) t.push_back((first + i * 13 + j * 5) % 250);
    rows.push_back(t);
  }
  return dataset_of(rows);
}

struct TrainRun {
  test::TempDir dir;
  LoraTrainConfig c;
  std::vector<std::string> lines, warnings;
  TrainLog log;
  TrainRun() {
    c.adapter_path = dir.str() + "/out";
    c.model_dir = "fake-model";
    c.data_dir = "fake-data";
    c.steps_per_report = 1000;
    c.save_every = 0;
    log.progress = [this](const std::string& s) { lines.push_back(s); };
    log.warning = [this](const std::string& s) { warnings.push_back(s); };
  }
  std::string out(const std::string& f) const { return c.adapter_path + "/" + f; }
};

Result<LoraTrainResult> train(const test::FakeTrainable& fake, const Dataset& train, const TrainRun& r,
                              const Dataset* valid = nullptr) {
  ThreadPool pool(1);
  auto obj = objective_params(r.c.objective, test::fake_train_info(), {}, {});
  if (!obj.ok()) return obj.status();
  return train_lora(fake, test::fake_train_info(), *obj, train, valid, r.c, pool, r.log);
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double rel_l2(const std::vector<float>& est, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (static_cast<double>(est[i]) - ref[i]) * (static_cast<double>(est[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

// The fixture check of shared/fixtures/lora, model-free: one SGD step from a resume file writes
// init − lr·g with exactly the file's keys, as F32.
TEST(LoraTrain, OneSgdStepFromAResumeFileWritesInitMinusLrGradient) {
  test::FakeTrainable fake;
  TrainRun r;
  auto init = init_lora_adapter(fake.lora_targets(-1), 4, 2.0f, 5);
  for (auto& [n, m] : init->modules)
    for (size_t i = 0; i < m.b.size(); ++i) m.b[i] = 0.01f * static_cast<float>(i % 7);
  const std::string init_path = r.dir.str() + "/init.safetensors";
  ASSERT_TRUE(save_lora_weights(init_path, *init).ok());
  r.c.resume_adapter_file = init_path;
  r.c.optimizer = OptimizerKind::kSgd;
  r.c.learning_rate = 0.58;
  r.c.iters = 1;
  r.c.batch_size = 4;
  r.c.rank = 4;
  r.c.rank_given = true;
  r.c.scale = 2.0f;
  const Dataset data = some_rows(4);
  auto res = train(fake, data, r);
  ASSERT_TRUE(res.ok()) << res.status().ToString();

  // The gradient the fake computes for the whole batch (rows in length order, one mean over targets).
  auto bs = BatchStream::make(data.rows, 4, 0, "t");
  std::vector<const TrainRow*> rows;
  for (int64_t i : bs->batches()[0]) rows.push_back(&data.rows[static_cast<size_t>(i)]);
  SplitMix64 rng(0);
  BatchSequences seqs = make_batch_sequences(rows, objective_params(Objective::kAr, test::fake_train_info(), {}, {}).value(), rng);
  test::FakeTrainable ref;
  LoraAdapter g = init->zeros_like();
  ThreadPool pool(1);
  ASSERT_TRUE(ref.accumulate_lora_gradients(seqs.seqs, *init, g, {}, pool).ok());

  auto written = SafetensorsFile::open(r.out("adapters.safetensors"));
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  auto init_file = SafetensorsFile::open(init_path);
  ASSERT_EQ((*written)->tensors().size(), (*init_file)->tensors().size());
  for (const auto& [name, view] : (*init_file)->tensors()) {
    auto it = (*written)->tensors().find(name);
    ASSERT_NE(it, (*written)->tensors().end()) << name;
    EXPECT_EQ(it->second.dtype, DType::kF32);
    EXPECT_EQ(it->second.shape, view.shape);
    const bool is_a = name.size() > 7 && name.substr(name.size() - 7) == ".lora_a";
    const std::string module = name.substr(0, name.size() - 7);
    const auto& g_ref = is_a ? g.modules.at(module).a : g.modules.at(module).b;
    std::vector<float> g_est(g_ref.size());
    const auto* w0 = static_cast<const float*>(view.data);
    const auto* w1 = static_cast<const float*>(it->second.data);
    for (size_t i = 0; i < g_est.size(); ++i) g_est[i] = static_cast<float>((static_cast<double>(w0[i]) - w1[i]) / 0.58);
    EXPECT_LE(rel_l2(g_est, g_ref), 1e-5) << name;
  }
  EXPECT_EQ(res->steps, 1);
  EXPECT_EQ(fake.log.size(), 1u);
  EXPECT_EQ(fake.log[0].batch.size(), seqs.seqs.size());
}

TEST(LoraTrain, GradientAccumulationAveragesKBatches) {
  test::FakeTrainable fake;
  TrainRun r;
  r.c.iters = 3;
  r.c.batch_size = 2;
  r.c.grad_accumulation_steps = 2;
  const Dataset data = some_rows(6);
  auto res = train(fake, data, r);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  ASSERT_EQ(fake.log.size(), 6u);  // 3 steps × 2 batches
  for (const auto& call : fake.log) {
    int64_t targets = 0;
    for (const auto& q : call.batch)
      for (int32_t t : q.targets) targets += t >= 0;
    for (const auto& q : call.batch) EXPECT_FLOAT_EQ(q.weight, 0.5f / static_cast<float>(targets));
  }
  // 3 batches per pass, 6 draws: every batch twice.
  EXPECT_EQ(res->step_losses.size(), 3u);
}

TEST(LoraTrain, DropoutRateAndAFreshSeedPerBatchReachTheModel) {
  test::FakeTrainable fake;
  TrainRun r;
  r.c.iters = 3;
  r.c.dropout = 0.25f;
  r.c.grad_checkpoint = false;
  ASSERT_TRUE(train(fake, some_rows(3), r).ok());
  ASSERT_EQ(fake.log.size(), 3u);
  for (const auto& call : fake.log) {
    EXPECT_EQ(call.opts.lora_dropout, 0.25f);
    EXPECT_FALSE(call.opts.grad_checkpoint);
  }
  EXPECT_NE(fake.log[0].opts.dropout_seed, fake.log[1].opts.dropout_seed);
  EXPECT_NE(fake.log[1].opts.dropout_seed, fake.log[2].opts.dropout_seed);
}

TEST(LoraTrain, JointObjectiveSendsDiffusionSequences) {
  test::FakeTrainable fake;
  TrainRun r;
  r.c.objective = Objective::kJoint;
  r.c.iters = 2;
  r.c.batch_size = 2;
  ASSERT_TRUE(train(fake, some_rows(4), r).ok());
  int with_key_end = 0;
  for (const auto& call : fake.log)
    for (const auto& q : call.batch) with_key_end += !q.key_end.empty();
  EXPECT_EQ(with_key_end, 4);  // one per row
}

TEST(LoraTrain, CheckpointsConfigAndProgress) {
  test::FakeTrainable fake;
  TrainRun r;
  r.c.iters = 5;
  r.c.save_every = 2;
  r.c.steps_per_report = 2;
  r.c.rank = 3;
  r.c.scale = 1.5f;
  r.c.num_layers = 1;
  auto res = train(fake, some_rows(3), r);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  for (const char* f : {"0000002_adapters.safetensors", "0000004_adapters.safetensors", "adapters.safetensors",
                        "adapter_config.json", "training_state.safetensors"})
    EXPECT_TRUE(fs::exists(r.out(f))) << f;
  EXPECT_FALSE(fs::exists(r.out("0000005_adapters.safetensors")));
  EXPECT_NE(file_bytes(r.out("0000002_adapters.safetensors")), file_bytes(r.out("0000004_adapters.safetensors")));
  // num_layers 1: the last layer's two modules only.
  auto final_ad = load_lora_weights(r.out("adapters.safetensors"));
  ASSERT_TRUE(final_ad.ok());
  EXPECT_EQ(final_ad->modules.size(), 2u);
  EXPECT_TRUE(final_ad->find("model.layers.1.self_attn.q_proj"));
  EXPECT_EQ(final_ad->modules.at("model.layers.1.mlp.down_proj").a, res->adapter.modules.at("model.layers.1.mlp.down_proj").a);

  auto cfg = nlohmann::json::parse(file_bytes(r.out("adapter_config.json")));
  EXPECT_EQ(cfg["fine_tune_type"], "lora");
  EXPECT_EQ(cfg["num_layers"], 1);
  EXPECT_EQ(cfg["lora_parameters"]["rank"], 3);
  EXPECT_EQ(cfg["lora_parameters"]["scale"], 1.5);
  EXPECT_TRUE(cfg["lora_parameters"]["keys"].is_null());
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 3);
  EXPECT_EQ(cfg["lora_alpha"], 4);  // int(3 · 1.5)
  EXPECT_EQ(cfg["target_modules"].get<std::vector<std::string>>(), (std::vector<std::string>{"q_proj", "down_proj"}));
  EXPECT_EQ(cfg["optiq"]["applied_ranks"]["model.layers.1.mlp.down_proj"], 3);
  EXPECT_EQ(cfg["model_type"], "fake_trainable");
  EXPECT_EQ(cfg["iters"], 5);
  // Progress at 2, 4 and the last step, with loss, learning rate, tokens/s, peak memory and ETA.
  int reports = 0;
  for (const auto& l : r.lines) {
    if (l.rfind("Iter ", 0) != 0 || l.find("train loss") == std::string::npos) continue;
    ++reports;
    for (const char* part : {"learning rate 2.000e-04", "tokens/s", "peak memory", "MB", "ETA"})
      EXPECT_NE(l.find(part), std::string::npos) << l;
  }
  EXPECT_EQ(reports, 3);
}

TEST(LoraTrain, ValidationLossAtStartEveryStepsPerEvalAndEnd) {
  test::FakeTrainable fake;
  TrainRun r;
  r.c.iters = 5;
  r.c.steps_per_eval = 2;
  r.c.val_batches = 2;
  const Dataset valid = some_rows(5, 77);
  auto res = train(fake, some_rows(3), r, &valid);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  ASSERT_EQ(res->val_losses.size(), 4u);
  const int64_t steps[] = {0, 2, 4, 5};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(res->val_losses[i].first, steps[i]);
    EXPECT_TRUE(std::isfinite(res->val_losses[i].second));
  }
  EXPECT_NE(res->val_losses.back().second, res->val_losses.front().second);  // the parameters moved
  // 5 training batches + 4 evaluations of 2 batches; evaluations never use dropout.
  EXPECT_EQ(fake.log.size(), 5u + 8u);
}

TEST(LoraTrain, ModelErrorsCarryTheIteration) {
  test::FakeTrainable fake;
  fake.fail_at_call = 3;
  TrainRun r;
  r.c.iters = 5;
  auto res = train(fake, some_rows(2), r);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().message(), "iteration 3: fake: interrupted");
}

TEST(LoraTrain, TooFewRowsForTheBatch) {
  test::FakeTrainable fake;
  TrainRun r;
  r.c.batch_size = 5;
  auto res = train(fake, some_rows(3), r);
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.status().message().find("train.jsonl: 3 row(s), fewer than --batch-size 5"), std::string::npos);
}

// An interrupted run resumed from its last checkpoint ends exactly where the uninterrupted one does,
// with every random stream in play (shuffle across passes, joint noise, dropout, adamw moments).
TEST(LoraTrain, InterruptedRunResumesToTheSameAdapter) {
  auto configure = [](TrainRun& r) {
    r.c.objective = Objective::kJoint;
    r.c.optimizer = OptimizerKind::kAdamW;
    r.c.learning_rate = 0.05;
    r.c.iters = 9;
    r.c.batch_size = 2;
    r.c.grad_accumulation_steps = 2;
    r.c.save_every = 3;
    r.c.dropout = 0.1f;
    r.c.seed = 1234;
  };
  const Dataset data = some_rows(7);  // 3 batches per pass: passes end mid-step

  test::FakeTrainable whole_model;
  TrainRun whole;
  configure(whole);
  auto want = train(whole_model, data, whole);
  ASSERT_TRUE(want.ok()) << want.status().ToString();

  test::FakeTrainable crashing;
  crashing.fail_at_call = 2 * 7 + 2;  // during step 8: the last checkpoint is step 6
  TrainRun cut;
  configure(cut);
  auto broken = train(crashing, data, cut);
  ASSERT_FALSE(broken.ok());
  ASSERT_TRUE(fs::exists(cut.out("0000006_adapters.safetensors")));
  EXPECT_FALSE(fs::exists(cut.out("0000009_adapters.safetensors")));
  auto state = load_train_state(cut.out(kTrainStateFile));
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(state->step, 6);

  test::FakeTrainable resumed_model;
  cut.c.resume = true;
  auto got = train(resumed_model, data, cut);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(resumed_model.log.size(), 3u * 2u);  // steps 7, 8, 9
  EXPECT_EQ(got->steps, 9);
  for (const auto& [name, m] : want->adapter.modules) {
    EXPECT_EQ(got->adapter.modules.at(name).a, m.a) << name;
    EXPECT_EQ(got->adapter.modules.at(name).b, m.b) << name;
  }
  for (const char* f : {"adapters.safetensors", "0000009_adapters.safetensors", "0000006_adapters.safetensors",
                        "training_state.safetensors"})
    EXPECT_EQ(file_bytes(cut.out(f)), file_bytes(whole.out(f))) << f;
  // The steps after the checkpoint saw the same sequences and dropout seeds.
  for (size_t i = 0; i < resumed_model.log.size(); ++i) {
    const auto& a = resumed_model.log[i];
    const auto& b = whole_model.log[12 + i];
    EXPECT_EQ(a.opts.dropout_seed, b.opts.dropout_seed) << i;
    ASSERT_EQ(a.batch.size(), b.batch.size());
    for (size_t j = 0; j < a.batch.size(); ++j) EXPECT_EQ(a.batch[j].tokens, b.batch[j].tokens);
  }
}

TEST(LoraTrain, ResumeNeedsTheSameArgumentsAndAState) {
  test::FakeTrainable fake;
  TrainRun r;
  r.c.iters = 2;
  r.c.resume = true;
  auto none = train(fake, some_rows(2), r);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Status::Code::kNotFound);

  r.c.resume = false;
  ASSERT_TRUE(train(fake, some_rows(2), r).ok());
  r.c.resume = true;
  r.c.learning_rate = 1e-3;
  auto changed = train(fake, some_rows(2), r);
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.status().message().find("learning_rate was 0.0002, now 0.001"), std::string::npos)
      << changed.status().message();
  r.c.learning_rate = 2e-4;
  auto other_data = train(fake, some_rows(2, 5), r);
  ASSERT_FALSE(other_data.ok());
  EXPECT_NE(other_data.status().message().find("train_data"), std::string::npos);
  // More iterations continue the finished run.
  r.c.iters = 4;
  auto more = train(fake, some_rows(2), r);
  ASSERT_TRUE(more.ok()) << more.status().ToString();
  EXPECT_EQ(more->steps, 4);
  EXPECT_EQ(more->step_losses.size(), 2u);
}

TEST(LoraTrain, ArgumentsAreChecked) {
  LoraTrainConfig c;
  c.adapter_path = "x";
  EXPECT_TRUE(validate_train_config(c).ok());
  auto bad = [&](auto edit, const std::string& needle) {
    LoraTrainConfig b = c;
    edit(b);
    const Status s = validate_train_config(b);
    ASSERT_FALSE(s.ok()) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  bad([](LoraTrainConfig& b) { b.iters = 0; }, "--iters");
  bad([](LoraTrainConfig& b) { b.learning_rate = -1; }, "--learning-rate");
  bad([](LoraTrainConfig& b) { b.dropout = 1; }, "--dropout");
  bad([](LoraTrainConfig& b) { b.num_layers = 0; }, "--num-layers");
  bad([](LoraTrainConfig& b) { b.grad_accumulation_steps = 0; }, "--grad-accumulation-steps");
  bad([](LoraTrainConfig& b) { b.resume = true, b.resume_adapter_file = "f"; }, "--resume");
}

TEST(LoraTrain, DefaultsFollowTheObjective) {
  LoraTrainConfig c;
  c.batch_size = 2;
  apply_train_defaults(c, {}, test::fake_train_info(), 9);
  EXPECT_EQ(c.objective, Objective::kAr);
  EXPECT_EQ(c.learning_rate, 2e-4);
  EXPECT_EQ(c.scale, 1.0f);
  EXPECT_EQ(c.iters, 3 * 4);  // 3 passes of 4 batches
  ModelInfo canvas;
  canvas.canvas_length = 16;
  apply_train_defaults(c, {}, canvas, 9);
  EXPECT_EQ(c.objective, Objective::kCanvas);
  EXPECT_EQ(c.learning_rate, 1e-4);
  EXPECT_EQ(c.scale, 8.0f);
  EXPECT_EQ(c.iters, 200);
  LoraTrainGiven given;
  given.scale = 2.0f;
  given.objective = Objective::kJoint;
  apply_train_defaults(c, given, canvas, 9);
  EXPECT_EQ(c.objective, Objective::kJoint);
  EXPECT_EQ(c.scale, 2.0f);
  EXPECT_EQ(c.learning_rate, 2e-4);
}

TEST(LoraTrain, DeriveSeedSeparatesStreams) {
  EXPECT_NE(derive_seed(0, 0), derive_seed(0, 1));
  EXPECT_NE(derive_seed(0, 1), derive_seed(1, 1));
  EXPECT_EQ(derive_seed(7, 3), derive_seed(7, 3));
  EXPECT_GT(peak_rss_bytes(), 0u);
}

}  // namespace
}  // namespace optiq
