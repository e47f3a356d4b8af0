// One engine worker fed by a bounded queue of generation jobs.
//
// HTTP handler threads submit jobs and read each job's tokens as the worker produces them; the worker
// runs one generation at a time (the model's ThreadPool parallelises inside a forward): generate() for
// AR / block-diffusion models, canvas_generate() for canvas-diffusion ones, after running the vision
// tower on the job's images. A job can be cancelled at any time (client gone, stop string found): if
// queued, it is skipped; if running, generate() stops at the next chunk and canvas_generate() before its
// next denoising step, freeing the worker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "decode/canvas.h"
#include "decode/generate.h"
#include "io/image.h"
#include "models/model.h"

namespace optiq::serve {

using Clock = std::chrono::steady_clock;

// What a canvas-diffusion job needs beyond its prompt.
struct CanvasWork {
  CanvasOptions options;
  // Decoded images, in the order of the prompt's image tokens; the worker runs the vision tower on each
  // and expands every image token to boi + n soft tokens + eoi (expand_image_prompt).
  std::vector<RgbImage> images;
};

// A generation job and the channel between the worker (producer) and one handler (consumer).
// Thread safety: all members except the constructor arguments are guarded by mu_ or atomic.
class Job {
 public:
  // An AR / block-diffusion job (generate()). `model`: the view of the engine's model to run (an
  // adapter mounted on it, models/model.h with_adapter), which must outlive the job; null runs the
  // engine's model itself.
  Job(std::vector<int32_t> prompt, GenerateOptions opts, const Model* model = nullptr);
  // A canvas-diffusion job (canvas_generate()). Tokens are pushed canvas by canvas, cut at the first EOS
  // and at max_new_tokens; the EOS itself follows when it ended the text (as generate() emits it).
  Job(std::vector<int32_t> prompt, CanvasWork canvas, const Model* model = nullptr);

  const std::vector<int32_t>& prompt() const { return prompt_; }
  const Model* model() const { return model_; }
  const GenerateOptions& options() const { return opts_; }
  const CanvasWork* canvas() const { return canvas_ ? &*canvas_ : nullptr; }

  // Requests the generation to stop; safe from any thread, idempotent.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // What a consumer sees after waiting.
  struct Update {
    std::vector<int32_t> tokens;  // tokens that became final since the last call
    bool started = false;         // the worker has begun this job
    bool done = false;            // no more tokens will come
    Status status;                // when done: how generate() ended
    // The prompt's length as the model sees it (image soft tokens included); -1 until the worker has
    // run the vision tower on a job with images.
    int64_t prompt_tokens = -1;
  };
  // Waits up to `timeout` until at least `min_tokens` new tokens are pending, the prompt length became
  // known, or the job is done, then returns what is new. A consumer that needs no per-token updates (a non-streaming response) passes a
  // larger `min_tokens` so the worker does not wake it for every token. Single consumer.
  Update wait(std::chrono::milliseconds timeout, size_t min_tokens = 1);

  Clock::time_point enqueued_at() const { return enqueued_at_; }
  // When the first token was produced (the epoch if none yet). Call after an Update with tokens.
  Clock::time_point first_token_at();

 private:
  friend class Engine;
  void push_tokens(std::span<const int32_t> t);
  void mark_started();
  void set_prompt_tokens(int64_t n);
  void finish(Status s);

  const std::vector<int32_t> prompt_;
  const GenerateOptions opts_;
  const std::optional<CanvasWork> canvas_;
  const Model* const model_;
  std::atomic<bool> cancelled_{false};
  Clock::time_point enqueued_at_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> pending_;  // produced, not yet consumed
  size_t wake_at_ = 1;            // the consumer wants a notification at this many pending tokens
  Clock::time_point first_token_at_{};
  bool started_ = false, done_ = false;
  int64_t prompt_tokens_ = -1;
  bool prompt_tokens_seen_ = true;  // false from set_prompt_tokens() until a wait() reported it
  Status status_;
};

// Counters the metrics endpoint reads. Safe from any thread.
struct EngineStats {
  std::atomic<int64_t> queued{0};      // jobs waiting for the worker
  std::atomic<int64_t> running{0};     // 0 or 1
  std::atomic<int64_t> completed{0};   // generate() returned
  std::atomic<int64_t> cancelled{0};   // cancelled before or during generation
};

class Engine {
 public:
  // The model and pool must outlive the engine. `queue_capacity` >= 1 jobs may wait.
  Engine(const Model& model, ThreadPool& pool, size_t queue_capacity);
  ~Engine();  // shutdown() and join
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  enum class Submit { kOk, kQueueFull, kShuttingDown };
  // Enqueues a job; thread-safe. On kOk the job will be finished (done) eventually, cancelled or not.
  Submit submit(const std::shared_ptr<Job>& job);
  // Stops accepting jobs, cancels queued and running ones, and joins the worker. Idempotent.
  void shutdown();

  const EngineStats& stats() const { return stats_; }
  const Model& model() const { return model_; }

 private:
  void worker_loop();
  Status run(Job& job);
  Status run_canvas(Job& job, const Model& model);

  const Model& model_;
  ThreadPool& pool_;
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::shared_ptr<Job> current_;
  bool stopping_ = false;
  EngineStats stats_;
  std::thread worker_;
};

}  // namespace optiq::serve
