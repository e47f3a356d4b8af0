// KvStore: growth keeps every layer's rows, layers do not overlap.
#include <gtest/gtest.h>

#include "models/kv_store.h"

namespace optiq {
namespace {

TEST(KvStore, GrowthKeepsRowsOfEveryLayer) {
  const std::vector<int64_t> row{8, 24, 16};  // floats per position, per layer
  KvStore kv(row, 1000);
  kv.reserve_rows(10);
  EXPECT_GE(kv.reserved_rows(), 10);
  auto value = [](size_t l, int64_t i, bool v) { return static_cast<float>(l * 100000 + i * 2 + (v ? 1 : 0)); };
  const int64_t n0 = kv.reserved_rows();
  for (size_t l = 0; l < row.size(); ++l)
    for (int64_t i = 0; i < n0 * row[l]; ++i) {
      kv.k(l)[i] = value(l, i, false);
      kv.v(l)[i] = value(l, i, true);
    }
  kv.reserve_rows(300);
  ASSERT_GE(kv.reserved_rows(), 300);
  ASSERT_LE(kv.reserved_rows(), 1000);
  for (size_t l = 0; l < row.size(); ++l) {
    for (int64_t i = 0; i < n0 * row[l]; ++i) {
      ASSERT_EQ(kv.k(l)[i], value(l, i, false)) << "layer " << l << " float " << i;
      ASSERT_EQ(kv.v(l)[i], value(l, i, true)) << "layer " << l << " float " << i;
    }
    for (int64_t i = n0 * row[l]; i < kv.reserved_rows() * row[l]; ++i) ASSERT_EQ(kv.k(l)[i], 0.f);
    kv.k(l)[kv.reserved_rows() * row[l] - 1] = -1.f;  // the last float of each layer is its own
  }
  for (size_t l = 0; l < row.size(); ++l) {
    EXPECT_EQ(kv.k(l)[kv.reserved_rows() * row[l] - 1], -1.f);
    EXPECT_EQ(kv.v(l)[0], value(l, 0, true));
  }
}

}  // namespace
}  // namespace optiq
