// lora_add (kernels/kernels.h) against the bf16 matmul it rides on, at dhara-250m's linear shapes:
// what an unmerged adapter adds to a decode step (T = 1), a diffusion block (T = 32) and a prefill
// chunk (T = 512), for ranks 8 and 16. Both run in the same process on cache-resident weights (the
// adapter's are; the base matmul's bf16 matrix of 1–3 MiB mostly is), so the ratio is an upper bound
// on the adapter's share of a DRAM-bound decode step.
//
//   ./build/lora_bench [--threads=N] [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <hwy/targets.h>

#include "bench/bench_util.h"
#include "core/thread_pool.h"
#include "kernels/context.h"
#include "kernels/kernels.h"

namespace optiq {
namespace {

int g_threads = 2;

struct Shape {
  const char* name;
  int64_t in, out;
};
constexpr Shape kShapes[] = {{"q_768x768", 768, 768}, {"up_768x2176", 768, 2176}, {"down_2176x768", 2176, 768}};

std::vector<float> randn(size_t n, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

void run_lora(benchmark::State& state, Shape sh, int64_t T, int64_t rank) {
  ThreadPool pool(g_threads);
  KernelScratch scratch;
  KernelContext ctx(pool, scratch);
  const auto x = randn(static_cast<size_t>(T * sh.in), 1, 1.f);
  const auto a = randn(static_cast<size_t>(sh.in * rank), 2, 0.03f);
  const auto b = randn(static_cast<size_t>(rank * sh.out), 3, 0.03f);
  std::vector<float> out(static_cast<size_t>(T * sh.out), 0.f);
  for (auto _ : state) {
    lora_add(out.data(), x.data(), T, a.data(), b.data(), sh.in, rank, sh.out, 2.f, ctx);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["MAC/s"] = benchmark::Counter(static_cast<double>(T * rank * (sh.in + sh.out)) * state.iterations(),
                                               benchmark::Counter::kIsRate);
}

void run_base(benchmark::State& state, Shape sh, int64_t T) {
  ThreadPool pool(g_threads);
  KernelScratch scratch;
  KernelContext ctx(pool, scratch);
  const auto x = randn(static_cast<size_t>(T * sh.in), 1, 1.f);
  const auto wf = randn(static_cast<size_t>(sh.in * sh.out), 4, 0.03f);
  std::vector<uint16_t> w(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) w[i] = f32_to_bf16(wf[i]);
  Weight wt;
  wt.dtype = DType::kBF16;
  wt.n_out = sh.out;
  wt.n_in = sh.in;
  wt.data = w.data();
  std::vector<float> out(static_cast<size_t>(T * sh.out));
  for (auto _ : state) {
    matmul(out.data(), x.data(), T, wt, ctx);
    benchmark::DoNotOptimize(out.data());
  }
}

}  // namespace
}  // namespace optiq

int main(int argc, char** argv) {
  using namespace optiq;
  g_threads = bench::take_threads_flag(argc, argv, g_threads);
  benchmark::Initialize(&argc, argv);
  std::printf("threads %d, highway target %s; base = bf16 matmul, lora = lora_add (fp32 a, b)\n", g_threads,
              hwy::TargetName(hwy::SupportedAndGeneratedTargets().front()));
  for (const Shape& sh : kShapes)
    for (int64_t T : {1, 32, 512}) {
      const std::string suffix = std::string("/") + sh.name + "/T" + std::to_string(T);
      benchmark::RegisterBenchmark(("base" + suffix).c_str(), [sh, T](benchmark::State& s) { run_base(s, sh, T); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      for (int64_t r : {8, 16})
        benchmark::RegisterBenchmark(("lora_r" + std::to_string(r) + suffix).c_str(),
                                     [sh, T, r](benchmark::State& s) { run_lora(s, sh, T, r); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
