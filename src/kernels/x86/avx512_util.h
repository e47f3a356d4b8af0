// Helpers shared by the hand-written AVX-512 kernels (AMX and VNNI paths). Each is compiled for the
// AVX-512 subset both kernels' target attributes include, so it inlines into either.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "core/tensor.h"

namespace optiq {

// Scales / biases to f32: bf16 widened in registers (the common case), else the generic converter.
__attribute__((target("avx512f,avx512bw"))) inline void scales_to_f32_avx512(DType t, const uint8_t* src, float* dst,
                                                                            size_t n) {
  if (t != DType::kBF16) {
    convert_to_f32(t, src, dst, n);
    return;
  }
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(
                                  _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))), 16)));
  for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
}

// One activation group's int8 quantization parameters, as every int8 path computes them:
// scale = max|x| / kActQMax (1 for an all-zero group) and the exact fp32 Σx for the bias term.
// gs is a multiple of 16.
struct ActGroup {
  float scale, sum;
};
__attribute__((target("avx512f"))) inline ActGroup act_group_avx512(const float* xg, int64_t gs, float qmax) {
  __m512 vmax = _mm512_setzero_ps(), vsum = _mm512_setzero_ps();
  for (int64_t k = 0; k < gs; k += 16) {
    const __m512 v = _mm512_loadu_ps(xg + k);
    vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
    vsum = _mm512_add_ps(vsum, v);
  }
  const float amax = _mm512_reduce_max_ps(vmax);
  return {amax > 0.f ? amax / qmax : 1.f, _mm512_reduce_add_ps(vsum)};
}

}  // namespace optiq
#endif
