// The engine worker and its job channel, driven by the scripted fake model (tests/decode/fake_model.h).
#include "serve/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "tests/decode/fake_model.h"

namespace optiq::serve {
namespace {

using namespace std::chrono_literals;
using test::FakeModel;
using test::FakeRow;

ModelInfo ar_info() {
  ModelInfo i;
  i.vocab_size = 16;
  i.eos_ids = {15};
  return i;
}

// Causal rows predict (last token + 1) mod 15: a prompt ending in 3 continues 4, 5, 6, ...
void count_up(const FakeRow& r, std::span<float> z) { test::peak(z, (r.visible.back() + 1) % 15, 5.f); }

// Reads a job to its end; the tokens in order.
std::vector<int32_t> drain(Job& job, Status* status = nullptr) {
  std::vector<int32_t> all;
  for (int i = 0; i < 1000; ++i) {
    Job::Update u = job.wait(100ms);
    all.insert(all.end(), u.tokens.begin(), u.tokens.end());
    if (u.done) {
      if (status) *status = u.status;
      return all;
    }
  }
  ADD_FAILURE() << "job never finished";
  return all;
}

GenerateOptions greedy(int n) {
  GenerateOptions o;
  o.max_new_tokens = n;
  return o;
}

TEST(Engine, RunsAJobAndStreamsItsTokensInOrder) {
  FakeModel m(ar_info(), count_up);
  ThreadPool pool(1);
  Engine e(m, pool, 4);
  auto job = std::make_shared<Job>(std::vector<int32_t>{1, 3}, greedy(5));
  ASSERT_EQ(e.submit(job), Engine::Submit::kOk);
  Status st;
  EXPECT_EQ(drain(*job, &st), (std::vector<int32_t>{4, 5, 6, 7, 8}));
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(job->first_token_at(), Clock::time_point{});
  EXPECT_EQ(e.stats().completed.load(), 1);
  EXPECT_EQ(e.stats().cancelled.load(), 0);
}

TEST(Engine, GenerationErrorsReachTheJob) {
  FakeModel m(ar_info(), count_up);
  ThreadPool pool(1);
  Engine e(m, pool, 4);
  auto job = std::make_shared<Job>(std::vector<int32_t>{1, 99}, greedy(5));  // id outside the vocabulary
  ASSERT_EQ(e.submit(job), Engine::Submit::kOk);
  Status st;
  EXPECT_TRUE(drain(*job, &st).empty());
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
}

// A model whose forwards wait until released, to hold the worker busy.
struct Gate {
  std::atomic<bool> open{false};
  std::atomic<int> waiting{0};
};

FakeModel gated_model(Gate& g) {
  return FakeModel(ar_info(), [&g](const FakeRow& r, std::span<float> z) {
    ++g.waiting;
    while (!g.open.load()) std::this_thread::sleep_for(1ms);
    count_up(r, z);
  });
}

TEST(Engine, BoundedQueueSkipsCancelledJobsAndShutdownFinishesTheRest) {
  Gate gate;
  FakeModel m = gated_model(gate);
  ThreadPool pool(1);
  Engine e(m, pool, 1);
  auto running = std::make_shared<Job>(std::vector<int32_t>{1}, greedy(3));
  ASSERT_EQ(e.submit(running), Engine::Submit::kOk);
  while (gate.waiting.load() == 0) std::this_thread::sleep_for(1ms);  // the worker holds it
  auto queued = std::make_shared<Job>(std::vector<int32_t>{2}, greedy(3));
  ASSERT_EQ(e.submit(queued), Engine::Submit::kOk);
  EXPECT_EQ(e.stats().queued.load(), 1);
  EXPECT_EQ(e.stats().running.load(), 1);
  auto rejected = std::make_shared<Job>(std::vector<int32_t>{3}, greedy(3));
  EXPECT_EQ(e.submit(rejected), Engine::Submit::kQueueFull);
  // Cancelled while waiting: skipped without a forward.
  queued->cancel();
  gate.open = true;
  EXPECT_EQ(drain(*running), (std::vector<int32_t>{2, 3, 4}));
  Status st;
  EXPECT_TRUE(drain(*queued, &st).empty());
  EXPECT_TRUE(st.ok());
  EXPECT_FALSE(queued->wait(0ms).started);
  EXPECT_EQ(e.stats().cancelled.load(), 1);
  EXPECT_EQ(e.stats().completed.load(), 1);
  // One prefill only (a forward on an empty cache): the running job's.
  EXPECT_EQ(std::count_if(m.calls.begin(), m.calls.end(), [](auto& c) { return c.cache_before.empty(); }), 1);
}

TEST(Engine, ShutdownFinishesQueuedJobsAndRefusesNewOnes) {
  Gate gate;
  FakeModel m = gated_model(gate);
  ThreadPool pool(1);
  Engine e(m, pool, 2);
  auto running = std::make_shared<Job>(std::vector<int32_t>{1}, greedy(50));
  auto queued = std::make_shared<Job>(std::vector<int32_t>{2}, greedy(3));
  ASSERT_EQ(e.submit(running), Engine::Submit::kOk);
  while (gate.waiting.load() == 0) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(e.submit(queued), Engine::Submit::kOk);
  std::thread opener([&] {
    std::this_thread::sleep_for(20ms);
    gate.open = true;
  });
  e.shutdown();  // cancels the running job (it stops at its next token) and drops the queued one
  opener.join();
  Status st;
  drain(*queued, &st);
  EXPECT_EQ(st.code(), Status::Code::kUnsupported);
  EXPECT_NE(st.message().find("shutting down"), std::string::npos);
  EXPECT_LT(drain(*running).size(), 50u);
  EXPECT_TRUE(running->cancelled());
  EXPECT_EQ(e.submit(std::make_shared<Job>(std::vector<int32_t>{1}, greedy(1))), Engine::Submit::kShuttingDown);
}

// A canvas job streams each canvas up to its EOS and then the EOS itself, as generate() emits it.
TEST(Engine, CanvasJobStreamsTheCanvasThenItsEos) {
  ModelInfo info;
  info.vocab_size = 8;
  info.canvas_length = 4;
  info.eos_ids = {1};
  FakeModel m(info, [](const test::FakeCall& c, float* out) {
    const int32_t canvas[4] = {5, 6, 1, 7};
    for (size_t i = 0; i < c.tokens.size(); ++i)
      test::peak(std::span<float>(out + i * 8, 8), c.mask == MaskMode::kFull ? canvas[i] : 0, 40.f);
  });
  ThreadPool pool(1);
  Engine e(m, pool, 2);
  CanvasWork work;
  work.options.sampler = CanvasSampler::kConfidenceThreshold;
  work.options.max_new_tokens = 16;
  auto job = std::make_shared<Job>(std::vector<int32_t>{2, 3}, work);
  EXPECT_EQ(job->wait(0ms).prompt_tokens, 2);  // known up front without images
  ASSERT_EQ(e.submit(job), Engine::Submit::kOk);
  Status st;
  EXPECT_EQ(drain(*job, &st), (std::vector<int32_t>{5, 6, 1}));
  EXPECT_TRUE(st.ok()) << st.ToString();
}

}  // namespace
}  // namespace optiq::serve
