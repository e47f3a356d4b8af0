// Mixture-of-experts training kernels (kernels/train.h): the exact fp32 expert forward that keeps
// its activations, its backward at a fixed routing, and the backward of the top-k routing weights.
// As moe_experts (kernels/moe.h), the (row, k) slots are grouped by expert so that each expert's
// weights are dequantized once per call; every linear is linear_f32 / linear_input_grad.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/gelu.h"
#include "kernels/train.h"

namespace optiq {

namespace {

struct MoeTrainBuffers {
  std::vector<float> xg, act, out, d_out, d_act, d_gu;
};

float* grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace

void moe_experts_train(float* out, MoeTrainActs& acts, const float* x, int64_t T, int64_t C, const int32_t* sel,
                       const float* w, int64_t K, std::span<const ExpertFfn> experts, const KernelContext& ctx) {
  const int64_t E = static_cast<int64_t>(experts.size()), slots = T * K;
  // Counting sort of the slots by expert (slot order kept within an expert).
  acts.offset.assign(static_cast<size_t>(E + 1), 0);
  acts.slots.resize(static_cast<size_t>(slots));
  for (int64_t i = 0; i < slots; ++i) {
    OPTIQ_CHECK_MSG(sel[i] >= 0 && sel[i] < E, "moe_experts_train: expert id " + std::to_string(sel[i]) +
                                                   " outside [0, " + std::to_string(E) + ")");
    ++acts.offset[static_cast<size_t>(sel[i]) + 1];
  }
  for (int64_t e = 0; e < E; ++e) acts.offset[e + 1] += acts.offset[e];
  std::vector<int64_t> fill(acts.offset.begin(), acts.offset.end() - 1);
  for (int64_t i = 0; i < slots; ++i) acts.slots[static_cast<size_t>(fill[sel[i]]++)] = static_cast<int32_t>(i);
  int64_t F_max = 0;
  for (const ExpertFfn& ex : experts) F_max = std::max(F_max, ex.down.n_in);
  acts.gu.assign(static_cast<size_t>(slots * 2 * F_max), 0.0f);
  acts.y.assign(static_cast<size_t>(slots * C), 0.0f);

  MoeTrainBuffers& b = ctx.buffers<MoeTrainBuffers>();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t o = acts.offset[e], n = acts.offset[e + 1] - o;
    if (n == 0) continue;
    const ExpertFfn& ex = experts[e];
    const int64_t F = ex.down.n_in;
    const int32_t* r = acts.slots.data() + o;
    float* xg = grow(b.xg, n * C);
    for (int64_t i = 0; i < n; ++i) std::memcpy(xg + i * C, x + (r[i] / K) * C, sizeof(float) * C);
    float* gu = acts.gu.data() + o * 2 * F_max;  // rows of 2·F_max floats, the first 2F used
    float* g = grow(b.out, n * 2 * F);
    linear_f32(g, xg, n, ex.gate_up, ctx);
    for (int64_t i = 0; i < n; ++i) std::memcpy(gu + i * 2 * F_max, g + i * 2 * F, sizeof(float) * 2 * F);
    float* act = grow(b.act, n * F);
    gelu_tanh_mul_fused(act, g, n, F);
    linear_f32(xg, act, n, ex.down, ctx);
    for (int64_t i = 0; i < n; ++i) std::memcpy(acts.y.data() + static_cast<int64_t>(r[i]) * C, xg + i * C, sizeof(float) * C);
  }
  for (int64_t t = 0; t < T; ++t) {
    float* ot = out + t * C;
    std::fill(ot, ot + C, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float wk = w[t * K + k];
      const float* yr = acts.y.data() + (t * K + k) * C;
      for (int64_t c = 0; c < C; ++c) ot[c] += wk * yr[c];
    }
  }
}

void moe_experts_backward(float* dx, float* dw, const float* dout, int64_t T, int64_t C, const float* w, int64_t K,
                          std::span<const ExpertFfn> experts, const MoeTrainActs& acts, const KernelContext& ctx) {
  const int64_t E = static_cast<int64_t>(experts.size()), slots = T * K;
  OPTIQ_CHECK_MSG(static_cast<int64_t>(acts.slots.size()) == slots && static_cast<int64_t>(acts.offset.size()) == E + 1,
                  "moe_experts_backward: activations from another call");
  const int64_t F_max = slots ? static_cast<int64_t>(acts.gu.size()) / (2 * slots) : 0;
  // out[t] = Σ_k w[t,k]·y[t,k]  →  dw[t,k] = dout[t]·y[t,k], dy[t,k] = w[t,k]·dout[t].
  for (int64_t i = 0; i < slots; ++i) {
    const float* d = dout + (i / K) * C;
    const float* yr = acts.y.data() + i * C;
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += static_cast<double>(d[c]) * yr[c];
    dw[i] = static_cast<float>(s);
  }
  // Each slot's input gradient, summed per row in k order afterwards (independent of the grouping).
  std::vector<float> dxs(static_cast<size_t>(slots * C), 0.0f);
  MoeTrainBuffers& b = ctx.buffers<MoeTrainBuffers>();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t o = acts.offset[e], n = acts.offset[e + 1] - o;
    if (n == 0) continue;
    const ExpertFfn& ex = experts[e];
    const int64_t F = ex.down.n_in;
    const int32_t* r = acts.slots.data() + o;
    float* dy = grow(b.d_out, n * C);
    for (int64_t i = 0; i < n; ++i) {
      const float wk = w[r[i]];
      const float* d = dout + (r[i] / K) * C;
      for (int64_t c = 0; c < C; ++c) dy[i * C + c] = wk * d[c];
    }
    float* dact = grow(b.d_act, n * F);
    linear_input_grad(dact, dy, n, ex.down, false, ctx);
    // act = gelu(g)·u with g ‖ u the saved gate_up row.
    float* dgu = grow(b.d_gu, n * 2 * F);
    float* g = grow(b.xg, n * 2 * F);  // gate ‖ up rows, contiguous
    for (int64_t i = 0; i < n; ++i) std::memcpy(g + i * 2 * F, acts.gu.data() + (o + i) * 2 * F_max, sizeof(float) * 2 * F);
    for (int64_t i = 0; i < n; ++i)
      gelu_tanh_mul_backward(dgu + i * 2 * F, dgu + i * 2 * F + F, dact + i * F, g + i * 2 * F, g + i * 2 * F + F, F,
                             ctx);
    float* dxg = grow(b.out, n * C);
    linear_input_grad(dxg, dgu, n, ex.gate_up, false, ctx);
    for (int64_t i = 0; i < n; ++i) std::memcpy(dxs.data() + static_cast<int64_t>(r[i]) * C, dxg + i * C, sizeof(float) * C);
  }
  for (int64_t t = 0; t < T; ++t) {
    float* d = dx + t * C;
    std::fill(d, d + C, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float* s = dxs.data() + (t * K + k) * C;
      for (int64_t c = 0; c < C; ++c) d[c] += s[c];
    }
  }
}

void moe_topk_softmax_backward(float* dlogits, const float* dw, const float* w, const int32_t* sel, int64_t T,
                               int64_t E, int64_t K, const KernelContext&) {
  for (int64_t t = 0; t < T; ++t) {
    float* dz = dlogits + t * E;
    std::fill(dz, dz + E, 0.0f);
    double dot = 0;
    for (int64_t k = 0; k < K; ++k) dot += static_cast<double>(w[t * K + k]) * dw[t * K + k];
    for (int64_t k = 0; k < K; ++k)
      dz[sel[t * K + k]] = w[t * K + k] * (dw[t * K + k] - static_cast<float>(dot));
  }
}

}  // namespace optiq
