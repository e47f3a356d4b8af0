// Backward kernels for training (kernels/train.h): norms, gating, Canon convs, attention, loss.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm_blocked.h"
#include "kernels/parallel.h"
#include "kernels/train.h"

namespace optiq {

namespace {

float* grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

std::vector<float> norm_weight(const Weight& w, int64_t C) {
  std::vector<float> out(static_cast<size_t>(C), 1.0f);
  if (w.data) convert_to_f32(w.dtype, w.data, out.data(), static_cast<size_t>(C));
  return out;
}

float tap(ConvTaps w, int64_t j, int64_t c, int64_t C) {
  const int64_t i = j * C + c;
  return w.bf16 ? bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]) : static_cast<const float*>(w.data)[i];
}

}  // namespace

void rms_norm_backward(float* dx, const float* dy, const float* x, int64_t T, int64_t C, const Weight& w, float eps,
                       bool accumulate, const KernelContext& ctx) {
  const std::vector<float> wf = norm_weight(w, C);
  // y = w · x · r with r = (mean(x²) + eps)^(−1/2):  dx = r · (w·dy) − x · r³ · Σ(w·dy·x) / C.
  ctx.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* xr = x + t * C;
      const float* g = dy + t * C;
      float* d = dx + t * C;
      double ss = 0, dot = 0;
      for (int64_t c = 0; c < C; ++c) {
        ss += static_cast<double>(xr[c]) * xr[c];
        dot += static_cast<double>(wf[c]) * g[c] * xr[c];
      }
      const float r = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(C)) + eps);
      const float k = static_cast<float>(dot / static_cast<double>(C)) * r * r * r;
      for (int64_t c = 0; c < C; ++c) {
        const float v = r * wf[c] * g[c] - xr[c] * k;
        d[c] = accumulate ? d[c] + v : v;
      }
    }
  }, parallel_grain(T, 4 * C, 16));
}

void silu_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                       const KernelContext& ctx) {
  parallel_elementwise(ctx, n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gate[i], d = dout[i];
      const float sg = 1.0f / (1.0f + std::exp(-g));
      const float silu = g * sg;
      const float u = up[i];
      dup[i] = d * silu;
      dgate[i] = d * u * sg * (1.0f + g * (1.0f - sg));
    }
  });
}

void gelu_tanh_mul_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                            const KernelContext& ctx) {
  // gelu(g) = ½·g·(1 + tanh(u)), u = √(2/π)·(g + 0.044715·g³):
  // gelu'(g) = ½·(1 + tanh u) + ½·g·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·g²).
  constexpr float kSqrt2OverPi = 0.7978845608028654f, kCubic = 0.044715f;
  parallel_elementwise(ctx, n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gate[i], d = dout[i], u = up[i];
      const float th = std::tanh(kSqrt2OverPi * (g + kCubic * g * g * g));
      const float gelu = 0.5f * g * (1.0f + th);
      const float dgelu = 0.5f * (1.0f + th) + 0.5f * g * (1.0f - th * th) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * g * g);
      dup[i] = d * gelu;
      dgate[i] = d * u * dgelu;
    }
  });
}

void rope_backward(float* dx, int64_t T, int64_t H, int64_t D, const int64_t* pos, const float* inv_freq,
                   int64_t rot_pairs, const KernelContext& ctx) {
  // A rotation's transpose is the rotation by −angle; cos and sin of −p·f are exactly cos and −sin of p·f.
  std::vector<int64_t> neg(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) neg[static_cast<size_t>(t)] = -pos[t];
  rope(dx, T, H, D, neg.data(), inv_freq, rot_pairs, ctx);
}

