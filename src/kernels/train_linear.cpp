// Exact fp32 linears and LoRA for training (kernels/train.h). The base weight is dequantized one
// panel of rows at a time into the worker's scratch (never a dense copy of the whole matrix) and
// multiplied with the fp32 GEMM micro-kernel (kernels/gemm.h): training multiplies hundreds of rows
// per weight, so a panel's dequantization is amortised over all of them.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/status.h"
#include "kernels/gemm.h"
#include "kernels/matmul_q.h"
#include "kernels/train.h"

namespace optiq {

namespace {

constexpr int64_t kAlign = gemm_f32_n_align();

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

struct LinearBuffers {
  std::vector<float> rows, panel, out, acc;
};

float* grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Rows [n0, n1) of W as fp32, row-major [n1 − n0, K].
void dequantize_rows(const Weight& w, int64_t n0, int64_t n1, float* out) {
  for (int64_t n = n0; n < n1; ++n) weight_row(w, n, out + (n - n0) * w.n_in);
}

}  // namespace

void linear_f32(float* y, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  const int64_t N = w.n_out, K = w.n_in;
  // Panels of NB output columns: W[nb, :]ᵀ as [K, NB] (zero-padded to the GEMM's column multiple).
  constexpr int64_t NB = 64;
  const int64_t blocks = (N + NB - 1) / NB;
  ctx.parallel_for(blocks, [&](int64_t b0, int64_t b1, int worker) {
    LinearBuffers& buf = ctx.scratch().get<LinearBuffers>(worker);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * NB, nb = std::min(NB, N - n0), nbp = round_up(nb, kAlign);
      float* rows = grow(buf.rows, nb * K);
      float* panel = grow(buf.panel, K * nbp);
      dequantize_rows(w, n0, n0 + nb, rows);
      for (int64_t k = 0; k < K; ++k) {
        float* p = panel + k * nbp;
        for (int64_t j = 0; j < nb; ++j) p[j] = rows[j * K + k];
        for (int64_t j = nb; j < nbp; ++j) p[j] = 0.0f;
      }
      if (nbp == nb) {
        gemm_f32(y + n0, N, x, K, panel, nbp, T, nbp, K);
      } else {
        float* out = grow(buf.out, T * nbp);
        gemm_f32(out, nbp, x, K, panel, nbp, T, nbp, K);
        for (int64_t t = 0; t < T; ++t) std::memcpy(y + t * N + n0, out + t * nbp, sizeof(float) * nb);
      }
    }
  });
}

void linear_input_grad(float* dx, const float* dy, int64_t T, const Weight& w, bool accumulate,
                       const KernelContext& ctx) {
  const int64_t N = w.n_out, K = w.n_in, Kp = round_up(K, kAlign);
  // dx = Σ over row panels nb of dy[:, nb] · W[nb, :]: each worker sums its panels into its own
  // accumulator, then the accumulators are added.
  constexpr int64_t NB = 256;
  const int64_t blocks = (N + NB - 1) / NB;
  const int workers = std::max(1, ctx.threads());
  // A worker may run several chunks: accumulators are zeroed before the pass.
  std::vector<float*> accs(static_cast<size_t>(workers), nullptr);
  for (int w = 0; w < workers; ++w) {
    float* acc = grow(ctx.scratch().get<LinearBuffers>(ctx.worker() + w).acc, T * Kp);
    std::fill(acc, acc + T * Kp, 0.0f);
    accs[static_cast<size_t>(w)] = acc;
  }
  std::vector<char> used(static_cast<size_t>(workers), 0);
  ctx.parallel_for(blocks, [&](int64_t b0, int64_t b1, int worker) {
    LinearBuffers& buf = ctx.scratch().get<LinearBuffers>(worker);
    float* acc = accs[static_cast<size_t>(worker - ctx.worker())];
    used[static_cast<size_t>(worker - ctx.worker())] = 1;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * NB, nb = std::min(NB, N - n0);
      float* panel = grow(buf.panel, nb * Kp);
      if (Kp == K) {
        dequantize_rows(w, n0, n0 + nb, panel);
      } else {
        float* rows = grow(buf.rows, nb * K);
        dequantize_rows(w, n0, n0 + nb, rows);
        for (int64_t j = 0; j < nb; ++j) {
          std::memcpy(panel + j * Kp, rows + j * K, sizeof(float) * K);
          std::fill(panel + j * Kp + K, panel + (j + 1) * Kp, 0.0f);
        }
      }
      float* out = grow(buf.out, T * Kp);
      gemm_f32(out, Kp, dy + n0, N, panel, Kp, T, Kp, nb);
      for (int64_t i = 0; i < T * Kp; ++i) acc[i] += out[i];
    }
  });
  for (int64_t t = 0; t < T; ++t) {
    float* d = dx + t * K;
    if (!accumulate) std::fill(d, d + K, 0.0f);
    for (int w = 0; w < workers; ++w) {
      if (!used[static_cast<size_t>(w)]) continue;
      const float* a = accs[static_cast<size_t>(w)] + t * Kp;
      for (int64_t k = 0; k < K; ++k) d[k] += a[k];
    }
  }
}

