// Whole-model timing of Model::forward on a random checkpoint with dhara-250m's shapes
// (hidden 768, 32 layers, ffn 2176, 12/4 heads, head_dim 64, vocab 49155, Canon convs, tied head),
// in bf16, 8-bit and 4-bit (MLX affine, group 64, embedding included; codes filled at random).
//
//   ar_token:  one causal T = 1 forward after a 64-token prefix (last row's logits), reported as
//              tok/s, effective GB/s (weight bytes per token / time) and the fraction of the measured
//              streaming read bandwidth (same thread count, 1 GiB buffer).
//   block32:   one 32-token block-diffusion forward (MaskMode::kBlock, all 32 rows' logits) on the
//              cached 64-token prefix, cache left unchanged (what each denoising step costs).
//
//   ./build/model_bench [--threads=N] [--dir=/tmp/optiq_dhara250m] [--benchmark_repetitions=5]
// Checkpoints are written once under --dir (about 0.9 GB for the three) and reused.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <hwy/targets.h>

#include "bench/bench_util.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "kernels/x86/matmul_q_amx.h"
#include "models/model.h"

namespace optiq {
namespace {

struct Env {
  int threads = 2;
  std::string dir = "/tmp/optiq_dhara250m";
  double read_gbps = 0;
};
Env& env() {
  static Env e;
  return e;
}

nlohmann::json dhara250m_config() {
  return nlohmann::json{
      {"architectures", {"DharaARForCausalLM"}},
      {"model_type", "dhara_ar"},
      {"hidden_size", 768},
      {"num_hidden_layers", 32},
      {"intermediate_size", 2176},
      {"num_attention_heads", 12},
      {"num_key_value_heads", 4},
      {"head_dim", 64},
      {"vocab_size", 49155},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 8000000.0},
      {"max_position_embeddings", 4096},
      {"tie_word_embeddings", true},
      {"use_qk_norm", true},
      {"use_logit_softcap", true},
      {"logit_softcap", 30.0},
      {"canon_set", "ABCD"},
      {"canon_kernel", 4},
      {"canon_residual", true},
      {"canon_activation", false},
      {"canon_bias", false},
      {"mask_token_id", 49154},
      {"bos_token_id", 0},
      {"eos_token_id", 1},
      {"pad_token_id", 0},
      {"torch_dtype", "bfloat16"},
  };
}

// bits 16: bf16 weights; otherwise every linear and the embedding are MLX affine (bf16 scales).
Status write_checkpoint(const std::string& dir, int bits) {
  const nlohmann::json cfg0 = dhara250m_config();
  const int64_t C = 768, F = 2176, H = 12, Hkv = 4, D = 64, V = 49155, Kw = 4, L = 32, gs = 64;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> store;
  std::vector<TensorToWrite> ts;
  uint64_t seed = 1;
  auto bf16_tensor = [&](const std::string& name, std::vector<int64_t> shape, float lo, float hi) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    store.push_back(std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(n * 2)));
    auto& b = *store.back();
    bench::fill_random(b.data(), b.size(), seed++);
    auto* h = reinterpret_cast<uint16_t*>(b.data());
    for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(lo + (hi - lo) * static_cast<float>(h[i]) / 65535.f);
    ts.push_back({name, DType::kBF16, std::move(shape), b.data(), b.size()});
  };
  auto const_tensor = [&](const std::string& name, std::vector<int64_t> shape, float v) { bf16_tensor(name, shape, v, v); };
  auto linear = [&](const std::string& m, int64_t out, int64_t in) {
    if (bits == 16) {
      bf16_tensor(m + ".weight", {out, in}, -0.04f, 0.04f);
      return;
    }
    store.push_back(std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(out * in * bits / 8)));
    auto& b = *store.back();
    bench::fill_random(b.data(), b.size(), seed++);
    ts.push_back({m + ".weight", DType::kU32, {out, in * bits / 32}, b.data(), b.size()});
    const float scale = 0.08f / static_cast<float>((1 << bits) - 1);
    bf16_tensor(m + ".scales", {out, in / gs}, scale * 0.9f, scale * 1.1f);
    bf16_tensor(m + ".biases", {out, in / gs}, -0.045f, -0.035f);
  };
  linear("model.embed_tokens", V, C);
  const_tensor("model.norm.weight", {C}, 1.f);
  for (int64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const_tensor(p + "input_layernorm.weight", {C}, 1.f);
    const_tensor(p + "post_attention_layernorm.weight", {C}, 1.f);
    const_tensor(p + "self_attn.q_norm.weight", {D}, 1.f);
    const_tensor(p + "self_attn.k_norm.weight", {D}, 1.f);
    linear(p + "self_attn.q_proj", H * D, C);
    linear(p + "self_attn.k_proj", Hkv * D, C);
    linear(p + "self_attn.v_proj", Hkv * D, C);
    linear(p + "self_attn.o_proj", C, H * D);
    linear(p + "mlp.gate_proj", F, C);
    linear(p + "mlp.up_proj", F, C);
    linear(p + "mlp.down_proj", C, F);
    bf16_tensor(p + "canon_a.conv.weight", {C, 1, Kw}, -0.1f, 0.1f);
    bf16_tensor(p + "self_attn.canon_b_q.conv.weight", {H * D, 1, Kw}, -0.1f, 0.1f);
    bf16_tensor(p + "self_attn.canon_b_k.conv.weight", {Hkv * D, 1, Kw}, -0.1f, 0.1f);
    bf16_tensor(p + "self_attn.canon_b_v.conv.weight", {Hkv * D, 1, Kw}, -0.1f, 0.1f);
    bf16_tensor(p + "canon_c.conv.weight", {C, 1, Kw}, -0.1f, 0.1f);
    bf16_tensor(p + "mlp.canon_d.conv.weight", {F, 1, Kw}, -0.1f, 0.1f);
    store.push_back(std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(D / 2 * 4)));
    auto* f = reinterpret_cast<float*>(store.back()->data());
    for (int64_t j = 0; j < D / 2; ++j) f[j] = static_cast<float>(std::pow(8e6, -2.0 * j / D));
    ts.push_back({p + "self_attn.rotary_emb.inv_freq", DType::kF32, {D / 2}, f, static_cast<size_t>(D / 2 * 4)});
  }
  nlohmann::json cfg = cfg0;
  if (bits != 16) {
    cfg["quantization"] = {{"group_size", gs}, {"bits", bits}, {"mode", "affine"}};
    cfg["quantization_config"] = cfg["quantization"];
  }
  std::filesystem::create_directories(dir);
  OPTIQ_RETURN_IF_ERROR(write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}}));
  OPTIQ_RETURN_IF_ERROR(write_file_atomic(dir + "/generation_config.json", "{\"eos_token_id\": 1}"));
  return write_file_atomic(dir + "/config.json", cfg.dump(2));  // last: marks the directory complete
}

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Cache> cache;  // holds the 64-token prefix
};

