// DiffusionGemma on a shape-scaled random checkpoint: the real layer pattern (5 sliding + 1 full
// attention layer, K = V full layers with partial RoPE, top-8 routing, 256-token canvas) with a
// smaller hidden size, fewer experts and a smaller vocabulary, so that it runs on a laptop CPU.
//
// Reports: decoder step time (one denoising pass over the canvas, with self-conditioning), canvas
// commit time, and for both samplers tokens per decoder forward, steps per canvas and tok/s, plus
// the confidence-threshold / entropy-bound speed ratio. Also times the grouped expert kernel
// against a per-row loop (the baseline it replaces) in the same run.
//
//   ./build/dgemma_bench [--benchmark_filter=...]      env OPTIQ_BENCH_THREADS overrides threads
#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "decode/canvas.h"
#include "decode/rng.h"
#include "io/model_dir.h"
#include "kernels/kernels.h"
#include "models/model.h"
#include "tests/models/dgemma_synth.h"

namespace optiq {
namespace {

int bench_threads() {
  if (const char* e = std::getenv("OPTIQ_BENCH_THREADS")) return std::max(1, std::atoi(e));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

test::DgSynthSpec bench_spec() {
  test::DgSynthSpec s;
  s.vocab = 8192;
  s.hidden = 512;
  s.layers = 6;  // one period of the real pattern: 5 sliding + 1 full
  s.window = 1024;
  s.heads = 8;
  s.kv_heads = 4;
  s.global_kv_heads = 1;
  s.head_dim = 64;
  s.global_head_dim = 128;
  s.ffn = 384;
  s.experts = 32;
  s.top_k = 8;
  s.moe_ffn = 128;
  s.canvas = 256;
  s.seed = 7;
  return s;
}

// The checkpoint and model, built once per process.
struct Setup {
  std::string dir;
  std::unique_ptr<Model> model;
  ThreadPool pool{bench_threads()};
  std::vector<int32_t> prompt;
  Setup() {
    dir = (std::filesystem::temp_directory_path() / ("optiq_dgemma_bench_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir);
    Status s = test::write_dgemma_synth(dir, bench_spec());
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      std::abort();
    }
    auto m = load_model(dir);
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
      std::abort();
    }
    model = std::move(m.value());
    SplitMix64 rng(1);
    for (int i = 0; i < 128; ++i) prompt.push_back(rng.token(model->info().vocab_size));
  }
  ~Setup() { std::filesystem::remove_all(dir); }
};

Setup& setup() {
  static Setup s;
  return s;
}

std::map<std::string, double>& tok_per_s() {
  static std::map<std::string, double> m;
  return m;
}

void BM_DecoderStep(benchmark::State& state) {
  Setup& s = setup();
  const Model& m = *s.model;
  const int64_t L = m.info().canvas_length, V = m.info().vocab_size;
  auto cache = m.make_cache(1024);
  std::vector<float> logits(L * V), sc(L * V, 0.f);
  ForwardBatch pre;
  pre.tokens = s.prompt;
  pre.last_logits_only = true;
  if (!m.forward(pre, *cache, logits.data(), s.pool).ok()) std::abort();
  std::vector<int32_t> canvas(L);
  SplitMix64 rng(2);
  for (auto& t : canvas) t = rng.token(V);
  ForwardBatch b;
  b.tokens = canvas;
  b.pos0 = cache->length();
  b.mask = MaskMode::kFull;
  b.write_cache = false;
  if (state.range(0)) b.self_condition = sc;
  for (auto _ : state) {
    if (!m.forward(b, *cache, logits.data(), s.pool).ok()) std::abort();
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["canvas_rows/s"] = benchmark::Counter(static_cast<double>(L), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DecoderStep)->Arg(0)->Arg(1)->ArgName("self_cond")->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();

void BM_CanvasCommit(benchmark::State& state) {
  Setup& s = setup();
  const Model& m = *s.model;
  const int64_t L = m.info().canvas_length, V = m.info().vocab_size;
  auto cache = m.make_cache(1024);
  std::vector<float> logits(V);
  ForwardBatch pre;
  pre.tokens = s.prompt;
  pre.last_logits_only = true;
  if (!m.forward(pre, *cache, logits.data(), s.pool).ok()) std::abort();
  const int64_t P = cache->length();
  std::vector<int32_t> canvas(L);
  SplitMix64 rng(3);
  for (auto& t : canvas) t = rng.token(V);
  for (auto _ : state) {
    ForwardBatch b;
    b.tokens = canvas;
    b.pos0 = P;
    b.last_logits_only = true;
    if (!m.forward(b, *cache, logits.data(), s.pool).ok()) std::abort();
    state.PauseTiming();
    if (!cache->truncate(P).ok()) std::abort();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_CanvasCommit)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();

void BM_Generate(benchmark::State& state) {
  Setup& s = setup();
  const Model& m = *s.model;
  auto md = ModelDir::open(s.dir);
  auto opts = canvas_options_from_generation_config((*md)->generation_config);
  if (!opts.ok()) std::abort();
  CanvasOptions o = *opts;
  o.sampler = state.range(0) ? CanvasSampler::kConfidenceThreshold : CanvasSampler::kEntropyBound;
  o.max_steps = 48;  // the real checkpoint's max_denoising_steps
  o.max_new_tokens = m.info().canvas_length;
  o.eos_ids = {-1};  // random weights: never stop early on an accidental EOS, always fill a canvas
  int64_t tokens = 0, forwards = 0, canvases = 0, steps = 0;
  uint64_t seed = 100;
  double wall = 0, cpu = 0;
  for (auto _ : state) {
    o.seed = seed++;
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    auto r = canvas_generate(m, s.pool, s.prompt, o);
    cpu += static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r.ok()) std::abort();
    tokens += static_cast<int64_t>(r->tokens.size());
    forwards += r->decoder_forwards;
    canvases += static_cast<int64_t>(r->canvases.size());
    for (auto& c : r->canvases) steps += static_cast<int64_t>(c.steps.size());
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  // Process CPU seconds (all threads): on a shared, oversubscribed host this tracks the work done
  // far better than wall time.
  state.counters["tok/cpu_s"] = static_cast<double>(tokens) / cpu;
  state.counters["tok/forward"] = static_cast<double>(tokens) / static_cast<double>(forwards);
  state.counters["steps/canvas"] = static_cast<double>(steps) / static_cast<double>(canvases);
  tok_per_s()[canvas_sampler_name(o.sampler)] = static_cast<double>(tokens) / wall;
  state.SetLabel(canvas_sampler_name(o.sampler));
  state.SetItemsProcessed(tokens);
}
// One generation per sampler: the step count is deterministic for a seed, so a run is its own repeat.
BENCHMARK(BM_Generate)->Arg(0)->Arg(1)->ArgName("confidence")->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

// Grouped expert FFNs (rows gathered per expert, one matmul per expert) vs the per-row loop
// baseline (the same kernel called on one row at a time), on the bench's expert shapes.
void BM_MoeExperts(benchmark::State& state) {
  const test::DgSynthSpec sp = bench_spec();
  const int64_t T = 256, C = sp.hidden, F = sp.moe_ffn, E = sp.experts, K = sp.top_k;
  SplitMix64 r(5);
  std::vector<std::vector<uint16_t>> store;
  std::vector<ExpertFfn> ex(E);
  for (int64_t e = 0; e < E; ++e)
    for (int part = 0; part < 2; ++part) {
      const int64_t n = part ? C : 2 * F, k = part ? F : C;
      store.emplace_back(static_cast<size_t>(n * k));
      for (auto& v : store.back()) v = f32_to_bf16(static_cast<float>(r.uniform() - 0.5) * 0.1f);
      Weight w;
      w.dtype = DType::kBF16;
      w.n_out = n;
      w.n_in = k;
      w.data = store.back().data();
      (part ? ex[e].down : ex[e].gate_up) = w;
    }
  std::vector<float> x(T * C), out(T * C), logits(T * E), w(T * K);
  std::vector<int32_t> sel(T * K);
  for (auto& v : x) v = static_cast<float>(r.uniform() - 0.5);
  for (auto& v : logits) v = static_cast<float>(r.uniform() * 4);
  ThreadPool pool(bench_threads());
  KernelScratch scratch;
  const KernelContext ctx(pool, scratch);
  moe_topk_softmax(logits.data(), T, E, K, sel.data(), w.data(), ctx);
  const bool grouped = state.range(0) != 0;
  for (auto _ : state) {
    if (grouped) {
      moe_experts(out.data(), x.data(), T, C, sel.data(), w.data(), K, ex, ctx);
    } else {
      for (int64_t t = 0; t < T; ++t)
        moe_experts(out.data() + t * C, x.data() + t * C, 1, C, sel.data() + t * K, w.data() + t * K, K, ex, ctx);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(grouped ? "grouped by expert" : "per-row loop");
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(T), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MoeExperts)->Arg(0)->Arg(1)->ArgName("grouped")->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

}  // namespace
}  // namespace optiq

int main(int argc, char** argv) {
  const optiq::test::DgSynthSpec s = optiq::bench_spec();
  benchmark::AddCustomContext("threads", std::to_string(optiq::bench_threads()));
  benchmark::AddCustomContext("weights", "bf16, fp32 activations");
  benchmark::AddCustomContext(
      "checkpoint", "random diffusion_gemma: hidden " + std::to_string(s.hidden) + ", layers " +
                        std::to_string(s.layers) + " (5 sliding + 1 full), heads " + std::to_string(s.heads) +
                        ", experts " + std::to_string(s.experts) + " top-" + std::to_string(s.top_k) + " (ffn " +
                        std::to_string(s.moe_ffn) + "), dense ffn " + std::to_string(s.ffn) + ", vocab " +
                        std::to_string(s.vocab) + ", canvas " + std::to_string(s.canvas) + ", prompt 128");
#ifdef NDEBUG
  benchmark::AddCustomContext("build", "release");
#else
  benchmark::AddCustomContext("build", "debug");
#endif
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  auto& tps = optiq::tok_per_s();
  if (tps.count("entropy-bound") && tps.count("confidence-threshold") && tps["entropy-bound"] > 0)
    std::printf("confidence-threshold / entropy-bound tok/s ratio: %.2f (%.1f vs %.1f tok/s)\n",
                tps["confidence-threshold"] / tps["entropy-bound"], tps["confidence-threshold"], tps["entropy-bound"]);
  benchmark::Shutdown();
  return 0;
}
