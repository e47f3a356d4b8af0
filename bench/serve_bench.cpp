// Server overhead per request: the same greedy chat prompt through generate() directly and through
// optiq serve in-process over loopback HTTP (non-streaming and streaming), in one run. The difference
// is what serving adds: HTTP, JSON, chat template + tokenization, queue hand-off, detokenization.
//   ./build/serve_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <httplib.h>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "serve/server.h"

namespace optiq::serve {
namespace {

constexpr int kMaxTokens = 64;
const char* kUser = "Tell me about the old house by the river";

// --model DIR (before the benchmark flags) overrides the bundled model, e.g. when the binary runs elsewhere.
std::string& model_dir_flag() {
  static std::string dir = std::string(OPTIQ_SOURCE_DIR) + "/models/dhara-brown-tiny";
  return dir;
}
std::string model_dir() { return model_dir_flag(); }

// One engine and one in-process server, each with its own copy of the model and one compute thread.
struct Fixture {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ThreadPool> pool;
  std::vector<int32_t> prompt;
  std::unique_ptr<Server> server;
  std::thread serve_thread;
  int port = 0;

  Fixture() {
    model = std::move(load_model(model_dir())).value();
    tok = std::move(Tokenizer::from_dir(model_dir())).value();
    pool = std::make_unique<ThreadPool>(1);
    Json msgs = Json::array({Json{{"role", "user"}, {"content", kUser}}});
    prompt = tok->encode(*tok->apply_chat_template(msgs, Json(), true, Json::object()), false);
    ServerOptions o;
    o.port = 0;
    o.defaults.sampling.repetition_penalty = 1.3f;
    server = std::make_unique<Server>(o);
    port = *server->bind();
    serve_thread = std::thread([this] { (void)server->serve(); });
    server->set_model(std::move(load_model(model_dir())).value(), std::move(Tokenizer::from_dir(model_dir())).value(), 1);
    std::printf("machine: %u hardware threads; compute threads 1 (engine and server); dhara-brown-tiny bf16; "
                "greedy, repetition_penalty 1.3; concurrent clients: max_tokens %d\n", std::thread::hardware_concurrency(), kMaxTokens);
  }
  ~Fixture() {
    server->stop();
    serve_thread.join();
  }
};

// CPU seconds used by the whole process (all threads): robust to descheduling on a busy machine, and it
// counts the server's threads, which Google Benchmark's per-thread CPU time does not.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_EngineDirect(benchmark::State& state) {
  Fixture& f = fixture();
  GenerateOptions o;
  o.max_new_tokens = static_cast<int>(state.range(0));
  o.sampling.repetition_penalty = 1.3f;
  int64_t tokens = 0;
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    auto r = generate(*f.model, *f.pool, f.prompt, o);
    tokens += static_cast<int64_t>(r->tokens.size());
  }
  state.counters["tokens/request"] = static_cast<double>(tokens) / static_cast<double>(state.iterations());
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["process_cpu_ms/request"] = 1e3 * (process_cpu_seconds() - cpu0) / static_cast<double>(state.iterations());
}

void server_request(benchmark::State& state, bool stream) {
  Fixture& f = fixture();
  httplib::Client c("127.0.0.1", f.port);
  c.set_read_timeout(60);
  Json body{{"messages", Json::array({Json{{"role", "user"}, {"content", kUser}}})}, {"max_tokens", state.range(0)},
            {"stream", stream}};
  if (stream) body["stream_options"] = Json{{"include_usage", true}};
  const std::string payload = body.dump();
  int64_t tokens = 0;
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    auto r = c.Post("/v1/chat/completions", payload, "application/json");
    if (!r || r->status != 200) {
      state.SkipWithError("request failed");
      break;
    }
    // usage.completion_tokens is in the last JSON object of either body.
    const size_t at = r->body.rfind("\"completion_tokens\":");
    tokens += std::strtoll(r->body.c_str() + at + 20, nullptr, 10);
  }
  state.counters["tokens/request"] = static_cast<double>(tokens) / static_cast<double>(state.iterations());
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["process_cpu_ms/request"] = 1e3 * (process_cpu_seconds() - cpu0) / static_cast<double>(state.iterations());
}

