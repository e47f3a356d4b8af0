// The bandwidth probe returns a sane number on a small buffer. No timing assertions (STYLE.md §2.11):
// only that a measurement happened.
#include "core/membw.h"

#include <gtest/gtest.h>

#include <cmath>

namespace optiq {
namespace {

TEST(MemBandwidth, ProbeReturnsAPositiveFiniteNumber) {
  ThreadPool pool(2);
  const double gbps = measure_read_bandwidth_gbps(pool, size_t{4} << 20, 2);
  EXPECT_TRUE(std::isfinite(gbps));
  EXPECT_GT(gbps, 0.0);
}

TEST(MemBandwidth, ProbeCanBeRepeated) {
  ThreadPool pool(1);
  BandwidthProbe probe(pool, size_t{2} << 20);
  for (int i = 0; i < 3; ++i) {
    const double gbps = probe.measure(1);
    EXPECT_TRUE(std::isfinite(gbps) && gbps > 0.0) << gbps;
  }
}

}  // namespace
}  // namespace optiq
