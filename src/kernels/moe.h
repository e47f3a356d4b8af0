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

#include "core/thread_pool.h"
#include "kernels/weight.h"

namespace optiq {

// Top-k of softmax(logits) per row, renormalised over the k picks (== softmax over the k selected
// logits). logits [T, E]; sel [T, K] expert ids in decreasing probability order (lower id first on
// ties); w [T, K] weights summing to 1 per row. Softmax in fp32 with max subtraction.
void moe_topk_softmax(const float* logits, int64_t T, int64_t E, int64_t K, int32_t* sel, float* w);

// One expert's FFN: gate_up [2F, C] (rows 0..F-1 gate, F..2F-1 up), down [C, F].
struct ExpertFfn {
  Weight gate_up;
  Weight down;
};

// Reusable buffers for moe_experts (grown on demand; one per cache / forward context).
struct MoeScratch {
  std::vector<int32_t> count, offset, rows;  // [E], [E + 1], [T·K] slot ids grouped by expert
  std::vector<float> xg, gu, act, y;         // gathered inputs, [n, 2F], [n, F], per-slot outputs [T·K, C]
};

// out[T, C] = Σ_k w[t, k] · FFN_{sel[t, k]}(x[t]), FFN_e(x) = down_e(gelu_tanh(gate_e x) * up_e x).
// Rows are grouped by expert (one batched matmul per expert and projection); the k terms of a row
// are summed in k order, so the result does not depend on the grouping. `out` must not alias `x`.
void moe_experts(float* out, const float* x, int64_t T, int64_t C, const int32_t* sel, const float* w, int64_t K,
                 std::span<const ExpertFfn> experts, MoeScratch& scratch, ThreadPool& pool);

// Scalar reference: a loop over rows and their k experts with matmul_reference (the test oracle).
void moe_experts_reference(float* out, const float* x, int64_t T, int64_t C, const int32_t* sel, const float* w,
                           int64_t K, std::span<const ExpertFfn> experts);

}  // namespace optiq
