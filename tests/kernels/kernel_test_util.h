// Kernel contexts for tests: a pool with its own scratch and the context the kernels take.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/context.h"

namespace optiq {

struct TestKernels {
  explicit TestKernels(int threads = 2, Numerics numerics = {}) : pool(threads), ctx(pool, scratch, numerics) {}
  ThreadPool pool;
  KernelScratch scratch;
  KernelContext ctx;
};

// n values ~ N(0, sd²), deterministic in `seed`.
inline std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

}  // namespace optiq

// Skips the rest of a test, saying why, when this CPU lacks a feature the test exercises: a missing
// ISA is reported, never passed silently.
#define OPTIQ_SKIP_UNLESS_CPU(available, feature) \
  if (!(available)) GTEST_SKIP() << "this CPU lacks " << feature << ": the path under test cannot run here"
