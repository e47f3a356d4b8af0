// MLX affine quantization against specs/mlx-format.md §1–§2: hand-derived groups, a literal
// transcription of the spec's pseudo-code on random groups for every bits × group size, and the
// spec's worked bit extractions for 3/5/6-bit streams.
#include "quant/mlx_affine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/matmul_q.h"

namespace optiq {
namespace {

const int kAllBits[] = {2, 3, 4, 5, 6, 8};
const int kAllGroups[] = {32, 64, 128};

// specs/mlx-format.md §1, line by line, for one group (independent of the library's loop).
struct SpecGroup {
  std::vector<int> q;
  float scale = 0, bias = 0;
};
SpecGroup spec_quantize(const std::vector<float>& g, int bits) {
  const float n_bins = static_cast<float>(std::pow(2, bits) - 1);
  const float eps = 1e-7f;
  float w_max = g[0], w_min = g[0];
  for (float v : g) {
    if (v > w_max) w_max = v;
    if (v < w_min) w_min = v;
  }
  const bool neg = std::fabs(w_min) > std::fabs(w_max);
  float scale = (w_max - w_min) / n_bins;
  if (scale < eps) scale = eps;
  if (!neg) scale = -scale;
  const float edge = neg ? w_min : w_max;
  const float q0 = std::rint(edge / scale);
  float bias;
  if (q0 != 0) {
    scale = edge / q0;
    bias = edge;
  } else {
    bias = 0;
  }
  SpecGroup out;
  out.scale = scale;
  out.bias = bias;
  for (float v : g) {
    float q = std::rint((v - bias) / scale);
    q = q < 0 ? 0 : (q > n_bins ? n_bins : q);
    out.q.push_back(static_cast<int>(q));
  }
  return out;
}

uint16_t bf16_at(const std::vector<uint8_t>& v, size_t i) {
  uint16_t h;
  std::memcpy(&h, v.data() + 2 * i, 2);
  return h;
}

std::vector<uint8_t> codes_of_row(const AffineQuantized& q, int64_t r) {
  std::vector<uint8_t> c(static_cast<size_t>(q.cols));
  unpack_codes(reinterpret_cast<const uint8_t*>(q.packed.data()) + r * q.cols * q.bits / 8, q.cols, q.bits, c.data());
  return c;
}

// Hand derivation: w_k = -1 + 0.25·(k mod 16): min -1, max 2.75, |min| < |max| so the scale is
// negative and anchored at w_max: scale = -(3.75/15) = -0.25, q0 = rint(2.75/-0.25) = -11,
// scale = 2.75/-11 = -0.25, bias = 2.75, q_k = rint((w_k - 2.75)/-0.25) = 15 - (k mod 16).
TEST(MlxAffine, PositiveEdgeGivesNegativeScale) {
  std::vector<float> w(32);
  for (int k = 0; k < 32; ++k) w[k] = -1.0f + 0.25f * (k % 16);
  auto q = affine_quantize(w.data(), 1, 32, 4, 32);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(bf16_to_f32(bf16_at(q->scales, 0)), -0.25f);
  EXPECT_EQ(bf16_to_f32(bf16_at(q->biases, 0)), 2.75f);
  auto c = codes_of_row(*q, 0);
  for (int k = 0; k < 32; ++k) EXPECT_EQ(c[k], 15 - (k % 16)) << k;
  std::vector<float> d(32);
  affine_dequantize(*q, d.data());
  for (int k = 0; k < 32; ++k) EXPECT_EQ(d[k], w[k]) << k;  // exactly representable grid
}

// Mirror image: w_k = 1 - 0.25·(k mod 16): |min| = 2.75 > |max| = 1, so the scale is positive
// (0.25) and anchored at w_min: bias = -2.75, q_k = rint((w_k + 2.75)/0.25) = 15 - (k mod 16).
TEST(MlxAffine, NegativeEdgeGivesPositiveScale) {
  std::vector<float> w(64);
  for (int k = 0; k < 64; ++k) w[k] = 1.0f - 0.25f * (k % 16);
  auto q = affine_quantize(w.data(), 1, 64, 4, 64);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(bf16_to_f32(bf16_at(q->scales, 0)), 0.25f);
  EXPECT_EQ(bf16_to_f32(bf16_at(q->biases, 0)), -2.75f);
  auto c = codes_of_row(*q, 0);
  for (int k = 0; k < 64; ++k) EXPECT_EQ(c[k], 15 - (k % 16)) << k;
}

// A constant group c != 0: range 0, scale = -eps, q0 = rint(c / -eps) != 0, so bias = c, every
// code 0, and the group dequantizes exactly to c.
TEST(MlxAffine, ConstantGroupDequantizesExactly) {
  for (int bits : kAllBits) {
    std::vector<float> w(32, 0.5f);
    auto q = affine_quantize(w.data(), 1, 32, bits, 32);
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(bf16_to_f32(bf16_at(q->biases, 0)), 0.5f);
    EXPECT_LT(bf16_to_f32(bf16_at(q->scales, 0)), 0.f);
    auto c = codes_of_row(*q, 0);
    for (int k = 0; k < 32; ++k) EXPECT_EQ(c[k], 0);
    std::vector<float> d(32);
    affine_dequantize(*q, d.data());
    for (int k = 0; k < 32; ++k) EXPECT_EQ(d[k], 0.5f);
  }
}

// All zeros: q0 = 0, so bias = 0 and scale stays -eps (rounded to bf16); codes 0, values 0.
TEST(MlxAffine, ZeroGroup) {
  std::vector<float> w(128, 0.f);
  auto q = affine_quantize(w.data(), 1, 128, 3, 128);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(bf16_at(q->biases, 0), 0);
  EXPECT_EQ(bf16_at(q->scales, 0), f32_to_bf16(-1e-7f));
  std::vector<float> d(128);
  affine_dequantize(*q, d.data());
  for (float v : d) EXPECT_EQ(v, 0.f);
}

// Random groups in three regimes (|min| > |max|, |max| > |min|, tiny range) plus constant and
// zero groups: codes and bf16 scale/bias must equal the spec transcription for every bits × gs.
TEST(MlxAffine, MatchesSpecForEveryBitsAndGroupSize) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.05f);
  for (int bits : kAllBits) {
    for (int gs : kAllGroups) {
      const int64_t rows = 6, cols = 2 * gs;
      std::vector<float> w(static_cast<size_t>(rows * cols));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          float v = nd(rng);
          switch (r) {
            case 0: v = std::round(v * 1e4f) / 1e4f; break;  // bf16-like round values
            case 1: v = -std::fabs(v) * 3 + 0.01f; break;      // |min| > |max|
            case 2: v = std::fabs(v) * 3 - 0.01f; break;       // |max| > |min|
            case 3: v = 0.2f + v * 1e-7f; break;               // range below eps·n_bins
            case 4: v = c < gs ? 0.f : -0.375f; break;         // zero group, constant negative group
            default: v = round_bf16(v); break;                 // a real bf16 weight
          }
          w[r * cols + c] = v;
        }
      auto q = affine_quantize(w.data(), rows, cols, bits, gs);
      ASSERT_TRUE(q.ok()) << q.status().ToString();
      ASSERT_EQ(static_cast<int64_t>(q->packed.size()), rows * cols * bits / 32);
      for (int64_t r = 0; r < rows; ++r) {
        auto codes = codes_of_row(*q, r);
        for (int64_t g = 0; g < cols / gs; ++g) {
          std::vector<float> grp(w.begin() + r * cols + g * gs, w.begin() + r * cols + (g + 1) * gs);
          SpecGroup s = spec_quantize(grp, bits);
          const size_t gi = static_cast<size_t>(r * (cols / gs) + g);
          ASSERT_EQ(bf16_at(q->scales, gi), f32_to_bf16(s.scale)) << "bits " << bits << " gs " << gs << " row " << r;
          ASSERT_EQ(bf16_at(q->biases, gi), f32_to_bf16(s.bias)) << "bits " << bits << " gs " << gs << " row " << r;
          for (int k = 0; k < gs; ++k)
            ASSERT_EQ(codes[g * gs + k], s.q[k]) << "bits " << bits << " gs " << gs << " row " << r << " k " << k;
        }
      }
      // Dequantization = stored scale · q + stored bias in fp32, and never further than half a
      // step (plus bf16 rounding of scale and bias) from the input.
      std::vector<float> d(w.size());
      affine_dequantize(*q, d.data());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const size_t gi = static_cast<size_t>(r * (cols / gs) + c / gs);
          const float s = bf16_to_f32(bf16_at(q->scales, gi)), b = bf16_to_f32(bf16_at(q->biases, gi));
          const float expect = s * static_cast<float>(codes_of_row(*q, r)[c]) + b;
          ASSERT_EQ(d[r * cols + c], expect);
        }
    }
  }
}