void conv1d_dw_backward(float* dx, const float* dy, int64_t T, int64_t C, ConvTaps w, int64_t Kw,
                        const KernelContext& ctx) {
  // Split over channels: every row of a channel reads the same taps.
  ctx.parallel_for(C, [&](int64_t c0, int64_t c1, int) {
    std::vector<float> taps(static_cast<size_t>(Kw * (c1 - c0)));
    for (int64_t j = 0; j < Kw; ++j)
      for (int64_t c = c0; c < c1; ++c) taps[j * (c1 - c0) + (c - c0)] = tap(w, j, c, C);
    for (int64_t t = 0; t < T; ++t) {
      float* d = dx + t * C;
      std::memcpy(d + c0, dy + t * C + c0, sizeof(float) * (c1 - c0));
      for (int64_t j = 0; j < Kw; ++j) {
        const int64_t src = t + (Kw - 1) - j;
        if (src >= T) continue;
        const float* g = dy + src * C;
        const float* tj = taps.data() + j * (c1 - c0);
        for (int64_t c = c0; c < c1; ++c) d[c] += tj[c - c0] * g[c];
      }
    }
  }, parallel_grain(C, 2 * T * Kw, 64));
}

namespace {

struct AttnBuffers {
  std::vector<float> kt, vt, s, dp, st;
};

}  // namespace

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, int64_t T, int64_t H, int64_t Hkv, int64_t D, const int64_t* key_begin,
                        const int64_t* key_end, float scale, const KernelContext& ctx) {
  const int64_t G = H / Hkv;
  const int64_t qs = H * D, ks = Hkv * D;
  ctx.parallel_for(Hkv, [&](int64_t g0, int64_t g1, int worker) {
    AttnBuffers& b = ctx.scratch().get<AttnBuffers>(worker);
    float* kt = grow(b.kt, D * T);
    float* vt = grow(b.vt, D * T);
    float* s = grow(b.s, T * T);
    float* dp = grow(b.dp, T * T);
    float* st = grow(b.st, T * T);
    for (int64_t g = g0; g < g1; ++g) {
      // Kᵀ and Vᵀ of this KV head, [D, T].
      for (int64_t j = 0; j < T; ++j)
        for (int64_t d = 0; d < D; ++d) {
          kt[d * T + j] = k[j * ks + g * D + d];
          vt[d * T + j] = v[j * ks + g * D + d];
        }
      for (int64_t j = 0; j < T; ++j) {
        std::fill(dk + j * ks + g * D, dk + j * ks + (g + 1) * D, 0.0f);
        std::fill(dv + j * ks + g * D, dv + j * ks + (g + 1) * D, 0.0f);
      }
      for (int64_t h = g * G; h < (g + 1) * G; ++h) {
        gemm_f32_blocked(s, T, q + h * D, qs, kt, T, T, T, D, false);      // S = Q Kᵀ
        gemm_f32_blocked(dp, T, dout + h * D, qs, vt, T, T, T, D, false);  // dP = dO Vᵀ
        for (int64_t t = 0; t < T; ++t) {
          float* sr = s + t * T;
          float* dr = dp + t * T;
          const int64_t e = std::min(key_end[t], T);
          const int64_t b0 = key_begin ? std::clamp<int64_t>(key_begin[t], 0, e) : 0;
          float mx = -INFINITY;
          for (int64_t j = b0; j < e; ++j) mx = std::max(mx, scale * sr[j]);
          double sum = 0;
          for (int64_t j = b0; j < e; ++j) {
            sr[j] = std::exp(scale * sr[j] - mx);
            sum += sr[j];
          }
          const float inv = e > b0 ? static_cast<float>(1.0 / sum) : 0.0f;
          double pdp = 0;
          for (int64_t j = b0; j < e; ++j) {
            sr[j] *= inv;  // P
            pdp += static_cast<double>(sr[j]) * dr[j];
          }
          for (int64_t j = b0; j < e; ++j) dr[j] = scale * sr[j] * (dr[j] - static_cast<float>(pdp));  // dS·scale
          std::fill(sr, sr + b0, 0.0f);
          std::fill(dr, dr + b0, 0.0f);
          std::fill(sr + e, sr + T, 0.0f);
          std::fill(dr + e, dr + T, 0.0f);
        }
        gemm_f32_blocked(dq + h * D, qs, dp, T, k + g * D, ks, T, D, T, false);  // dQ = dS K
        // dK += dSᵀ Q and dV += Pᵀ dO.
        for (int64_t t = 0; t < T; ++t)
          for (int64_t j = 0; j < T; ++j) st[j * T + t] = dp[t * T + j];
        gemm_f32_blocked(dk + g * D, ks, st, T, q + h * D, qs, T, D, T, true);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t j = 0; j < T; ++j) st[j * T + t] = s[t * T + j];
        gemm_f32_blocked(dv + g * D, ks, st, T, dout + h * D, qs, T, D, T, true);
      }
    }
  });
}

