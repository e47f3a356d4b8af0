// Scalar quantized matmul: dequantize each row, then dot. Placeholder until the SIMD kernels land
// (issue 4); kept as the simple path for bit widths without a fast kernel.
#include "kernels/matmul_q.h"

#include <vector>

#include "core/status.h"

namespace optiq {

namespace {
// Reads q-value `i` of a row packed LSB-first into a little-endian byte stream.
inline uint32_t unpack_bits(const uint8_t* row, int64_t i, int bits) {
  uint64_t bit = static_cast<uint64_t>(i) * bits;
  uint64_t byte = bit >> 3;
  uint32_t shift = bit & 7;
  uint32_t v = row[byte];
  if (shift + bits > 8) v |= static_cast<uint32_t>(row[byte + 1]) << 8;
  return (v >> shift) & ((1u << bits) - 1);
}
inline float load_scale(DType t, const void* p, int64_t i) {
  if (t == DType::kF32) return static_cast<const float*>(p)[i];
  if (t == DType::kF16) return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
  return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}
}  // namespace

void dequantize_row(const Weight& w, int64_t row, float* out) {
  const int bits = w.quant.bits, gs = w.quant.group_size;
  const int64_t K = w.n_in;
  const int64_t row_bytes = K * bits / 8;
  const uint8_t* r = static_cast<const uint8_t*>(w.data) + row * row_bytes;
  const int64_t n_groups = K / gs;
  for (int64_t g = 0; g < n_groups; ++g) {
    float s = load_scale(w.quant.scale_dtype, w.quant.scales, row * n_groups + g);
    float b = load_scale(w.quant.scale_dtype, w.quant.biases, row * n_groups + g);
    for (int64_t k = g * gs; k < (g + 1) * gs; ++k) out[k] = s * static_cast<float>(unpack_bits(r, k, bits)) + b;
  }
}

void matmul_q(float* out, const float* x, int64_t T, const Weight& w, ThreadPool& pool) {
  const int64_t N = w.n_out, K = w.n_in;
  pool.parallel_for(N, [&](int64_t b, int64_t e, int) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = b; n < e; ++n) {
      dequantize_row(w, n, row.data());
      for (int64_t t = 0; t < T; ++t) {
        float s = 0;
        const float* xr = x + t * K;
        for (int64_t k = 0; k < K; ++k) s += xr[k] * row[k];
        out[t * N + n] = s;
      }
    }
  }, 8);
}

}  // namespace optiq
