// Measures the machine's memory read bandwidth: the roofline for bandwidth-bound decode.
#pragma once

#include <cstddef>

#include "core/huge_pages.h"
#include "core/thread_pool.h"

namespace optiq {

// Best-of-`reps` bandwidth in GB/s (1e9 bytes/s) for streaming reads of a `bytes`-sized buffer
// (much larger than the last-level cache) split across the pool's threads.
double measure_read_bandwidth_gbps(ThreadPool& pool, size_t bytes = size_t{1} << 30, int reps = 5);

// The same probe with its buffer kept, for repeated measurements next to the runs they judge: on a
// shared machine the bandwidth moves by tens of percent within seconds.
class BandwidthProbe {
 public:
  BandwidthProbe(ThreadPool& pool, size_t bytes = size_t{1} << 30);
  double measure(int reps = 5);  // best-of-reps GB/s

 private:
  ThreadPool& pool_;
  HugeRegion region_;
  size_t n_;
};

}  // namespace optiq
