// 2-D rotary embedding for vision patches (Gemma-4 vision, specs/diffusiongemma.md §3.2).
#pragma once

#include <cstdint>

namespace optiq {

// In place on x[T, H, D] (D divisible by 4): channels [0, D/2) rotate by pos_x[t], channels
// [D/2, D) by pos_y[t]. Within a half of width D/2, rotate-half pairs (i, i + D/4) use
// inv_freq[i] = theta^(−2i / (D/2)), i < D/4. cos/sin in fp32.
void rope_2d(float* x, int64_t T, int64_t H, int64_t D, const int64_t* pos_x, const int64_t* pos_y, float theta);

}  // namespace optiq