std::unique_ptr<Loaded> load(int bits, ThreadPool& pool) {
  const std::string dir = env().dir + "/" + (bits == 16 ? "bf16" : "q" + std::to_string(bits));
  if (!std::filesystem::exists(dir + "/config.json")) {
    std::printf("writing %s ...\n", dir.c_str());
    const Status st = write_checkpoint(dir, bits);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return nullptr;
    }
  }
  auto m = load_model(dir);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return nullptr;
  }
  auto l = std::make_unique<Loaded>();
  l->model = std::move(m.value());
  l->cache = l->model->make_cache(256);
  std::vector<int32_t> prefix(64);
  for (size_t i = 0; i < prefix.size(); ++i) prefix[i] = static_cast<int32_t>((i * 7919) % 49000 + 2);
  ForwardBatch b;
  b.tokens = prefix;
  b.last_logits_only = true;
  std::vector<float> logits(49155);
  const Status st = l->model->forward(b, *l->cache, logits.data(), pool);
  if (!st.ok()) {
    std::fprintf(stderr, "prefill: %s\n", st.ToString().c_str());
    return nullptr;
  }
  return l;
}

void bm_ar_token(benchmark::State& state, int bits) {
  ThreadPool pool(env().threads);
  auto l = load(bits, pool);
  if (!l) {
    state.SkipWithError("model load failed");
    return;
  }
  const int32_t tok[1] = {123};
  std::vector<float> logits(49155);
  ForwardBatch b;
  b.tokens = tok;
  b.pos0 = l->cache->length();
  b.write_cache = false;  // every iteration decodes the same next position
  b.last_logits_only = true;
  for (auto _ : state) {
    const Status st = l->model->forward(b, *l->cache, logits.data(), pool);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  const double bytes = static_cast<double>(l->model->info().weight_bytes_per_token);
  const double it = static_cast<double>(state.iterations());
  state.counters["tok_s"] = benchmark::Counter(it, benchmark::Counter::kIsRate);
  state.counters["GBps"] = benchmark::Counter(bytes * 1e-9 * it, benchmark::Counter::kIsRate);
  state.counters["frac_bw"] = benchmark::Counter(bytes * 1e-9 / env().read_gbps * it, benchmark::Counter::kIsRate);
  state.counters["MB_per_tok"] = bytes * 1e-6;
}

void bm_block32(benchmark::State& state, int bits) {
  ThreadPool pool(env().threads);
  auto l = load(bits, pool);
  if (!l) {
    state.SkipWithError("model load failed");
    return;
  }
  std::vector<int32_t> toks(32, 49154);  // a fully masked block, as the first denoising step sees it
  std::vector<float> logits(32 * 49155);
  ForwardBatch b;
  b.tokens = toks;
  b.pos0 = l->cache->length();
  b.mask = MaskMode::kBlock;
  b.block_len = 32;
  b.write_cache = false;
  for (auto _ : state) {
    const Status st = l->model->forward(b, *l->cache, logits.data(), pool);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  state.counters["tok_s"] = benchmark::Counter(32.0 * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
}

}  // namespace
}  // namespace optiq

int main(int argc, char** argv) {
  using namespace optiq;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strncmp(argv[i], "--threads=", 10) == 0)
      env().threads = std::atoi(argv[i] + 10);
    else if (i > 0 && std::strncmp(argv[i], "--dir=", 6) == 0)
      env().dir = argv[i] + 6;
    else
      rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  {
    ThreadPool pool(env().threads);
    env().read_gbps = bench::measure_read_gbps(pool);
  }
  std::printf("threads %d, highway target %s, AMX %s, measured streaming read bandwidth %.2f GB/s\n", env().threads,
              hwy::TargetName(hwy::SupportedAndGeneratedTargets().front()), amx_available() ? "yes" : "no",
              env().read_gbps);
  for (int bits : {16, 8, 4}) {
    const std::string dt = bits == 16 ? "bf16" : "q" + std::to_string(bits);
    benchmark::RegisterBenchmark(("dhara250m/" + dt + "/ar_token").c_str(),
                                 [bits](benchmark::State& s) { bm_ar_token(s, bits); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("dhara250m/" + dt + "/block32").c_str(),
                                 [bits](benchmark::State& s) { bm_block32(s, bits); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
