// optiq bench: tok/s per decoding mode, forwards per token, AR weight bandwidth against the
// measured read bandwidth, and the time of one 32-token block forward on a cached prefix.
// optiq init-random: writes a random-weight checkpoint for a config of any registered architecture
// (benchmark shapes).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/membw.h"
#include "decode/canvas.h"
#include "decode/generate.h"
#include "io/model_dir.h"
#include "models/registry.h"

namespace optiq::cli {

namespace {

const char* kBenchHelp = R"(usage: optiq bench [--model DIR] [--adapter DIR] [--prompt-len N] [--gen-len N] [--threads N] [--json] [--no-repack]

Measures, on a fixed prompt of random token ids:
  tok/s for AR, block diffusion and self-speculation (greedy, no early stop),
  forwards per generated token per mode,
  AR effective weight bandwidth (weight bytes per forward × decode forwards/s; the first token comes
    from the prompt's forward) against the measured read bandwidth
    (a 1 GiB streaming read on huge pages, taken before and after each AR run; the fraction is the
    median over runs of each run's against the higher of its two probes), and the same for the
    decode's whole memory roofline: weights plus the cache it reads (K/V of every attended position,
    recurrent state), which at long prompts rivals the weights,
  the time of one 32-token block forward on a cached prefix (median of repeats).
--no-repack keeps quantized weights in the checkpoint layout only (see optiq generate --help).
--adapter DIR runs every forward with that LoRA adapter applied, unmerged (see optiq generate --help).
)";

int fail(const char* cmd, const Status& s) {
  std::fprintf(stderr, "optiq %s: %s\n", cmd, s.ToString().c_str());
  return 1;
}

// Bytes one AR decode forward reads on average over `n_fwd` forwards after a `prompt`-token prefill:
// the weights, the recurrent state, and K/V of every attended position (forward i attends
// prompt + i + 1 of them).
double roofline_bytes_per_forward(const ModelInfo& info, size_t prompt, double n_fwd) {
  const double mean_positions = n_fwd > 0 ? static_cast<double>(prompt + 1) + (n_fwd - 1) / 2 : 0.0;
  return static_cast<double>(info.weight_bytes_per_token + info.state_bytes_per_token) +
         static_cast<double>(info.kv_bytes_per_position) * mean_positions;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Canvas-diffusion models: tokens per forward, steps per canvas and tok/s for each sampler.
int bench_canvas(const Model& m, const std::string& dir, const std::vector<int32_t>& prompt, int64_t gen_len,
                 int64_t repeats, bool json, ThreadPool& pool, nlohmann::json out) {
  CanvasOptions base;
  if (auto gen = read_json_file(dir + "/generation_config.json"); gen.ok()) {
    auto parsed = canvas_options_from_generation_config(*gen);
    if (!parsed.ok()) return fail("bench", parsed.status());
    base = *parsed;
  }
  base.max_new_tokens = gen_len;
  base.eos_ids = {-1};  // fixed length: never stop early
  base.max_retries = 0;
  double tok_s[2] = {0, 0};
  int i = 0;
  for (CanvasSampler sampler : {CanvasSampler::kEntropyBound, CanvasSampler::kConfidenceThreshold}) {
    CanvasOptions o = base;
    o.sampler = sampler;
    CanvasResult last;
    double best_secs = 0;
    for (int rep = 0; rep <= repeats; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = canvas_generate(m, pool, prompt, o);
      if (!r.ok()) return fail("bench", r.status());
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep == 0) continue;
      if (best_secs == 0 || secs < best_secs) best_secs = secs;
      last = std::move(*r);
    }
    size_t steps = 0;
    for (auto& c : last.canvases) steps += c.steps.size();
    nlohmann::json j;
    j["tok_s"] = tok_s[i] = static_cast<double>(last.tokens.size()) / best_secs;
    j["tokens_per_forward"] = last.tokens_per_forward();
    j["steps_per_canvas"] = last.canvases.empty() ? 0.0 : static_cast<double>(steps) / last.canvases.size();
    j["decoder_step_ms"] = 1000.0 * best_secs / std::max<int64_t>(1, last.decoder_forwards + last.encoder_forwards);
    out[canvas_sampler_name(sampler)] = j;
    ++i;
  }
  out["confidence_over_entropy_speed"] = tok_s[0] > 0 ? tok_s[1] / tok_s[0] : 0.0;
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("model %s (%s), %d threads, prompt %zu tokens, generate %lld tokens, best of %lld\n", dir.c_str(),
              out["model_type"].get<std::string>().c_str(), pool.size(), prompt.size(), static_cast<long long>(gen_len),
              static_cast<long long>(repeats));
  if (out.contains("adapter")) std::printf("adapter %s, applied unmerged\n", out["adapter"].get<std::string>().c_str());
  for (const char* name : {"entropy-bound", "confidence-threshold"})
    std::printf("  %-21s %8.1f tok/s  %6.2f tokens/forward  %5.1f steps/canvas  %.1f ms/forward\n", name,
                out[name]["tok_s"].get<double>(), out[name]["tokens_per_forward"].get<double>(),
                out[name]["steps_per_canvas"].get<double>(), out[name]["decoder_step_ms"].get<double>());
  std::printf("  confidence-threshold / entropy-bound speed: %.2fx\n", out["confidence_over_entropy_speed"].get<double>());
  return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  auto flags = Flags::parse(argc, argv, {"--model", "--prompt-len", "--gen-len", "--threads", "--repeats", "--adapter"},
                            {"--json", "--help", "--no-bandwidth", "--no-repack"});
  if (!flags.ok()) return fail("bench", flags.status());
  const Flags& f = *flags;
  if (f.has("--help")) {
    std::fputs(kBenchHelp, stdout);
    return 0;
  }
  auto model_dir = model_dir_flag(f);
  if (!model_dir.ok()) return fail("bench", model_dir.status());
  const std::string dir = *model_dir;
  auto prompt_len = f.integer("--prompt-len", 64);
  auto gen_len = f.integer("--gen-len", 64);
  auto threads = f.integer("--threads", 0);
  auto repeats = f.integer("--repeats", 3);
  for (auto* r : {&prompt_len, &gen_len, &threads, &repeats})
    if (!r->ok()) return fail("bench", r->status());
  if (*prompt_len < 1 || *gen_len < 1 || *repeats < 1) return fail("bench", Status::InvalidArgument("lengths and repeats must be >= 1"));

  LoadOptions lo;
  lo.repack = !f.has("--no-repack");
  auto model = load_model(dir, lo);
  if (!model.ok()) return fail("bench", model.status());
  std::unique_ptr<Model> adapted;
  if (f.has("--adapter")) {
    auto a = adapted_model(**model, f.str("--adapter"));
    if (!a.ok()) return fail("bench", a.status());
    adapted = std::move(a).value();
  }
  const Model& m = adapted ? *adapted : **model;
  const ModelInfo& info = m.info();
  ThreadPool pool(static_cast<int>(*threads));

  std::mt19937_64 rng(1234);
  std::vector<int32_t> prompt(static_cast<size_t>(*prompt_len));
  const int64_t id_range = std::max<int64_t>(1, std::min<int64_t>(info.vocab_size, info.mask_token_id >= 0 ? info.mask_token_id : info.vocab_size));
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(id_range));

