// Quantized (MLX affine) matmul internals and row dequantization: the portable Highway kernel, the
// exact path for tiny matrices, and the numerics every quantized path shares. matmul() in
// kernels/kernels.h picks the path (matmul.cpp). specs/mlx-format.md: w = scale · q + bias per group
// of `group_size` inputs. Kernel internals, not for models.
#pragma once

#include <span>

#include "kernels/context.h"
#include "kernels/weight.h"

namespace optiq {

// Quantized matmuls compute out[T, N] = x[T, K] · dequant(W)ᵀ (K a multiple of the group size) with
// activations quantized to int8 per (row, group) (error <= the group's max |x| / (2·kActQMax)),
// exact int32 sums per step and fp32 across steps. Tiny matrices (<= kExactMaxWeights) instead
// dequantize and use fp32 activations: exact to fp32 rounding, so tiny models equal their
// fake-quantized fp32 twins.
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

// The Highway (AVX-512 VNNI / AVX-512 / AVX2 / SSE4 / NEON / SVE / scalar) kernel, whatever T: the
// portable path, and for tests and benchmarks that compare paths. Requires w.quantized().
void matmul_q_highway(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx);

// The exact path (dequantize each row, fp32 dot products), any size. Requires w.quantized().
void matmul_q_exact(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx);

// Dequantizes row `row` of a quantized weight to fp32 [K] (w = scale · q + bias, multiply then add,
// bit-identical to dequantize_row_reference).
void dequantize_row(const Weight& w, int64_t row, float* out);

// Scalar reference for dequantize_row, code by code from the bit stream: the test oracle.
void dequantize_row_reference(const Weight& w, int64_t row, float* out);

}  // namespace optiq
