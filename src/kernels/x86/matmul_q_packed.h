// Quantized decode matmul on a row-interleaved copy of the weights (AVX512-VNNI). Private to src/kernels.
//
// The MLX layout keeps each weight row contiguous, so a matrix-vector product ends every row with a
// horizontal reduction and spends a lane permutation per step on the group scales: ~15 GB/s per core
// in L2 at 4-bit, barely above one core's share of DRAM bandwidth, so the decode matvec could not
// overlap compute with streaming. Packed, 16 rows sit side by side: lane r of a 64-byte vector holds
// 4 bytes of row r, so one vpdpbusd against 4 broadcast activation bytes advances 16 rows, the
// group's 16 scales and biases are one vector each, and nothing is reduced across lanes (~50 GB/s
// per core in L2). llama.cpp repacks Q4_0 for the same reason.
//
// Layout, per block of 16 rows (the last one zero padded) and per group g, one contiguous record:
//   4-bit: gs/8 vectors; lane r byte m holds code 4j+m of row r's group in its low nibble and code
//          gs/2+4j+m in its high nibble (vector j);
//   8-bit: gs/4 vectors; lane r byte m holds code 4j+m;
//   then the 16 rows' scales, then their biases (bf16 or f32, as the checkpoint's).
// Records follow each other group by group, blocks block by block: the matvec is one stream.
//
// Numerics: the same int8 activations and exact int32 group sums as the other quantized paths; per
// output, fp32 fma over groups in order: acc += float(Σ_g) · (s_w · s_x) then acc += b · Σx_g. Every
// output row is computed the same way whatever T is, so chunks equal one-row forwards bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "core/huge_pages.h"
#include "kernels/context.h"
#include "kernels/weight.h"

namespace optiq {

struct PackedRows {
  const uint8_t* bytes = nullptr;  // 64-byte aligned, inside `storage`
  std::shared_ptr<void> storage;
  int64_t group_stride = 0;  // bytes of one (block, group) record
  int64_t block_stride = 0;  // bytes of one block of 16 rows (ng records)
};


// True when `w` has a packed form on this machine: VNNI available, 4- or 8-bit codes, bf16 or f32
// scales. The caller decides whether the matrix is large enough to be worth a second copy.
bool packable(const Weight& w);

// The packed copy of `w` (requires packable(w)), allocated from `arena` (one per model, so a
// forward streams the copies in address order). Costs the matrix's bytes once more in memory.
std::shared_ptr<const PackedRows> pack_rows(const Weight& w, HugePageArena& arena);

// out = x[T, K] · dequant(W)ᵀ for every (out, W); every W has `packed` set and all share K and
// group size. Multithreaded: the caller claims runs of blocks (128 KB, shorter near the end) from
// the front and walks them forward, the workers claim from the back and walk backward.
void matmul_q_packed(std::span<const MatmulOut> outs, const float* x, int64_t T, const KernelContext& ctx);

// Rows [row_begin, row_end) of out = x[T, K] · dequant(W)ᵀ: a slice of a packed matmul, computed on
// the calling thread, each row exactly as matmul_q_packed computes it. matmul_grouped calls it from
// inside its per-group pass. `out` points at the matmul's whole
// output ([T, n_out]). All slices share K and group size.
struct RowSlice {
  float* out;
  const Weight* w;
  int64_t row_begin, row_end;
};
inline constexpr int64_t kPackedSliceRows = 64;  // slices start at multiples of this
// True when every slice can be computed this way: packed, sharing K and group size, and bounds at
// multiples of kPackedSliceRows (or the matrix end).
bool packed_slices_ok(std::span<const RowSlice> slices);
void matmul_q_packed_slices(std::span<const RowSlice> slices, const float* x, int64_t T, const KernelContext& ctx);
// The slices' packed bytes, for ThreadPool::prefetch_while_idle: writes at most kMaxPrefetchSpans
// spans, returns how many.
int matmul_q_packed_slices_spans(std::span<const RowSlice> slices, ThreadPool::Span* spans);

// The packed bytes worker 1 streams first in matmul_q_packed(outs, ...) on `n_threads` threads, to
// prefetch while the caller runs the serial code before that call (ThreadPool::prefetch_while_idle).
// Writes at most kMaxPrefetchSpans spans, returns how many (0 unless every weight is packed).
int matmul_q_packed_prefetch_spans(std::span<const MatmulOut> outs, int n_threads, ThreadPool::Span* spans);

}  // namespace optiq
