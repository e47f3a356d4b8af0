#include "kernels/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/aligned.h"
#include "core/status.h"
#include "kernels/gelu.h"

namespace optiq {

void moe_topk_softmax(const float* logits, int64_t T, int64_t E, int64_t K, int32_t* sel, float* w,
                      const KernelContext&) {
  std::vector<float> p(static_cast<size_t>(E));
  std::vector<int32_t> idx(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const float* z = logits + t * E;
    float mx = z[0];
    for (int64_t e = 1; e < E; ++e) mx = std::max(mx, z[e]);
    float sum = 0.f;
    for (int64_t e = 0; e < E; ++e) {
      p[e] = std::exp(z[e] - mx);
      sum += p[e];
    }
    for (int64_t e = 0; e < E; ++e) {
      p[e] /= sum;
      idx[e] = static_cast<int32_t>(e);
    }
    std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float s = 0.f;
    for (int64_t k = 0; k < K; ++k) s += p[idx[k]];
    for (int64_t k = 0; k < K; ++k) {
      sel[t * K + k] = idx[k];
      w[t * K + k] = p[idx[k]] / s;
    }
  }
}

void moe_experts(float* out, const float* x, int64_t T, int64_t C, const int32_t* sel, const float* w, int64_t K,
                 std::span<const ExpertFfn> experts, const KernelContext& ctx) {
  MoeScratch& s = ctx.buffers<MoeScratch>();
  const int64_t E = static_cast<int64_t>(experts.size());
  const int64_t slots = T * K;
  int32_t* count = grow(s.count, E);
  int32_t* offset = grow(s.offset, E + 1);
  int32_t* rows = grow(s.rows, slots);
  float* y = grow(s.y, slots * C);
  std::fill(count, count + E, 0);
  for (int64_t i = 0; i < slots; ++i) {
    OPTIQ_CHECK_MSG(sel[i] >= 0 && sel[i] < E, "moe_experts: expert id " + std::to_string(sel[i]) + " outside [0, " +
                                                   std::to_string(E) + ")");
    ++count[sel[i]];
  }
  offset[0] = 0;
  for (int64_t e = 0; e < E; ++e) offset[e + 1] = offset[e] + count[e];
  // Counting sort of the (row, k) slots by expert; slot order within an expert stays increasing.
  std::fill(count, count + E, 0);
  for (int64_t i = 0; i < slots; ++i) rows[offset[sel[i]] + count[sel[i]]++] = static_cast<int32_t>(i);

  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = offset[e + 1] - offset[e];
    if (n == 0) continue;
    const ExpertFfn& ex = experts[e];
    const int64_t F = ex.down.n_in;
    float* xg = grow(s.xg, n * C);
    float* gu = grow(s.gu, n * 2 * F);
    float* act = grow(s.act, n * F);
    const int32_t* r = rows + offset[e];
    for (int64_t i = 0; i < n; ++i) std::memcpy(xg + i * C, x + (r[i] / K) * C, sizeof(float) * C);
    matmul(gu, xg, n, ex.gate_up, ctx);
    gelu_tanh_mul_fused(act, gu, n, F);
    matmul(xg, act, n, ex.down, ctx);  // xg is free again: reuse it for the [n, C] outputs
    for (int64_t i = 0; i < n; ++i) std::memcpy(y + static_cast<int64_t>(r[i]) * C, xg + i * C, sizeof(float) * C);
  }
  for (int64_t t = 0; t < T; ++t) {
    float* o = out + t * C;
    std::fill(o, o + C, 0.f);
    for (int64_t k = 0; k < K; ++k) {
      const float wk = w[t * K + k];
      const float* yr = y + (t * K + k) * C;
      for (int64_t c = 0; c < C; ++c) o[c] += wk * yr[c];
    }
  }
}

void moe_experts_reference(float* out, const float* x, int64_t T, int64_t C, const int32_t* sel, const float* w,
                           int64_t K, std::span<const ExpertFfn> experts) {
  std::fill(out, out + T * C, 0.f);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t k = 0; k < K; ++k) {
      const ExpertFfn& ex = experts[sel[t * K + k]];
      const int64_t F = ex.down.n_in;
      std::vector<float> gu(static_cast<size_t>(2 * F)), act(static_cast<size_t>(F)), y(static_cast<size_t>(C));
      matmul_reference(gu.data(), x + t * C, 1, ex.gate_up);
      for (int64_t f = 0; f < F; ++f) act[f] = gelu_tanh(gu[f]) * gu[F + f];
      matmul_reference(y.data(), act.data(), 1, ex.down);
      for (int64_t c = 0; c < C; ++c) out[t * C + c] += w[t * K + k] * y[c];
    }
  }
}

}  // namespace optiq
