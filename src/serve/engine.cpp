#include "serve/engine.h"

namespace optiq::serve {

Job::Job(std::vector<int32_t> prompt, GenerateOptions opts, const Model* model)
    : prompt_(std::move(prompt)), opts_(std::move(opts)), model_(model),
      prompt_tokens_(static_cast<int64_t>(prompt_.size())) {}

Job::Job(std::vector<int32_t> prompt, CanvasWork canvas, const Model* model)
    : prompt_(std::move(prompt)), canvas_(std::move(canvas)), model_(model) {
  // With images the length is known only after the vision tower ran (set_prompt_tokens).
  if (canvas_->images.empty()) prompt_tokens_ = static_cast<int64_t>(prompt_.size());
}

Job::Update Job::wait(std::chrono::milliseconds timeout, size_t min_tokens) {
  std::unique_lock<std::mutex> lk(mu_);
  wake_at_ = std::max<size_t>(min_tokens, 1);
  cv_.wait_for(lk, timeout, [&] { return pending_.size() >= wake_at_ || done_ || !prompt_tokens_seen_; });
  Update u;
  u.tokens.swap(pending_);
  u.started = started_;
  u.done = done_;
  if (done_) u.status = status_;
  u.prompt_tokens = prompt_tokens_;
  prompt_tokens_seen_ = true;
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

void Job::set_prompt_tokens(int64_t n) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    prompt_tokens_ = n;
    prompt_tokens_seen_ = false;
  }
  cv_.notify_one();
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
      Status st = run(*job);
      stats_.running.store(0);
      stats_.completed.fetch_add(1);
      if (job->cancelled()) stats_.cancelled.fetch_add(1);
      job->finish(std::move(st));
    }
    std::lock_guard<std::mutex> lk(mu_);
    current_.reset();
  }
}

Status Engine::run(Job& job) {
  const Model& model = job.model() ? *job.model() : model_;
  if (job.canvas()) return run_canvas(job, model);
  auto on_tokens = [&](std::span<const int32_t> toks) {
    job.push_tokens(toks);
    return !job.cancelled();
  };
  auto r = generate(model, pool_, job.prompt(), job.options(), on_tokens);
  return r.ok() ? Status::Ok() : r.status();
}

Status Engine::run_canvas(Job& job, const Model& model) {
  const ModelInfo& info = model.info();
  const CanvasWork& work = *job.canvas();
  const CanvasOptions& o = work.options;
  std::vector<int32_t> prompt = job.prompt();
  PromptEmbeds embeds;
  if (!work.images.empty()) {
    std::vector<ImageEmbedding> soft;
    for (size_t i = 0; i < work.images.size(); ++i) {
      if (job.cancelled()) return Status::Ok();
      const RgbImage& im = work.images[i];
      auto e = model.embed_image(im.rgb, im.width, im.height, pool_);
      if (!e.ok()) return e.status().WithContext("image " + std::to_string(i));
      soft.push_back(std::move(e).value());
    }
    OPTIQ_ASSIGN_OR_RETURN(prompt, expand_image_prompt(prompt, info, soft, &embeds));
  }
  job.set_prompt_tokens(static_cast<int64_t>(prompt.size()));
  // Each finished canvas is final: stream its tokens up to the first EOS, within max_new_tokens
  // (canvas_generate cuts its result the same way). An empty first canvas pushes nothing, so a retry
  // after an empty reply streams only the retry's tokens.
  int64_t pushed = 0;
  auto on_canvas = [&](const CanvasTrace& tr) {
    const int64_t keep = tr.eos_at >= 0 ? tr.eos_at : static_cast<int64_t>(tr.argmax.size());
    const int64_t n = std::min(keep, o.max_new_tokens - pushed);
    if (n > 0) job.push_tokens(std::span<const int32_t>(tr.argmax.data(), static_cast<size_t>(n)));
    pushed += std::max<int64_t>(n, 0);
    return !job.cancelled();
  };
  auto cancelled = [&] { return job.cancelled(); };
  auto r = canvas_generate(model, pool_, prompt, o, work.images.empty() ? nullptr : &embeds, on_canvas, cancelled);
  if (!r.ok()) return r.status();
  // canvas_generate drops the EOS; pass it on when it ended the text within max_new_tokens, so that
  // consumers see "stop" and count it, as with generate().
  if (!job.cancelled() && !r->canvases.empty() && r->canvases.back().eos_at >= 0 && pushed < o.max_new_tokens) {
    const int32_t eos = r->canvases.back().argmax[static_cast<size_t>(r->canvases.back().eos_at)];
    job.push_tokens(std::span<const int32_t>(&eos, 1));
  }
  return Status::Ok();
}

}  // namespace optiq::serve
