// Quantized matmul on AVX512-VNNI with byte dot products (vpdpbusd): the decode (small T) path.
//
// Same contract as matmul_q: int8 activations per (row, group), exact int32 group sums, fp32 scale
// and bias. One vpdpbusd (u8 codes × s8 activations, 64 products) does the work of two vpdpwssd,
// and 4-bit codes need one AND (and one shift for the high nibbles) per 128 codes instead of a
// widening per 32. The result is the same integer dot product as the Highway path, so the numerics
// are those of matmul_q_amx too.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/context.h"
#include "kernels/weight.h"

namespace optiq {

// True when the CPU has AVX-512 F/BW/VL/DQ and VNNI and the OS saves the AVX-512 state. Decided
// once per process; thread-safe.
bool vnni_available();

// out = x[T, K] · dequant(W)ᵀ for every (out, W) pair. All weights must be quantized with the same
// K, group size and bit width (q/k/v or gate/up of one layer): the activations are prepared once and
// the rows of all weights form one parallel pass. Requires vnni_available().
void matmul_q_vnni(std::span<const MatmulOut> outs, const float* x, int64_t T, const KernelContext& ctx);

}  // namespace optiq
