// Prometheus metrics of the server (text exposition format 0.0.4).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace optiq::serve {

// A cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
  void observe(double v);
  // Appends the _bucket/_sum/_count lines of metric `name`.
  void render(const std::string& name, std::string& out) const;

 private:
  std::array<uint64_t, kBounds.size()> counts_{};  // per bucket (not cumulative)
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Thread-safe: every method takes the one mutex (updates are a few per request or per token chunk).
class Metrics {
 public:
  void count_request(const std::string& route, int status);
  void add_tokens(int64_t prompt, int64_t completion);
  void observe_ttft(double seconds);
  // `tokens` tokens arrived `seconds` after the previous chunk: one observation of seconds/tokens each.
  void observe_inter_token(double seconds, int64_t tokens);
  void count_cancelled();
  // Renders everything; gauges are passed in since the engine owns them.
  std::string render(int64_t queue_depth, int64_t running, bool model_loaded) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0, cancelled_ = 0;
  Histogram ttft_, inter_token_;
};

}  // namespace optiq::serve
