// Matmul throughput at dhara-250m shapes: GB/s of weights streamed for matvec (AR decode, T = 1) and
// ms / GFLOP/s for a 32-row block, for bf16, 8-bit and 4-bit (MLX affine, g64) weights; matvec_packed
// is the decode path models take by default (the row-interleaved copy, on huge pages).
//
// Weights are replicated into a working set of >= 1 GiB and each iteration uses the next copy, so
// matvec numbers are DRAM-streaming numbers, not cache numbers. Before the benchmarks the program
// measures the machine's streaming read bandwidth over a 1 GiB buffer (with the same thread count)
// and reports every matvec as a fraction of it ("frac_bw").
//
//   ./build/matmul_bench [--threads=N] [--benchmark_filter=...] [--benchmark_repetitions=5]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <hwy/aligned_allocator.h>
#include <hwy/highway.h>
#include <hwy/targets.h>

#include "bench/bench_util.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/matmul_q.h"
#include "kernels/x86/matmul_q_packed.h"
#include "kernels/weight.h"

namespace optiq {
namespace {

constexpr size_t kWorkingSet = size_t{1} << 30;

struct BenchEnv {
  int threads = 2;
  double read_gbps = 0;  // measured streaming read bandwidth with `threads` threads
};
BenchEnv& env() {
  static BenchEnv e;
  return e;
}

using bench::fill_random;

// A set of identical-shape weights filling the working set; `next()` cycles through them.
struct WeightSet {
  std::vector<std::vector<uint8_t>> data, scales, biases;
  HugePageArena arena;  // packed copies (packed = true)
  std::vector<Weight> w;
  size_t i = 0;
  const Weight& next() {
    const Weight& r = w[i];
    i = (i + 1) % w.size();
    return r;
  }
};

// bits 16 = dense bf16; otherwise MLX affine with bf16 scales/biases, group size 64, and with
// `packed` the decode copy the loader makes (kernels/x86/matmul_q_packed.h) where the CPU has one.
std::unique_ptr<WeightSet> make_weights(int bits, int64_t N, int64_t K, bool stream, bool packed = false) {
  auto ws = std::make_unique<WeightSet>();
  const int gs = 64;
  const size_t wbytes = static_cast<size_t>(N * K * bits / 8);
  const size_t sbytes = bits == 16 ? 0 : static_cast<size_t>(N * (K / gs) * 2);
  const size_t total = wbytes + 2 * sbytes;
  const size_t copies = stream ? std::max<size_t>(2, kWorkingSet / total + 1) : 1;
  for (size_t c = 0; c < copies; ++c) {
    ws->data.emplace_back(wbytes);
    fill_random(ws->data.back().data(), wbytes, 17 + c);
    Weight w;
    w.n_out = N;
    w.n_in = K;
    w.data = ws->data.back().data();
    if (bits == 16) {
      // Keep bf16 values finite and small: random mantissa, exponent near 2^-6.
      auto* h = reinterpret_cast<uint16_t*>(ws->data.back().data());
      for (size_t i = 0; i < wbytes / 2; ++i) h[i] = static_cast<uint16_t>((h[i] & 0x807f) | 0x3c00);
      w.dtype = DType::kBF16;
    } else {
      ws->scales.emplace_back(sbytes);
      ws->biases.emplace_back(sbytes);
      auto* s = reinterpret_cast<uint16_t*>(ws->scales.back().data());
      auto* b = reinterpret_cast<uint16_t*>(ws->biases.back().data());
      for (size_t i = 0; i < sbytes / 2; ++i) {
        s[i] = f32_to_bf16(0.002f + 0.0001f * static_cast<float>(i % 7));
        b[i] = f32_to_bf16(-0.02f);
      }
      w.dtype = DType::kU32;
      w.quant = QuantInfo{bits, gs, DType::kBF16, s, b};
      if (packed && packable(w)) w.packed = pack_rows(w, ws->arena);
    }
    ws->w.push_back(w);
  }
  return ws;
}

struct Shape {
  const char* name;
  int64_t N, K;
};
const Shape kShapes[] = {
    {"qo_768x768", 768, 768},     {"kv_256x768", 256, 768},         {"gate_up_2176x768", 2176, 768},
    {"down_768x2176", 768, 2176}, {"head_49155x768", 49155, 768},
};

// stream: cycle through >= 1 GiB of copies (DRAM-bound); otherwise one copy (cache-resident: the
// kernel's compute ceiling).
void run_matmul(benchmark::State& state, int bits, const Shape& sh, int64_t T, bool stream, bool packed = false) {
  ThreadPool pool(env().threads);
  KernelScratch scratch;
  const KernelContext ctx(pool, scratch);
  auto ws = make_weights(bits, sh.N, sh.K, stream, packed);
  if (packed && !ws->w[0].packed) {
    state.SkipWithError("no packed decode kernel on this CPU (needs AVX512-VNNI)");
    return;
  }
  std::vector<float> x(static_cast<size_t>(T * sh.K)), out(static_cast<size_t>(T * sh.N));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 201) / 100.f - 1.f;
  for (auto _ : state) {
    matmul(out.data(), x.data(), T, ws->next(), ctx);
    benchmark::DoNotOptimize(out.data());
  }
  const double bytes = static_cast<double>(ws->w[0].bytes());
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * static_cast<double>(T * sh.N * sh.K) * 1e-9 *
                                                    static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
  if (stream && env().read_gbps > 0)
    state.counters["frac_bw"] = benchmark::Counter(bytes / 1e9 / env().read_gbps * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate);
}

// The scalar oracle at one shape: the speed-up baseline, timed in the same run.
void BM_reference_q4_768x768(benchmark::State& state) {
  auto ws = make_weights(4, 768, 768, false);
  std::vector<float> x(768, 0.5f), out(768);
  for (auto _ : state) {
    matmul_reference(out.data(), x.data(), 1, ws->w[0]);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(ws->w[0].bytes()) * state.iterations());
}

}  // namespace
}  // namespace optiq