void lora_forward(float* y, float* xa, const float* xd, int64_t T, const LoraModule& m, float scale,
                  const KernelContext& ctx) {
  const int64_t in = m.in, r = m.rank, out = m.out;
  ctx.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
    std::vector<float> s(static_cast<size_t>(r));
    for (int64_t t = t0; t < t1; ++t) {
      float* xat = xa + t * r;
      std::fill(xat, xat + r, 0.0f);
      const float* xt = xd + t * in;
      for (int64_t i = 0; i < in; ++i) {
        const float xi = xt[i];
        const float* ai = m.a.data() + i * r;
        for (int64_t j = 0; j < r; ++j) xat[j] += xi * ai[j];
      }
      for (int64_t j = 0; j < r; ++j) s[j] = scale * xat[j];
      float* yt = y + t * out;
      for (int64_t j = 0; j < r; ++j) {
        const float sj = s[j];
        const float* bj = m.b.data() + j * out;
        for (int64_t o = 0; o < out; ++o) yt[o] += sj * bj[o];
      }
    }
  }, 8);
}

void lora_backward(float* dxd, LoraModule& grad, const float* dy, const float* xd, const float* xa, int64_t T,
                   const LoraModule& m, float scale, const KernelContext& ctx) {
  const int64_t in = m.in, r = m.rank, out = m.out;
  // e = scale · dy · bᵀ [T, r].
  std::vector<float> e(static_cast<size_t>(T * r));
  ctx.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* d = dy + t * out;
      for (int64_t j = 0; j < r; ++j) {
        const float* bj = m.b.data() + j * out;
        float s = 0.0f;
        for (int64_t o = 0; o < out; ++o) s += d[o] * bj[o];
        e[static_cast<size_t>(t * r + j)] = scale * s;
      }
    }
  }, 8);
  // grad.b[j, :] += scale · Σ_t xa[t, j] · dy[t, :], split over output columns.
  ctx.parallel_for(out, [&](int64_t o0, int64_t o1, int) {
    for (int64_t t = 0; t < T; ++t) {
      const float* d = dy + t * out;
      for (int64_t j = 0; j < r; ++j) {
        const float s = scale * xa[t * r + j];
        float* gb = grad.b.data() + j * out;
        for (int64_t o = o0; o < o1; ++o) gb[o] += s * d[o];
      }
    }
  }, 64);
  // grad.a[i, :] += Σ_t xd[t, i] · e[t, :], split over input rows.
  ctx.parallel_for(in, [&](int64_t i0, int64_t i1, int) {
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = xd + t * in;
      const float* et = e.data() + t * r;
      for (int64_t i = i0; i < i1; ++i) {
        const float xi = xt[i];
        float* ga = grad.a.data() + i * r;
        for (int64_t j = 0; j < r; ++j) ga[j] += xi * et[j];
      }
    }
  }, 64);
  if (!dxd) return;
  // dxd[t, i] = Σ_j e[t, j] · a[i, j].
  ctx.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* et = e.data() + t * r;
      float* d = dxd + t * in;
      for (int64_t i = 0; i < in; ++i) {
        const float* ai = m.a.data() + i * r;
        float s = 0.0f;
        for (int64_t j = 0; j < r; ++j) s += et[j] * ai[j];
        d[i] = s;
      }
    }
  }, 8);
}

}  // namespace optiq
