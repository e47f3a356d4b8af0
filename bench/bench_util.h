// Shared benchmark helpers: cheap random fill and the streaming-read bandwidth roofline.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>
#include <hwy/aligned_allocator.h>

#include "core/thread_pool.h"

namespace optiq::bench {

inline void fill_random(uint8_t* p, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    std::memcpy(p + i, &s, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<uint8_t>(i * 131);
}

// Streaming read bandwidth in GB/s: sums the 64-bit words of a `bytes` buffer (>> LLC), split across
// the pool's threads; best of `reps` passes.
inline double measure_read_gbps(ThreadPool& pool, size_t bytes = size_t{1} << 30, int reps = 5) {
  const size_t n = bytes / 8;
  auto buf = hwy::AllocateAligned<uint64_t>(n);
  fill_random(reinterpret_cast<uint8_t*>(buf.get()), n * 8, 1);
  double best = 0;
  std::vector<uint64_t> sink(8 * 64, 0);
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e, int tid) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
      const uint64_t* p = buf.get();
      for (int64_t i = b; i < e; i += 8) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
        s4 += p[i + 4];
        s5 += p[i + 5];
        s6 += p[i + 6];
        s7 += p[i + 7];
      }
      sink[(tid % 64) * 8] += s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
    }, 1 << 16);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n * 8) / sec / 1e9);
  }
  benchmark::DoNotOptimize(sink.data());
  return best;
}

}  // namespace optiq::bench
