// MLX affine quantization: the math of mlx's CPU `quantize` kernel and the checkpoint packing
// (specs/mlx-format.md §1–§3). Bit-exact with MLX: a re-quantized bf16 weight produces the same
// codes, scales and biases as `mx.quantize`.
//
// Per group of `group_size` consecutive inputs, in fp32 (§1):
//   n_bins = 2^bits − 1;  scale = max((max − min) / n_bins, 1e-7), negated unless |min| > |max|;
//   edge = the larger-magnitude end;  q0 = rint(edge / scale);
//   q0 != 0: scale = edge / q0, bias = edge;  else bias = 0;
//   q = clamp(rint((w − bias) / scale), 0, n_bins);  w ≈ scale · q + bias.
// Codes use the fp32 scale/bias; the stored scale/bias are rounded to the weight dtype (bf16).
//
// Packing (§2): each row's codes form one little-endian bit stream (code k at stream bits
// [k·bits, (k+1)·bits), stream bit s = bit s%8 of byte s/8), viewed as uint32. This single rule
// gives both the LSB-first words of 2/4/8 bits and the 3/5/6-bit byte streams.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/weight.h"

namespace optiq {

bool mlx_bits_supported(int bits);          // {2, 3, 4, 5, 6, 8}
bool mlx_group_size_supported(int group);   // {32, 64, 128}

// One group's quantization in fp32 (before the scale/bias are rounded for storage).
// Writes `group_size` codes. Precondition: every w is finite, bits supported.
void affine_quantize_group(const float* w, int group_size, int bits, uint8_t* codes, float* scale, float* bias);

// Packs `n` codes (each < 2^bits) of one row into n·bits/8 bytes (n·bits must be a multiple of 8).
void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out);
// Inverse of pack_codes.
void unpack_codes(const uint8_t* packed, int64_t n, int bits, uint8_t* codes);

// A quantized [rows, cols] matrix in checkpoint layout. Stacked 3-D tensors ([E, out, in]) are the
// same thing with rows = E·out.
struct AffineQuantized {
  int bits = 0;
  int group_size = 0;
  int64_t rows = 0, cols = 0;
  DType scale_dtype = DType::kBF16;  // dtype of scales and biases: the source weight's (bf16/f16/f32)
  std::vector<uint32_t> packed;      // [rows, cols·bits/32]
  std::vector<uint8_t> scales;       // [rows, cols/group_size] in scale_dtype
  std::vector<uint8_t> biases;       // [rows, cols/group_size] in scale_dtype

  int64_t packed_cols() const { return cols * bits / 32; }
  int64_t n_groups() const { return cols / group_size; }
  // A view usable by the kernels (matmul, weight_row). Valid while *this lives and is unmodified.
  Weight view() const;
};

// Quantizes w [rows, cols] (fp32 values of the source weight). scale_dtype must be F32, BF16 or
// F16. InvalidArgument on unsupported bits/group size, cols not a multiple of the group size, or a
// non-finite weight (the message names the row and column).
Result<AffineQuantized> affine_quantize(const float* w, int64_t rows, int64_t cols, int bits, int group_size,
                                        DType scale_dtype = DType::kBF16);

// fp32 dequantization from the stored (rounded) scales and biases: out = scale · q + bias,
// computed in fp32 exactly as the engine's kernels and the fixtures' references do. out: [rows, cols].
void affine_dequantize(const AffineQuantized& q, float* out);

// dequantize(quantize(w)): the weight a converted checkpoint will run with ("fake quantization").
Result<std::vector<float>> affine_fake_quantize(const float* w, int64_t rows, int64_t cols, int bits, int group_size,
                                                DType scale_dtype = DType::kBF16);

// Rounds fp32 values to `t` (F32: unchanged) and stores them as raw bytes of dtype t.
std::vector<uint8_t> encode_floats(const float* v, size_t n, DType t);

}  // namespace optiq
