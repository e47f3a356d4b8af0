// Backward kernels of kernels/train_ops.cpp against float64 finite differences: for an op y = f(x)
// and a random upstream gradient c, the fp32 backward's dx must match ∂(Σ c·f(x))/∂x computed by
// central differences of a float64 reference forward.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/train.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/kernels/train_test_util.h"

namespace optiq {
namespace {

using test::numeric_gradient;
using test::random_floats;
using test::expect_relative_l2;
using test::relative_l2;
using test::to_double;

double dot(const std::vector<double>& y, const std::vector<float>& c) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * c[i];
  return s;
}

double gelu64(double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }

TEST(TrainOps, GeluTanhMulBackwardMatchesFiniteDifferences) {
  TestKernels k;
  std::mt19937_64 rng(7);
  const int64_t n = 257;
  auto gate = random_floats(rng, n, 2.0f), up = random_floats(rng, n), c = random_floats(rng, n);
  std::vector<float> dg(n), du(n);
  gelu_tanh_mul_backward(dg.data(), du.data(), c.data(), gate.data(), up.data(), n, k.ctx);
  // Reference: L(gate, up) = Σ c · gelu(gate) · up, differentiated in both inputs.
  std::vector<double> x = to_double(gate);
  x.insert(x.end(), up.begin(), up.end());
  const auto g = numeric_gradient(
      [&](const std::vector<double>& v) {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += c[i] * gelu64(v[i]) * v[n + i];
        return s;
      },
      x);
  const std::vector<double> want_g(g.begin(), g.begin() + n), want_u(g.begin() + n, g.end());
  expect_relative_l2("gelu_tanh_mul dgate", dg, want_g, 1e-6);
  expect_relative_l2("gelu_tanh_mul dup", du, want_u, 1e-6);
  // In place on dout.
  std::vector<float> d1 = c, d2(n);
  gelu_tanh_mul_backward(d1.data(), d2.data(), d1.data(), gate.data(), up.data(), n, k.ctx);
  EXPECT_EQ(d1, dg);
}

// Rotate-half RoPE in float64 with the kernel's fp32 angles' definition (pos · inv_freq).
std::vector<double> rope64(const std::vector<double>& x, int64_t T, int64_t H, int64_t D, const std::vector<int64_t>& pos,
                           const std::vector<float>& inv_freq, int64_t rot_pairs) {
  std::vector<double> y = x;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < rot_pairs; ++i) {
        const double a = static_cast<double>(pos[t]) * inv_freq[i];
        const double x0 = x[(t * H + h) * D + i], x1 = x[(t * H + h) * D + i + D / 2];
        y[(t * H + h) * D + i] = x0 * std::cos(a) - x1 * std::sin(a);
        y[(t * H + h) * D + i + D / 2] = x1 * std::cos(a) + x0 * std::sin(a);
      }
  return y;
}

TEST(TrainOps, RopeBackwardMatchesFiniteDifferencesWithPartialRotation) {
  TestKernels k;
  std::mt19937_64 rng(11);
  // A "proportional" full-attention head (§2.4): exponents over the full D, only the first pairs rotate.
  const int64_t T = 9, H = 2, D = 32, rot_pairs = 4;
  std::vector<float> inv_freq(D / 2, 0.0f);
  for (int64_t i = 0; i < rot_pairs; ++i) inv_freq[i] = 1.0f / std::pow(1e6f, static_cast<float>(2 * i) / D);
  std::vector<int64_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = 37 + 3 * t;
  auto x = random_floats(rng, T * H * D), c = random_floats(rng, T * H * D);
  std::vector<float> dx = c;
  rope_backward(dx.data(), T, H, D, pos.data(), inv_freq.data(), rot_pairs, k.ctx);
  const auto want = numeric_gradient(
      [&](const std::vector<double>& v) { return dot(rope64(v, T, H, D, pos, inv_freq, rot_pairs), c); }, to_double(x));
  expect_relative_l2("rope (partial, proportional) dx", dx, want, 1e-6);
  // Pairs past rot_pairs pass the gradient through unchanged.
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = rot_pairs; i < D / 2; ++i) EXPECT_EQ(dx[t * H * D + i], c[t * H * D + i]);
}

std::vector<double> rms_norm64(const std::vector<double>& x, int64_t T, int64_t C, const std::vector<float>* w,
                               double eps) {
  std::vector<double> y(x.size());
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < C; ++i) ss += x[t * C + i] * x[t * C + i];
    const double r = 1 / std::sqrt(ss / C + eps);
    for (int64_t i = 0; i < C; ++i) y[t * C + i] = x[t * C + i] * r * (w ? (*w)[i] : 1.0);
  }
  return y;
}

TEST(TrainOps, RmsNormBackwardWithAndWithoutWeight) {
  TestKernels k;
  std::mt19937_64 rng(3);
  const int64_t T = 5, C = 48;
  auto x = random_floats(rng, T * C), c = random_floats(rng, T * C), w = random_floats(rng, C);
  const Weight weight = test::dense_f32_weight(w, C, 1);  // a norm weight [C]
  for (bool with_weight : {true, false}) {
    std::vector<float> dx(T * C);
    rms_norm_backward(dx.data(), c.data(), x.data(), T, C, with_weight ? weight : Weight{}, 1e-6f, false, k.ctx);
    const auto want = numeric_gradient(
        [&](const std::vector<double>& v) { return dot(rms_norm64(v, T, C, with_weight ? &w : nullptr, 1e-6), c); },
        to_double(x));
    expect_relative_l2(with_weight ? "rms_norm dx (weight)" : "rms_norm dx (no weight)", dx, want, 1e-6);
  }
}

