#include "kernels/attention_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/weight.h"

namespace optiq {

namespace {
template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}
Weight f32_weight(const float* p, int64_t n_out, int64_t n_in) {
  Weight w;
  w.dtype = DType::kF32;
  w.n_out = n_out;
  w.n_in = n_in;
  w.data = p;
  return w;
}
}  // namespace

void attention_gemm(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
                    int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, AttentionScratch& sc,
                    ThreadPool& pool) {
  const int64_t G = H / Hkv, stride = Hkv * D;
  // Row blocks bound the score buffer to ~8M floats whatever the context length.
  int64_t span_all = 0;
  for (int64_t t = 0; t < T; ++t) span_all = std::max(span_all, key_end[t] - key_begin[t]);
  const int64_t block = std::clamp<int64_t>((int64_t{8} << 20) / std::max<int64_t>(1, G * std::max<int64_t>(span_all, 1)),
                                            1, T);
  for (int64_t t0 = 0; t0 < T; t0 += block) {
    const int64_t tb = std::min(block, T - t0);
    int64_t j0 = INT64_MAX, j1 = INT64_MIN;
    for (int64_t t = t0; t < t0 + tb; ++t)
      if (key_end[t] > key_begin[t]) {
        j0 = std::min(j0, key_begin[t]);
        j1 = std::max(j1, key_end[t]);
      }
    if (j0 >= j1) {  // no row of the block sees any key
      for (int64_t t = t0; t < t0 + tb; ++t) std::fill(out + t * H * D, out + (t + 1) * H * D, 0.f);
      continue;
    }
    const int64_t S = j1 - j0, R = G * tb;  // R score rows: the group's heads × the block's rows
    float* kh = grow(sc.kh, S * D);
    float* vt = grow(sc.vt, D * S);
    float* qg = grow(sc.qg, R * D);
    float* s = grow(sc.s, R * S);
    float* o = grow(sc.o, R * D);
    for (int64_t hk = 0; hk < Hkv; ++hk) {
      for (int64_t j = 0; j < S; ++j) {
        std::memcpy(kh + j * D, k + (j0 + j) * stride + hk * D, sizeof(float) * D);
        const float* vr = v + (j0 + j) * stride + hk * D;
        for (int64_t d = 0; d < D; ++d) vt[d * S + j] = vr[d];
      }
      for (int64_t g = 0; g < G; ++g)
        for (int64_t t = 0; t < tb; ++t)
          std::memcpy(qg + (g * tb + t) * D, q + ((t0 + t) * H + hk * G + g) * D, sizeof(float) * D);
      matmul(s, qg, R, f32_weight(kh, S, D), pool);
      pool.parallel_for(R, [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t t = t0 + r % tb;
          float* row = s + r * S;
          const int64_t lo = std::max<int64_t>(key_begin[t] - j0, 0), hi = std::min<int64_t>(key_end[t] - j0, S);
          if (hi <= lo) {
            std::fill(row, row + S, 0.f);
            continue;
          }
          float mx = -INFINITY;
          for (int64_t j = lo; j < hi; ++j) mx = std::max(mx, row[j] * scale);
          float sum = 0.f;
          for (int64_t j = lo; j < hi; ++j) sum += row[j] = std::exp(row[j] * scale - mx);
          const float inv = 1.0f / sum;
          std::fill(row, row + lo, 0.f);
          for (int64_t j = lo; j < hi; ++j) row[j] *= inv;
          std::fill(row + hi, row + S, 0.f);
        }
      }, 4);
      matmul(o, s, R, f32_weight(vt, D, S), pool);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t t = 0; t < tb; ++t)
          std::memcpy(out + ((t0 + t) * H + hk * G + g) * D, o + (g * tb + t) * D, sizeof(float) * D);
    }
  }
}

}  // namespace optiq
