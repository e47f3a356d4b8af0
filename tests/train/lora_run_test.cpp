// train/lora_run: run_lora_train from directories (the checks before any step: data errors with file and
// line, adapters for another model, untrainable models) and adapter_config.json.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "train/lora_init.h"
#include "train/lora_train.h"

namespace optiq {
namespace {

namespace fs = std::filesystem;

struct Dirs {
  test::TempDir tmp;
  LoraTrainConfig c;
  Dirs() {
    c.model_dir = test::fixture("dhara-tiny");
    c.data_dir = tmp.str() + "/data";
    c.adapter_path = tmp.str() + "/out";
    fs::create_directories(c.data_dir);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(c.data_dir + "/" + name, std::ios::binary) << text;
  }
};

Status run(const LoraTrainConfig& c, LoraTrainGiven given = {}) {
  ThreadPool pool(1);
  auto r = run_lora_train(c, given, pool, {});
  return r.ok() ? Status::Ok() : r.status();
}

TEST(LoraRun, MalformedTrainingDataNamesFileAndLine) {
  Dirs d;
  d.write("train.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\",}\n");
  const Status s = run(d.c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(d.c.data_dir + "/train.jsonl:2: invalid JSON"), std::string::npos) << s.ToString();
}

TEST(LoraRun, MalformedValidationDataIsCheckedBeforeTraining) {
  Dirs d;
  d.write("train.jsonl", "{\"text\": \"a\"}\n");
  d.write("valid.jsonl", "{\"prompt\": \"a\"}\n");
  const Status s = run(d.c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("valid.jsonl:1: unknown row format"), std::string::npos) << s.ToString();
}

TEST(LoraRun, MissingDataAndEmptyFile) {
  Dirs d;
  Status s = run(d.c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("train.jsonl: no such file"), std::string::npos) << s.ToString();
  d.write("train.jsonl", "");
  s = run(d.c);
  EXPECT_NE(s.message().find("train.jsonl: no rows"), std::string::npos) << s.ToString();
  d.c.data_dir = d.tmp.str() + "/nowhere";
  s = run(d.c);
  EXPECT_NE(s.message().find("no such data directory"), std::string::npos) << s.ToString();
}

TEST(LoraRun, FewerRowsThanTheBatch) {
  Dirs d;
  d.write("train.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
  d.c.batch_size = 4;
  const Status s = run(d.c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("train.jsonl: 2 row(s), fewer than --batch-size 4"), std::string::npos) << s.ToString();
}

TEST(LoraRun, AdapterForAnotherModelNamesTheModule) {
  Dirs d;
  d.write("train.jsonl", "{\"text\": \"a\"}\n");
  // dhara-tiny has 4 layers of hidden size 128: layer 7 and a 64-wide q_proj are another model's.
  for (const auto& [name, in] : std::vector<std::pair<std::string, int64_t>>{
           {"model.layers.7.self_attn.q_proj", 128}, {"model.layers.0.self_attn.q_proj", 64}}) {
    auto ad = init_lora_adapter({{name, {in, 128}}}, 4, 1.0f, 0);
    const std::string f = d.tmp.str() + "/other.safetensors";
    ASSERT_TRUE(save_lora_weights(f, *ad).ok());
    d.c.resume_adapter_file = f;
    const Status s = run(d.c);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(f + ": module " + name), std::string::npos) << s.ToString();
  }
}

TEST(LoraRun, ObjectivesTheModelCannotTrain) {
  Dirs d;
  d.write("train.jsonl", "{\"text\": \"a\"}\n");
  LoraTrainGiven g;
  g.objective = Objective::kCanvas;
  const Status s = run(d.c, g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--objective canvas needs a canvas-diffusion model"), std::string::npos) << s.ToString();
}

TEST(LoraRun, AdapterConfigHasMlxLmPeftAndOptiqKeys) {
  LoraTrainConfig c;
  c.model_dir = "models/base";
  c.data_dir = "data";
  c.adapter_path = "out";
  c.objective = Objective::kCanvas;
  c.scale = 8.0f;
  c.rank = 8;
  LoraAdapter ad;
  for (const char* m : {"model.decoder.layers.0.self_attn.q_proj", "model.decoder.layers.0.mlp.gate_proj"}) {
    LoraModule mod;
    mod.rank = 2;
    ad.modules[m] = mod;
  }
  ModelInfo info;
  info.model_type = "diffusion_gemma";
  const nlohmann::json j = adapter_config_json(c, ad, info);
  EXPECT_EQ(j["model_type"], "diffusion_gemma");
  EXPECT_EQ(j["fine_tune_type"], "lora");
  EXPECT_EQ(j["lora_parameters"]["rank"], 2);  // the modules' own rank
  EXPECT_EQ(j["lora_alpha"], 16);
  EXPECT_EQ(j["base_model_name_or_path"], "models/base");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["objective"], "canvas");
  EXPECT_TRUE(j["resume_adapter_file"].is_null());
  EXPECT_EQ(j["target_modules"].get<std::vector<std::string>>(), (std::vector<std::string>{"q_proj", "gate_proj"}));
  EXPECT_EQ(j["optiq"]["rank_scaling"], "constant");
  EXPECT_EQ(j["optiq"]["applied_ranks"].size(), 2u);
}

}  // namespace
}  // namespace optiq
