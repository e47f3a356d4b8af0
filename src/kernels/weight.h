// A weight matrix as stored in the checkpoint, viewed in place (memory-mapped).
//
// Dense: data is [N, K] (out, in) in f32 / bf16 / f16.
// MLX affine quantized: data is uint32 [N, K * bits / 32], scales/biases [N, K / group_size]
// (specs/mlx-format.md). Kernels dispatch on the format; models never branch on bit width.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace optiq {

struct QuantInfo {
  int bits = 0;         // 0: not quantized
  int group_size = 0;
  DType scale_dtype = DType::kBF16;  // scales and biases share a dtype
  const void* scales = nullptr;      // [N, K / group_size]
  const void* biases = nullptr;      // [N, K / group_size]
};

struct PackedRows;  // kernels/x86/matmul_q_packed.h

struct Weight {
  DType dtype = DType::kBF16;  // element dtype for dense weights; kU32 for packed quantized
  int64_t n_out = 0;           // N rows
  int64_t n_in = 0;            // K logical columns
  const void* data = nullptr;
  QuantInfo quant;
  // Set when the loader had to materialise a copy (e.g. a transposed or converted tensor).
  std::shared_ptr<std::vector<uint8_t>> owned;
  // Row-interleaved copy for the decode matmul (kernels/x86/matmul_q_packed.h), made at load.
  std::shared_ptr<const PackedRows> packed;

  bool quantized() const { return quant.bits != 0; }
  // Bytes read by one full pass over the weight (data + scales + biases).
  size_t bytes() const;
};

// One output of matmul_multi (kernels/kernels.h): out[T, w->n_out] = x · wᵀ.
struct MatmulOut {
  float* out;
  const Weight* w;
};

// Scalar reference for matmul (the test oracle); single-threaded.
void matmul_reference(float* out, const float* x, int64_t T, const Weight& w);

// Writes row `row` of W (dequantized) as fp32 [K]: embedding lookup for plain or quantized tables.
void weight_row(const Weight& w, int64_t row, float* out);

}  // namespace optiq
