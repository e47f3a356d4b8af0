// Full-parameter training (train/full_train.h): the learning-rate schedule, the AdamW step, the token
// stream, and runs on a tiny random dhara: the loss goes down, and a run stopped at step 3 and resumed
// writes the uninterrupted run's files byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <unistd.h>

#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/full_train.h"

namespace optiq {
namespace {

namespace fs = std::filesystem;

std::string tokenizer_dir() { return std::string(OPTIQ_SOURCE_DIR) + "/models/dhara-brown-tiny"; }

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("optiq_full_train_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A 2-layer dhara with the bundled byte tokenizer's vocabulary and mask token, and 24 KB of Brown.
FullTrainConfig tiny_run(const fs::path& dir, const std::string& out) {
  nlohmann::json cfg = {{"architectures", {"DharaARForCausalLM"}}, {"model_type", "dhara_ar"}, {"hidden_size", 64},
                        {"num_hidden_layers", 2}, {"intermediate_size", 128}, {"num_attention_heads", 2},
                        {"num_key_value_heads", 1}, {"head_dim", 32}, {"vocab_size", 260}, {"rms_norm_eps", 1e-6},
                        {"rope_theta", 10000.0}, {"max_position_embeddings", 1024}, {"tie_word_embeddings", true},
                        {"use_qk_norm", true}, {"use_logit_softcap", true}, {"logit_softcap", 30.0},
                        {"canon_set", "ABCD"}, {"canon_kernel", 4}, {"canon_residual", true},
                        {"canon_activation", false}, {"canon_bias", false}, {"mask_token_id", 259},
                        {"bos_token_id", 256}, {"eos_token_id", 258}, {"pad_token_id", 256}, {"torch_dtype", "bfloat16"}};
  std::ofstream(dir / "config.json") << cfg.dump(2);
  std::ifstream brown(test::shared_dir() + "/data/brown.txt", std::ios::binary);
  std::string text(24000, '\0');
  brown.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(brown.gcount()));
  std::ofstream(dir / "train.txt", std::ios::binary) << text;
  FullTrainConfig c;
  c.config_path = (dir / "config.json").string();
  c.data_path = (dir / "train.txt").string();
  c.tokenizer_dir = tokenizer_dir();
  c.out_dir = (dir / out).string();
  c.batch_size = 2;
  c.seq_length = 64;
  c.warmup = 2;
  c.learning_rate = 3e-3;
  c.steps_per_report = 1000;
  c.save_every = 0;
  c.seed = 5;
  return c;
}

TEST(FullTrain, LearningRateWarmsUpThenFollowsTheCosine) {
  FullTrainConfig c;
  c.learning_rate = 1.0;
  c.warmup = 10;
  c.iters = 110;
  c.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(full_train_lr(c, 1), 0.1);
  EXPECT_DOUBLE_EQ(full_train_lr(c, 10), 1.0);
  EXPECT_NEAR(full_train_lr(c, 60), 0.55, 1e-12);  // halfway: min + (1 − min)/2
  EXPECT_NEAR(full_train_lr(c, 110), 0.1, 1e-12);
  c.schedule = LrSchedule::kConstant;
  EXPECT_DOUBLE_EQ(full_train_lr(c, 60), 1.0);
}

TEST(FullTrain, AdamWFirstStepMovesBySignWithBiasCorrection) {
  ParamSet p;
  p["w"] = ParamTensor{{2, 2}, {1.0f, -1.0f, 0.5f, 0.0f}};
  p["norm"] = ParamTensor{{2}, {1.0f, 1.0f}};
  ParamSet g;
  g["w"] = ParamTensor{{2, 2}, {0.3f, -0.2f, 0.0f, 4.0f}};
  g["norm"] = ParamTensor{{2}, {-1.0f, 0.0f}};
  FullOptimizer opt(p);
  const double norm = opt.step(p, g, 1, 0.01, 0.1, 0.0);
  EXPECT_NEAR(norm, std::sqrt(0.09 + 0.04 + 16.0 + 1.0), 1e-6);
  // Step 1 with bias correction: m̂ = g, v̂ = g², update = sign(g) (ε aside); decay on matrices only.
  EXPECT_NEAR(p["w"].data[0], 1.0f - 0.01f * (1.0f + 0.1f * 1.0f), 1e-6);
  EXPECT_NEAR(p["w"].data[1], -1.0f - 0.01f * (-1.0f + 0.1f * -1.0f), 1e-6);
  EXPECT_NEAR(p["w"].data[2], 0.5f - 0.01f * 0.1f * 0.5f, 1e-6);
  EXPECT_NEAR(p["norm"].data[0], 1.0f + 0.01f, 1e-6);
  EXPECT_FLOAT_EQ(p["norm"].data[1], 1.0f);
}

TEST(FullTrain, ClippingScalesTheGradientToTheNorm) {
  ParamSet p;
  p["w"] = ParamTensor{{1, 2}, {0.0f, 0.0f}};
  ParamSet g;
  g["w"] = ParamTensor{{1, 2}, {3.0f, 4.0f}};
  FullOptimizer opt(p);
  EXPECT_NEAR(opt.step(p, g, 1, 0.1, 0.0, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(opt.first_moment()["w"].data[0], 0.1f * 0.6f, 1e-7);
  EXPECT_NEAR(opt.first_moment()["w"].data[1], 0.1f * 0.8f, 1e-7);
}

TEST(FullTrain, TokenStreamJoinsFilesWithEosAndSkipsTails) {
  fs::path d = fresh_dir("stream");
  fs::create_directories(d / "texts");
  std::ofstream(d / "texts" / "b.txt") << "cdXY";
  std::ofstream(d / "texts" / "a.txt") << "abXY";
  auto tok = Tokenizer::from_dir(tokenizer_dir());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto s = load_token_stream((d / "texts").string(), **tok, 258, 2);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<int32_t> want = (*tok)->encode("ab", false);
  want.push_back(258);
  for (int32_t t : (*tok)->encode("cd", false)) want.push_back(t);
  EXPECT_EQ(*s, want);
  EXPECT_EQ(load_token_stream((d / "missing").string(), **tok, 258, 0).status().code(), Status::Code::kNotFound);
  fs::remove_all(d);
}

TEST(FullTrain, ConfigNeedsExactlyOneSource) {
  FullTrainConfig c;
  c.data_path = "x";
  c.out_dir = "y";
  EXPECT_FALSE(validate_full_train_config(c).ok());
  c.config_path = "a";
  EXPECT_TRUE(validate_full_train_config(c).ok());
  c.init_dir = "b";
  EXPECT_FALSE(validate_full_train_config(c).ok());
}

TEST(FullTrain, LossDecreasesOnATinyDhara) {
  fs::path d = fresh_dir("loss");
  FullTrainConfig c = tiny_run(d, "out");
  c.objective = Objective::kJoint;
  c.iters = 40;
  ThreadPool pool(2);
  auto r = run_full_train(c, pool, TrainLog{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->step_losses.size(), 40u);
  const double first = std::accumulate(r->step_losses.begin(), r->step_losses.begin() + 5, 0.0) / 5;
  const double last = std::accumulate(r->step_losses.end() - 5, r->step_losses.end(), 0.0) / 5;
  EXPECT_LT(last, first - 1.0) << "first " << first << " last " << last;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                        "generation_config.json", "training_state.safetensors"})
    EXPECT_TRUE(fs::exists(fs::path(c.out_dir) / f)) << f;
  // The written model loads.
  auto m = load_model(c.out_dir);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  fs::remove_all(d);
}

TEST(FullTrain, ResumedRunEqualsTheUninterruptedOne) {
  fs::path d = fresh_dir("resume");
  ThreadPool pool(2);
  FullTrainConfig straight = tiny_run(d, "straight");
  straight.iters = 6;
  ASSERT_TRUE(run_full_train(straight, pool, TrainLog{}).ok());

  FullTrainConfig part = tiny_run(d, "parts");
  part.iters = 6;
  part.stop_after = 3;
  auto a = run_full_train(part, pool, TrainLog{});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->steps, 3);
  part.stop_after = 0;
  part.resume = true;
  auto b = run_full_train(part, pool, TrainLog{});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->step_losses.size(), 3u);
  for (const char* f : {"model.safetensors", "training_state.safetensors", "config.json"})
    EXPECT_EQ(read_all(fs::path(straight.out_dir) / f), read_all(fs::path(part.out_dir) / f)) << f;

  // Changed arguments refuse to resume.
  part.learning_rate = 1e-3;
  auto bad = run_full_train(part, pool, TrainLog{});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("learning_rate"), std::string::npos) << bad.status().ToString();
  fs::remove_all(d);
}

}  // namespace
}  // namespace optiq
