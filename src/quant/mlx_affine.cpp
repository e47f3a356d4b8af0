#include "quant/mlx_affine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace optiq {

bool mlx_bits_supported(int bits) {
  return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
}
bool mlx_group_size_supported(int group) { return group == 32 || group == 64 || group == 128; }

void affine_quantize_group(const float* w, int group_size, int bits, uint8_t* codes, float* scale_out,
                           float* bias_out) {
  // Transcribes mlx/backend/cpu/quantized.cpp `quantize` (specs/mlx-format.md §1); every step in fp32.
  const float n_bins = static_cast<float>((1 << bits) - 1);
  const float eps = 1e-7f;
  float w_min = std::numeric_limits<float>::infinity();
  float w_max = -w_min;
  for (int j = 0; j < group_size; ++j) {
    w_max = std::max(w_max, w[j]);
    w_min = std::min(w_min, w[j]);
  }
  const bool neg = std::fabs(w_min) > std::fabs(w_max);
  float scale = std::max((w_max - w_min) / n_bins, eps);
  scale = neg ? scale : -scale;
  const float edge = neg ? w_min : w_max;
  const float q0 = std::rint(edge / scale);
  float bias = 0.f;
  if (q0 != 0.f) {
    scale = edge / q0;
    bias = edge;
  }
  for (int j = 0; j < group_size; ++j) {
    const float q = std::rint((w[j] - bias) / scale);
    codes[j] = static_cast<uint8_t>(std::min(std::max(q, 0.f), n_bins));
  }
  *scale_out = scale;
  *bias_out = bias;
}

void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out) {
  std::memset(out, 0, static_cast<size_t>(n * bits / 8));
  for (int64_t k = 0; k < n; ++k) {
    const uint64_t bit = static_cast<uint64_t>(k) * bits;
    const uint32_t v = static_cast<uint32_t>(codes[k]) << (bit & 7);  // at most 8 + 7 bits
    out[bit >> 3] |= static_cast<uint8_t>(v);
    if ((bit & 7) + bits > 8) out[(bit >> 3) + 1] |= static_cast<uint8_t>(v >> 8);
  }
}

void unpack_codes(const uint8_t* packed, int64_t n, int bits, uint8_t* codes) {
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t k = 0; k < n; ++k) {
    const uint64_t bit = static_cast<uint64_t>(k) * bits;
    uint32_t v = packed[bit >> 3];
    if ((bit & 7) + bits > 8) v |= static_cast<uint32_t>(packed[(bit >> 3) + 1]) << 8;
    codes[k] = static_cast<uint8_t>((v >> (bit & 7)) & mask);
  }
}

std::vector<uint8_t> encode_floats(const float* v, size_t n, DType t) {
  std::vector<uint8_t> out(n * dtype_size(t));
  if (t == DType::kF32) {
    std::memcpy(out.data(), v, n * 4);
  } else {
    auto* p = reinterpret_cast<uint16_t*>(out.data());
    for (size_t i = 0; i < n; ++i) p[i] = t == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
  }
  return out;
}

Weight AffineQuantized::view() const {
  Weight w;
  w.dtype = DType::kU32;
  w.n_out = rows;
  w.n_in = cols;
  w.data = packed.data();
  w.quant.bits = bits;
  w.quant.group_size = group_size;
  w.quant.scale_dtype = scale_dtype;
  w.quant.scales = scales.data();
  w.quant.biases = biases.data();
  return w;
}

Result<AffineQuantized> affine_quantize(const float* w, int64_t rows, int64_t cols, int bits, int group_size,
                                        DType scale_dtype) {
  if (!mlx_bits_supported(bits))
    return Status::InvalidArgument("affine_quantize: bits " + std::to_string(bits) + " not in {2,3,4,5,6,8}");
  if (!mlx_group_size_supported(group_size))
    return Status::InvalidArgument("affine_quantize: group_size " + std::to_string(group_size) +
                                   " not in {32,64,128}");
  if (cols <= 0 || rows <= 0 || cols % group_size != 0)
    return Status::InvalidArgument("affine_quantize: shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                                   "]: input size is not a positive multiple of group_size " +
                                   std::to_string(group_size));
  if (scale_dtype != DType::kBF16 && scale_dtype != DType::kF16 && scale_dtype != DType::kF32)
    return Status::InvalidArgument(std::string("affine_quantize: scale dtype ") + dtype_name(scale_dtype) +
                                   " (expected F32, BF16 or F16)");
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(w[i]))
      return Status::InvalidArgument("affine_quantize: non-finite weight at row " + std::to_string(i / cols) +
                                     ", column " + std::to_string(i % cols));
  AffineQuantized q;
  q.bits = bits;
  q.group_size = group_size;
  q.rows = rows;
  q.cols = cols;
  q.scale_dtype = scale_dtype;
  const int64_t n_groups = cols / group_size;
  q.packed.assign(static_cast<size_t>(rows * cols * bits / 32), 0u);
  std::vector<float> scales(static_cast<size_t>(rows * n_groups)), biases(scales.size());
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < n_groups; ++g)
      affine_quantize_group(w + r * cols + g * group_size, group_size, bits, codes.data() + g * group_size,
                            &scales[r * n_groups + g], &biases[r * n_groups + g]);
    // Row bytes = cols·bits/8, a multiple of 4 since cols is a multiple of 32: rows stay word aligned.
    pack_codes(codes.data(), cols, bits, reinterpret_cast<uint8_t*>(q.packed.data()) + r * cols * bits / 8);
  }
  q.scales = encode_floats(scales.data(), scales.size(), scale_dtype);
  q.biases = encode_floats(biases.data(), biases.size(), scale_dtype);
  return q;
}

void affine_dequantize(const AffineQuantized& q, float* out) {
  const int64_t n_groups = q.n_groups();
  std::vector<float> s(static_cast<size_t>(q.rows * n_groups)), b(s.size());
  convert_to_f32(q.scale_dtype, q.scales.data(), s.data(), s.size());
  convert_to_f32(q.scale_dtype, q.biases.data(), b.data(), b.size());
  std::vector<uint8_t> codes(static_cast<size_t>(q.cols));
  const auto* bytes = reinterpret_cast<const uint8_t*>(q.packed.data());
  for (int64_t r = 0; r < q.rows; ++r) {
    unpack_codes(bytes + r * q.cols * q.bits / 8, q.cols, q.bits, codes.data());
    for (int64_t c = 0; c < q.cols; ++c) {
      const int64_t g = r * n_groups + c / q.group_size;
      out[r * q.cols + c] = s[g] * static_cast<float>(codes[c]) + b[g];
    }
  }
}

Result<std::vector<float>> affine_fake_quantize(const float* w, int64_t rows, int64_t cols, int bits, int group_size,
                                                DType scale_dtype) {
  OPTIQ_ASSIGN_OR_RETURN(AffineQuantized q, affine_quantize(w, rows, cols, bits, group_size, scale_dtype));
  std::vector<float> out(static_cast<size_t>(rows * cols));
  affine_dequantize(q, out.data());
  return out;
}

}  // namespace optiq