int main(int argc, char** argv) {
  using namespace optiq;
  env().threads = bench::take_threads_flag(argc, argv, env().threads);
  benchmark::Initialize(&argc, argv);
  {
    ThreadPool pool(env().threads);
    env().read_gbps = bench::measure_read_gbps(pool);
  }
  std::printf("threads %d, highway target %s, measured streaming read bandwidth %.2f GB/s (1 GiB, best of 5)\n",
              env().threads, hwy::TargetName(hwy::SupportedAndGeneratedTargets().front()), env().read_gbps);
  for (int bits : {16, 8, 4}) {
    const std::string dt = bits == 16 ? "bf16" : "q" + std::to_string(bits);
    for (const Shape& sh : kShapes) {
      benchmark::RegisterBenchmark((std::string("matvec/") + dt + "/" + sh.name).c_str(),
                                   [bits, sh](benchmark::State& s) { run_matmul(s, bits, sh, 1, true); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark((std::string("matvec_cached/") + dt + "/" + sh.name).c_str(),
                                   [bits, sh](benchmark::State& s) { run_matmul(s, bits, sh, 1, false); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      if (bits != 16) {
        benchmark::RegisterBenchmark((std::string("matvec_packed/") + dt + "/" + sh.name).c_str(),
                                     [bits, sh](benchmark::State& s) { run_matmul(s, bits, sh, 1, true, true); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
        benchmark::RegisterBenchmark((std::string("matvec_packed_cached/") + dt + "/" + sh.name).c_str(),
                                     [bits, sh](benchmark::State& s) { run_matmul(s, bits, sh, 1, false, true); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
      benchmark::RegisterBenchmark((std::string("block32/") + dt + "/" + sh.name).c_str(),
                                   [bits, sh](benchmark::State& s) { run_matmul(s, bits, sh, 32, false); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::RegisterBenchmark("reference/q4/qo_768x768", BM_reference_q4_768x768)->Unit(benchmark::kMicrosecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
