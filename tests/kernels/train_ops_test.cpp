// The training kernels' backward ops against float64 central finite differences of float64
// reference forwards: for an op y = f(x) and a fixed random cotangent r, ∂(r·f(x))/∂x_i by central
// differences (h = 1e-5 in float64) must equal the kernel's fp32 input gradient to 1e-4 relative
// (‖got − fd‖ / ‖fd‖ over all inputs).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/tensor.h"
#include "kernels/train.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/kernels/train_test_util.h"

namespace optiq {
namespace {

using test::expect_grad_close;
using test::fd_grad;
using test::Fn;
using test::rand_vec;
using test::to_d;

TEST(TrainOps, RmsNormBackward) {
  TestKernels k;
  const int64_t T = 3, C = 24;
  const auto x = rand_vec(T * C, 1);
  auto wv = rand_vec(C, 2, 0.5f, 1.5f);
  std::vector<uint16_t> wb(C);
  for (int64_t c = 0; c < C; ++c) wb[c] = f32_to_bf16(wv[c]);
  Weight w;
  w.dtype = DType::kBF16;
  w.n_out = C;
  w.n_in = 1;
  w.data = wb.data();
  const float eps = 1e-6f;
  const auto r = rand_vec(T * C, 3);
  Fn f = [&](const std::vector<double>& xd) {
    std::vector<double> y(xd.size());
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0;
      for (int64_t c = 0; c < C; ++c) ss += xd[t * C + c] * xd[t * C + c];
      const double inv = 1 / std::sqrt(ss / C + eps);
      for (int64_t c = 0; c < C; ++c) y[t * C + c] = bf16_to_f32(wb[c]) * xd[t * C + c] * inv;
    }
    return y;
  };
  std::vector<float> dx(T * C);
  rms_norm_backward(dx.data(), r.data(), x.data(), T, C, w, eps, false, k.ctx);
  expect_grad_close(dx, fd_grad(f, to_d(x), r), "rms_norm");
  // accumulate adds to what is there.
  std::vector<float> acc(T * C, 1.0f);
  rms_norm_backward(acc.data(), r.data(), x.data(), T, C, w, eps, true, k.ctx);
  for (int64_t i = 0; i < T * C; ++i) EXPECT_FLOAT_EQ(acc[i], 1.0f + dx[i]);
}

TEST(TrainOps, SiluMulBackward) {
  TestKernels k;
  const int64_t n = 40;
  const auto g = rand_vec(n, 4, -4, 4), u = rand_vec(n, 5), r = rand_vec(n, 6);
  std::vector<float> dg(n), du(n);
  silu_mul_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n, k.ctx);
  Fn fg = [&](const std::vector<double>& gd) {
    std::vector<double> y(n);
    for (int64_t i = 0; i < n; ++i) y[i] = gd[i] / (1 + std::exp(-gd[i])) * u[i];
    return y;
  };
  Fn fu = [&](const std::vector<double>& ud) {
    std::vector<double> y(n);
    for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1 + std::exp(-static_cast<double>(g[i]))) * ud[i];
    return y;
  };
  expect_grad_close(dg, fd_grad(fg, to_d(g), r), "silu gate");
  expect_grad_close(du, fd_grad(fu, to_d(u), r), "silu up");
}

TEST(TrainOps, ConvBackwardBothTapDtypes) {
  TestKernels k;
  const int64_t T = 9, C = 20, Kw = 4;
  const auto x = rand_vec(T * C, 7), taps = rand_vec(Kw * C, 8), r = rand_vec(T * C, 9);
  std::vector<uint16_t> taps_bf(taps.size());
  std::vector<float> taps_rounded(taps.size());
  for (size_t i = 0; i < taps.size(); ++i) {
    taps_bf[i] = f32_to_bf16(taps[i]);
    taps_rounded[i] = bf16_to_f32(taps_bf[i]);
  }
  for (bool bf16 : {false, true}) {
    const std::vector<float>& tv = bf16 ? taps_rounded : taps;
    Fn f = [&](const std::vector<double>& xd) {
      std::vector<double> y(xd.size());
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < C; ++c) {
          double s = xd[t * C + c];
          for (int64_t j = 0; j < Kw; ++j) {
            const int64_t src = t - (Kw - 1) + j;
            if (src >= 0) s += tv[j * C + c] * xd[src * C + c];
          }
          y[t * C + c] = s;
        }
      return y;
    };
    std::vector<float> dx(T * C);
    const ConvTaps ct = bf16 ? ConvTaps::from_bf16(taps_bf.data()) : ConvTaps(taps.data());
    conv1d_dw_backward(dx.data(), r.data(), T, C, ct, Kw, k.ctx);
    expect_grad_close(dx, fd_grad(f, to_d(x), r), bf16 ? "conv bf16 taps" : "conv f32 taps");
  }
}

