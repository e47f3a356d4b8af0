// Shared by the quantized-matmul tests: random MLX-affine weights, activations with an outlier, the
// float64 oracle, and the bound every int8-activation path must meet against it.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <hwy/targets.h>

#include "kernels/matmul_q.h"
#include "kernels/weight.h"
#include "tests/kernels/kernel_test_util.h"

namespace optiq {

// width; scales take both signs as MLX's edge-anchored quantizer produces).
struct QWeight {
  std::vector<uint8_t> packed;
  std::vector<uint8_t> scales, biases;
  Weight w;
};

inline void store_scales(DType t, const std::vector<float>& v, std::vector<uint8_t>* out) {
  out->resize(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::kF32) {
      std::memcpy(out->data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = t == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(out->data() + 2 * i, &h, 2);
    }
  }
}

inline std::unique_ptr<QWeight> make_qweight(int64_t N, int64_t K, int bits, int gs, DType sdt, uint32_t seed) {
  auto q = std::make_unique<QWeight>();
  std::mt19937 rng(seed);
  q->packed.resize(static_cast<size_t>(N * K * bits / 8));
  for (auto& b : q->packed) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> us(-0.05f, 0.05f), ub(-0.2f, 0.2f);
  std::vector<float> s(static_cast<size_t>(N * K / gs)), b(s.size());
  for (auto& v : s) v = us(rng);
  for (auto& v : b) v = ub(rng);
  store_scales(sdt, s, &q->scales);
  store_scales(sdt, b, &q->biases);
  q->w.dtype = DType::kU32;
  q->w.n_out = N;
  q->w.n_in = K;
  q->w.data = q->packed.data();
  q->w.quant = QuantInfo{bits, gs, sdt, q->scales.data(), q->biases.data()};
  return q;
}

inline std::vector<float> random_x(int64_t T, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(T * K));
  for (auto& v : x) v = nd(rng);
  // An outlier channel, as real activations have: the per-group activation scale must cope with it.
  if (K > 5) x[5] = 40.f;
  return x;
}

inline std::vector<int64_t> targets_under_test() {
  std::vector<int64_t> t = hwy::SupportedAndGeneratedTargets();
  EXPECT_FALSE(t.empty());
  return t;
}

// Dequantized rows [N, K] of a quantized weight (the oracle's weights).
inline std::vector<float> dequantized(const Weight& w) {
  std::vector<float> d(static_cast<size_t>(w.n_out * w.n_in));
  for (int64_t n = 0; n < w.n_out; ++n) dequantize_row_reference(w, n, d.data() + n * w.n_in);
  return d;
}

// out[T, N] = x · wdeqᵀ in float64.
inline std::vector<double> oracle(const std::vector<float>& x, const std::vector<float>& wdeq, int64_t T, int64_t N,
                                  int64_t K) {
  std::vector<double> ref(static_cast<size_t>(T * N));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(x[t * K + k]) * wdeq[n * K + k];
      ref[t * N + n] = s;
    }
  return ref;
}

// The kernel quantizes activations to int8 per (row, group) (step amax/kActQMax), so against the exact
// oracle |out − ref| <= (amax/(2·kActQMax))·Σ_k|w_k| (amax of the whole row bounds every group's) plus fp32 rounding across steps (bounded by 1e-5 of Σ|x·w|).
// A wrong lane, group or scale mapping misses by orders of magnitude more.
// The bound above for every output [T, N]; it depends on the case only, so a sweep over targets or
// kernels computes it once.
inline std::vector<double> close_tolerance(const std::vector<float>& x, const std::vector<float>& wdeq, int64_t T,
                                           int64_t N, int64_t K) {
  std::vector<double> tol(static_cast<size_t>(T * N));
  for (int64_t t = 0; t < T; ++t) {
    double amax = 0;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(static_cast<double>(x[t * K + k])));
    for (int64_t n = 0; n < N; ++n) {
      double wabs = 0, xwabs = 0;
      for (int64_t k = 0; k < K; ++k) {
        wabs += std::fabs(wdeq[n * K + k]);
        xwabs += std::fabs(static_cast<double>(x[t * K + k]) * wdeq[n * K + k]);
      }
      tol[t * N + n] = amax / (2.0 * kActQMax) * wabs * 1.001 + 1e-5 * xwabs + 1e-6;
    }
  }
  return tol;
}

inline void expect_within(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& tol,
                          int64_t T, int64_t N, const std::string& what) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const double d = std::fabs(got[t * N + n] - ref[t * N + n]);
      ASSERT_LE(d, tol[t * N + n]) << what << " t " << t << " n " << n << " got " << got[t * N + n] << " ref "
                                   << ref[t * N + n];
    }
}

inline void expect_close(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<float>& x,
                  const std::vector<float>& wdeq, int64_t T, int64_t N, int64_t K, const std::string& what) {
  expect_within(got, ref, close_tolerance(x, wdeq, T, N, K), T, N, what);
}


// The oracle sweep every int8-activation path runs: bits × group size × scale dtype × K × T, odd N
// (uneven thread splits, partial row blocks). fn(q, x, ref, wdeq, T, N, K, shape) checks one case.
template <class Fn>
void for_each_oracle_case(Fn&& fn) {
  const int64_t N = 37;
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128})
      for (int64_t mult : {3, 7}) {  // K = 3·gs leaves partial SIMD steps for every layout
        const int64_t K = gs * mult;
        const DType sdt = (bits + gs) % 3 == 0 ? DType::kF16 : ((bits + gs) % 3 == 1 ? DType::kF32 : DType::kBF16);
        auto q = make_qweight(N, K, bits, gs, sdt, 1000u + bits * 7 + gs + mult);
        const std::vector<float> wdeq = dequantized(q->w);
        for (int64_t T : {1, 3, 7, 8, 33, 64}) {
          if (mult == 7 && T > 8) continue;  // the long K is covered at small T; keeps the suite fast
          const std::vector<float> x = random_x(T, K, 77u + static_cast<uint32_t>(T));
          const std::vector<double> ref = oracle(x, wdeq, T, N, K);
          const std::string shape = " bits " + std::to_string(bits) + " gs " + std::to_string(gs) + " K " +
                                    std::to_string(K) + " T " + std::to_string(T);
          fn(*q, x, ref, wdeq, T, N, K, shape);
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
}

// Largest |got − want| over Σ|x·w| per output must stay within fp32 rounding (1e-5): paths that share
// the int8 activations and int32 group sums and differ only in the fp32 epilogue's order.
inline void expect_same_integer_sums(const std::vector<float>& got, const std::vector<float>& want,
                                     const std::vector<float>& x, const std::vector<float>& wdeq, int64_t T, int64_t N,
                                     int64_t K, const std::string& what) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      double mag = 0;
      for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(x[t * K + k]) * wdeq[n * K + k]);
      ASSERT_LE(std::fabs(got[t * N + n] - want[t * N + n]), 1e-5 * mag) << what << " t " << t << " n " << n;
    }
}

}  // namespace optiq
