// Mixture-of-experts kernels: top-k routing and batched expert FFNs (gated gelu-tanh).
//
// Experts run as grouped matmuls: the rows routed to one expert are gathered into a contiguous
// [n_e, C] block and pushed through that expert's weights with one matmul() per projection, so
// each expert's weights stream from memory once per forward, not once per row (a 256-row canvas
// with top-8 routing touches each expert ~16 times on average). matmul() dispatches dense bf16/f32
// and MLX-quantized weights alike.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kernels.h"

namespace optiq {

// moe_experts' buffers (grown on demand), in the calling worker's scratch.
struct MoeScratch {
  std::vector<int32_t> count, offset, rows;  // [E], [E + 1], [T·K] slot ids grouped by expert
  std::vector<float> xg, gu, act, y;         // gathered inputs, [n, 2F], [n, F], per-slot outputs [T·K, C]
};

// Scalar reference: a loop over rows and their k experts with matmul_reference (the test oracle).
void moe_experts_reference(float* out, const float* x, int64_t T, int64_t C, const int32_t* sel, const float* w,
                           int64_t K, std::span<const ExpertFfn> experts);

}  // namespace optiq
