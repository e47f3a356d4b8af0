// Shared by the training-kernel tests: seeded random tensors, dense fp32 weights, and gradients of
// a float64 reference y = f(x) by central differences: for a fixed random cotangent r, ∂(r·f(x))/∂x_i
// (h = 1e-5 in float64), compared with a kernel's fp32 gradient by relative L2 error.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "kernels/weight.h"

namespace optiq::test {

using Fn = std::function<std::vector<double>(const std::vector<double>&)>;

inline std::vector<float> rand_vec(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

inline std::vector<double> to_d(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// ∂(r · f(x)) / ∂x by central differences in float64.
inline std::vector<double> fd_grad(const Fn& f, std::vector<double> x, const std::vector<float>& r) {
  std::vector<double> g(x.size());
  const double h = 1e-5;
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const auto yp = f(x);
    x[i] = x0 - h;
    const auto ym = f(x);
    x[i] = x0;
    double s = 0;
    for (size_t j = 0; j < yp.size(); ++j) s += r[j] * (yp[j] - ym[j]);
    g[i] = s / (2 * h);
  }
  return g;
}

// ‖got − fd‖ / ‖fd‖ <= tol, the measured error printed.
inline void expect_grad_close(const std::vector<float>& got, const std::vector<double>& fd, const char* what,
                              double tol = 1e-4) {
  ASSERT_EQ(got.size(), fd.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - fd[i]) * (got[i] - fd[i]);
    den += fd[i] * fd[i];
  }
  ASSERT_GT(den, 0.0) << what;
  std::printf("  %-44s relative L2 error %.2e\n", what, std::sqrt(num / den));
  EXPECT_LE(std::sqrt(num / den), tol) << what;
}

// A dense F32 [n_out, n_in] weight owning a copy of `values`.
inline Weight dense_f32_weight(const std::vector<float>& values, int64_t n_out, int64_t n_in) {
  Weight w;
  w.dtype = DType::kF32;
  w.n_out = n_out;
  w.n_in = n_in;
  auto bytes = std::make_shared<std::vector<uint8_t>>(values.size() * sizeof(float));
  std::memcpy(bytes->data(), values.data(), bytes->size());
  w.data = bytes->data();
  w.owned = bytes;
  return w;
}

}  // namespace optiq::test