// Attention with GQA and per-row key ranges [key_begin[t], key_end[t]) (key_begin empty: 0):
// q [T, H, D], k/v [T, Hkv, D].
std::vector<double> attention_ref(const std::vector<double>& q, const std::vector<double>& kk,
                                  const std::vector<double>& v, int64_t T, int64_t H, int64_t Hkv, int64_t D,
                                  const std::vector<int64_t>& key_begin, const std::vector<int64_t>& key_end,
                                  double scale) {
  std::vector<double> out(static_cast<size_t>(T * H * D), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / Hkv), b = key_begin.empty() ? 0 : key_begin[t];
      std::vector<double> s(static_cast<size_t>(key_end[t]), 0.0);
      double mx = -1e300;
      for (int64_t j = b; j < key_end[t]; ++j) {
        double d = 0;
        for (int64_t e = 0; e < D; ++e) d += q[(t * H + h) * D + e] * kk[(j * Hkv + g) * D + e];
        s[j] = scale * d;
        mx = std::max(mx, s[j]);
      }
      double z = 0;
      for (int64_t j = b; j < key_end[t]; ++j) z += (s[j] = std::exp(s[j] - mx));
      for (int64_t j = b; j < key_end[t]; ++j)
        for (int64_t e = 0; e < D; ++e) out[(t * H + h) * D + e] += s[j] / z * v[(j * Hkv + g) * D + e];
    }
  return out;
}

void check_attention(const std::vector<int64_t>& key_end, int64_t H, int64_t Hkv, int64_t D, uint32_t seed,
                     const std::vector<int64_t>& key_begin = {}, double scale = 0) {
  TestKernels k;
  const int64_t T = static_cast<int64_t>(key_end.size());
  const auto q = rand_vec(T * H * D, seed), kk = rand_vec(T * Hkv * D, seed + 1), v = rand_vec(T * Hkv * D, seed + 2);
  const auto r = rand_vec(T * H * D, seed + 3);
  if (scale == 0) scale = 1 / std::sqrt(static_cast<double>(D));
  std::vector<float> dq(q.size()), dk(kk.size()), dv(v.size());
  attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), kk.data(), v.data(), T, H, Hkv, D,
                     key_begin.empty() ? nullptr : key_begin.data(), key_end.data(), static_cast<float>(scale), k.ctx);
  const auto qd = to_d(q), kd = to_d(kk), vd = to_d(v);
  const auto& kb = key_begin;
  expect_grad_close(dq, fd_grad([&](const auto& x) { return attention_ref(x, kd, vd, T, H, Hkv, D, kb, key_end, scale); }, qd, r), "dq");
  expect_grad_close(dk, fd_grad([&](const auto& x) { return attention_ref(qd, x, vd, T, H, Hkv, D, kb, key_end, scale); }, kd, r), "dk");
  expect_grad_close(dv, fd_grad([&](const auto& x) { return attention_ref(qd, kd, x, T, H, Hkv, D, kb, key_end, scale); }, vd, r), "dv");
}

TEST(TrainOps, AttentionBackwardCausal) {
  std::vector<int64_t> ke(13);
  for (int64_t t = 0; t < 13; ++t) ke[t] = t + 1;
  check_attention(ke, 4, 2, 16, 10);
}
TEST(TrainOps, AttentionBackwardBlockAndFullAndOddHeadDim) {
  // Block grid of 4 after a prefix of 3 (the joint objective's visibility), then full, head dim 6.
  std::vector<int64_t> block = {1, 2, 3, 7, 7, 7, 7, 11, 11, 11, 11, 12}, full(12, 12);
  check_attention(block, 3, 1, 16, 20);
  check_attention(full, 2, 2, 6, 30);
}