TEST(MlxAffine, KernelRowDequantizationAgrees) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  for (int bits : kAllBits) {
    std::vector<float> w(5 * 128);
    for (auto& v : w) v = round_bf16(ud(rng));
    auto q = affine_quantize(w.data(), 5, 128, bits, 32);
    ASSERT_TRUE(q.ok());
    std::vector<float> d(w.size()), row(128);
    affine_dequantize(*q, d.data());
    const Weight view = q->view();
    for (int64_t r = 0; r < 5; ++r) {
      dequantize_row(view, r, row.data());
      for (int c = 0; c < 128; ++c) ASSERT_EQ(row[c], d[r * 128 + c]) << bits;
    }
  }
}

TEST(MlxAffine, RejectsBadArguments) {
  std::vector<float> w(64, 1.f);
  EXPECT_FALSE(affine_quantize(w.data(), 1, 64, 7, 64).ok());
  EXPECT_FALSE(affine_quantize(w.data(), 1, 64, 4, 16).ok());
  EXPECT_FALSE(affine_quantize(w.data(), 1, 48, 4, 32).ok());
  w[5] = std::nanf("");
  auto r = affine_quantize(w.data(), 1, 64, 4, 64);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("column 5"), std::string::npos) << r.status().ToString();
}

TEST(MlxPacking, RoundTripsEveryBitWidth) {
  std::mt19937 rng(11);
  for (int bits : kAllBits) {
    const int64_t n = 256;
    std::vector<uint8_t> codes(n), back(n), bytes(n * bits / 8);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
    pack_codes(codes.data(), n, bits, bytes.data());
    unpack_codes(bytes.data(), n, bits, back.data());
    EXPECT_EQ(codes, back) << bits;
  }
}

