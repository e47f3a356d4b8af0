#include "core/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace optiq {

double measure_read_bandwidth_gbps(ThreadPool& pool, size_t bytes, int reps) {
  const size_t n = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  // Touch every page (in parallel, so pages land near the threads that read them).
  pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i);
  }, 4096);
  std::vector<uint64_t> sinks(static_cast<size_t>(pool.size()) * 8, 0);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e, int idx) {
      // Several independent accumulators so the loop is load-bound, not add-latency-bound.
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      int64_t i = b;
      for (; i + 4 <= e; i += 4) {
        a0 ^= buf[i];
        a1 ^= buf[i + 1];
        a2 ^= buf[i + 2];
        a3 ^= buf[i + 3];
      }
      for (; i < e; ++i) a0 ^= buf[i];
      sinks[static_cast<size_t>(idx) * 8] ^= a0 ^ a1 ^ a2 ^ a3;
    }, 1 << 16);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / s / 1e9);
  }
  volatile uint64_t keep = 0;
  for (auto v : sinks) keep = keep ^ v;
  (void)keep;
  return best;
}

}  // namespace optiq