TEST(TrainOps, SoftcapCrossEntropy) {
  TestKernels k;
  const int64_t R = 3, V = 17;
  const auto z = rand_vec(R * V, 11, -40, 40);
  const std::vector<int32_t> target = {3, -1, 16};
  const std::vector<float> weight = {0.5f, 0.5f, 2.0f};
  const double cap = 30;
  Fn f = [&](const std::vector<double>& zd) {
    double loss = 0;
    for (int64_t r = 0; r < R; ++r) {
      if (target[r] < 0) continue;
      std::vector<double> l(V);
      double mx = -1e300;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, l[i] = cap * std::tanh(zd[r * V + i] / cap));
      double s = 0;
      for (double e : l) s += std::exp(e - mx);
      loss += weight[r] * (mx + std::log(s) - l[target[r]]);
    }
    return std::vector<double>{loss};
  };
  std::vector<float> g = z;
  const double loss = softcap_cross_entropy(g.data(), target.data(), weight.data(), R, V, static_cast<float>(cap), k.ctx);
  EXPECT_NEAR(loss, f(to_d(z))[0], 1e-5 * std::abs(loss));
  expect_grad_close(g, fd_grad(f, to_d(z), {1.0f}), "softcap CE");
}

// linear_f32 equals x·Wᵀ of the exactly dequantized weight, and its input gradient is dy·W, for
// dense bf16 and 4-bit weights, N not a multiple of the panel width.
TEST(TrainOps, LinearAndInputGradOverDenseAndQuantized) {
  TestKernels k;
  const int64_t T = 5, N = 70, K = 64;
  const auto wf = rand_vec(N * K, 12);
  std::vector<uint16_t> wb(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) wb[i] = f32_to_bf16(wf[i]);
  Weight dense;
  dense.dtype = DType::kBF16;
  dense.n_out = N;
  dense.n_in = K;
  dense.data = wb.data();
  // 4-bit, group 32, all codes 0..15 with per-group scale/bias.
  std::vector<uint32_t> packed(N * K / 8);
  for (size_t i = 0; i < packed.size(); ++i) packed[i] = static_cast<uint32_t>(i * 2654435761u);
  std::vector<uint16_t> scales(N * K / 32), biases(N * K / 32);
  for (size_t i = 0; i < scales.size(); ++i) {
    scales[i] = f32_to_bf16(0.01f + 0.001f * static_cast<float>(i % 7));
    biases[i] = f32_to_bf16(-0.05f + 0.002f * static_cast<float>(i % 11));
  }
  Weight quant;
  quant.dtype = DType::kU32;
  quant.n_out = N;
  quant.n_in = K;
  quant.data = packed.data();
  quant.quant = QuantInfo{4, 32, DType::kBF16, scales.data(), biases.data()};
  const auto x = rand_vec(T * K, 13), dy = rand_vec(T * N, 14);
  for (const Weight* w : {&dense, &quant}) {
    std::vector<float> wd(N * K);
    for (int64_t n = 0; n < N; ++n) weight_row(*w, n, wd.data() + n * K);
    std::vector<float> y(T * N), dx(T * K);
    linear_f32(y.data(), x.data(), T, *w, k.ctx);
    linear_input_grad(dx.data(), dy.data(), T, *w, false, k.ctx);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t kk = 0; kk < K; ++kk) s += static_cast<double>(x[t * K + kk]) * wd[n * K + kk];
        EXPECT_NEAR(y[t * N + n], s, 1e-5) << (w == &dense ? "dense" : "quantized");
      }
      for (int64_t kk = 0; kk < K; ++kk) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) s += static_cast<double>(dy[t * N + n]) * wd[n * K + kk];
        EXPECT_NEAR(dx[t * K + kk], s, 1e-5) << (w == &dense ? "dense" : "quantized");
      }
    }
  }
}

