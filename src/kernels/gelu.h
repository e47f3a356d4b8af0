// GELU (tanh approximation, torch's "gelu_pytorch_tanh") and its gated form, fp32.
#pragma once

#include <cstdint>

namespace optiq {

// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
float gelu_tanh(float x);

// out[i] = gelu_tanh(gate[i]) * up[i]. `out` may alias either input.
void gelu_tanh_mul(float* out, const float* gate, const float* up, int64_t n);

// Gated MLP on a fused [T, 2F] buffer whose rows are gate ‖ up (chunk(2) order):
// out[T, F] = gelu_tanh(gu[:, :F]) * gu[:, F:]. `out` must not alias `gu` unless equal rows line up
// (out == gu is allowed: row t of out is written after row t of gu is read, and F <= 2F).
void gelu_tanh_mul_fused(float* out, const float* gu, int64_t T, int64_t F);

}  // namespace optiq
