// Attention for chunks of many rows (canvas steps, block forwards, vision towers) as per-KV-head
// GEMMs (gemm_f32), KV heads in parallel: scores = Q·Kᵀ over the union key range of a row block, masked per row,
// softmax, then P·V. Same contract as attention() in kernels/kernels.h, which picks it for chunks of
// at least kAttentionGemmMinRows rows (attention_rows in kernels/ops.h is the path for few rows); the
// masked-out part of the union range is wasted work, so it pays when rows share most of their keys
// (full/decoder rows: all; causal chunks: at most 2×). Kernel internals, not for models.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace optiq {

//   q   [T, H, D], k/v [S, Hkv, D] (row stride Hkv·D), out [T, H, D]
// Row t attends keys [key_begin[t], key_end[t]) (empty → zeros); head h uses KV head h / (H / Hkv).
// Softmax in fp32 with max subtraction; `scale` multiplies q·k. Buffers come from the context's scratch.
void attention_gemm(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
                    int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, const KernelContext& ctx);

// Rows from which attention() uses the GEMM form.
inline constexpr int64_t kAttentionGemmMinRows = 16;

}  // namespace optiq
