#include "kernels/attention_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/gemm.h"
#include "kernels/weight.h"
#include "kernels/ops.h"

namespace optiq {

namespace {
template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}
int64_t round_up(int64_t n, int64_t a) { return (n + a - 1) / a * a; }
// A worker's buffers, grown on demand and kept in the context's scratch.
struct AttentionBuffers {
  std::vector<float> kt, vh, qg, s, o;
};
}  // namespace

void attention_gemm(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
                    int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale,
                    const KernelContext& ctx) {
  const int64_t G = H / Hkv, stride = Hkv * D;
  int64_t span_all = 0;
  for (int64_t t = 0; t < T; ++t) span_all = std::max(span_all, key_end[t] - key_begin[t]);
  // Row blocks bound each thread's score buffer to ~2M floats whatever the context length, and give
  // the pool at least two items per thread when there are few KV heads.
  int64_t block = std::clamp<int64_t>((int64_t{2} << 20) / std::max<int64_t>(1, G * std::max<int64_t>(span_all, 1)),
                                      1, T);
  const int64_t want_items = 2 * ctx.threads();
  if (Hkv * ((T + block - 1) / block) < want_items)
    block = std::max<int64_t>(16, (T * Hkv + want_items - 1) / want_items);
  block = std::min(block, T);
  const int64_t n_blocks = (T + block - 1) / block;
  const int64_t align = gemm_f32_n_align();
  const int64_t Dp = round_up(D, align);

  ctx.parallel_for(Hkv * n_blocks, [&](int64_t b, int64_t e, int thread) {
    AttentionBuffers& buf = ctx.scratch().get<AttentionBuffers>(thread);
    for (int64_t item = b; item < e; ++item) {
      const int64_t hk = item / n_blocks, t0 = (item % n_blocks) * block;
      const int64_t tb = std::min(block, T - t0);
      int64_t j0 = INT64_MAX, j1 = INT64_MIN;
      for (int64_t t = t0; t < t0 + tb; ++t)
        if (key_end[t] > key_begin[t]) {
          j0 = std::min(j0, key_begin[t]);
          j1 = std::max(j1, key_end[t]);
        }
      if (j0 >= j1) {  // no row of the block sees any key
        for (int64_t g = 0; g < G; ++g)
          for (int64_t t = t0; t < t0 + tb; ++t) std::fill_n(out + (t * H + hk * G + g) * D, D, 0.f);
        continue;
      }
      const int64_t S = j1 - j0, Sp = round_up(S, align), R = G * tb;  // R rows: the group's heads × rows
      float* kt = grow(buf.kt, D * Sp);  // keys transposed, [D, Sp], zero padded
      float* vh = grow(buf.vh, Sp * Dp);  // values, [Sp, Dp], zero padded
      float* qg = grow(buf.qg, R * D);
      float* s = grow(buf.s, R * Sp);
      float* o = grow(buf.o, R * Dp);
      for (int64_t d = 0; d < D; ++d) std::fill(kt + d * Sp + S, kt + (d + 1) * Sp, 0.f);
      std::fill(vh + S * Dp, vh + Sp * Dp, 0.f);
      for (int64_t j = 0; j < S; ++j) {
        const float* kr = k + (j0 + j) * stride + hk * D;
        for (int64_t d = 0; d < D; ++d) kt[d * Sp + j] = kr[d];
        std::memcpy(vh + j * Dp, v + (j0 + j) * stride + hk * D, sizeof(float) * D);
        std::fill(vh + j * Dp + D, vh + (j + 1) * Dp, 0.f);
      }
      for (int64_t g = 0; g < G; ++g)
        for (int64_t t = 0; t < tb; ++t)
          std::memcpy(qg + (g * tb + t) * D, q + ((t0 + t) * H + hk * G + g) * D, sizeof(float) * D);
      gemm_f32(s, Sp, qg, D, kt, Sp, R, Sp, D);
      for (int64_t r = 0; r < R; ++r) {
        const int64_t t = t0 + r % tb;
        masked_softmax_row(s + r * Sp, Sp, std::max<int64_t>(key_begin[t] - j0, 0),
                           std::min<int64_t>(key_end[t] - j0, S), scale);
      }
      gemm_f32(o, Dp, s, Sp, vh, Dp, R, Dp, Sp);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t t = 0; t < tb; ++t)
          std::memcpy(out + ((t0 + t) * H + hk * G + g) * D, o + (g * tb + t) * Dp, sizeof(float) * D);
    }
  }, 1);
}

void attention(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
               int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, const KernelContext& ctx) {
  if (T >= kAttentionGemmMinRows && !ctx.numerics().row_invariant)
    attention_gemm(out, q, k, v, T, H, Hkv, D, key_begin, key_end, scale, ctx);
  else
    attention_rows(out, q, k, v, T, H, Hkv, D, key_begin, key_end, scale, ctx);
}

}  // namespace optiq
