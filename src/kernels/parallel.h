// When kernels hand work to the thread pool (kernel internals).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/context.h"

namespace optiq {

// Work below this many multiply-adds (~10–20 µs on one core) runs on the calling thread: waking the
// pool's workers costs more than it saves, and far more when other processes share the cores.
inline constexpr int64_t kMinParallelMacs = int64_t{1} << 18;

// Grain to pass to ThreadPool::parallel_for over n items of `macs_per_item` work each: `grain`
// normally, n (one chunk, run inline) when the total is small.
inline int64_t parallel_grain(int64_t n, int64_t macs_per_item, int64_t grain) {
  return n * macs_per_item < kMinParallelMacs ? std::max<int64_t>(n, 1) : grain;
}

// Runs fn(begin, end) over [0, n) elements of an elementwise op, split across the pool when there
// are at least `min_per_thread` elements per thread (below that a pool round trip costs more).
template <typename Fn>
void parallel_elementwise(const KernelContext& ctx, int64_t n, int64_t min_per_thread, Fn&& fn) {
  if (ctx.threads() == 1 || n < min_per_thread * ctx.threads()) {
    fn(int64_t{0}, n);
    return;
  }
  ctx.parallel_for(n, [&](int64_t b, int64_t e, int) { fn(b, e); }, 1024);
}

}  // namespace optiq
