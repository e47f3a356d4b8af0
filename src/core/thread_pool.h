// A small persistent thread pool for data-parallel kernels.
//
// parallel_for splits [0, n) into contiguous chunks, one per thread (the caller is thread 0).
// Workers spin briefly between jobs because a decode step issues hundreds of small kernels;
// a condition-variable wake-up per kernel would cost more than the kernel on 2 cores.
// Thread safety: one parallel_for at a time per pool (a pool belongs to one engine worker).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
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
  // boundaries are multiples of `grain`. Returns when all chunks are done.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_grain_ = 1;
};

}  // namespace optiq
