// KernelContext and KernelScratch: per-worker, per-type buffers owned by the caller; contexts with
// their own scratch do not interact; a worker's context runs on its own thread only.
#include "kernels/context.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace optiq {
namespace {

struct BufA {
  std::vector<int> v;
};
struct BufB {
  int x = 7;
};

TEST(KernelScratch, OneBufferPerWorkerAndType) {
  KernelScratch s;
  s.reserve_workers(3);
  ASSERT_EQ(s.workers(), 3);
  BufA& a0 = s.get<BufA>(0);
  a0.v.push_back(1);
  EXPECT_EQ(&s.get<BufA>(0), &a0) << "reused across calls";
  EXPECT_EQ(s.get<BufA>(0).v.size(), 1u);
  EXPECT_NE(&s.get<BufA>(1), &a0) << "each worker has its own";
  EXPECT_TRUE(s.get<BufA>(1).v.empty());
  EXPECT_EQ(s.get<BufB>(0).x, 7) << "another type is another buffer, default-constructed";
  s.reserve_workers(2);  // never shrinks: buffers stay valid
  EXPECT_EQ(s.workers(), 3);
  EXPECT_EQ(&s.get<BufA>(0), &a0);
}

// rope keeps its angles in the scratch of the context it runs with: two contexts interleaving
// different positions each rotate exactly as the formula says (a shared cache would hand one the
// other's angles).
TEST(KernelContext, ContextsWithTheirOwnScratchDoNotInteract) {
  TestKernels a(1), b(1);
  const int64_t D = 8, half = D / 2;
  const std::vector<float> inv_freq = {1.0f, 0.3f, 0.1f, 0.01f};
  for (int round = 0; round < 4; ++round) {
    for (TestKernels* k : {&a, &b}) {
      const int64_t pos = k == &a ? 5 + round : 40 + 3 * round;
      std::vector<float> x(D), r(D);
      for (int64_t i = 0; i < D; ++i) x[i] = r[i] = 0.5f + static_cast<float>(i);
      rope(x.data(), 1, 1, D, &pos, inv_freq.data(), half, k->ctx);
      for (int64_t i = 0; i < half; ++i) {
        const float ang = static_cast<float>(pos) * inv_freq[i];
        ASSERT_NEAR(x[i], r[i] * std::cos(ang) - r[i + half] * std::sin(ang), 1e-5) << "round " << round;
        ASSERT_NEAR(x[i + half], r[i + half] * std::cos(ang) + r[i] * std::sin(ang), 1e-5) << "round " << round;
      }
    }
  }
}

TEST(KernelContext, WorkerContextRunsInline) {
  TestKernels k(3);
  EXPECT_TRUE(k.ctx.can_parallelize());
  EXPECT_EQ(k.ctx.threads(), 3);
  const KernelContext w = k.ctx.for_worker(2);
  EXPECT_FALSE(w.can_parallelize());
  EXPECT_EQ(w.threads(), 1);
  EXPECT_EQ(w.worker(), 2);
  int calls = 0, seen_thread = -1;
  int64_t b0 = -1, e0 = -1;
  w.parallel_for(100, [&](int64_t b, int64_t e, int thread) {
    ++calls;
    b0 = b;
    e0 = e;
    seen_thread = thread;
  }, 10);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(b0, 0);
  EXPECT_EQ(e0, 100);
  EXPECT_EQ(seen_thread, 2) << "inline calls use the worker's scratch slot";
  // The pool itself covers every index once.
  std::vector<int> hit(1000, 0);
  k.ctx.parallel_for(1000, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) ++hit[static_cast<size_t>(i)];
  }, 7);
  for (int h : hit) ASSERT_EQ(h, 1);
}

}  // namespace
}  // namespace optiq
