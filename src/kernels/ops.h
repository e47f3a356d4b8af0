// Kernel internals behind the seam (kernels/kernels.h): the row-level Highway kernels the seam's ops
// are built from, and the scalar references (test oracles) of the seam's ops. Not for models.
// Shapes in comments use the letters from core/tensor.h.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/weight.h"

namespace optiq {

// Rotates `rows` rows of length D (one position) by its angles' cos/sin (rot_pairs each), in SIMD.
void rope_rows(float* x, int64_t rows, int64_t D, const float* cs, const float* sn, int64_t rot_pairs);

// The row kernel of attention() (same contract), for any T: each query row and head on its own, in
// fp32, split across the pool by rows and heads. attention() uses it for decode-sized chunks and
// under row-invariant numerics; it is also the oracle of the GEMM form.
void attention_rows(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
                    int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, const KernelContext& ctx);

// One attention row over a score buffer of n entries: row[j] = softmax_j(scale · row[lo, hi)) for j in
// [lo, hi), 0 elsewhere (max-subtracted, fp32). hi <= lo gives all zeros.
void masked_softmax_row(float* row, int64_t n, int64_t lo, int64_t hi, float scale);

// Elementwise ops split across the pool from this many elements per thread (~5–10 µs of tanh / silu
// work; below that a pool round trip costs more than it saves).
inline constexpr int64_t kMinElementwisePerThread = 16384;

// Scalar references (test oracles) for the Highway kernels; same contracts as the seam's ops. The
// Highway versions use vector exp/tanh (a few ulp) and reassociate sums, so they agree to ~1e-6 relative.
void rms_norm_reference(float* y, const float* x, int64_t T, int64_t C, const Weight& w, float eps);
void conv1d_dw_reference(float* y, const float* x, int64_t T, int64_t C, const float* w, int64_t Kw, float* state,
                         bool update_state, float* window);
void silu_mul_reference(float* out, const float* gate, const float* up, int64_t n);
void softcap_inplace_reference(float* x, int64_t n, float cap);
void add_inplace_reference(float* x, const float* y, int64_t n);
void lora_add_reference(float* out, const float* x, int64_t T, const float* a, const float* b, int64_t n_in,
                        int64_t rank, int64_t n_out, float scale);  // in double, rounded once
void attention_reference(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H,
                         int64_t Hkv, int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale,
                         ThreadPool& pool);

}  // namespace optiq
