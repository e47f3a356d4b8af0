// Helpers for the training-kernel tests: seeded random tensors, dense fp32 weights, and gradients
// of a float64 reference function by central differences.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <cstring>
#include <vector>

#include "kernels/weight.h"

namespace optiq::test {

inline std::vector<float> random_floats(std::mt19937_64& rng, int64_t n, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
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

// ∂f/∂x_i of a float64 function by central differences (step h), for every i.
inline std::vector<double> numeric_gradient(const std::function<double(const std::vector<double>&)>& f,
                                            std::vector<double> x, double h = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// ‖got − want‖ / ‖want‖ over all elements.
inline double relative_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Expects relative_l2(got, want) <= tol, printing the measured error.
inline void expect_relative_l2(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                               double tol) {
  const double e = relative_l2(got, want);
  std::printf("  %-44s relative L2 error %.2e\n", what, e);
  EXPECT_LE(e, tol) << what;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace optiq::test
