// A weight matrix as stored in the checkpoint, viewed in place (memory-mapped).
//
// Dense: data is [N, K] (out, in) in f32 / bf16 / f16.
// MLX affine quantized: data is uint32 [N, K * bits / 32], scales/biases [N, K / group_size]
// (specs/mlx-format.md). Kernels dispatch on the format; models never branch on bit width.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace optiq {

struct QuantInfo {
  int bits = 0;         // 0: not quantized
  int group_size = 0;
  DType scale_dtype = DType::kBF16;  // scales and biases share a dtype
  const void* scales = nullptr;      // [N, K / group_size]
  const void* biases = nullptr;      // [N, K / group_size]
};

struct PackedRows;  // kernels/matmul_q_packed.h

struct Weight {
  DType dtype = DType::kBF16;  // element dtype for dense weights; kU32 for packed quantized
  int64_t n_out = 0;           // N rows
  int64_t n_in = 0;            // K logical columns
  const void* data = nullptr;
  QuantInfo quant;
  // Set when the loader had to materialise a copy (e.g. a transposed or converted tensor).
  std::shared_ptr<std::vector<uint8_t>> owned;
  // Row-interleaved copy for the decode matmul (kernels/matmul_q_packed.h), made at load.
  std::shared_ptr<const PackedRows> packed;

  bool quantized() const { return quant.bits != 0; }
  // Bytes read by one full pass over the weight (data + scales + biases).
  size_t bytes() const;
};

// out[T, N] = x[T, K] · Wᵀ, fp32 accumulate. `out` must not alias `x`.
void matmul(float* out, const float* x, int64_t T, const Weight& w, ThreadPool& pool);

// One output of matmul_multi: out[T, w->n_out] = x · wᵀ.
struct MatmulOut {
  float* out;
  const Weight* w;
};

// Several weights applied to the same input (q/k/v, gate/up): on the quantized decode path the
// activations are prepared once and all rows form one parallel pass (fewer pool round trips and
// better balance); otherwise one matmul per weight. Outputs must not alias x or each other.
void matmul_multi(std::span<const MatmulOut> outs, const float* x, int64_t T, ThreadPool& pool);

// Say which weights the next matmul_multi call (of T rows) streams, before the serial code that precedes it
// (decode steps: convs, norms, attention). An idle pool worker then prefetches the part it will read
// first (ThreadPool::prefetch_while_idle). Only the packed decode path uses it; otherwise a no-op.
void matmul_prefetch_hint(std::span<const MatmulOut> outs, int64_t T, ThreadPool& pool);

// While a RowInvariantScope lives on a thread, matmul / matmul_multi / attention_chunk called from it
// use kernels whose arithmetic for a row does not depend on how many rows the call has (no AMX
// tiles, no GEMM attention), so a T-row causal chunk computes, bit for bit, what T one-row forwards
// compute. Self-speculation's verify forward runs under it: its tokens must be greedy AR's. (The
// block kernels sum in another fp32 order; int8 activation rounding downstream can turn those
// last-bit differences into different tokens.)
class RowInvariantScope {
 public:
  RowInvariantScope();
  ~RowInvariantScope();
  RowInvariantScope(const RowInvariantScope&) = delete;
  RowInvariantScope& operator=(const RowInvariantScope&) = delete;

 private:
  bool prev_;
};
bool row_invariant();

// Scalar reference for matmul (the test oracle); single-threaded.
void matmul_reference(float* out, const float* x, int64_t T, const Weight& w);

// Writes row `row` of W (dequantized) as fp32 [K]: embedding lookup for plain or quantized tables.
void weight_row(const Weight& w, int64_t row, float* out);

}  // namespace optiq