double softcap_cross_entropy(float* z, const int32_t* target, const float* weight, int64_t R, int64_t V, float cap,
                             const KernelContext& ctx) {
  std::vector<double> loss(static_cast<size_t>(R), 0.0);
  ctx.parallel_for(R, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      float* zr = z + r * V;
      if (target[r] < 0) {
        std::fill(zr, zr + V, 0.0f);
        continue;
      }
      // l = cap · tanh(z / cap); zr keeps l, then the gradient.
      if (cap > 0)
        for (int64_t i = 0; i < V; ++i) zr[i] = cap * std::tanh(zr[i] / cap);
      float mx = -INFINITY;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, zr[i]);
      double sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(zr[i] - mx));
      const double lse = mx + std::log(sum);
      const float w = weight[r];
      loss[static_cast<size_t>(r)] = w * (lse - zr[target[r]]);
      for (int64_t i = 0; i < V; ++i) {
        const float l = zr[i];
        float g = w * static_cast<float>(std::exp(static_cast<double>(l) - lse));
        if (i == target[r]) g -= w;
        if (cap > 0) g *= 1.0f - (l / cap) * (l / cap);
        zr[i] = g;
      }
    }
  }, 1);
  double total = 0;
  for (double l : loss) total += l;
  return total;
}

}  // namespace optiq

namespace optiq {

void linear_weight_grad(float* dw, const float* dy, const float* x, int64_t T, int64_t N, int64_t K,
                        const KernelContext& ctx) {
  std::vector<float> dyt(static_cast<size_t>(N * T));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) dyt[static_cast<size_t>(n * T + t)] = dy[t * N + n];
  ctx.parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    gemm_f32_blocked(dw + n0 * K, K, dyt.data() + n0 * T, T, x, K, n1 - n0, K, T, true);
  }, parallel_grain(N, T * K, 32));
}

void rms_norm_weight_grad(float* dw, const float* dy, const float* x, int64_t T, int64_t C, float eps,
                          const KernelContext& ctx) {
  std::vector<float> r(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(x[t * C + c]) * x[t * C + c];
    r[static_cast<size_t>(t)] = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(C)) + eps);
  }
  ctx.parallel_for(C, [&](int64_t c0, int64_t c1, int) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = c0; c < c1; ++c) dw[c] += dy[t * C + c] * x[t * C + c] * r[static_cast<size_t>(t)];
  }, parallel_grain(C, 2 * T, 256));
}

void conv1d_dw_taps_grad(float* dtaps, const float* dy, const float* x, int64_t T, int64_t C, int64_t Kw,
                         const KernelContext& ctx) {
  ctx.parallel_for(C, [&](int64_t c0, int64_t c1, int) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < Kw; ++j) {
        const int64_t src = t - (Kw - 1) + j;
        if (src < 0) continue;
        float* d = dtaps + j * C;
        for (int64_t c = c0; c < c1; ++c) d[c] += dy[t * C + c] * x[src * C + c];
      }
  }, parallel_grain(C, 2 * T * Kw, 64));
}

}  // namespace optiq
