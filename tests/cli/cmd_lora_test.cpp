// `optiq lora`: the subcommand dispatch, `lora info` (mlx-lm and PEFT configs) and `lora fuse` against
// `generate --adapter`, with their errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/model.h"
#include "tests/cli/cli_util.h"
#include "tests/lora_test_util.h"

namespace optiq::test {
namespace {

namespace fs = std::filesystem;

const std::string kModel = tiny_model_arg();
const std::string kFixtureAdapter = fixture("lora/dhara-tiny-text/init");

// An adapter for dgemma-tiny (DiffusionGemma module names), to hand to dhara commands.
void write_dgemma_adapter(const std::string& dir) {
  auto dg = load_model(fixture("dgemma-tiny"));
  ASSERT_TRUE(dg.ok());
  write_adapter_dir(random_adapter(**dg, 2, 1.f, 0.1f, 1), dir);
}

TEST(CliLora, DispatchAndHelp) {
  CliRun r = run_optiq("lora");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "usage: optiq lora <command>")) << r.err;
  r = run_optiq("lora --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* sub : {"optiq lora train ", "optiq lora info ", "optiq lora fuse "}) EXPECT_TRUE(contains(r.out, sub)) << sub << r.out;
  r = run_optiq("lora frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "optiq lora: unknown subcommand 'frobnicate'")) << r.err;
  expect_help("lora info", "usage: optiq lora info ADAPTER_DIR");
  expect_help("lora fuse", "usage: optiq lora fuse MODEL_DIR --adapter ADAPTER_DIR -o OUT");
}

TEST(CliLora, InfoReadsMlxLmConfigAndWeights) {
  CliRun r = run_optiq("lora info " + shell_quote(kFixtureAdapter));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "rank          4\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "scale         2\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "dropout       0\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "modules       28 in 4 layers: mlp.down_proj, mlp.gate_proj, mlp.up_proj, "
                              "self_attn.k_proj, self_attn.o_proj, self_attn.q_proj, self_attn.v_proj\n"))
      << r.out;
  r = run_optiq("lora info --json " + shell_quote(kFixtureAdapter));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rank"], 4);
  EXPECT_EQ(j["scale"], 2.0);
  EXPECT_EQ(j["modules"], 28);
  EXPECT_EQ(j["num_layers"], -1);
  EXPECT_EQ(j["fine_tune_type"], "lora");
  EXPECT_TRUE(j["base_model"].is_null());
  // 4 layers × (q, k, v, o, gate, up, down) at rank 4: 4 · 4 · (C + out) summed over the linears.
  const int64_t C = 128, F = 352, KV = 64;
  const int64_t per_layer = 4 * ((C + C) + (C + KV) + (C + KV) + (C + C) + (C + F) + (C + F) + (F + C));
  EXPECT_EQ(j["parameters"], 4 * per_layer);
}

