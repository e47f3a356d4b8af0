// MoE training kernels (kernels/train_moe.cpp): the exact expert forward against moe_experts'
// reference, its backward (input and routing-weight gradients) and the top-k softmax weights'
// backward against float64 finite differences, with dense and 4-bit quantized experts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/moe.h"
#include "kernels/train.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/kernels/matmul_q_test_util.h"
#include "tests/kernels/train_test_util.h"

namespace optiq {
namespace {

using test::expect_grad_close;
using test::fd_grad;
using test::rand_vec;
using test::to_d;

constexpr int64_t T = 7, C = 32, F = 8, E = 5, K = 2;

struct Experts {
  std::vector<std::unique_ptr<QWeight>> quantized;  // keeps quantized gate_up storage alive
  std::vector<ExpertFfn> ffn;
  std::vector<std::vector<float>> gate_up, down;  // the exact fp32 values, [2F, C] and [C, F]
};

// E experts; with `quantize`, gate_up is MLX 4-bit (group 32), down stays F32.
Experts make_experts(uint32_t seed, bool quantize) {
  Experts ex;
  for (int64_t e = 0; e < E; ++e) {
    ExpertFfn f;
    if (quantize) {
      ex.quantized.push_back(make_qweight(2 * F, C, 4, 32, DType::kBF16, static_cast<uint32_t>(100 + e)));
      f.gate_up = ex.quantized.back()->w;
      ex.gate_up.push_back(dequantized(f.gate_up));
    } else {
      const float lim = std::sqrt(3.0f / C);  // unit-variance outputs
      ex.gate_up.push_back(rand_vec(2 * F * C, seed + static_cast<uint32_t>(e), -lim, lim));
      f.gate_up = test::dense_f32_weight(ex.gate_up.back(), 2 * F, C);
    }
    const float lim = std::sqrt(3.0f / F);
    ex.down.push_back(rand_vec(C * F, seed + 50 + static_cast<uint32_t>(e), -lim, lim));
    f.down = test::dense_f32_weight(ex.down.back(), C, F);
    ex.ffn.push_back(f);
  }
  return ex;
}

// Distinct experts per row (several rows share an expert, one expert unused).
std::vector<int32_t> make_selection() {
  std::vector<int32_t> sel(T * K);
  for (int64_t t = 0; t < T; ++t) {
    sel[t * K] = static_cast<int32_t>(t % (E - 1));
    sel[t * K + 1] = static_cast<int32_t>((t + 2) % (E - 1));
  }
  return sel;
}

// out = Σ_k w[t, k] · down(gelu(gate x) · up x) in float64.
std::vector<double> experts64(const std::vector<double>& x, const std::vector<double>& w, const std::vector<int32_t>& sel,
                              const Experts& ex) {
  std::vector<double> out(T * C, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) {
      const auto& gu = ex.gate_up[sel[t * K + k]];
      const auto& dn = ex.down[sel[t * K + k]];
      std::vector<double> act(F);
      for (int64_t f = 0; f < F; ++f) {
        double g = 0, u = 0;
        for (int64_t c = 0; c < C; ++c) {
          g += gu[f * C + c] * x[t * C + c];
          u += gu[(F + f) * C + c] * x[t * C + c];
        }
        act[f] = 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g))) * u;
      }
      for (int64_t c = 0; c < C; ++c) {
        double y = 0;
        for (int64_t f = 0; f < F; ++f) y += dn[c * F + f] * act[f];
        out[t * C + c] += w[t * K + k] * y;
      }
    }
  return out;
}

void check_experts(bool quantize) {
  TestKernels k;
  const uint32_t seed = quantize ? 31 : 32;
  const Experts ex = make_experts(seed, quantize);
  const std::vector<int32_t> sel = make_selection();
  const auto x = rand_vec(T * C, seed + 100), w = rand_vec(T * K, seed + 101, 0.2f, 1.5f);
  const auto r = rand_vec(T * C, seed + 102);

  MoeTrainActs acts;
  std::vector<float> out(T * C), ref(T * C);
  moe_experts_train(out.data(), acts, x.data(), T, C, sel.data(), w.data(), K, ex.ffn, k.ctx);
  expect_grad_close(out, experts64(to_d(x), to_d(w), sel, ex), "moe_experts_train vs float64", 1e-6);
  if (!quantize) {  // moe_experts' own reference (matmul_reference on dense weights)
    moe_experts_reference(ref.data(), x.data(), T, C, sel.data(), w.data(), K, ex.ffn);
    expect_grad_close(out, to_d(ref), "moe_experts_train vs moe_experts_reference", 1e-6);
  }

  std::vector<float> dx(T * C), dw(T * K);
  moe_experts_backward(dx.data(), dw.data(), r.data(), T, C, w.data(), K, ex.ffn, acts, k.ctx);
  const auto xd = to_d(x), wd = to_d(w);
  expect_grad_close(dx, fd_grad([&](const auto& v) { return experts64(v, wd, sel, ex); }, xd, r),
                    "moe_experts_backward dx");
  expect_grad_close(dw, fd_grad([&](const auto& v) { return experts64(xd, v, sel, ex); }, wd, r),
                    "moe_experts_backward dw");
}

TEST(TrainMoe, ExpertsForwardAndBackwardDense) { check_experts(false); }
TEST(TrainMoe, ExpertsForwardAndBackwardQuantizedGateUp) { check_experts(true); }

TEST(TrainMoe, TopkSoftmaxBackwardAtFixedSelection) {
  TestKernels k;
  const int64_t R = 6, NE = 9, NK = 3;
  const auto z = rand_vec(R * NE, 41, -3, 3), r = rand_vec(R * NK, 42);
  std::vector<int32_t> sel(R * NK);
  std::vector<float> w(R * NK);
  moe_topk_softmax(z.data(), R, NE, NK, sel.data(), w.data(), k.ctx);
  std::vector<float> dz(R * NE);
  moe_topk_softmax_backward(dz.data(), r.data(), w.data(), sel.data(), R, NE, NK, k.ctx);
  // Reference: the renormalised top-k weights with the selection held fixed, in float64 over the full
  // softmax (its normaliser cancels, so unselected logits have no influence).
  auto weights = [&](const std::vector<double>& v) {
    std::vector<double> out(static_cast<size_t>(R * NK));
    for (int64_t q = 0; q < R; ++q) {
      std::vector<double> p(static_cast<size_t>(NE));
      double mx = *std::max_element(v.begin() + q * NE, v.begin() + (q + 1) * NE), sum = 0, sel_sum = 0;
      for (int64_t e = 0; e < NE; ++e) sum += (p[e] = std::exp(v[q * NE + e] - mx));
      for (int64_t j = 0; j < NK; ++j) sel_sum += p[sel[q * NK + j]] / sum;
      for (int64_t j = 0; j < NK; ++j) out[q * NK + j] = p[sel[q * NK + j]] / sum / sel_sum;
    }
    return out;
  };
  expect_grad_close(dz, fd_grad(weights, to_d(z), r), "moe_topk_softmax_backward dlogits", 1e-6);
  for (int64_t q = 0; q < R; ++q) {
    for (int64_t e = 0; e < NE; ++e) {
      if (std::find(sel.begin() + q * NK, sel.begin() + (q + 1) * NK, e) == sel.begin() + (q + 1) * NK) {
        EXPECT_EQ(dz[q * NE + e], 0.0f);  // an unselected expert's logit gets no gradient
      }
    }
  }
}

}  // namespace
}  // namespace optiq