  nlohmann::json out;
  out["model"] = dir;
  out["model_type"] = info.model_type;
  if (adapted) out["adapter"] = f.str("--adapter");
  out["threads"] = pool.size();
  out["hardware_threads"] = std::thread::hardware_concurrency();
  out["prompt_tokens"] = *prompt_len;
  out["gen_tokens"] = *gen_len;
  out["total_weight_bytes"] = info.total_weight_bytes;
  if (info.canvas_length > 0) return bench_canvas(m, dir, prompt, *gen_len, *repeats, f.has("--json"), pool, out);
  nlohmann::json fpt = nlohmann::json::object();

  struct ModeRun {
    DecodeMode mode;
    const char* key;
  };
  std::vector<ModeRun> modes{{DecodeMode::kAR, "ar_tok_s"}};
  if (info.supports_block) {
    modes.push_back({DecodeMode::kDiffusion, "diffusion_tok_s"});
    modes.push_back({DecodeMode::kSelfSpec, "selfspec_tok_s"});
  }
  const double bytes_per_token = static_cast<double>(info.weight_bytes_per_token);
  // The bandwidth probe runs right before and after each AR repeat and each repeat is judged against
  // the higher of its two neighbours: on a shared machine the bandwidth moves by tens of percent
  // within seconds, so a probe taken once, seconds away, made the fraction swing by 0.3 run to run.
  std::unique_ptr<BandwidthProbe> probe;
  if (!f.has("--no-bandwidth")) probe = std::make_unique<BandwidthProbe>(pool);
  std::vector<double> fractions, roofline_fractions;
  double roofline_bytes = 0;
  double best_probe = 0;
  for (const auto& mr : modes) {
    GenerateOptions o;
    o.mode = mr.mode;
    o.max_new_tokens = static_cast<int>(*gen_len);
    o.stop_ids = {-1};  // fixed length: never stop early
    double best = 0, best_forwards_s = 0;
    GenerateResult last;
    const bool paired = probe && mr.mode == DecodeMode::kAR;
    double before = 0;
    for (int rep = 0; rep <= *repeats; ++rep) {  // rep 0 warms up (pages the weights in)
      if (paired && rep == 1) before = probe->measure(3);
      auto r = generate(m, pool, prompt, o);
      if (!r.ok()) return fail("bench", r.status());
      if (rep == 0) continue;
      const double tok_s = static_cast<double>(r->tokens.size()) / r->decode_seconds;
      // The weights are read once per decode forward: n tokens take n - 1 of them after the prompt's.
      const double decode_forwards = static_cast<double>(r->forwards - 1);
      const double forwards_s = decode_forwards / r->decode_seconds;
      best = std::max(best, tok_s);
      best_forwards_s = std::max(best_forwards_s, forwards_s);
      if (paired) {
        const double after = probe->measure(3);
        const double bw = std::max(before, after);
        fractions.push_back(bytes_per_token * forwards_s / 1e9 / bw);
        roofline_bytes = roofline_bytes_per_forward(info, prompt.size(), decode_forwards);
        roofline_fractions.push_back(roofline_bytes * forwards_s / 1e9 / bw);
        best_probe = std::max(best_probe, bw);
        before = after;
      }
      last = std::move(*r);
    }
    out[mr.key] = best;
    if (mr.mode == DecodeMode::kAR) out["ar_effective_gbps"] = bytes_per_token * best_forwards_s / 1e9;
    fpt[decode_mode_name(mr.mode)] = static_cast<double>(last.forwards - 1) / static_cast<double>(last.tokens.size());
    if (mr.mode == DecodeMode::kSelfSpec && !last.accepted_per_round.empty())
      out["selfspec_tokens_per_round"] = static_cast<double>(last.tokens.size()) / last.accepted_per_round.size();
  }
  out["forwards_per_token"] = fpt;

