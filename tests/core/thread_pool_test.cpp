#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace optiq {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnceOnGrainBoundaries) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 16, 17, 1000, 4099}) {
      for (int64_t grain : {1, 4, 16}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad_index{0};
        pool.parallel_for(n, [&](int64_t b, int64_t e, int idx) {
          if (b % grain != 0 || idx < 0 || idx >= threads) bad_index++;
          for (int64_t i = b; i < e; ++i) hits[i]++;
        }, grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
        EXPECT_EQ(bad_index.load(), 0);
      }
    }
  }
}

TEST(ThreadPool, ManySmallJobsInARow) {
  ThreadPool pool(2);
  int64_t total = 0;
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 20000; ++rep) {
    pool.parallel_for(64, [&](int64_t b, int64_t e, int) {
      int64_t s = 0;
      for (int64_t i = b; i < e; ++i) s += i;
      sum += s;
    });
    total += 64 * 63 / 2;
  }
  EXPECT_EQ(sum.load(), total);
}

// Hints arrive while jobs run and between them, cover memory the jobs also write, and are replaced
// before the worker finishes them: every job still covers each index exactly once.
TEST(ThreadPool, PrefetchHintsLeaveJobsIntact) {
  std::vector<uint8_t> buffer(8 << 20, 1);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 2000; ++rep) {
      const size_t off = static_cast<size_t>(rep * 4099) % (buffer.size() / 2);
      const ThreadPool::Span spans[] = {{buffer.data() + off, buffer.size() / 2}, {buffer.data(), 0}, {buffer.data(), 64}};
      pool.prefetch_while_idle({spans, static_cast<size_t>(rep % 4)});
      const int64_t n = 1 + rep % 97;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
          hits[i]++;
          buffer[static_cast<size_t>(i)] = static_cast<uint8_t>(rep);
        }
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " threads, rep " << rep << " i " << i;
    }
  }
}

}  // namespace
}  // namespace optiq
