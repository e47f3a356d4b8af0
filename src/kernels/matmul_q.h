// Quantized (MLX affine) matmul and row dequantization, dispatched from matmul() / weight_row().
// specs/mlx-format.md: w = scale · q + bias per group of `group_size` inputs.
#pragma once

#include "kernels/weight.h"

namespace optiq {

// out[T, N] = x[T, K] · dequant(W)ᵀ. Requires w.quantized(), K a multiple of the group size.
// Activations are quantized per row to int16 internally (relative error ~3e-5 of the row's max |x|);
// accumulation is exact int32 per step, fp32 across steps. Multithreaded over N on `pool`.
void matmul_q(float* out, const float* x, int64_t T, const Weight& w, ThreadPool& pool);

// Dequantizes row `row` of a quantized weight to fp32 [K] (w = scale · q + bias, multiply then add,
// bit-identical to dequantize_row_reference).
void dequantize_row(const Weight& w, int64_t row, float* out);

// Scalar reference for dequantize_row, code by code from the bit stream: the test oracle.
void dequantize_row_reference(const Weight& w, int64_t row, float* out);

}  // namespace optiq