TEST(CliLora, InfoReadsPeftOnlyConfigAndMixedRanks) {
  TempDir tmp;
  LoraAdapter ad;
  ad.scale = 1.f;
  for (int64_t r : {4, 8}) {
    LoraModule& m = ad.modules["model.layers." + std::to_string(r) + ".mlp.up_proj"];
    m.in = 16;
    m.out = 24;
    m.rank = r;
    m.a.assign(static_cast<size_t>(16 * r), 0.f);
    m.b.assign(static_cast<size_t>(r * 24), 0.f);
  }
  ASSERT_TRUE(save_lora_weights(tmp.str() + "/adapters.safetensors", ad).ok());
  std::ofstream(tmp.path / "adapter_config.json")
      << R"({"peft_type":"LORA","r":8,"lora_alpha":16,"lora_dropout":0.1,"base_model_name_or_path":"org/base"})";
  CliRun r = run_optiq("lora info " + shell_quote(tmp.str()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "base model    org/base\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "type          LORA\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "rank          4 (1 modules), 8 (1 modules)\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "scale         2\n")) << r.out;  // lora_alpha / r
  EXPECT_TRUE(contains(r.out, "dropout       0.1\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "parameters    480 ")) << r.out;  // (16 + 24) · (4 + 8)
}

TEST(CliLora, InfoErrorsNameTheFile) {
  CliRun r = run_optiq("lora info /nonexistent/adapter");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "/nonexistent/adapter/adapters.safetensors")) << r.err;
  r = run_optiq("lora info");
  EXPECT_EQ(r.exit_code, 2);
}

// The fused checkpoint decodes as the unmerged adapter does: the same greedy tokens in each mode
// (fusing rounds the weights to bf16, below these logits' top-2 margins on this prompt), and not as
// the base model does (the adapter is strong: rank 4, scale 8, b ~ N(0, 0.1)).
TEST(CliLora, FuseThenGenerateEqualsGenerateWithAdapter) {
  TempDir tmp;
  const std::string out = tmp.str() + "/fused";
  const std::string adapter = tmp.str() + "/adapter";
  {
    auto m = load_model(fixture("dhara-tiny"));
    ASSERT_TRUE(m.ok());
    write_adapter_dir(random_adapter(**m, 4, 8.f, 0.1f, 5), adapter);
  }
  CliRun r = run_optiq("lora fuse " + kModel + " --adapter " + shell_quote(adapter) + " -o " + shell_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "28 dense, 0 re-quantized; 1 safetensors files rewritten")) << r.out;
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  for (const char* mode : {"ar", "diffusion"}) {
    const std::string args = " --prompt 'The jury said' --max-tokens 24 --threads 1 --json --mode " + std::string(mode);
    const CliRun adapted = run_optiq("generate --model " + kModel + " --adapter " + shell_quote(adapter) + args);
    const CliRun fused = run_optiq("generate --model " + shell_quote(out) + args);
    const CliRun base = run_optiq("generate --model " + kModel + args);
    ASSERT_EQ(adapted.exit_code, 0) << adapted.err;
    ASSERT_EQ(fused.exit_code, 0) << fused.err;
    ASSERT_EQ(base.exit_code, 0) << base.err;
    const auto tokens = nlohmann::json::parse(adapted.out)["tokens"];
    EXPECT_EQ(tokens, nlohmann::json::parse(fused.out)["tokens"]) << mode;
    EXPECT_NE(tokens, nlohmann::json::parse(base.out)["tokens"]) << mode;
  }
}

TEST(CliLora, FuseErrors) {
  TempDir tmp;
  CliRun r = run_optiq("lora fuse " + kModel + " -o " + shell_quote(tmp.str() + "/x"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "usage: optiq lora fuse")) << r.err;
  // An adapter made for another model: DiffusionGemma module names on dhara.
  write_dgemma_adapter(tmp.str() + "/dg-adapter");
  r = run_optiq("lora fuse " + kModel + " --adapter " + shell_quote(tmp.str() + "/dg-adapter") + " -o " +
                shell_quote(tmp.str() + "/out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "adapter dg-adapter: module model.decoder.layers.0.mlp.down_proj is not a linear this "
                              "model adapts (the model's adaptable linears are model.layers.0.self_attn.q_proj"))
      << r.err;
  EXPECT_FALSE(fs::exists(tmp.path / "out"));
  fs::create_directories(tmp.path / "taken");
  std::ofstream(tmp.path / "taken" / "f") << "x";
  r = run_optiq("lora fuse " + kModel + " --adapter " + shell_quote(kFixtureAdapter) + " -o " +
                shell_quote(tmp.str() + "/taken"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "already exists")) << r.err;
}

TEST(CliLora, AdapterFlagErrorsOnOtherCommands) {
  TempDir tmp;
  write_dgemma_adapter(tmp.str() + "/dg-adapter");
  CliRun r = run_optiq("generate --model " + kModel + " --prompt-ids 84 --adapter /nonexistent/ad");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "/nonexistent/ad/adapters.safetensors")) << r.err;
  r = run_optiq("generate --model " + kModel + " --prompt-ids 84 --adapter " + shell_quote(tmp.str() + "/dg-adapter"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "--adapter " + tmp.str() + "/dg-adapter: dhara_ar: adapter dg-adapter: module")) << r.err;
  r = run_optiq("bench --model " + kModel + " --adapter " + shell_quote(tmp.str() + "/dg-adapter"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "is not a linear this model adapts")) << r.err;
}

}  // namespace
}  // namespace optiq::test
