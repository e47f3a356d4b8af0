// `optiq lora train`: help, argument errors (exit 2 with usage), data errors (exit 1 naming file and
// line), and the two exact one-step cases of shared/fixtures/lora run as their README writes them.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

namespace fs = std::filesystem;

const std::string kModel = tiny_model_arg();

TEST(CliLoraTrain, HelpGoesToStdout) {
  expect_help("lora train", "usage: optiq lora train MODEL_DIR --data DATA_DIR");
  const CliRun r = run_optiq("lora --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "lora train")) << r.out;
}

TEST(CliLoraTrain, ArgumentErrorsExitTwoWithUsage) {
  TempDir t;
  const std::string data = " --data " + shell_quote(t.str());
  for (const auto& [args, msg] : std::vector<std::pair<std::string, std::string>>{
           {"lora train " + kModel + data + " --nope", "unknown option --nope"},
           {"lora train " + kModel + data + " --iters", "--iters needs a value"},
           {"lora train " + kModel + data + " --iters x", "--iters: not an integer: x"},
           {"lora train " + kModel + data + " --iters 0", "--iters must be positive"},
           {"lora train " + kModel + data + " --learning-rate -1", "--learning-rate must be a positive number"},
           {"lora train " + kModel + data + " --optimizer lion", "--optimizer must be adamw, adam or sgd"},
           {"lora train " + kModel + data + " --objective diffusion", "--objective must be ar, joint or canvas"},
           {"lora train " + kModel + data + " --dropout 1.5", "--dropout must be in [0, 1)"},
           {"lora train " + kModel + data + " --mask-prompt=1", "--mask-prompt takes no value"},
           {"lora train " + kModel, "--data DATA_DIR is required"},
           {"lora train" + data, "expected one MODEL_DIR, got 0"},
       }) {
    const CliRun r = run_optiq(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, msg)) << args << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "usage: optiq lora train")) << args;
  }
  const CliRun r = run_optiq("lora frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown subcommand 'frobnicate'")) << r.err;
}

TEST(CliLoraTrain, MalformedDataExitsOneNamingFileAndLine) {
  TempDir t;
  { std::ofstream(t.str() + "/train.jsonl") << "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": 3, \"completion\": \"b\"}\n"; }
  const CliRun r = run_optiq("lora train " + kModel + " --data " + shell_quote(t.str()) + " --adapter-path " +
                             shell_quote(t.str() + "/out"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, t.str() + "/train.jsonl:2 (prompt/completion row): \"prompt\" must be a string")) << r.err;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A run stopped after 3 steps and resumed to 6 writes what a straight 6-step run writes, on the real
// model with every random stream in play (joint noise, dropout, shuffle across passes, adamw).
TEST(CliLoraTrain, ResumedRunEqualsTheUninterruptedOne) {
  TempDir t;
  {
    std::ofstream f(t.str() + "/train.jsonl");
    for (const char* p : {"Say hi.", "Name a color.", "Count to two.", "Spell cat.", "Say no.", "Name a day."})
      f << "{\"prompt\": \"" << p << "\", \"completion\": \"Sure: " << p << "\"}\n";
  }
  const std::string common = "lora train " + kModel + " --data " + shell_quote(t.str()) +
                             " --objective joint --batch-size 2 --save-every 2 --max-seq-length 48 --mask-prompt"
                             " --dropout 0.1 --seed 3 --threads 2 --adapter-path ";
  const std::string whole = t.str() + "/whole", cut = t.str() + "/cut";
  CliRun r = run_optiq(common + shell_quote(whole) + " --iters 6", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_optiq(common + shell_quote(cut) + " --iters 3", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_optiq(common + shell_quote(cut) + " --iters 6 --resume", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "Resuming " + cut + " at iteration 3")) << r.out;
  for (const char* f : {"adapters.safetensors", "0000004_adapters.safetensors", "0000006_adapters.safetensors",
                        "training_state.safetensors"})
    EXPECT_EQ(file_bytes(cut + "/" + f), file_bytes(whole + "/" + f)) << f;
  // Other arguments cannot resume it.
  r = run_optiq(common + shell_quote(cut) + " --iters 8 --resume --learning-rate 0.01", 300);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "cannot resume: learning_rate was 0.0002, now 0.01")) << r.err;
}

