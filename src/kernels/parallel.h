// When kernels hand work to the thread pool.
#pragma once

#include <algorithm>
#include <cstdint>

namespace optiq {

// Work below this many multiply-adds (~10–20 µs on one core) runs on the calling thread: waking the
// pool's workers costs more than it saves, and far more when other processes share the cores.
inline constexpr int64_t kMinParallelMacs = int64_t{1} << 18;

// Grain to pass to ThreadPool::parallel_for over n items of `macs_per_item` work each: `grain`
// normally, n (one chunk, run inline) when the total is small.
inline int64_t parallel_grain(int64_t n, int64_t macs_per_item, int64_t grain) {
  return n * macs_per_item < kMinParallelMacs ? std::max<int64_t>(n, 1) : grain;
}

}  // namespace optiq
