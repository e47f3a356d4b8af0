#include "serve/engine.h"

namespace optiq::serve {

Job::Update Job::wait(std::chrono::milliseconds timeout, size_t min_tokens) {
  std::unique_lock<std::mutex> lk(mu_);
  wake_at_ = std::max<size_t>(min_tokens, 1);
  cv_.wait_for(lk, timeout, [&] { return pending_.size() >= wake_at_ || done_; });
  Update u;
  u.tokens.swap(pending_);
  u.started = started_;
  u.done = done_;
  if (done_) u.status = status_;
  return u;
}

Clock::time_point Job::first_token_at() {
  std::lock_guard<std::mutex> lk(mu_);
  return first_token_at_;
}

void Job::push_tokens(std::span<const int32_t> t) {
  bool wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (first_token_at_ == Clock::time_point{} && !t.empty()) first_token_at_ = Clock::now();
    pending_.insert(pending_.end(), t.begin(), t.end());
    wake = pending_.size() >= wake_at_;
  }
  if (wake) cv_.notify_one();
}

void Job::mark_started() {
  std::lock_guard<std::mutex> lk(mu_);
  started_ = true;
}

void Job::finish(Status s) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    done_ = true;
    status_ = std::move(s);
  }
  cv_.notify_one();
}

Engine::Engine(const Model& model, ThreadPool& pool, size_t queue_capacity)
    : model_(model), pool_(pool), capacity_(std::max<size_t>(queue_capacity, 1)) {
  worker_ = std::thread([this] { worker_loop(); });
}

Engine::~Engine() { shutdown(); }

Engine::Submit Engine::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return Submit::kShuttingDown;
    if (queue_.size() >= capacity_) return Submit::kQueueFull;
    job->enqueued_at_ = Clock::now();
    queue_.push_back(job);
    stats_.queued.store(static_cast<int64_t>(queue_.size()));
  }
  cv_.notify_one();
  return Submit::kOk;
}

void Engine::shutdown() {
  std::deque<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
    dropped.swap(queue_);
    stats_.queued.store(0);
    if (current_) current_->cancel();
  }
  cv_.notify_all();
  for (auto& j : dropped) {
    j->cancel();
    j->finish(Status::Unsupported("server shutting down"));
  }
  if (worker_.joinable() && std::this_thread::get_id() != worker_.get_id()) worker_.join();
}

void Engine::worker_loop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      stats_.queued.store(static_cast<int64_t>(queue_.size()));
      current_ = job;
    }
    if (job->cancelled()) {
      // The client left while the job waited: skip it without touching the model.
      stats_.cancelled.fetch_add(1);
      job->finish(Status::Ok());
    } else {
      stats_.running.store(1);
      job->mark_started();
      auto on_tokens = [&](std::span<const int32_t> toks) {
        job->push_tokens(toks);
        return !job->cancelled();
      };
      auto r = generate(model_, pool_, job->prompt(), job->options(), on_tokens);
      stats_.running.store(0);
      stats_.completed.fetch_add(1);
      if (job->cancelled()) stats_.cancelled.fetch_add(1);
      job->finish(r.ok() ? Status::Ok() : r.status());
    }
    std::lock_guard<std::mutex> lk(mu_);
    current_.reset();
  }
}

}  // namespace optiq::serve
