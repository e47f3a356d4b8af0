#include "core/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OPTIQ_PAUSE() _mm_pause()
#else
#define OPTIQ_PAUSE() std::this_thread::yield()
#endif

namespace optiq {

// Job protocol. `state_` packs [generation:32 | closed:1 | entered:31]. A worker may touch the job
// only after entering it (CAS on the current generation while not closed). The caller claims
// chunks itself, then closes the job and waits only for workers that entered. So a worker that is
// descheduled (other processes on the cores) never delays the caller: it arrives to a closed job.
namespace {
constexpr uint64_t kClosed = uint64_t{1} << 31;
constexpr uint64_t kCountMask = kClosed - 1;
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  state_.fetch_add(uint64_t{1} << 32, std::memory_order_seq_cst);
  wake_sleepers();
  for (auto& t : workers_) t.join();
}

void ThreadPool::wake_sleepers() {
  // Pairs with the sleeper's increment-then-check under the mutex: either it sees the new
  // generation, or we see it counted and notify after it has started waiting.
  if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
  { std::lock_guard<std::mutex> lock(sleep_mu_); }
  sleep_cv_.notify_all();
}

void ThreadPool::run_chunks(int index) {
  for (;;) {
    const int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (c >= n_chunks_) return;
    const int64_t b = c * chunk_;
    const int64_t e = std::min(job_n_, b + chunk_);
    (*job_)(b, e, index);
  }
}

void ThreadPool::prefetch_while_idle(std::span<const Span> spans) {
  if (n_threads_ == 1) return;
  const uint64_t seq = hint_seq_.load(std::memory_order_relaxed);
  hint_seq_.store(seq + 1, std::memory_order_relaxed);  // odd: being written
  std::atomic_thread_fence(std::memory_order_release);
  for (int i = 0; i < kMaxPrefetchSpans; ++i) {
    const bool set = i < static_cast<int>(spans.size());  // spans past kMaxPrefetchSpans are ignored
    hint_p_[i].store(set ? spans[i].p : nullptr, std::memory_order_relaxed);
    hint_bytes_[i].store(set ? spans[i].bytes : 0, std::memory_order_relaxed);
  }
  hint_seq_.store(seq + 2, std::memory_order_release);
}

// Worker 1, between jobs: prefetch the current hint's spans a few lines at a time, returning as soon
// as a job newer than `job_gen` is published.
void ThreadPool::run_prefetch_hint(uint64_t& seen_hint, uint64_t job_gen) {
  const uint64_t seq = hint_seq_.load(std::memory_order_acquire);
  if (seq == seen_hint || (seq & 1)) return;
  // Read on every architecture (the torn-read check below), used only where there is a prefetch.
  [[maybe_unused]] const char* p[kMaxPrefetchSpans];
  [[maybe_unused]] size_t bytes[kMaxPrefetchSpans];
  for (int i = 0; i < kMaxPrefetchSpans; ++i) {
    p[i] = static_cast<const char*>(hint_p_[i].load(std::memory_order_relaxed));
    bytes[i] = hint_bytes_[i].load(std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  if (hint_seq_.load(std::memory_order_relaxed) != seq) return;  // torn: retry on the next spin
  seen_hint = seq;
#if defined(__x86_64__) || defined(__i386__)
  constexpr size_t kLine = 64, kBatch = 16;  // lines between checks for a new job
  for (int i = 0; i < kMaxPrefetchSpans; ++i) {
    for (size_t off = 0; off < bytes[i]; off += kLine * kBatch) {
      if ((state_.load(std::memory_order_relaxed) >> 32) != job_gen) return;
      const size_t end = std::min(bytes[i], off + kLine * kBatch);
      for (size_t o = off; o < end; o += kLine) _mm_prefetch(p[i] + o, _MM_HINT_T1);
    }
  }
#endif
}

void ThreadPool::worker_loop(int index) {
  // Generation 0 is the pool's initial state; reading state_ here instead would race with a
  // destructor or job published before this thread started, and sleep through it.
  uint64_t seen_gen = 0;
  uint64_t seen_hint = 0;
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    for (int spin = 0; (s >> 32) == seen_gen && spin < 4000; ++spin) {
      if (index == 1) run_prefetch_hint(seen_hint, seen_gen);
      OPTIQ_PAUSE();
      s = state_.load(std::memory_order_acquire);
    }
    if ((s >> 32) == seen_gen) {
      // Sleep. std::atomic::wait is avoided: GCC 12's libstdc++ can lose wake-ups for 64-bit atomics.
      std::unique_lock<std::mutex> lock(sleep_mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      sleep_cv_.wait(lock, [&] { return (state_.load(std::memory_order_seq_cst) >> 32) != seen_gen; });
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      s = state_.load(std::memory_order_acquire);
    }
    seen_gen = s >> 32;
    if (stop_.load(std::memory_order_acquire)) return;
    // Enter the job unless the caller already closed it.
    bool entered = false;
    while ((s >> 32) == seen_gen && !(s & kClosed)) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        entered = true;
        break;
      }
    }
    if (!entered) continue;
    run_chunks(index);
    finished_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  // A few chunks per thread balance uneven progress without much claiming traffic.
  const int64_t units = (n + grain - 1) / grain;
  const int64_t chunk_units = std::max<int64_t>(1, units / (4 * n_threads_));
  job_ = &fn;
  job_n_ = n;
  chunk_ = chunk_units * grain;
  n_chunks_ = (n + chunk_ - 1) / chunk_;
  next_chunk_.store(0, std::memory_order_relaxed);
  finished_.store(0, std::memory_order_relaxed);
  const uint64_t gen = (state_.load(std::memory_order_relaxed) >> 32) + 1;
  state_.store(gen << 32, std::memory_order_seq_cst);
  wake_sleepers();
  run_chunks(0);
  const uint64_t s = state_.fetch_or(kClosed, std::memory_order_acq_rel);
  const int entered = static_cast<int>(s & kCountMask);
  while (finished_.load(std::memory_order_acquire) != entered) OPTIQ_PAUSE();
}

}  // namespace optiq
