// Measures the machine's memory read bandwidth: the roofline for bandwidth-bound decode.
#pragma once

#include "core/thread_pool.h"

namespace optiq {

// Best-of-`reps` bandwidth in GB/s (1e9 bytes/s) for streaming reads of a `bytes`-sized buffer
// (much larger than the last-level cache) split across the pool's threads.
double measure_read_bandwidth_gbps(ThreadPool& pool, size_t bytes = size_t{1} << 30, int reps = 5);

}  // namespace optiq
