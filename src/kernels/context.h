// What every kernel call carries: the thread pool, the caller's scratch, and the numerics it must
// follow. Kernels hold no state of their own (no thread_local, no statics besides CPU feature
// detection): two contexts with their own scratch never interact, so several forwards can run in
// one process, each on its own pool.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"

namespace optiq {

// How kernels may compute. The defaults allow every fast path.
struct Numerics {
  // Each output row computed exactly as a one-row call computes it: no AMX tiles, no GEMM
  // attention (those sum in another fp32 order, and int8 activation rounding downstream can turn
  // last-bit differences into different tokens). Self-speculation's verify forward sets it, so a
  // T-row causal chunk computes, bit for bit, what T one-row forwards compute.
  bool row_invariant = false;
};

// Buffers kernels reuse across calls (the decode path runs hundreds of small kernels per token),
// owned by the caller: one per concurrently running forward, e.g. one per cache. Each kernel keeps
// its buffers as a private type, created on first use in the slot of the thread that asks.
// Thread safety: slot w is used only by the thread running as worker w of the context's pool;
// distinct workers may use their slots concurrently.
class KernelScratch {
 public:
  KernelScratch();
  ~KernelScratch();
  KernelScratch(const KernelScratch&) = delete;
  KernelScratch& operator=(const KernelScratch&) = delete;

  // Worker `worker`'s buffers of type T (default-constructed the first time). worker < workers().
  template <class T>
  T& get(int worker) {
    Slot& s = slots_[static_cast<size_t>(worker)];
    for (Entry& e : s)
      if (e.type == &type_tag<T>) return *static_cast<T*>(e.ptr.get());
    s.push_back({&type_tag<T>, Ptr(new T(), [](void* p) { delete static_cast<T*>(p); })});
    return *static_cast<T*>(s.back().ptr.get());
  }
  // Makes slots for workers [0, n). Not concurrent with get().
  void reserve_workers(int n);
  int workers() const { return static_cast<int>(slots_.size()); }

 private:
  template <class T>
  static constexpr char type_tag = 0;
  using Ptr = std::unique_ptr<void, void (*)(void*)>;
  struct Entry {
    const void* type;
    Ptr ptr;
  };
  using Slot = std::vector<Entry>;
  std::vector<Slot> slots_;
};

// One forward's view of the machine. Models make one per forward from the cache's scratch:
//   KernelContext ctx(pool, cache.scratch, {.row_invariant = batch.row_invariant});
// The constructor starts a new matmul trace: the forward's matmuls are recorded in the scratch, and
// when one ends, an idle pool worker is handed the weights the next one read in the previous
// forward (ThreadPool::prefetch_while_idle), to stream while the caller runs the serial code in
// between (norms, convs, attention). Decode steps repeat the same sequence, so the hint is right
// from the second step on; a different sequence is recorded anew.
// A context for a worker inside a parallel pass (for_worker) runs its kernels on that thread only.
class KernelContext {
 public:
  KernelContext(ThreadPool& pool, KernelScratch& scratch, Numerics numerics = {});

  ThreadPool& pool() const { return *pool_; }
  KernelScratch& scratch() const { return *scratch_; }
  const Numerics& numerics() const { return numerics_; }
  int worker() const { return worker_; }
  // False inside a parallel pass: kernels then compute on the calling thread.
  bool can_parallelize() const { return worker_ == 0 && !nested_; }
  int threads() const { return can_parallelize() ? pool_->size() : 1; }

  // This worker's buffers of type T.
  template <class T>
  T& buffers() const {
    return scratch_->get<T>(worker_);
  }

  // ThreadPool::parallel_for, or one inline call over [0, n) when the context cannot parallelize.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1) const;

  // The context worker `w` of a parallel pass uses: its own scratch slot, no further parallelism.
  KernelContext for_worker(int w) const;

 private:
  KernelContext() = default;
  ThreadPool* pool_ = nullptr;
  KernelScratch* scratch_ = nullptr;
  Numerics numerics_;
  int worker_ = 0;
  bool nested_ = false;
};

}  // namespace optiq
