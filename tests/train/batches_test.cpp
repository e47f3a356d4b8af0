// train/batches: L.4 batching (length-sorted consecutive batches, remainder dropped, a shuffled visiting
// order per pass from SplitMix64, resumable state).
#include "train/batches.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace optiq {
namespace {

std::vector<TrainRow> rows_of_lengths(const std::vector<int64_t>& lengths) {
  std::vector<TrainRow> rows;
  for (int64_t n : lengths) {
    TrainRow r;
    r.tokens.assign(static_cast<size_t>(std::min<int64_t>(n, 8)), 1);
    r.full_length = n;  // batches sort by the length before truncation
    rows.push_back(r);
  }
  return rows;
}

TEST(BatchStream, SortedConsecutiveBatchesRemainderDropped) {
  // lengths by index: 0:5 1:3 2:9 3:3 4:1 5:7 6:2
  auto rows = rows_of_lengths({5, 3, 9, 3, 1, 7, 2});
  auto bs = BatchStream::make(rows, 3, 0, "t.jsonl");
  ASSERT_TRUE(bs.ok());
  // sorted (stable): 4(1) 6(2) 1(3) 3(3) 0(5) 5(7) 2(9) → [4 6 1] [3 0 5], row 2 dropped
  ASSERT_EQ(bs->batches_per_pass(), 2);
  EXPECT_EQ(bs->batches()[0], (std::vector<int64_t>{4, 6, 1}));
  EXPECT_EQ(bs->batches()[1], (std::vector<int64_t>{3, 0, 5}));
}

TEST(BatchStream, EachPassVisitsEveryBatchOnceInAShuffledOrder) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 40; ++i) lengths.push_back(i);
  auto rows = rows_of_lengths(lengths);
  auto bs = BatchStream::make(rows, 4, 7, "t.jsonl");
  ASSERT_TRUE(bs.ok());
  std::vector<std::vector<int64_t>> pass1, pass2;
  for (int i = 0; i < 10; ++i) pass1.push_back(bs->next());
  for (int i = 0; i < 10; ++i) pass2.push_back(bs->next());
  auto as_set = [](const auto& v) { return std::set<std::vector<int64_t>>(v.begin(), v.end()); };
  EXPECT_EQ(as_set(pass1).size(), 10u);
  EXPECT_EQ(as_set(pass1), as_set(pass2));
  EXPECT_NE(pass1, pass2);  // reshuffled (a 1-in-10! coincidence otherwise)
  // The order is shuffled_order(10) from SplitMix64(seed).
  SplitMix64 rng(7);
  auto order = shuffled_order(10, rng);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(pass1[static_cast<size_t>(i)], bs->batches()[static_cast<size_t>(order[static_cast<size_t>(i)])]);
}

TEST(BatchStream, FewerRowsThanBatchSizeIsAnError) {
  auto rows = rows_of_lengths({1, 2, 3});
  auto bs = BatchStream::make(rows, 4, 0, "data/train.jsonl");
  ASSERT_FALSE(bs.ok());
  EXPECT_EQ(bs.status().message(), "data/train.jsonl: 3 row(s), fewer than --batch-size 4");
}

TEST(BatchStream, RestoredStateContinuesTheSameSequence) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 12; ++i) lengths.push_back(i % 5);
  auto rows = rows_of_lengths(lengths);
  auto a = BatchStream::make(rows, 2, 3, "t");
  for (int i = 0; i < 8; ++i) a->next();  // into the second pass
  const auto saved = a->state();
  std::vector<std::vector<int64_t>> want;
  for (int i = 0; i < 15; ++i) want.push_back(a->next());
  auto b = BatchStream::make(rows, 2, 999, "t");
  ASSERT_TRUE(b->restore(saved).ok());
  for (int i = 0; i < 15; ++i) EXPECT_EQ(b->next(), want[static_cast<size_t>(i)]) << i;
  // A state from other data does not fit.
  auto c = BatchStream::make(rows, 3, 3, "t");
  EXPECT_FALSE(c->restore(saved).ok());
}

TEST(ShuffledOrder, IsAPermutationAndSeedDependent) {
  SplitMix64 r1(1), r2(2);
  auto a = shuffled_order(50, r1), b = shuffled_order(50, r2);
  auto sa = a;
  std::sort(sa.begin(), sa.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sa[static_cast<size_t>(i)], i);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace optiq
