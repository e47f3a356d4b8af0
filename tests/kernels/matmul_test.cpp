// Dense matmul (f32 / bf16 weights) against matmul_reference: odd T and N, K with a SIMD tail, every
// compiled Highway target. fp32 accumulation in a different order: tolerance 1e-5 of Σ|x·w|.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <hwy/targets.h>

#include "kernels/kernels.h"
#include "kernels/weight.h"
#include "tests/kernels/kernel_test_util.h"

namespace optiq {
namespace {

TEST(Matmul, DenseMatchesReferenceAllTargets) {
  TestKernels kern(2);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (DType dt : {DType::kF32, DType::kBF16})
    for (int64_t K : {1, 19, 64, 200})
      for (int64_t T : {1, 3, 7, 8, 33}) {
        const int64_t N = 37;
        std::vector<float> wf(N * K), x(T * K);
        for (auto& v : wf) v = nd(rng);
        for (auto& v : x) v = nd(rng);
        std::vector<uint16_t> wb(N * K);
        for (int64_t i = 0; i < N * K; ++i) wb[i] = f32_to_bf16(wf[i]);
        Weight w;
        w.dtype = dt;
        w.n_out = N;
        w.n_in = K;
        w.data = dt == DType::kF32 ? static_cast<const void*>(wf.data()) : wb.data();
        std::vector<float> ref(T * N);
        matmul_reference(ref.data(), x.data(), T, w);
        std::vector<float> row(K);
        for (int64_t tgt : hwy::SupportedAndGeneratedTargets()) {
          hwy::SetSupportedTargetsForTest(tgt);
          std::vector<float> got(T * N, NAN);
          matmul(got.data(), x.data(), T, w, kern.ctx);
          hwy::SetSupportedTargetsForTest(0);
          for (int64_t n = 0; n < N; ++n) {
            weight_row(w, n, row.data());
            for (int64_t t = 0; t < T; ++t) {
              double mag = 0;
              for (int64_t k = 0; k < K; ++k) mag += std::fabs(x[t * K + k] * row[k]);
              ASSERT_NEAR(got[t * N + n], ref[t * N + n], 1e-5 * mag + 1e-6)
                  << hwy::TargetName(tgt) << " " << dtype_name(dt) << " K " << K << " T " << T << " n " << n;
            }
          }
        }
      }
}

}  // namespace
}  // namespace optiq