// ---- shared/fixtures/lora: one plain-SGD step (README there) ----
//
// End to end through the dhara LoRA gradients (src/models/dhara_train.cpp). The README's bar, unchanged:
// per tensor ‖(init − written)/lr − g_ref‖ / ‖g_ref‖ ≤ 1e-3, and the written file holds exactly the init
// file's keys and shapes, as F32.

void expect_fixture_step(const std::string& case_name) {
  const std::string dir = fixture("lora/" + case_name);
  nlohmann::json c;
  {
    std::ifstream in(dir + "/expected/case.json");
    c = nlohmann::json::parse(in);
  }
  TempDir t;
  const std::string out = t.str() + "/OUT";
  // The case's own command with its placeholders filled ({MODEL} relative to the case directory).
  std::string args;
  const auto& cmd = c["command"];
  ASSERT_EQ(cmd[0], "optiq");
  for (size_t i = 1; i < cmd.size(); ++i) {
    std::string a = cmd[i].get<std::string>();
    if (a == "{MODEL}") a = (fs::path(dir) / c["model"].get<std::string>()).lexically_normal().string();
    if (a.find("{CASE}") == 0) a = dir + a.substr(6);
    if (a == "{OUT}") a = out;
    args += " " + shell_quote(a);
  }
  const CliRun r = run_optiq(args.substr(1), 300);
  ASSERT_EQ(r.exit_code, 0) << "optiq" << args << "\n" << r.err;

  const double lr = std::stod(c["learning_rate"].get<std::string>());
  auto init = SafetensorsFile::open(dir + "/init/adapters.safetensors");
  auto grads = SafetensorsFile::open(dir + "/expected/gradients.safetensors");
  auto written = SafetensorsFile::open(out + "/adapters.safetensors");
  ASSERT_TRUE(init.ok() && grads.ok());
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  ASSERT_EQ((*written)->tensors().size(), (*init)->tensors().size());
  const double tol = c["tolerance"]["per_tensor_rel_l2"].get<double>();
  double worst = 0;
  for (const auto& [name, v0] : (*init)->tensors()) {
    auto w = (*written)->tensors().find(name);
    ASSERT_NE(w, (*written)->tensors().end()) << "missing " << name;
    EXPECT_EQ(w->second.dtype, DType::kF32) << name;
    ASSERT_EQ(w->second.shape, v0.shape) << name;
    const TensorView& g = (*grads)->tensors().at(name);
    ASSERT_EQ(v0.dtype, DType::kF32);
    ASSERT_EQ(g.dtype, DType::kF32);
    const auto* a0 = static_cast<const float*>(v0.data);
    const auto* a1 = static_cast<const float*>(w->second.data);
    const auto* gr = static_cast<const float*>(g.data);
    double num = 0, den = 0;
    for (int64_t i = 0; i < v0.numel(); ++i) {
      const double est = (static_cast<double>(a0[i]) - a1[i]) / lr;
      num += (est - gr[i]) * (est - gr[i]);
      den += static_cast<double>(gr[i]) * gr[i];
    }
    const double rel = std::sqrt(num / den);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, tol) << case_name << ": " << name;
  }
  std::printf("[%s] worst per-tensor relative L2 error %.3g (bar %.0e)\n", case_name.c_str(), worst, tol);
  // adapter_config.json for mlx-lm's loader.
  std::ifstream in(out + "/adapter_config.json");
  const nlohmann::json cfg = nlohmann::json::parse(in);
  EXPECT_EQ(cfg["fine_tune_type"], "lora");
  EXPECT_EQ(cfg["num_layers"], -1);
  EXPECT_EQ(cfg["lora_parameters"]["rank"], c["rank"]);
  EXPECT_EQ(cfg["lora_parameters"]["scale"], c["scale"]);
}

TEST(CliLoraTrainFixture, TextRowsOneSgdStep) { expect_fixture_step("dhara-tiny-text"); }
TEST(CliLoraTrainFixture, CompletionRowsWithMaskPromptOneSgdStep) { expect_fixture_step("dhara-tiny-completion"); }

}  // namespace
}  // namespace optiq::test
