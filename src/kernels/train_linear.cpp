// Exact fp32 linears and LoRA for training (kernels/train.h). The base weight is dequantized one
// panel of rows at a time into the worker's scratch (never a dense copy of the whole matrix) and
// multiplied with the fp32 GEMM micro-kernel (kernels/gemm.h): training multiplies hundreds of rows
// per weight, so a panel's dequantization is amortised over all of them.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/status.h"
#include "kernels/gemm_blocked.h"
#include "kernels/parallel.h"
#include "kernels/matmul_q.h"
#include "kernels/train.h"

namespace optiq {

namespace {

struct LinearBuffers {
  std::vector<float> rows, panel;
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
  // Panels of NB output columns: W[nb, :]ᵀ as [K, NB], multiplied by every row of x.
  constexpr int64_t NB = 64;
  const int64_t blocks = (N + NB - 1) / NB;
  ctx.parallel_for(blocks, [&](int64_t b0, int64_t b1, int worker) {
    LinearBuffers& buf = ctx.scratch().get<LinearBuffers>(worker);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * NB, nb = std::min(NB, N - n0);
      float* rows = grow(buf.rows, nb * K);
      float* panel = grow(buf.panel, K * nb);
      dequantize_rows(w, n0, n0 + nb, rows);
      for (int64_t j = 0; j < nb; ++j)
        for (int64_t k = 0; k < K; ++k) panel[k * nb + j] = rows[j * K + k];
      gemm_f32_blocked(y + n0, N, x, K, panel, nb, T, nb, K, false);
    }
  });
}

void linear_input_grad(float* dx, const float* dy, int64_t T, const Weight& w, bool accumulate,
                       const KernelContext& ctx) {
  const int64_t N = w.n_out, K = w.n_in;
  // dx[:, kc] (+)= Σ over row panels nb of dy[:, nb] · W[nb, kc]: each worker owns a range of dx's
  // columns and dequantizes every row panel (the dequantization is ~1/T of the multiply-adds).
  constexpr int64_t NB = 128;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(ctx.threads(), K / 64));
  const int64_t per = (K + chunks - 1) / chunks;
  ctx.parallel_for(chunks, [&](int64_t c0, int64_t c1, int worker) {
    LinearBuffers& buf = ctx.scratch().get<LinearBuffers>(worker);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t k0 = c * per, kc = std::min(per, K - k0);
      if (kc <= 0) continue;
      for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t nb = std::min(NB, N - n0);
        float* panel = grow(buf.panel, nb * K);
        dequantize_rows(w, n0, n0 + nb, panel);
        gemm_f32_blocked(dx + k0, K, dy + n0, N, panel + k0, K, T, kc, nb, accumulate || n0 > 0);
      }
    }
  });
}

namespace {

// out[cols, rows] = in[rows, cols]ᵀ.
void transpose(const float* in, int64_t rows, int64_t cols, float* out) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[j * rows + i] = in[i * cols + j];
}

// Rows [0, M) of a product split across the pool in blocks of `grain` rows.
template <typename Fn>
void split_rows(const KernelContext& ctx, int64_t M, int64_t macs_per_row, Fn&& fn) {
  ctx.parallel_for(M, [&](int64_t m0, int64_t m1, int) { fn(m0, m1); }, parallel_grain(M, macs_per_row, 16));
}

}  // namespace

void lora_forward(float* y, float* xa, const float* xd, int64_t T, const LoraModule& m, float scale,
                  const KernelContext& ctx) {
  const int64_t in = m.in, r = m.rank, out = m.out;
  std::vector<float> sxa(static_cast<size_t>(T * r));
  split_rows(ctx, T, (in + out) * r, [&](int64_t t0, int64_t t1) {
    gemm_f32_blocked(xa + t0 * r, r, xd + t0 * in, in, m.a.data(), r, t1 - t0, r, in, false);
    for (int64_t i = t0 * r; i < t1 * r; ++i) sxa[static_cast<size_t>(i)] = scale * xa[i];
    gemm_f32_blocked(y + t0 * out, out, sxa.data() + t0 * r, r, m.b.data(), out, t1 - t0, out, r, true);
  });
}

void lora_backward(float* dxd, LoraModule& grad, const float* dy, const float* xd, const float* xa, int64_t T,
                   const LoraModule& m, float scale, const KernelContext& ctx) {
  const int64_t in = m.in, r = m.rank, out = m.out;
  // e = scale · dy · bᵀ [T, r].
  std::vector<float> bt(static_cast<size_t>(out * r)), e(static_cast<size_t>(T * r));
  transpose(m.b.data(), r, out, bt.data());
  split_rows(ctx, T, out * r, [&](int64_t t0, int64_t t1) {
    gemm_f32_blocked(e.data() + t0 * r, r, dy + t0 * out, out, bt.data(), r, t1 - t0, r, out, false);
    for (int64_t i = t0 * r; i < t1 * r; ++i) e[static_cast<size_t>(i)] *= scale;
  });
  // grad.b += (scale · xa)ᵀ · dy, split over output columns.
  std::vector<float> sxat(static_cast<size_t>(r * T));
  transpose(xa, T, r, sxat.data());
  for (float& v : sxat) v *= scale;
  ctx.parallel_for(out, [&](int64_t o0, int64_t o1, int) {
    gemm_f32_blocked(grad.b.data() + o0, out, sxat.data(), T, dy + o0, out, r, o1 - o0, T, true);
  }, parallel_grain(out, T * r, 64));
  // grad.a += xdᵀ · e, split over input rows.
  std::vector<float> xdt(static_cast<size_t>(in * T));
  transpose(xd, T, in, xdt.data());
  split_rows(ctx, in, T * r, [&](int64_t i0, int64_t i1) {
    gemm_f32_blocked(grad.a.data() + i0 * r, r, xdt.data() + i0 * T, T, e.data(), r, i1 - i0, r, T, true);
  });
  if (!dxd) return;
  // dxd = e · aᵀ.
  std::vector<float> at(static_cast<size_t>(r * in));
  transpose(m.a.data(), in, r, at.data());
  split_rows(ctx, T, in * r, [&](int64_t t0, int64_t t1) {
    gemm_f32_blocked(dxd + t0 * in, in, e.data() + t0 * r, r, at.data(), in, t1 - t0, in, r, false);
  });
}

}  // namespace optiq
