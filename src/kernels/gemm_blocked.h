// fp32 GEMM for training's large products (activations × dequantized weight panels), cache-blocked,
// any N, optionally accumulating.
#pragma once

#include <cstdint>

namespace optiq {

// C[M, N] = A[M, K] · B[K, N] (or C += A · B with `accumulate`), row-major with leading dimensions
// in floats. Single-threaded: callers split the work. Blocks K and N so that a block of B stays in
// L2 while every row of A passes over it; register tiles of 6 rows × 2 vectors (12 accumulators,
// which with the two B vectors and the A broadcast fit AVX2's 16 registers).
void gemm_f32_blocked(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
                      int64_t N, int64_t K, bool accumulate);

}  // namespace optiq
