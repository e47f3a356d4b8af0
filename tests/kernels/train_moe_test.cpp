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

using test::numeric_gradient;
using test::random_floats;
using test::expect_relative_l2;
using test::relative_l2;
using test::to_double;

constexpr int64_t T = 7, C = 32, F = 8, E = 5, K = 2;

struct Experts {
  std::vector<std::unique_ptr<QWeight>> quantized;  // keeps quantized gate_up storage alive
  std::vector<ExpertFfn> ffn;
  std::vector<std::vector<float>> gate_up, down;  // the exact fp32 values, [2F, C] and [C, F]
};

// E experts; with `quantize`, gate_up is MLX 4-bit (group 32), down stays F32.
Experts make_experts(std::mt19937_64& rng, bool quantize) {
  Experts ex;
  for (int64_t e = 0; e < E; ++e) {
    ExpertFfn f;
    if (quantize) {
      ex.quantized.push_back(make_qweight(2 * F, C, 4, 32, DType::kBF16, static_cast<uint32_t>(100 + e)));
      f.gate_up = ex.quantized.back()->w;
      ex.gate_up.push_back(dequantized(f.gate_up));
    } else {
      ex.gate_up.push_back(random_floats(rng, 2 * F * C, 1.0f / std::sqrt(static_cast<float>(C))));
      f.gate_up = test::dense_f32_weight(ex.gate_up.back(), 2 * F, C);
    }
    ex.down.push_back(random_floats(rng, C * F, 1.0f / std::sqrt(static_cast<float>(F))));
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
  std::mt19937_64 rng(quantize ? 31 : 32);
  const Experts ex = make_experts(rng, quantize);
  const std::vector<int32_t> sel = make_selection();
  auto x = random_floats(rng, T * C);
  std::vector<float> w(T * K);
  for (float& v : w) v = 0.2f + std::abs(random_floats(rng, 1)[0]);
  auto c = random_floats(rng, T * C);

  MoeTrainActs acts;
  std::vector<float> out(T * C), ref(T * C);
  moe_experts_train(out.data(), acts, x.data(), T, C, sel.data(), w.data(), K, ex.ffn, k.ctx);
  expect_relative_l2("moe_experts_train vs float64", out, experts64(to_double(x), to_double(w), sel, ex), 1e-6);
  if (!quantize) {  // moe_experts' own reference (matmul_reference on dense weights)
    moe_experts_reference(ref.data(), x.data(), T, C, sel.data(), w.data(), K, ex.ffn);
    expect_relative_l2("moe_experts_train vs moe_experts_reference", out, to_double(ref), 1e-6);
  }

  std::vector<float> dx(T * C), dw(T * K);
  moe_experts_backward(dx.data(), dw.data(), c.data(), T, C, w.data(), K, ex.ffn, acts, k.ctx);
  std::vector<double> v = to_double(x);
  v.insert(v.end(), w.begin(), w.end());
  const auto g = numeric_gradient(
      [&](const std::vector<double>& p) {
        const auto y = experts64({p.begin(), p.begin() + T * C}, {p.begin() + T * C, p.end()}, sel, ex);
        double s = 0;
        for (int64_t i = 0; i < T * C; ++i) s += y[i] * c[i];
        return s;
      },
      v);
  expect_relative_l2("moe_experts_backward dx", dx, {g.begin(), g.begin() + T * C}, 1e-5);
  expect_relative_l2("moe_experts_backward dw", dw, {g.begin() + T * C, g.end()}, 1e-5);
}

TEST(TrainMoe, ExpertsForwardAndBackwardDense) { check_experts(false); }
TEST(TrainMoe, ExpertsForwardAndBackwardQuantizedGateUp) { check_experts(true); }

TEST(TrainMoe, TopkSoftmaxBackwardAtFixedSelection) {
  TestKernels k;
  std::mt19937_64 rng(41);
  const int64_t R = 6, NE = 9, NK = 3;
  auto z = random_floats(rng, R * NE, 2.0f), c = random_floats(rng, R * NK);
  std::vector<int32_t> sel(R * NK);
  std::vector<float> w(R * NK);
  moe_topk_softmax(z.data(), R, NE, NK, sel.data(), w.data(), k.ctx);
  std::vector<float> dz(R * NE);
  moe_topk_softmax_backward(dz.data(), c.data(), w.data(), sel.data(), R, NE, NK, k.ctx);
  // Reference: the renormalised top-k weights with the selection held fixed, in float64 (the full
  // softmax's normaliser cancels, so unselected logits have no influence).
  const auto g = numeric_gradient(
      [&](const std::vector<double>& v) {
        double s = 0;
        for (int64_t r = 0; r < R; ++r) {
          std::vector<double> p(static_cast<size_t>(NE));
          double mx = *std::max_element(v.begin() + r * NE, v.begin() + (r + 1) * NE), sum = 0;
          for (int64_t e = 0; e < NE; ++e) sum += (p[e] = std::exp(v[r * NE + e] - mx));
          double sel_sum = 0;
          for (int64_t j = 0; j < NK; ++j) sel_sum += p[sel[r * NK + j]] / sum;
          for (int64_t j = 0; j < NK; ++j) s += c[r * NK + j] * (p[sel[r * NK + j]] / sum) / sel_sum;
        }
        return s;
      },
      to_double(z));
  expect_relative_l2("moe_topk_softmax_backward dlogits", dz, g, 1e-6);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t e = 0; e < NE; ++e)
      if (std::find(sel.begin() + r * NK, sel.begin() + (r + 1) * NK, e) == sel.begin() + (r + 1) * NK)
        EXPECT_EQ(dz[r * NE + e], 0.0f);
}

}  // namespace
}  // namespace optiq