TEST(TrainOps, LoraForwardAndBackward) {
  TestKernels k;
  const int64_t T = 4, in = 12, r = 3, out = 10;
  const float scale = 1.7f;
  LoraModule m;
  m.in = in;
  m.rank = r;
  m.out = out;
  m.a = rand_vec(in * r, 15);
  m.b = rand_vec(r * out, 16);
  const auto x = rand_vec(T * in, 17), cot = rand_vec(T * out, 18);
  std::vector<float> y(T * out, 0.0f), xa(T * r);
  lora_forward(y.data(), xa.data(), x.data(), T, m, scale, k.ctx);
  auto f_of = [&](const std::vector<double>& xd, const std::vector<double>& ad, const std::vector<double>& bd) {
    std::vector<double> yv(static_cast<size_t>(T * out), 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < r; ++j) {
        double s = 0;
        for (int64_t i = 0; i < in; ++i) s += xd[t * in + i] * ad[i * r + j];
        for (int64_t o = 0; o < out; ++o) yv[t * out + o] += scale * s * bd[j * out + o];
      }
    return yv;
  };
  const auto xd = to_d(x), ad = to_d(m.a), bd = to_d(m.b);
  const auto yref = f_of(xd, ad, bd);
  for (int64_t i = 0; i < T * out; ++i) EXPECT_NEAR(y[i], yref[i], 1e-5);
  LoraModule g = m;
  std::fill(g.a.begin(), g.a.end(), 0.0f);
  std::fill(g.b.begin(), g.b.end(), 0.0f);
  std::vector<float> dx(T * in);
  lora_backward(dx.data(), g, cot.data(), x.data(), xa.data(), T, m, scale, k.ctx);
  expect_grad_close(dx, fd_grad([&](const auto& v) { return f_of(v, ad, bd); }, xd, cot), "lora dx");
  expect_grad_close(g.a, fd_grad([&](const auto& v) { return f_of(xd, v, bd); }, ad, cot), "lora da");
  expect_grad_close(g.b, fd_grad([&](const auto& v) { return f_of(xd, ad, v); }, bd, cot), "lora db");
}

// Rotate-half RoPE in float64 at the kernel's fp32 angles (pos · inv_freq): pairs (i, i + D/2) for
// i < rot_pairs rotate, the rest pass through.
std::vector<double> rope_ref(const std::vector<double>& xd, int64_t T, int64_t H, int64_t D,
                             const std::vector<int64_t>& pos, const std::vector<float>& inv_freq, int64_t rot_pairs) {
  std::vector<double> y = xd;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < rot_pairs; ++i) {
        const double a = static_cast<double>(static_cast<float>(pos[t]) * inv_freq[i]);
        const double x0 = xd[(t * H + h) * D + i], x1 = xd[(t * H + h) * D + i + D / 2];
        y[(t * H + h) * D + i] = x0 * std::cos(a) - x1 * std::sin(a);
        y[(t * H + h) * D + i + D / 2] = x1 * std::cos(a) + x0 * std::sin(a);
      }
  return y;
}

// RoPE's gradient is the rotation by the opposite angle: rope with negated positions.
TEST(TrainOps, RopeTransposeIsNegatedPositions) {
  TestKernels k;
  const int64_t T = 5, H = 2, D = 8;
  const auto x = rand_vec(T * H * D, 19), r = rand_vec(T * H * D, 20);
  const std::vector<float> inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<int64_t> pos = {0, 3, 7, 100, 4095}, neg(pos.size());
  for (size_t i = 0; i < pos.size(); ++i) neg[i] = -pos[i];
  Fn f = [&](const std::vector<double>& xd) { return rope_ref(xd, T, H, D, pos, inv_freq, D / 2); };
  std::vector<float> g = r;
  rope(g.data(), T, H, D, neg.data(), inv_freq.data(), D / 2, k.ctx);
  expect_grad_close(g, fd_grad(f, to_d(x), r), "rope");
}

// DiffusionGemma's ranges over a prompt of P rows and a canvas (models/diffusion_gemma_train.cpp):
// prompt rows causal within a sliding window W, canvas rows the last W − 1 prompt rows and the whole
// canvas; scale 1 (q/k are RMS-normed instead). With W = T: full-attention layers.
TEST(TrainOps, AttentionBackwardSlidingWindowsAndCanvasKeyBegin) {
  const int64_t P = 7, T = 12;
  for (int64_t W : {4, 12}) {
    std::vector<int64_t> kb(T), ke(T);
    for (int64_t t = 0; t < T; ++t) {
      kb[t] = t >= P ? std::max<int64_t>(0, P - (W - 1)) : std::max<int64_t>(0, t - W + 1);
      ke[t] = t >= P ? T : t + 1;
    }
    check_attention(ke, 4, 2, 8, static_cast<uint32_t>(40 + W), kb, 1.0);
  }
}

