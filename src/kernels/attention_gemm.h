// Attention for chunks of many rows (canvas steps, block forwards, vision towers) as per-KV-head
// GEMMs (gemm_f32), KV heads in parallel: scores = Q·Kᵀ over the union key range of a row block, masked per row,
// softmax, then P·V. Same contract as attention() in kernels/ops.h (which stays the reference and
// the path for few rows); the masked-out part of the union range is wasted work, so it pays when
// rows share most of their keys (full/decoder rows: all; causal chunks: at most 2×).
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace optiq {

// Reusable buffers (grown on demand), one set per pool thread.
struct AttentionScratch {
  struct Buffers {
    std::vector<float> kt, vh, qg, s, o;
  };
  std::vector<Buffers> per_thread;
};

//   q   [T, H, D], k/v [S, Hkv, D] (row stride Hkv·D), out [T, H, D]
// Row t attends keys [key_begin[t], key_end[t]) (empty → zeros); head h uses KV head h / (H / Hkv).
// Softmax in fp32 with max subtraction; `scale` multiplies q·k.
void attention_gemm(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
                    int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, AttentionScratch& scratch,
                    ThreadPool& pool);

// Rows from which attention_chunk uses the GEMM form.
inline constexpr int64_t kAttentionGemmMinRows = 16;

// Attention for a chunk of any size, same contract: the GEMM form for chunks of many rows (block
// forwards, canvas steps, prefill), the row kernel attention() for decode-sized chunks.
void attention_chunk(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
                     int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale,
                     AttentionScratch& scratch, ThreadPool& pool);

}  // namespace optiq
