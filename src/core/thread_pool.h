// A small persistent thread pool for data-parallel kernels.
//
// parallel_for splits [0, n) into chunks that the caller (thread 0) and the workers claim
// dynamically. Workers spin briefly between jobs because a decode step issues hundreds of small
// kernels; a condition-variable wake-up per kernel would cost more than the kernel on 2 cores.
// The caller never waits for a worker that has not started: a late worker finds the job closed.
// Thread safety: one parallel_for at a time per pool (a pool belongs to one engine worker).
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <functional>
#include <span>
#include <thread>
#include <vector>

namespace optiq {

class ThreadPool {
 public:
  // n_threads <= 0 picks std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread_index) on disjoint chunks covering [0, n); chunk
  // boundaries are multiples of `grain`. Returns when all chunks are done. thread_index is in
  // [0, size()) and unique among concurrently running calls (usable for per-thread scratch).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

  // Memory that worker 1, while it waits for the next job, pulls into its cache (L2): the first data
  // it will stream in that job. A decode step runs serial code on the caller between matmuls (convs,
  // norms, attention) that leaves most of the memory bandwidth idle; this spends it. At most
  // kMaxPrefetchSpans spans, fetched in the order given. The worker stops as soon as a
  // job arrives; a later call replaces an unfinished hint. No-op for a one-thread pool. Prefetches
  // never fault, so a span whose memory is freed before the worker gets to it is harmless.
  struct Span {
    const void* p;
    size_t bytes;
  };
  static constexpr int kMaxPrefetchSpans = 4;
  void prefetch_while_idle(std::span<const Span> spans);

 private:
  void worker_loop(int index);
  void run_chunks(int index);
  void wake_sleepers();
  void run_prefetch_hint(uint64_t& seen_hint, uint64_t job_gen);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> state_{0};  // [generation:32 | closed:1 | entered:31]
  std::atomic<int> finished_{0};
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> sleepers_{0};
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t chunk_ = 1;
  int64_t n_chunks_ = 0;
  // prefetch_while_idle: a seqlock. The caller writes the spans between odd and even hint_seq_.
  std::atomic<uint64_t> hint_seq_{0};
  std::atomic<const void*> hint_p_[kMaxPrefetchSpans] = {};
  std::atomic<size_t> hint_bytes_[kMaxPrefetchSpans] = {};
};

}  // namespace optiq
