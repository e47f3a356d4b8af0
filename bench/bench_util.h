// Shared benchmark helpers: cheap random fill and the streaming-read bandwidth roofline.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>
#include <hwy/aligned_allocator.h>

#include "core/membw.h"
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

// Streaming read bandwidth in GB/s: the same vector probe `optiq bench` reports against
// (src/core/membw.h), so every roofline fraction in the project uses one denominator.
inline double measure_read_gbps(ThreadPool& pool, size_t bytes = size_t{1} << 30, int reps = 5) {
  return measure_read_bandwidth_gbps(pool, bytes, reps);
}

// Removes a `--threads=N` argument (before benchmark::Initialize sees it) and returns N, or `def`.
inline int take_threads_flag(int& argc, char** argv, int def) {
  int threads = def;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) != 0) continue;
    threads = std::atoi(argv[i] + 10);
    for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
    --argc;
    --i;
  }
  return threads;
}

}  // namespace optiq::bench
