// Scalar references for the kernels in ops.h (the test oracles); the fast versions are in
// ops_simd.cpp. rope and softmax have no SIMD version of their own, so the seam's ops are here.
#include "kernels/ops.h"

#include "core/softmax.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <vector>

namespace optiq {

namespace {
inline float weight_at(const Weight& w, int64_t i) {
  switch (w.dtype) {
    case DType::kF32: return static_cast<const float*>(w.data)[i];
    case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    default: return 0.f;
  }
}
}  // namespace

void rms_norm_reference(float* y, const float* x, int64_t T, int64_t C, const Weight& w, float eps) {
  std::vector<float> wf(static_cast<size_t>(C), 1.0f);
  if (w.data)
    for (int64_t c = 0; c < C; ++c) wf[c] = weight_at(w, c);
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    float* yr = y + t * C;
    float ss = 0.f;
    for (int64_t c = 0; c < C; ++c) ss += xr[c] * xr[c];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
    for (int64_t c = 0; c < C; ++c) yr[c] = wf[c] * (xr[c] * inv);
  }
}

namespace {
// The angles' cos/sin of the last rope call, in the worker's scratch: every layer of a forward rotates
// the same positions with (in every checkpoint we know) the same inv_freq, so a decode step computes
// them once instead of once per layer (64 sin/cos instead of 2048 at dhara-250m). Reused only when
// positions and inv_freq are equal bit for bit, so the results are those of a fresh computation.
struct RopeAngles {
  std::vector<int64_t> pos;
  std::vector<float> inv_freq, cs, sn;
};
}  // namespace

void rope_qk(float* q, int64_t Hq, float* k, int64_t Hk, int64_t T, int64_t D, const int64_t* pos,
             const float* inv_freq, int64_t rot_pairs, const KernelContext& ctx) {
  RopeAngles& ang = ctx.buffers<RopeAngles>();
  const size_t P = static_cast<size_t>(rot_pairs), TT = static_cast<size_t>(T);
  const bool same = ang.pos.size() == TT && ang.inv_freq.size() == P &&
                    std::equal(pos, pos + T, ang.pos.begin()) &&
                    std::memcmp(inv_freq, ang.inv_freq.data(), sizeof(float) * P) == 0;
  if (!same) {
    ang.pos.assign(pos, pos + T);
    ang.inv_freq.assign(inv_freq, inv_freq + rot_pairs);
    ang.cs.resize(TT * P);
    ang.sn.resize(TT * P);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < rot_pairs; ++i) {
        const float a = static_cast<float>(pos[t]) * inv_freq[i];
        ang.cs[t * rot_pairs + i] = std::cos(a);
        ang.sn[t * rot_pairs + i] = std::sin(a);
      }
  }
  for (int64_t t = 0; t < T; ++t) {
    const float* cs = ang.cs.data() + t * rot_pairs;
    const float* sn = ang.sn.data() + t * rot_pairs;
    if (q) rope_rows(q + t * Hq * D, Hq, D, cs, sn, rot_pairs);
    if (k) rope_rows(k + t * Hk * D, Hk, D, cs, sn, rot_pairs);
  }
}

void rope(float* x, int64_t T, int64_t H, int64_t D, const int64_t* pos, const float* inv_freq, int64_t rot_pairs,
          const KernelContext& ctx) {
  rope_qk(x, H, nullptr, 0, T, D, pos, inv_freq, rot_pairs, ctx);
}

void conv1d_dw_reference(float* y, const float* x, int64_t T, int64_t C, const float* w, int64_t Kw, float* state,
               bool update_state, float* window) {
  const int64_t P = Kw - 1;
  // xp = state ‖ x, materialised once so that y may alias x.
  std::vector<float> local;
  float* xp = window;
  if (!xp) {
    local.resize(static_cast<size_t>((P + T) * C));
    xp = local.data();
  }
  std::copy(state, state + P * C, xp);
  std::copy(x, x + T * C, xp + P * C);
  for (int64_t t = 0; t < T; ++t) {
    float* yr = y + t * C;
    const float* cur = xp + (t + P) * C;
    for (int64_t c = 0; c < C; ++c) {
      float s = 0.f;
      for (int64_t j = 0; j < Kw; ++j) s += w[c * Kw + j] * xp[(t + j) * C + c];
      yr[c] = cur[c] + s;
    }
  }
  if (update_state) std::copy(xp + T * C, xp + (T + P) * C, state);
}

void silu_mul_reference(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softcap_inplace_reference(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] * inv);
}

void add_inplace_reference(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void attention_reference(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t H, int64_t Hkv,
               int64_t D, const int64_t* key_begin, const int64_t* key_end, float scale, ThreadPool& pool) {
  const int64_t group = H / Hkv;
  const int64_t stride = Hkv * D;
  pool.parallel_for(T * H, [&](int64_t b, int64_t e, int) {
    std::vector<float> scores;
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t t = idx / H, h = idx % H, hk = h / group;
      const float* qr = q + (t * H + h) * D;
      const float* kb = k + hk * D;
      const float* vb = v + hk * D;
      const int64_t j0 = key_begin[t], j1 = key_end[t];
      float* o = out + (t * H + h) * D;
      std::fill(o, o + D, 0.f);
      if (j1 <= j0) continue;
      scores.resize(static_cast<size_t>(j1 - j0));
      float mx = -INFINITY;
      for (int64_t j = j0; j < j1; ++j) {
        const float* kr = kb + j * stride;
        float s = 0.f;
        for (int64_t d = 0; d < D; ++d) s += qr[d] * kr[d];
        s *= scale;
        scores[j - j0] = s;
        mx = std::max(mx, s);
      }
      float sum = 0.f;
      for (auto& s : scores) {
        s = std::exp(s - mx);
        sum += s;
      }
      const float inv = 1.0f / sum;
      for (int64_t j = j0; j < j1; ++j) {
        const float p = scores[j - j0] * inv;
        const float* vr = vb + j * stride;
        for (int64_t d = 0; d < D; ++d) o[d] += p * vr[d];
      }
    }
  });
}

int64_t softmax(const float* z, float* p, int64_t n, const KernelContext&) { return softmax_row(z, p, n); }

}  // namespace optiq