TEST(TrainOps, AttentionBackwardNullKeyBeginIsZero) {
  TestKernels k;
  const int64_t T = 9, H = 2, Hkv = 1, D = 8;
  std::vector<int64_t> kb(T, 0), ke(T);
  for (int64_t t = 0; t < T; ++t) ke[t] = t + 1;
  const auto q = rand_vec(T * H * D, 50), kk = rand_vec(T * Hkv * D, 51), vv = rand_vec(T * Hkv * D, 52);
  const auto r = rand_vec(T * H * D, 53);
  std::vector<float> a_q(q.size()), a_k(kk.size()), a_v(vv.size()), b_q = a_q, b_k = a_k, b_v = a_v;
  attention_backward(a_q.data(), a_k.data(), a_v.data(), r.data(), q.data(), kk.data(), vv.data(), T, H, Hkv, D,
                     ke.data(), 0.5f, k.ctx);
  attention_backward(b_q.data(), b_k.data(), b_v.data(), r.data(), q.data(), kk.data(), vv.data(), T, H, Hkv, D,
                     kb.data(), ke.data(), 0.5f, k.ctx);
  EXPECT_EQ(a_q, b_q);
  EXPECT_EQ(a_k, b_k);
  EXPECT_EQ(a_v, b_v);
}

TEST(TrainOps, RmsNormBackwardWithoutWeight) {
  TestKernels k;
  const int64_t T = 5, C = 48;
  const auto x = rand_vec(T * C, 60), r = rand_vec(T * C, 61);
  Fn f = [&](const std::vector<double>& xd) {
    std::vector<double> y(xd.size());
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0;
      for (int64_t c = 0; c < C; ++c) ss += xd[t * C + c] * xd[t * C + c];
      for (int64_t c = 0; c < C; ++c) y[t * C + c] = xd[t * C + c] / std::sqrt(ss / C + 1e-6);
    }
    return y;
  };
  std::vector<float> dx(x.size());
  rms_norm_backward(dx.data(), r.data(), x.data(), T, C, Weight{}, 1e-6f, false, k.ctx);
  expect_grad_close(dx, fd_grad(f, to_d(x), r), "rms_norm without weight");
}

TEST(TrainOps, GeluTanhMulBackward) {
  TestKernels k;
  const int64_t n = 257;
  const auto gate = rand_vec(n, 70, -4, 4), up = rand_vec(n, 71), r = rand_vec(n, 72);
  auto gelu = [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); };
  std::vector<float> dg(n), du(n);
  gelu_tanh_mul_backward(dg.data(), du.data(), r.data(), gate.data(), up.data(), n, k.ctx);
  const auto gd = to_d(gate), ud = to_d(up);
  auto f = [&](const std::vector<double>& g, const std::vector<double>& u) {
    std::vector<double> y(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) y[i] = gelu(g[i]) * u[i];
    return y;
  };
  expect_grad_close(dg, fd_grad([&](const auto& g) { return f(g, ud); }, gd, r), "gelu_tanh_mul dgate");
  expect_grad_close(du, fd_grad([&](const auto& u) { return f(gd, u); }, ud, r), "gelu_tanh_mul dup");
  std::vector<float> d1 = r, d2(n);  // in place on dout
  gelu_tanh_mul_backward(d1.data(), d2.data(), d1.data(), gate.data(), up.data(), n, k.ctx);
  EXPECT_EQ(d1, dg);
}

// rope_backward on a "proportional" full-attention head (specs/diffusiongemma.md §2.4): exponents
// over the whole head dim, only the first rot_pairs pairs rotate, the rest pass through.
TEST(TrainOps, RopeBackwardPartialRotation) {
  TestKernels k;
  const int64_t T = 9, H = 2, D = 32, rot_pairs = 4;
  std::vector<float> inv_freq(D / 2, 0.0f);
  for (int64_t i = 0; i < rot_pairs; ++i) inv_freq[i] = 1.0f / std::pow(1e6f, static_cast<float>(2 * i) / D);
  std::vector<int64_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = 37 + 3 * t;
  const auto x = rand_vec(T * H * D, 80), r = rand_vec(T * H * D, 81);
  Fn f = [&](const std::vector<double>& xd) { return rope_ref(xd, T, H, D, pos, inv_freq, rot_pairs); };
  std::vector<float> g = r;
  rope_backward(g.data(), T, H, D, pos.data(), inv_freq.data(), rot_pairs, k.ctx);
  expect_grad_close(g, fd_grad(f, to_d(x), r), "rope_backward (partial)");
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = rot_pairs; i < D / 2; ++i) EXPECT_EQ(g[t * H * D + i], r[t * H * D + i]);
}

}  // namespace
}  // namespace optiq
