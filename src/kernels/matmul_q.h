// Quantized (MLX affine) matmul and row dequantization, dispatched from matmul() / weight_row().
// specs/mlx-format.md: w = scale · q + bias per group of `group_size` inputs.
#pragma once

#include <span>

#include "kernels/weight.h"

namespace optiq {

// out[T, N] = x[T, K] · dequant(W)ᵀ. Requires w.quantized(), K a multiple of the group size.
// Activations are quantized to int8 per (row, group) internally (error <= the group's max |x| / (2·kActQMax));
// accumulation is exact int32 per step, fp32 across steps. Multithreaded over N on `pool`.
// Uses AMX tiles for T >= kAmxMinRows where available (matmul_q_amx.h), else the Highway kernel.
// Tiny matrices (<= 2^17 weights) instead dequantize and use fp32 activations: exact to fp32
// rounding, so tiny models equal their fake-quantized fp32 twins.
// Activations are quantized to round(x / s) with s = max|x_g| / kActQMax per (row, group), as
// llama.cpp's Q8 activations: one u8 × s8 dot product per code on VNNI and AMX. (int16 activations,
// split into two byte planes, were MLX-exact to ~1e-4 but cost every block forward twice the tile
// products and stores: 51-62 ms against 41-45 ms per 32-token block at dhara-250m shapes, 4-bit.)
inline constexpr float kActQMax = 127.f;

// Matrices up to this many weights (tiny test and draft models) take the exact path. Their speed is
// irrelevant, and there the quantized model then equals its fake-quantized fp32 twin to fp32
// rounding (what converter round-trip checks compare); the int8-activation kernels are within
// max|x_g|/(2·kActQMax) per activation instead (on dhara-tiny-mlx forced through them, logits move
// up to 0.18 and greedy traces diverge; KL to bf16 of a uniform 4-bit dhara-tiny rises 4-9%).
inline constexpr int64_t kExactMaxWeights = int64_t{1} << 17;

void matmul_q(float* out, const float* x, int64_t T, const Weight& w, ThreadPool& pool);

// matmul_q for several weights on one input (see matmul_multi): one activation preparation and one
// parallel pass when they share bits, group size and K on the VNNI decode path.
void matmul_q_multi(std::span<const MatmulOut> outs, const float* x, int64_t T, ThreadPool& pool);

// The Highway (AVX-512 VNNI / AVX-512 / AVX2 / SSE4 / scalar) kernel alone, whatever T: for tests
// and benchmarks that compare paths.
void matmul_q_highway(float* out, const float* x, int64_t T, const Weight& w, ThreadPool& pool);

// Dequantizes row `row` of a quantized weight to fp32 [K] (w = scale · q + bias, multiply then add,
// bit-identical to dequantize_row_reference).
void dequantize_row(const Weight& w, int64_t row, float* out);

// Scalar reference for dequantize_row, code by code from the bit stream: the test oracle.
void dequantize_row_reference(const Weight& w, int64_t row, float* out);

}  // namespace optiq
