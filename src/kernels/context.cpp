#include "kernels/context.h"

#include "kernels/dispatch.h"

namespace optiq {

KernelScratch::KernelScratch() = default;
KernelScratch::~KernelScratch() = default;

void KernelScratch::reserve_workers(int n) {
  if (n > workers()) slots_.resize(static_cast<size_t>(n));
}

KernelContext::KernelContext(ThreadPool& pool, KernelScratch& scratch, Numerics numerics)
    : pool_(&pool), scratch_(&scratch), numerics_(numerics) {
  scratch.reserve_workers(pool.size());
  matmul_trace_begin(*this);
}

void KernelContext::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                                 int64_t grain) const {
  if (can_parallelize()) {
    pool_->parallel_for(n, fn, grain);
    return;
  }
  if (n > 0) fn(0, n, worker_);
}

KernelContext KernelContext::for_worker(int w) const {
  KernelContext c;
  c.pool_ = pool_;
  c.scratch_ = scratch_;
  c.numerics_ = numerics_;
  c.worker_ = w;
  c.nested_ = true;
  return c;
}

}  // namespace optiq
