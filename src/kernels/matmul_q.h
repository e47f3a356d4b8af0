// Quantized (MLX affine) matmul and row dequantization, dispatched from matmul() / weight_row().
// specs/mlx-format.md: w = scale · q + bias per group of `group_size` inputs.
#pragma once

#include "kernels/weight.h"

namespace optiq {

// out[T, N] = x[T, K] · dequant(W)ᵀ. Requires w.quantized().
void matmul_q(float* out, const float* x, int64_t T, const Weight& w, ThreadPool& pool);

// Dequantizes row `row` of a quantized weight to fp32 [K].
void dequantize_row(const Weight& w, int64_t row, float* out);

}  // namespace optiq
