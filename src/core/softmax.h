// Softmax over one row of logits, the scalar form every caller shares (kernels' softmax for models,
// block diffusion's confidences in src/decode): the same arithmetic, so traces match the goldens.
#pragma once

#include <cmath>
#include <cstdint>

namespace optiq {

// p = softmax(z) over n > 0 values (fp32, max-subtracted); returns the index of the largest z (first on ties).
inline int64_t softmax_row(const float* z, float* p, int64_t n) {
  int64_t best = 0;
  float mx = z[0];
  for (int64_t i = 1; i < n; ++i)
    if (z[i] > mx) {
      mx = z[i];
      best = i;
    }
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    p[i] = std::exp(z[i] - mx);
    sum += p[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) p[i] *= inv;
  return best;
}

}  // namespace optiq
