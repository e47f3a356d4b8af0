// Quantized matmul on Intel AMX tiles (Sapphire Rapids and later): the block-forward path.
//
// Same contract and numerics as matmul_q's Highway path (int8 activations per (row, group), exact
// int32 group sums, fp32 scale and bias), but each 16×16 output tile per group is one AMX dot
// product instead of ~100 VNNI instructions. Used for T >= kAmxMinRows when available.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/context.h"
#include "kernels/weight.h"

namespace optiq {

// Activation rows from which matmul_q uses AMX (when available). Below it the VNNI path wins:
// an AMX tile always computes 16 rows.
inline constexpr int64_t kAmxMinRows = 8;

// True when the CPU has AMX-INT8 and the OS granted this process tile data state (Linux
// arch_prctl(ARCH_REQ_XCOMP_PERM)). Decided once per process; thread-safe.
bool amx_available();

// out[T, N] = x[T, K] · dequant(W)ᵀ on AMX. Requires amx_available() and w.quantized().
void matmul_q_amx(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx);

// The same for several weights on one input, sharing bits, group size and K (see matmul_multi): one
// activation preparation, one parallel pass over all their rows.
void matmul_q_amx(std::span<const MatmulOut> outs, const float* x, int64_t T, const KernelContext& ctx);

}  // namespace optiq
