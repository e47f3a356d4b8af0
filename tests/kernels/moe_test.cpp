// Expert routing and grouped expert FFNs against dense references on random inputs.
#include "kernels/moe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "decode/rng.h"
#include "kernels/gelu.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/models/dgemma_synth.h"

namespace optiq {
namespace {

std::vector<float> randn(SplitMix64& r, int64_t n, float s) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>((r.uniform() * 2 - 1) * s);
  return v;
}

TEST(MoeTopk, MatchesBruteForceSoftmaxTopk) {
  TestKernels kern(1);
  SplitMix64 r(3);
  const int64_t T = 17, E = 11, K = 3;
  auto logits = randn(r, T * E, 4.f);
  std::vector<int32_t> sel(T * K);
  std::vector<float> w(T * K);
  moe_topk_softmax(logits.data(), T, E, K, sel.data(), w.data(), kern.ctx);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> p(E);
    double mx = *std::max_element(logits.begin() + t * E, logits.begin() + (t + 1) * E), s = 0;
    for (int64_t e = 0; e < E; ++e) s += p[e] = std::exp(logits[t * E + e] - mx);
    std::vector<int> idx(E);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return p[a] > p[b]; });
    double top = 0;
    for (int k = 0; k < K; ++k) top += p[idx[k]];
    for (int k = 0; k < K; ++k) {
      EXPECT_EQ(sel[t * K + k], idx[k]) << "row " << t;
      EXPECT_NEAR(w[t * K + k], p[idx[k]] / top, 1e-6);
    }
  }
}

// Dense reference: every expert on every row, combined by a dense [T, E] gate matrix.
std::vector<float> dense_moe(const std::vector<float>& x, int64_t T, int64_t C, const std::vector<int32_t>& sel,
                             const std::vector<float>& w, int64_t K, const std::vector<ExpertFfn>& ex) {
  const int64_t E = static_cast<int64_t>(ex.size());
  std::vector<double> gate(T * E, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) gate[t * E + sel[t * K + k]] += w[t * K + k];
  std::vector<double> out(T * C, 0.0);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t F = ex[e].down.n_in;
    std::vector<float> gu(T * 2 * F), act(T * F), y(T * C);
    matmul_reference(gu.data(), x.data(), T, ex[e].gate_up);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t f = 0; f < F; ++f) act[t * F + f] = gelu_tanh(gu[t * 2 * F + f]) * gu[t * 2 * F + F + f];
    matmul_reference(y.data(), act.data(), T, ex[e].down);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) out[t * C + c] += gate[t * E + e] * y[t * C + c];
  }
  return std::vector<float>(out.begin(), out.end());
}

struct ExpertSet {
  std::vector<std::vector<float>> f32;
  std::vector<test::QuantizedMatrix> q;
  std::vector<std::vector<uint16_t>> bf16;
  std::vector<ExpertFfn> ffn;
};

// E experts with F hidden units over C inputs, in the requested storage.
ExpertSet make_experts(SplitMix64& r, int64_t E, int64_t C, int64_t F, int mode /*0 f32, 1 bf16, 2 q4*/) {
  ExpertSet s;
  for (int64_t e = 0; e < E; ++e) {
    for (int part = 0; part < 2; ++part) {
      const int64_t n = part == 0 ? 2 * F : C, k = part == 0 ? C : F;
      auto v = randn(r, n * k, 0.5f);
      Weight w;
      w.n_out = n;
      w.n_in = k;
      if (mode == 0) {
        s.f32.push_back(v);
        w.dtype = DType::kF32;
        w.data = s.f32.back().data();
      } else if (mode == 1) {
        std::vector<uint16_t> b(v.size());
        for (size_t i = 0; i < v.size(); ++i) b[i] = f32_to_bf16(v[i]);
        s.bf16.push_back(b);
        w.dtype = DType::kBF16;
        w.data = s.bf16.back().data();
      } else {
        s.q.push_back(test::quantize_affine(v.data(), n, k, 4, 32));
        w.dtype = DType::kU32;
        w.data = s.q.back().packed.data();
        w.quant.bits = 4;
        w.quant.group_size = 32;
        w.quant.scale_dtype = DType::kBF16;
        w.quant.scales = s.q.back().scales.data();
        w.quant.biases = s.q.back().biases.data();
      }
      if (part == 0) s.ffn.push_back(ExpertFfn{w, {}});
      else s.ffn.back().down = w;
    }
  }
  return s;
}

class MoeExperts : public ::testing::TestWithParam<int> {};

TEST_P(MoeExperts, GroupedEqualsDenseReferenceOnRandomInputs) {
  TestKernels kern(2);
  SplitMix64 r(11 + GetParam());
  const int64_t T = 37, C = 64, F = 32, E = 9, K = 3;
  ExpertSet set = make_experts(r, E, C, F, GetParam());
  auto x = randn(r, T * C, 1.f);
  auto logits = randn(r, T * E, 3.f);
  std::vector<int32_t> sel(T * K);
  std::vector<float> w(T * K);
  moe_topk_softmax(logits.data(), T, E, K, sel.data(), w.data(), kern.ctx);
  std::vector<float> out(T * C), ref_loop(T * C);
  moe_experts(out.data(), x.data(), T, C, sel.data(), w.data(), K, set.ffn, kern.ctx);
  moe_experts_reference(ref_loop.data(), x.data(), T, C, sel.data(), w.data(), K, set.ffn);
  auto dense = dense_moe(x, T, C, sel, w, K, set.ffn);
  double d1 = 0, d2 = 0, mag = 0;
  for (int64_t i = 0; i < T * C; ++i) {
    d1 = std::max(d1, double(std::fabs(out[i] - dense[i])));
    d2 = std::max(d2, double(std::fabs(out[i] - ref_loop[i])));
    mag = std::max(mag, double(std::fabs(dense[i])));
  }
  EXPECT_GT(mag, 0.1);
  // Dense weights: fp32 rounding only. Quantized: matmul_q also rounds activations to int8 per
  // (row, group) (kernels/matmul_q.h) and picks its path by row count, so the bound is wider and
  // batches of different sizes agree to that rounding rather than bitwise.
  const bool quantized = GetParam() == 2;
  const double tol = (quantized ? 2e-4 : 1e-5) * std::max(1.0, mag);
  EXPECT_LE(d1, tol);
  EXPECT_LE(d2, tol);
  // Reusing the scratch for a second, smaller batch gives the same rows.
  std::vector<float> out2(5 * C);
  moe_experts(out2.data(), x.data(), 5, C, sel.data(), w.data(), K, set.ffn, kern.ctx);
  for (int64_t i = 0; i < 5 * C; ++i) {
    if (quantized) EXPECT_NEAR(out2[i], out[i], tol);
    else EXPECT_EQ(out2[i], out[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(Storage, MoeExperts, ::testing::Values(0, 1, 2));

}  // namespace
}  // namespace optiq
