// The Prometheus text the server's /metrics endpoint returns.
#include "serve/metrics.h"

#include <gtest/gtest.h>

namespace optiq::serve {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Histogram, BucketsAreCumulativeWithUpperBoundsInclusive) {
  Histogram h;
  h.observe(0.001);  // on a bound: counted in that bucket (le = less or equal)
  h.observe(0.02);
  h.observe(0.02);
  h.observe(100.0);  // beyond the last bound: only +Inf
  std::string out;
  h.render("t", out);
  EXPECT_TRUE(has_line(out, "t_bucket{le=\"0.001\"} 1")) << out;
  EXPECT_TRUE(has_line(out, "t_bucket{le=\"0.01\"} 1")) << out;
  EXPECT_TRUE(has_line(out, "t_bucket{le=\"0.025\"} 3")) << out;
  EXPECT_TRUE(has_line(out, "t_bucket{le=\"30\"} 3")) << out;
  EXPECT_TRUE(has_line(out, "t_bucket{le=\"+Inf\"} 4")) << out;
  EXPECT_TRUE(has_line(out, "t_sum 100.041")) << out;
  EXPECT_TRUE(has_line(out, "t_count 4")) << out;
}

TEST(Metrics, RendersCountersGaugesAndHistograms) {
  Metrics m;
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/messages", 400);
  m.add_tokens(10, 4);
  m.add_tokens(5, 1);
  m.count_cancelled();
  m.observe_ttft(0.2);
  m.observe_inter_token(0.06, 3);  // three observations of 0.02 s
  m.observe_inter_token(1.0, 0);   // no tokens: nothing observed
  const std::string out = m.render(2, 1, true);
  EXPECT_TRUE(has_line(out, "optiq_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2")) << out;
  EXPECT_TRUE(has_line(out, "optiq_requests_total{route=\"/v1/messages\",status=\"400\"} 1")) << out;
  EXPECT_TRUE(has_line(out, "optiq_prompt_tokens_total 15"));
  EXPECT_TRUE(has_line(out, "optiq_completion_tokens_total 5"));
  EXPECT_TRUE(has_line(out, "optiq_cancelled_total 1"));
  EXPECT_TRUE(has_line(out, "optiq_queue_depth 2"));
  EXPECT_TRUE(has_line(out, "optiq_running_generations 1"));
  EXPECT_TRUE(has_line(out, "optiq_model_loaded 1"));
  EXPECT_TRUE(has_line(out, "# TYPE optiq_time_to_first_token_seconds histogram"));
  EXPECT_TRUE(has_line(out, "optiq_time_to_first_token_seconds_count 1"));
  EXPECT_TRUE(has_line(out, "optiq_time_per_output_token_seconds_bucket{le=\"0.025\"} 3")) << out;
  EXPECT_TRUE(has_line(out, "optiq_time_per_output_token_seconds_count 3")) << out;
  EXPECT_TRUE(has_line(m.render(0, 0, false), "optiq_model_loaded 0"));
}

}  // namespace
}  // namespace optiq::serve
