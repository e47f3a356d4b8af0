// Dtype names and sizes, and the half-precision conversions every checkpoint load goes through.
#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace optiq {
namespace {

const DType kAll[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kU32, DType::kI32,
                      DType::kI8,  DType::kU8,  DType::kI64,  DType::kF64};

TEST(DType, NamesRoundTripAndSizesMatchSafetensors) {
  const size_t sizes[] = {4, 2, 2, 4, 4, 1, 1, 8, 8};
  const char* names[] = {"F32", "F16", "BF16", "U32", "I32", "I8", "U8", "I64", "F64"};
  for (size_t i = 0; i < std::size(kAll); ++i) {
    EXPECT_EQ(dtype_size(kAll[i]), sizes[i]) << names[i];
    EXPECT_STREQ(dtype_name(kAll[i]), names[i]);
    DType back = DType::kU8;
    ASSERT_TRUE(dtype_from_name(names[i], &back)) << names[i];
    EXPECT_EQ(back, kAll[i]);
  }
  DType t = DType::kF32;
  EXPECT_FALSE(dtype_from_name("bf16", &t));  // safetensors spelling only, case-sensitive
  EXPECT_FALSE(dtype_from_name("F8_E4M3", &t));
  EXPECT_EQ(t, DType::kF32);  // untouched on failure
}

// Every 16-bit pattern widens to f32 and narrows back to itself (NaNs stay NaN).
template <typename Widen, typename Narrow>
void expect_every_half_round_trips(Widen widen, Narrow narrow) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = widen(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(widen(narrow(f)))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(narrow(f), h) << std::hex << h << " = " << f;
  }
}

TEST(Bf16, EveryBf16ValueRoundTripsThroughF32) { expect_every_half_round_trips(bf16_to_f32, f32_to_bf16); }

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa (1).
  EXPECT_EQ(round_bf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(round_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
  // Just above the halfway point rounds up.
  EXPECT_EQ(round_bf16(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f)), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(round_bf16(-2.5f), -2.5f);
  EXPECT_TRUE(std::isinf(round_bf16(std::numeric_limits<float>::max())));  // rounds past the largest bf16
  EXPECT_TRUE(std::isnan(round_bf16(std::nanf(""))));
}

TEST(F16, EveryF16ValueRoundTripsThroughF32) { expect_every_half_round_trips(f16_to_f32, f32_to_f16); }

TEST(F16, KnownValuesSubnormalsAndOverflow) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);                  // largest finite
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));    // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24)); // largest subnormal
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // halfway past the largest finite rounds to infinity
  EXPECT_EQ(f32_to_f16(1e-9f), 0x0000);     // below half the smallest subnormal flushes to zero
  EXPECT_EQ(f32_to_f16(-1e-9f), 0x8000);    // keeping the sign
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);        // exactly half: ties to even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);        // 1.5 ulp: ties to even (2)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00); // halfway between 1 and next: even
}

TEST(ConvertToF32, EveryDtype) {
  const uint16_t bf[] = {f32_to_bf16(1.5f), f32_to_bf16(-3.0f)};
  const uint16_t hf[] = {f32_to_f16(0.25f), f32_to_f16(-8.0f)};
  const int32_t i32[] = {-7, 1 << 20};
  const uint32_t u32[] = {3, 4000000000u};
  const int8_t i8[] = {-128, 127};
  const uint8_t u8[] = {0, 255};
  const int64_t i64[] = {-5, int64_t{1} << 40};
  const double f64[] = {0.5, -1e10};
  const float f32[] = {2.0f, -0.0f};
  struct Case {
    DType t;
    const void* src;
    float want[2];
  };
  const Case cases[] = {{DType::kBF16, bf, {1.5f, -3.0f}},
                        {DType::kF16, hf, {0.25f, -8.0f}},
                        {DType::kI32, i32, {-7.0f, 1048576.0f}},
                        {DType::kU32, u32, {3.0f, 4e9f}},
                        {DType::kI8, i8, {-128.0f, 127.0f}},
                        {DType::kU8, u8, {0.0f, 255.0f}},
                        {DType::kI64, i64, {-5.0f, std::ldexp(1.0f, 40)}},
                        {DType::kF64, f64, {0.5f, -1e10f}},
                        {DType::kF32, f32, {2.0f, -0.0f}}};
  for (const Case& c : cases) {
    float out[3] = {0, 0, 99.f};
    convert_to_f32(c.t, c.src, out, 2);
    EXPECT_EQ(out[0], c.want[0]) << dtype_name(c.t);
    EXPECT_EQ(out[1], c.want[1]) << dtype_name(c.t);
    EXPECT_EQ(out[2], 99.f) << dtype_name(c.t) << ": wrote past n";
  }
}

TEST(TensorView, NumelDimAndShapeString) {
  TensorView t;
  t.shape = {3, 4, 5};
  EXPECT_EQ(t.numel(), 60);
  EXPECT_EQ(t.dim(0), 3);
  EXPECT_EQ(t.dim(-1), 5);
  EXPECT_EQ(t.shape_str(), "[3, 4, 5]");
  EXPECT_EQ(shape_to_string({}), "[]");
  t.shape = {};
  EXPECT_EQ(t.numel(), 1);  // a scalar
}

}  // namespace
}  // namespace optiq
