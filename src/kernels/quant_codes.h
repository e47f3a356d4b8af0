// Scalar helpers for MLX affine codes (specs/mlx-format.md §2): reading b-bit codes from a row's
// little-endian bit stream, and scale/bias loads in bf16 / f16 / f32. Shared by the scalar oracle
// and the SIMD kernels' slow paths (3/5/6-bit rows are decoded to bytes first).
#pragma once

#include <cstdint>
#include <cstring>

#include "core/tensor.h"

namespace optiq {

// Code `i` of a row: stream bits [i·bits, i·bits + bits), stream bit s = bit (s mod 8) of byte s/8.
inline uint32_t unpack_code(const uint8_t* row, int64_t i, int bits) {
  const uint64_t bit = static_cast<uint64_t>(i) * static_cast<uint64_t>(bits);
  const uint64_t byte = bit >> 3;
  const uint32_t shift = bit & 7;
  uint32_t v = row[byte];
  if (shift + bits > 8) v |= static_cast<uint32_t>(row[byte + 1]) << 8;
  return (v >> shift) & ((1u << bits) - 1);
}

inline float load_scale(DType t, const void* p, int64_t i) {
  if (t == DType::kF32) return static_cast<const float*>(p)[i];
  if (t == DType::kF16) return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
  return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

// Decodes the K codes of a packed row (any bits in 1..8) to one byte each. K must be a multiple of 8
// (MLX rows are multiples of the group size, >= 32). Works on whole 8-code units: `bits` bytes hold
// 8 codes for every bit width, so one little-endian load per unit suffices.
inline void decode_codes_u8(const uint8_t* row, int64_t K, int bits, uint8_t* out) {
  const uint64_t mask = (1u << bits) - 1;
  for (int64_t u = 0; u < K / 8; ++u) {
    uint64_t v = 0;
    std::memcpy(&v, row + u * bits, static_cast<size_t>(bits));  // little-endian host
    for (int j = 0; j < 8; ++j) out[u * 8 + j] = static_cast<uint8_t>((v >> (j * bits)) & mask);
  }
}

}  // namespace optiq