// Attention in float64: row t, head h attends keys [kb[t], ke[t]) of KV head h / (H / Hkv).
std::vector<double> attention64(const std::vector<double>& q, const std::vector<double>& kk,
                                const std::vector<double>& vv, int64_t T, int64_t H, int64_t Hkv, int64_t D,
                                const std::vector<int64_t>& kb, const std::vector<int64_t>& ke, double scale) {
  std::vector<double> out(static_cast<size_t>(T * H * D), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / Hkv);
      std::vector<double> s;
      double mx = -1e300;
      for (int64_t j = kb[t]; j < ke[t]; ++j) {
        double d = 0;
        for (int64_t i = 0; i < D; ++i) d += q[(t * H + h) * D + i] * kk[(j * Hkv + g) * D + i];
        s.push_back(scale * d);
        mx = std::max(mx, scale * d);
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      for (int64_t j = kb[t]; j < ke[t]; ++j)
        for (int64_t i = 0; i < D; ++i)
          out[(t * H + h) * D + i] += s[static_cast<size_t>(j - kb[t])] / sum * vv[(j * Hkv + g) * D + i];
    }
  return out;
}

// DiffusionGemma's key ranges over a prompt of P rows and a canvas: causal (sliding window W) prompt
// rows, canvas rows seeing the last W − 1 prompt rows and the whole canvas; plus a plain causal run.
void check_attention_backward(bool sliding, float scale) {
  TestKernels k;
  std::mt19937_64 rng(sliding ? 21 : 22);
  const int64_t P = 7, T = 12, H = 4, Hkv = 2, D = 8, W = 4;
  std::vector<int64_t> kb(T), ke(T);
  for (int64_t t = 0; t < T; ++t) {
    const bool canvas = t >= P;
    kb[t] = !sliding ? 0 : canvas ? std::max<int64_t>(0, P - (W - 1)) : std::max<int64_t>(0, t - W + 1);
    ke[t] = canvas ? T : t + 1;
  }
  auto q = random_floats(rng, T * H * D), kk = random_floats(rng, T * Hkv * D), vv = random_floats(rng, T * Hkv * D);
  auto c = random_floats(rng, T * H * D);
  std::vector<float> dq(T * H * D), dk(T * Hkv * D), dv(T * Hkv * D);
  attention_backward(dq.data(), dk.data(), dv.data(), c.data(), q.data(), kk.data(), vv.data(), T, H, Hkv, D, kb.data(),
                     ke.data(), scale, k.ctx);
  std::vector<double> x = to_double(q);
  x.insert(x.end(), kk.begin(), kk.end());
  x.insert(x.end(), vv.begin(), vv.end());
  const int64_t nq = T * H * D, nk = T * Hkv * D;
  const auto g = numeric_gradient(
      [&](const std::vector<double>& v) {
        const std::vector<double> qd(v.begin(), v.begin() + nq), kd(v.begin() + nq, v.begin() + nq + nk),
            vd(v.begin() + nq + nk, v.end());
        return dot(attention64(qd, kd, vd, T, H, Hkv, D, kb, ke, scale), c);
      },
      x);
  expect_relative_l2("attention dq", dq, {g.begin(), g.begin() + nq}, 1e-5);
  expect_relative_l2("attention dk", dk, {g.begin() + nq, g.begin() + nq + nk}, 1e-5);
  expect_relative_l2("attention dv", dv, {g.begin() + nq + nk, g.end()}, 1e-5);
  // The fp32 forward the backward undoes agrees with the reference.
  std::vector<float> out(T * H * D);
  attention(out.data(), q.data(), kk.data(), vv.data(), T, H, Hkv, D, kb.data(), ke.data(), scale, k.ctx);
  expect_relative_l2("attention forward", out,
                     attention64(to_double(q), to_double(kk), to_double(vv), T, H, Hkv, D, kb, ke, scale), 1e-6);
}

TEST(TrainOps, AttentionBackwardPromptAndCanvasRanges) { check_attention_backward(false, 1.0f); }
TEST(TrainOps, AttentionBackwardSlidingWindowKeyBegin) { check_attention_backward(true, 1.0f); }
TEST(TrainOps, AttentionBackwardScaledSliding) { check_attention_backward(true, 0.35f); }

TEST(TrainOps, AttentionBackwardWithoutKeyBeginEqualsZeroBegins) {
  TestKernels k;
  std::mt19937_64 rng(5);
  const int64_t T = 9, H = 2, Hkv = 1, D = 8;
  std::vector<int64_t> kb(T, 0), ke(T);
  for (int64_t t = 0; t < T; ++t) ke[t] = t + 1;
  auto q = random_floats(rng, T * H * D), kk = random_floats(rng, T * Hkv * D), vv = random_floats(rng, T * Hkv * D);
  auto c = random_floats(rng, T * H * D);
  std::vector<float> a_q(T * H * D), a_k(T * Hkv * D), a_v(T * Hkv * D), b_q = a_q, b_k = a_k, b_v = a_v;
  attention_backward(a_q.data(), a_k.data(), a_v.data(), c.data(), q.data(), kk.data(), vv.data(), T, H, Hkv, D,
                     ke.data(), 0.5f, k.ctx);
  attention_backward(b_q.data(), b_k.data(), b_v.data(), c.data(), q.data(), kk.data(), vv.data(), T, H, Hkv, D,
                     kb.data(), ke.data(), 0.5f, k.ctx);
  EXPECT_EQ(a_q, b_q);
  EXPECT_EQ(a_k, b_k);
  EXPECT_EQ(a_v, b_v);
}

}  // namespace
}  // namespace optiq
