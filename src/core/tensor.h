// Dtypes, half-precision conversions and the shape letters used across optiq.
//
// Shape letters (row-major, last dimension contiguous):
//   B batch, T tokens, C hidden, H query heads, Hkv key/value heads, D head dim,
//   F ffn width, V vocab, E experts, K experts per token, S cached sequence length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace optiq {

enum class DType { kF32, kF16, kBF16, kU32, kI32, kI8, kU8, kI64, kF64 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);           // safetensors spelling: "F32", "BF16", ...
bool dtype_from_name(std::string_view s, DType* out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even, as torch/MLX do; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of `src` (of dtype t) to f32.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);

// A non-owning view of a tensor's bytes with its dtype and shape.
struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  std::string shape_str() const;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace optiq
