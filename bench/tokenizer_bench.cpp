// Tokenizer throughput: encode brown.txt (5.9 MB) with the fixture tokenizers on one thread.
// Run: ./build/tokenizer_bench [--benchmark_filter=llama3] ; reports bytes_per_second (MB/s = 1e6 B/s).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tokenizer/tokenizer.h"

namespace {

std::string shared_dir() { return std::string(OPTIQ_SOURCE_DIR) + "/../shared"; }

const std::string& brown() {
  static const std::string text = [] {
    std::ifstream f(shared_dir() + "/data/brown.txt", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }();
  return text;
}

std::unique_ptr<optiq::Tokenizer> load(const std::string& name) {
  auto t = optiq::Tokenizer::from_dir(shared_dir() + "/fixtures/tokenizers/" + name);
  if (!t.ok()) return nullptr;
  return std::move(t).value();
}

void context(benchmark::State& state, const std::string& name) {
  state.SetLabel(name + ", 1 thread, " + std::to_string(brown().size()) + " B, hw threads " +
                 std::to_string(std::thread::hardware_concurrency()));
}

// Whole file as one string (pre-tokenizer splits it; BPE word cache warm after the first pass).
void BM_EncodeFile(benchmark::State& state, const char* name) {
  auto tok = load(name);
  if (!tok || brown().empty()) { state.SkipWithError("fixtures missing"); return; }
  context(state, name);
  size_t n_ids = 0;
  for (auto _ : state) {
    auto ids = tok->encode(brown(), false);
    n_ids = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * brown().size()));
  state.counters["ids"] = static_cast<double>(n_ids);
}

// Line by line, as a server sees short prompts.
void BM_EncodeLines(benchmark::State& state, const char* name) {
  auto tok = load(name);
  if (!tok || brown().empty()) { state.SkipWithError("fixtures missing"); return; }
  context(state, name);
  std::vector<std::string> lines;
  std::stringstream ss(brown());
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  for (auto _ : state) {
    for (auto& l : lines) {
      auto ids = tok->encode(l, true);
      benchmark::DoNotOptimize(ids.data());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * brown().size()));
}

void BM_DecodeFile(benchmark::State& state, const char* name) {
  auto tok = load(name);
  if (!tok || brown().empty()) { state.SkipWithError("fixtures missing"); return; }
  context(state, name);
  auto ids = tok->encode(brown(), false);
  for (auto _ : state) {
    std::string s = tok->decode(ids, false);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * brown().size()));
}

// The machine is shared and noisy: each benchmark repeats 5 times and also reports the best repetition
// ("min" row; for bytes_per_second the min-time row is the best rate).
double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
#define OPTIQ_TOK_BENCH(fn, name) \
  BENCHMARK_CAPTURE(fn, name, #name)->Unit(benchmark::kMillisecond)->MinTime(1.0)->Repetitions(5)->ComputeStatistics("min", min_of)

OPTIQ_TOK_BENCH(BM_EncodeFile, llama3);
OPTIQ_TOK_BENCH(BM_EncodeLines, llama3);
OPTIQ_TOK_BENCH(BM_EncodeFile, qwen3);
OPTIQ_TOK_BENCH(BM_EncodeFile, gemma3);
OPTIQ_TOK_BENCH(BM_DecodeFile, llama3);

}  // namespace

BENCHMARK_MAIN();
