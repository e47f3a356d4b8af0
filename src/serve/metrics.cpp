#include "serve/metrics.h"

#include <cstdio>

namespace optiq::serve {

namespace {
std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < kBounds.size() && v > kBounds[i]) ++i;
  if (i < kBounds.size()) ++counts_[i];
  ++count_;
  sum_ += v;
}

void Histogram::render(const std::string& name, std::string& out) const {
  uint64_t cum = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + num(kBounds[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_[{route, status}];
}

void Metrics::add_tokens(int64_t prompt, int64_t completion) {
  std::lock_guard<std::mutex> lk(mu_);
  prompt_tokens_ += static_cast<uint64_t>(prompt);
  completion_tokens_ += static_cast<uint64_t>(completion);
}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard<std::mutex> lk(mu_);
  ttft_.observe(seconds);
}

void Metrics::observe_inter_token(double seconds, int64_t tokens) {
  if (tokens <= 0) return;
  std::lock_guard<std::mutex> lk(mu_);
  for (int64_t i = 0; i < tokens; ++i) inter_token_.observe(seconds / static_cast<double>(tokens));
}

void Metrics::count_cancelled() {
  std::lock_guard<std::mutex> lk(mu_);
  ++cancelled_;
}

std::string Metrics::render(int64_t queue_depth, int64_t running, bool model_loaded) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::string out;
  out += "# HELP optiq_requests_total HTTP requests by route and status code.\n";
  out += "# TYPE optiq_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += "optiq_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  auto scalar = [&out](const char* name, const char* type, const char* help, const std::string& value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + value + "\n";
  };
  scalar("optiq_prompt_tokens_total", "counter", "Prompt tokens of accepted generation requests.",
         std::to_string(prompt_tokens_));
  scalar("optiq_completion_tokens_total", "counter", "Tokens generated and delivered.",
         std::to_string(completion_tokens_));
  scalar("optiq_cancelled_total", "counter", "Generations stopped because the client disconnected.",
         std::to_string(cancelled_));
  scalar("optiq_queue_depth", "gauge", "Generation requests waiting for the engine.", std::to_string(queue_depth));
  scalar("optiq_running_generations", "gauge", "Generations running on the engine (0 or 1).", std::to_string(running));
  scalar("optiq_model_loaded", "gauge", "1 once the model is loaded.", model_loaded ? "1" : "0");
  out += "# HELP optiq_time_to_first_token_seconds From request arrival to the first generated token.\n";
  out += "# TYPE optiq_time_to_first_token_seconds histogram\n";
  ttft_.render("optiq_time_to_first_token_seconds", out);
  out += "# HELP optiq_time_per_output_token_seconds Time between generated tokens (a chunk's gap split evenly).\n";
  out += "# TYPE optiq_time_per_output_token_seconds histogram\n";
  inter_token_.render("optiq_time_per_output_token_seconds", out);
  return out;
}

}  // namespace optiq::serve
