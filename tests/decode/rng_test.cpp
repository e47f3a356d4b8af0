// splitmix64 against the fixture's recorded outputs (identical, not approximately equal).
#include "decode/rng.h"

#include <gtest/gtest.h>

#include <string>

#include "io/model_dir.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

TEST(SplitMix64, MatchesFixtureRngCheck) {
  auto j = read_json_file(test::fixture("dgemma-tiny/golden.json"));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  const auto& rc = (*j)["rng_check"];
  const uint64_t seed = rc["seed"].get<uint64_t>();
  SplitMix64 rng(seed);
  for (auto& v : rc["first_four_next"]) EXPECT_EQ(rng.next(), std::stoull(v.get<std::string>()));
  SplitMix64 fresh(seed);
  EXPECT_EQ(fresh.uniform(), rc["first_uniform_of_fresh_seed"].get<double>());
}

TEST(SplitMix64, UniformInUnitIntervalAndTokensInRange) {
  SplitMix64 rng(7);
  for (int i = 0; i < 10000; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    const int32_t t = rng.token(1000);
    ASSERT_GE(t, 0);
    ASSERT_LT(t, 1000);
  }
}

TEST(SplitMix64, SameSeedSameStreamDifferentSeedDifferentStream) {
  SplitMix64 a(123), b(123), c(124);
  bool differs = false;
  for (int i = 0; i < 16; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    differs |= x != c.next();
  }
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace optiq
