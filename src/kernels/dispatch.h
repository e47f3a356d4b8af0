// Kernel internals shared between the seam's translation units (not for models).
#pragma once

#include "kernels/context.h"

namespace optiq {

// Starts a forward's matmul trace (KernelContext's constructor): the next matmul is the forward's
// first, and the idle worker is handed what the first matmul read in the previous forward.
void matmul_trace_begin(const KernelContext& ctx);

}  // namespace optiq
