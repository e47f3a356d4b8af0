// Which Highway target dynamic dispatch picks on this CPU. The line it prints is how CI logs show the
// target each run used (the ARM64 step runs the kernels on SVE CPU models of several vector lengths and
// a NEON-only one, and fails a run that dispatches to another target than the one it expects).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tests/kernels/simd_target_test.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace optiq::HWY_NAMESPACE {
int64_t compiled_target() { return HWY_TARGET; }
}  // namespace optiq::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include <hwy/targets.h>

namespace optiq {
HWY_EXPORT(compiled_target);
namespace {

// Dispatch must pick the best target that was both compiled and is supported by the CPU: the first of
// SupportedAndGeneratedTargets (lower target bits are better). It dispatches from the state a program
// starts in, before asking for that list: Highway 1.0.3's SupportedTargets() stores the dispatch mask
// before it adds the vector-length-specific targets (SVE_256, SVE2_128) and leaves the final update to
// its caller, which the first HWY_DYNAMIC_DISPATCH is. Asked first (here or by an earlier test), the
// dispatch would stay on SVE2 on a 128-bit SVE2 CPU. optiq itself never asks.
TEST(SimdTarget, DispatchPicksTheBestSupportedTarget) {
  hwy::GetChosenTarget().DeInit();  // uninitialized: the next dispatch chooses, as a program's first does
  const int64_t chosen = HWY_DYNAMIC_DISPATCH(compiled_target)();
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  std::string names;
  for (int64_t t : targets) names += std::string(" ") + hwy::TargetName(t);
  std::printf("Highway dispatched target: %s (compiled and supported:%s)\n", hwy::TargetName(chosen), names.c_str());
  EXPECT_EQ(chosen, targets.front()) << hwy::TargetName(chosen) << " vs " << hwy::TargetName(targets.front());
}

}  // namespace
}  // namespace optiq
#endif  // HWY_ONCE
