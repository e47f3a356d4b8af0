// Small fp32 GEMM for activation × activation products (attention scores and weighted values).
#pragma once

#include <cstdint>

namespace optiq {

// C[M, N] = A[M, K] · B[K, N], all row-major with leading dimensions lda, ldb, ldc (floats).
// N must be a multiple of gemm_f32_n_align() (callers pad B and C with zero columns). Single-threaded:
// callers parallelise over independent products (heads).
void gemm_f32(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N,
              int64_t K);

// Column alignment gemm_f32 needs: the widest fixed-width SIMD float vector (16, AVX-512). SVE
// vectors may be wider (up to 64 floats); gemm_f32 then ends each row with a partial vector.
inline constexpr int64_t gemm_f32_n_align() { return 16; }

}  // namespace optiq
