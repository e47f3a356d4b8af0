// Huge-page regions and the arena that carves packed weights from them.
#include "core/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace optiq {
namespace {

constexpr size_t kHuge = size_t{2} << 20;

TEST(HugeRegion, RoundedUpAlignedZeroedAndWritable) {
  for (size_t bytes : {size_t{1}, kHuge, kHuge + 1}) {
    HugeRegion r = allocate_huge_region(bytes);
    ASSERT_NE(r.data, nullptr);
    EXPECT_EQ(r.size % kHuge, 0u);
    EXPECT_GE(r.size, bytes);
    EXPECT_LT(r.size, bytes + kHuge);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data) % kHuge, 0u);
    EXPECT_EQ(r.data[0], 0);
    EXPECT_EQ(r.data[r.size - 1], 0);
    r.data[r.size - 1] = 7;  // the whole rounded size is usable
    EXPECT_EQ(r.data[r.size - 1], 7);
  }
}

TEST(HugeRegion, CopiesShareTheMappingUntilTheLastGoes) {
  HugeRegion a = allocate_huge_region(100);
  std::weak_ptr<void> watch = a.owner;
  HugeRegion b = a;
  a = HugeRegion{};
  EXPECT_FALSE(watch.expired());
  b.data[5] = 3;  // still mapped
  b = HugeRegion{};
  EXPECT_TRUE(watch.expired());
}

TEST(HugePageArena, AllocationsAreAlignedInOrderAndDisjoint) {
  HugePageArena arena;
  std::vector<std::pair<uint8_t*, size_t>> got;
  std::vector<std::shared_ptr<void>> owners;
  for (size_t n : {1, 63, 64, 65, 1000, 4096}) {
    auto [p, owner] = arena.allocate(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << n;
    if (!got.empty()) {
      EXPECT_GE(p, got.back().first + got.back().second) << "allocation order";
    }
    std::fill(p, p + n, static_cast<uint8_t>(n));
    got.push_back({p, n});
    owners.push_back(owner);
  }
  for (auto [p, n] : got)
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], static_cast<uint8_t>(n));
  // Buffers from one region share its owner.
  EXPECT_EQ(owners.front().get(), owners.back().get());
}

TEST(HugePageArena, LargerThanARegionGetsItsOwnAndKeepsEarlierBuffersAlive) {
  HugePageArena arena;
  auto [small, small_owner] = arena.allocate(128);
  small[0] = 9;
  auto [big, big_owner] = arena.allocate((size_t{64} << 20) + 1);
  ASSERT_NE(big, nullptr);
  EXPECT_NE(big_owner.get(), small_owner.get());
  big[(size_t{64} << 20)] = 1;
  EXPECT_EQ(small[0], 9);
}

}  // namespace
}  // namespace optiq