  out["ar_weight_bytes_per_token"] = info.weight_bytes_per_token;
  if (!fractions.empty()) {
    out["measured_read_gbps"] = best_probe;
    out["ar_bandwidth_fraction"] = median(fractions);
    out["ar_bandwidth_fraction_runs"] = fractions;
    if (info.kv_bytes_per_position > 0 || info.state_bytes_per_token > 0) {
      out["ar_roofline_bytes_per_forward"] = roofline_bytes;
      out["ar_roofline_fraction"] = median(roofline_fractions);
    }
  }

  // One 32-token block forward on a cached prefix (read-only, as a diffusion refinement step).
  {
    const int B = 32;
    auto cache = m.make_cache(static_cast<int64_t>(prompt.size()) + B);
    std::vector<float> logits(static_cast<size_t>(B) * info.vocab_size);
    ForwardBatch pre;
    pre.tokens = prompt;
    pre.last_logits_only = true;
    if (Status s = m.forward(pre, *cache, logits.data(), pool); !s.ok()) return fail("bench", s);
    std::vector<int32_t> block(B, info.mask_token_id >= 0 ? info.mask_token_id : 0);
    ForwardBatch step;
    step.tokens = block;
    step.pos0 = cache->length();
    step.mask = info.supports_block ? MaskMode::kBlock : MaskMode::kCausal;
    step.write_cache = false;
    std::vector<double> ms;
    for (int rep = 0; rep < 2 + 2 * static_cast<int>(*repeats); ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      if (Status s = m.forward(step, *cache, logits.data(), pool); !s.ok()) return fail("bench", s);
      if (rep >= 2) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    out["block_forward_ms"] = median(ms);
  }

  if (f.has("--json")) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("model %s (%s), %d threads, weights %.1f MiB\n", dir.c_str(), info.model_type.c_str(), pool.size(),
              static_cast<double>(info.total_weight_bytes) / (1 << 20));
  if (adapted) std::printf("adapter %s, applied unmerged\n", f.str("--adapter").c_str());
  std::printf("prompt %lld tokens, generate %lld tokens, best of %lld\n", static_cast<long long>(*prompt_len),
              static_cast<long long>(*gen_len), static_cast<long long>(*repeats));
  for (const auto& mr : modes)
    std::printf("  %-10s %9.1f tok/s   %.3f forwards/token\n", decode_mode_name(mr.mode), out[mr.key].get<double>(),
                fpt[decode_mode_name(mr.mode)].get<double>());
  if (out.contains("selfspec_tokens_per_round"))
    std::printf("  selfspec   %.2f tokens/round\n", out["selfspec_tokens_per_round"].get<double>());
  std::printf("  AR weight bytes/forward %.1f MiB, effective %.2f GB/s", bytes_per_token / (1 << 20),
              out["ar_effective_gbps"].get<double>());
  if (out.contains("measured_read_gbps"))
    std::printf(" of %.2f GB/s measured read bandwidth; per run %.0f%% (median)", out["measured_read_gbps"].get<double>(),
                100 * out["ar_bandwidth_fraction"].get<double>());
  if (out.contains("ar_roofline_fraction"))
    std::printf("\n  AR with the cache it reads %.1f MiB/forward: %.0f%% of the measured read bandwidth (median)",
                out["ar_roofline_bytes_per_forward"].get<double>() / (1 << 20), 100 * out["ar_roofline_fraction"].get<double>());
  std::printf("\n  32-token block forward on a %lld-token cached prefix: %.2f ms\n", static_cast<long long>(*prompt_len),
              out["block_forward_ms"].get<double>());
  return 0;
}

int cmd_init_random(int argc, char** argv) {
  auto flags = Flags::parse(argc, argv, {"--config", "-o", "--output", "--dtype", "--seed"}, {"--help"});
  if (!flags.ok()) return fail("init-random", flags.status());
  const Flags& f = *flags;
  const std::string outdir = f.has("-o") ? f.str("-o") : f.str("--output");
  if (f.has("--help") || !f.has("--config") || outdir.empty()) {
    std::fputs("usage: optiq init-random --config CONFIG.json -o DIR [--dtype bf16|f32] [--seed S]\n"
               "Writes a random-weight checkpoint (config.json, generation_config.json, model.safetensors)\n"
               "for the config's model_type (any architecture optiq loads).\n"
               "Example: optiq init-random --config bench/configs/dhara-250m.json -o /tmp/dhara-250m-random\n",
               f.has("--help") ? stdout : stderr);
    return f.has("--help") ? 0 : 2;
  }
  auto cfg = read_json_file(f.str("--config"));
  if (!cfg.ok()) return fail("init-random", cfg.status());
  const std::string dt = f.str("--dtype", "bf16");
  if (dt != "bf16" && dt != "f32") return fail("init-random", Status::InvalidArgument("--dtype must be bf16 or f32"));
  auto seed = f.integer("--seed", 0);
  if (!seed.ok()) return fail("init-random", seed.status());
  Status s = write_random_checkpoint(*cfg, outdir, dt == "f32" ? DType::kF32 : DType::kBF16, static_cast<uint64_t>(*seed));
  if (!s.ok()) return fail("init-random", s.WithContext(f.str("--config")));
  std::fprintf(stderr, "wrote %s\n", outdir.c_str());
  return 0;
}

}  // namespace optiq::cli