// Aggregate throughput with N concurrent streaming clients, each sending 4 requests per iteration. One
// engine worker serves them in turn, so this measures queueing fairness and serving overhead under
// concurrency, not batching.
void BM_ServerConcurrent(benchmark::State& state) {
  Fixture& f = fixture();
  const int clients = static_cast<int>(state.range(0));
  Json body{{"messages", Json::array({Json{{"role", "user"}, {"content", kUser}}})}, {"max_tokens", kMaxTokens},
            {"stream", true}, {"stream_options", Json{{"include_usage", true}}}};
  const std::string payload = body.dump();
  std::atomic<int64_t> tokens{0}, failures{0};
  for (auto _ : state) {
    std::vector<std::thread> ts;
    for (int i = 0; i < clients; ++i)
      ts.emplace_back([&] {
        httplib::Client c("127.0.0.1", f.port);
        c.set_read_timeout(120);
        for (int k = 0; k < 4; ++k) {
          auto r = c.Post("/v1/chat/completions", payload, "application/json");
          if (!r || r->status != 200) {
            failures.fetch_add(1);
            continue;
          }
          const size_t at = r->body.rfind("\"completion_tokens\":");
          tokens.fetch_add(std::strtoll(r->body.c_str() + at + 20, nullptr, 10));
        }
      });
    for (auto& t : ts) t.join();
  }
  if (failures.load() > 0) state.SkipWithError("some requests failed");
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens.load()), benchmark::Counter::kIsRate);
  state.counters["requests/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * clients * 4), benchmark::Counter::kIsRate);
}

// Paired measurement: each iteration times generate() and then the same request through the server,
// back to back, so slow drifts in machine load hit both; reports the median and best of the per-pair
// differences (the server's overhead per request) next to the engine's own median time.
void BM_OverheadPaired(benchmark::State& state) {
  Fixture& f = fixture();
  const bool stream = state.range(1) != 0;
  GenerateOptions o;
  o.max_new_tokens = static_cast<int>(state.range(0));
  o.sampling.repetition_penalty = 1.3f;
  httplib::Client c("127.0.0.1", f.port);
  c.set_read_timeout(60);
  Json body{{"messages", Json::array({Json{{"role", "user"}, {"content", kUser}}})}, {"max_tokens", state.range(0)},
            {"stream", stream}};
  const std::string payload = body.dump();
  std::vector<double> diffs, direct;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    auto r = generate(*f.model, *f.pool, f.prompt, o);
    const auto t1 = Clock::now();
    auto h = c.Post("/v1/chat/completions", payload, "application/json");
    const auto t2 = Clock::now();
    if (!r.ok() || !h || h->status != 200) {
      state.SkipWithError("request failed");
      break;
    }
    direct.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    diffs.push_back(std::chrono::duration<double, std::milli>((t2 - t1) - (t1 - t0)).count());
  }
  if (diffs.empty()) return;
  std::sort(diffs.begin(), diffs.end());
  std::sort(direct.begin(), direct.end());
  state.counters["engine_ms_median"] = direct[direct.size() / 2];
  state.counters["overhead_ms_median"] = diffs[diffs.size() / 2];
  state.counters["overhead_ms_p25"] = diffs[diffs.size() / 4];
}

void BM_ServerChat(benchmark::State& state) { server_request(state, false); }
void BM_ServerChatStream(benchmark::State& state) { server_request(state, true); }

// Arg: max_tokens. With 1, the engine does only the prefill, so the serving overhead stands out.
BENCHMARK(BM_EngineDirect)->Arg(1)->Arg(kMaxTokens)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ServerChat)->Arg(1)->Arg(kMaxTokens)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ServerChatStream)->Arg(1)->Arg(kMaxTokens)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_OverheadPaired)
    ->Args({1, 0})->Args({kMaxTokens, 0})->Args({1, 1})->Args({kMaxTokens, 1})
    ->Iterations(60)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ServerConcurrent)->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace optiq::serve

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--model" && i + 1 < argc) optiq::serve::model_dir_flag() = argv[++i];
    else rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
