// Streaming-read bandwidth probe. Reads with the widest vectors Highway dispatches to, four
// independent accumulators per thread: scalar 8-byte loads under-report the roofline by ~40%.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/core/membw.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "core/huge_pages.h"
#include "core/membw.h"

HWY_BEFORE_NAMESPACE();
namespace optiq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

uint64_t XorRange(const uint64_t* HWY_RESTRICT p, int64_t n) {
  const hn::ScalableTag<uint64_t> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    a0 = hn::Xor(a0, hn::LoadU(d, p + i));
    a1 = hn::Xor(a1, hn::LoadU(d, p + i + L));
    a2 = hn::Xor(a2, hn::LoadU(d, p + i + 2 * L));
    a3 = hn::Xor(a3, hn::LoadU(d, p + i + 3 * L));
  }
  uint64_t s = hn::GetLane(hn::SumOfLanes(d, hn::Xor(hn::Xor(a0, a1), hn::Xor(a2, a3))));
  for (; i < n; ++i) s ^= p[i];
  return s;
}

}  // namespace HWY_NAMESPACE
}  // namespace optiq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace optiq {
HWY_EXPORT(XorRange);

BandwidthProbe::BandwidthProbe(ThreadPool& pool, size_t bytes)
    : pool_(pool), region_(allocate_huge_region(bytes)), n_(bytes / sizeof(uint64_t)) {
  // On huge pages, as the packed weights: the roofline is the best streaming read the machine does.
  uint64_t* buf = reinterpret_cast<uint64_t*>(region_.data);
  // Touch every page (in parallel, so pages land near the threads that read them).
  pool_.parallel_for(static_cast<int64_t>(n_), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i);
  }, 4096);
}

double BandwidthProbe::measure(int reps) {
  const uint64_t* buf = reinterpret_cast<const uint64_t*>(region_.data);
  std::vector<uint64_t> sinks(static_cast<size_t>(pool_.size()) * 8, 0);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    pool_.parallel_for(static_cast<int64_t>(n_), [&](int64_t b, int64_t e, int idx) {
      sinks[static_cast<size_t>(idx) * 8] ^= HWY_DYNAMIC_DISPATCH(XorRange)(buf + b, e - b);
    }, 1 << 16);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n_ * sizeof(uint64_t)) / s / 1e9);
  }
  volatile uint64_t keep = 0;
  for (auto v : sinks) keep = keep ^ v;
  (void)keep;
  return best;
}

double measure_read_bandwidth_gbps(ThreadPool& pool, size_t bytes, int reps) {
  return BandwidthProbe(pool, bytes).measure(reps);
}

}  // namespace optiq
#endif  // HWY_ONCE
