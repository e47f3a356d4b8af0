// GELU (tanh approximation, torch's "gelu_pytorch_tanh"), fp32: the scalar function and the fused
// gated form the MoE experts use (kernel internals; models call gelu_tanh_mul in kernels/kernels.h).
#pragma once

#include <cstdint>

namespace optiq {

// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
float gelu_tanh(float x);

// Gated MLP on a fused [T, 2F] buffer whose rows are gate ‖ up (chunk(2) order):
// out[T, F] = gelu_tanh(gu[:, :F]) * gu[:, F:]. `out` must not alias `gu` unless equal rows line up
// (out == gu is allowed: row t of out is written after row t of gu is read, and F <= 2F).
void gelu_tanh_mul_fused(float* out, const float* gu, int64_t T, int64_t F);

}  // namespace optiq