// 2/4/8 bits: element k of each uint32 word occupies bits [k·bits, (k+1)·bits), LSB first.
TEST(MlxPacking, PowerOfTwoWordsAreLsbFirst) {
  for (int bits : {2, 4, 8}) {
    const int per_word = 32 / bits;
    std::vector<uint8_t> codes(64);
    for (int k = 0; k < 64; ++k) codes[k] = static_cast<uint8_t>((k * 5 + 3) & ((1 << bits) - 1));
    std::vector<uint32_t> words(64 * bits / 32);
    pack_codes(codes.data(), 64, bits, reinterpret_cast<uint8_t*>(words.data()));
    for (int k = 0; k < 64; ++k)
      EXPECT_EQ((words[k / per_word] >> ((k % per_word) * bits)) & ((1u << bits) - 1), codes[k]) << bits << " " << k;
  }
}

// specs/mlx-format.md §2 worked extractions, applied to hand-picked bytes.
TEST(MlxPacking, ThreeBitRowDecodesToDocumentedValues) {
  const uint8_t b[6] = {0xB5, 0x6C, 0xE3, 0x1F, 0x80, 0x5A};  // two 3-byte units
  std::vector<uint8_t> got(16);
  unpack_codes(b, 16, 3, got.data());
  for (int u = 0; u < 2; ++u) {
    const uint8_t b0 = b[3 * u], b1 = b[3 * u + 1], b2 = b[3 * u + 2];
    const int v[8] = {b0 & 7,        (b0 >> 3) & 7, (b0 >> 6) | ((b1 & 1) << 2), (b1 >> 1) & 7,
                      (b1 >> 4) & 7, (b1 >> 7) | ((b2 & 3) << 1), (b2 >> 2) & 7, (b2 >> 5) & 7};
    for (int k = 0; k < 8; ++k) EXPECT_EQ(got[8 * u + k], v[k]) << u << " " << k;
  }
  // Literal values of the first unit: 0xB5 = 10110101, 0x6C = 01101100, 0xE3 = 11100011.
  const int literal[8] = {5, 6, 2, 6, 6, 6, 0, 7};
  for (int k = 0; k < 8; ++k) EXPECT_EQ(got[k], literal[k]) << k;
  std::vector<uint8_t> repacked(6);
  pack_codes(got.data(), 16, 3, repacked.data());
  EXPECT_EQ(0, std::memcmp(repacked.data(), b, 6));
}

TEST(MlxPacking, FiveBitRowDecodesToDocumentedValues) {
  const uint8_t b[5] = {0x9D, 0x47, 0xF0, 0x2B, 0xC6};
  std::vector<uint8_t> got(8);
  unpack_codes(b, 8, 5, got.data());
  const uint8_t b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3], b4 = b[4];
  const int v[8] = {b0 & 31,        (b0 >> 5) | ((b1 & 3) << 3), (b1 >> 2) & 31, (b1 >> 7) | ((b2 & 15) << 1),
                    (b2 >> 4) | ((b3 & 1) << 4), (b3 >> 1) & 31, (b3 >> 6) | ((b4 & 7) << 2), b4 >> 3};
  for (int k = 0; k < 8; ++k) EXPECT_EQ(got[k], v[k]) << k;
}

TEST(MlxPacking, SixBitRowDecodesToDocumentedValues) {
  const uint8_t b[6] = {0xC7, 0x5E, 0xA9, 0x01, 0xFF, 0x80};
  std::vector<uint8_t> got(8);
  unpack_codes(b, 8, 6, got.data());
  for (int u = 0; u < 2; ++u) {
    const uint8_t b0 = b[3 * u], b1 = b[3 * u + 1], b2 = b[3 * u + 2];
    const int v[4] = {b0 & 63, (b0 >> 6) | ((b1 & 15) << 2), (b1 >> 4) | ((b2 & 3) << 4), b2 >> 2};
    for (int k = 0; k < 4; ++k) EXPECT_EQ(got[4 * u + k], v[k]) << u << " " << k;
  }
  // 0xC7 = 11000111, 0x5E = 01011110, 0xA9 = 10101001: v0 = 7, v1 = 3 | (14 << 2) = 59,
  // v2 = 5 | (1 << 4) = 21, v3 = 42.
  EXPECT_EQ(got[0], 7);
  EXPECT_EQ(got[1], 59);
  EXPECT_EQ(got[2], 21);
  EXPECT_EQ(got[3], 42);
}

}  // namespace
}  // namespace optiq
