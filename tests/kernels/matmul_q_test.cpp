// The portable quantized matmul (matmul_q_highway) and the seam's dispatch (matmul, matmul_multi,
// matmul_grouped) against the float64 oracle, for every bits × group size × scale dtype, odd row counts
// and odd N, on every compiled Highway target this CPU supports. The x86-only kernels have their own
// tests under tests/kernels/x86/.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/matmul_q_test_util.h"

namespace optiq {
namespace {

TEST(MatmulQ, DequantizeRowIsBitExact) {
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128})
      for (DType sdt : {DType::kBF16, DType::kF16, DType::kF32}) {
        auto q = make_qweight(3, gs * 3, bits, gs, sdt, 7u + bits * 31 + gs);
        std::vector<float> a(static_cast<size_t>(q->w.n_in)), r(a.size());
        for (int64_t n = 0; n < q->w.n_out; ++n) {
          dequantize_row(q->w, n, a.data());
          dequantize_row_reference(q->w, n, r.data());
          for (size_t k = 0; k < a.size(); ++k)
            ASSERT_EQ(a[k], r[k]) << "bits " << bits << " gs " << gs << " row " << n << " k " << k;
        }
      }
}

// Hand-packed rows decode to the documented codes (specs/mlx-format.md §2 worked extractions).
TEST(MatmulQ, HandPackedRowsDecode) {
  for (int bits : {3, 5, 6}) {
    const int64_t K = 32;
    std::vector<uint8_t> packed(static_cast<size_t>(K * bits / 8), 0);
    std::vector<uint32_t> codes(K);
    for (int64_t k = 0; k < K; ++k) {
      codes[k] = static_cast<uint32_t>((k * 5 + 3) % (1 << bits));
      for (int j = 0; j < bits; ++j)  // stream bit s = bit s%8 of byte s/8
        if (codes[k] >> j & 1) packed[(k * bits + j) / 8] |= static_cast<uint8_t>(1u << ((k * bits + j) % 8));
    }
    std::vector<uint16_t> one(1, f32_to_bf16(1.f)), zero(1, 0);
    Weight w;
    w.dtype = DType::kU32;
    w.n_out = 1;
    w.n_in = K;
    w.data = packed.data();
    w.quant = QuantInfo{bits, 32, DType::kBF16, one.data(), zero.data()};
    std::vector<float> a(K), r(K);
    dequantize_row(w, 0, a.data());
    dequantize_row_reference(w, 0, r.data());
    for (int64_t k = 0; k < K; ++k) {
      EXPECT_EQ(a[k], static_cast<float>(codes[k])) << bits << "-bit code " << k;
      EXPECT_EQ(r[k], static_cast<float>(codes[k])) << bits << "-bit code " << k;
    }
  }
  // The spec's 6-bit example: bytes b0..b2 hold v0 = b0&63, v1 = (b0>>6)|((b1&15)<<2), ...
  const uint8_t b[3] = {0xC5, 0x3A, 0x9F};
  std::vector<uint8_t> packed(24, 0);
  std::memcpy(packed.data(), b, 3);
  std::vector<uint16_t> one(1, f32_to_bf16(1.f)), zero(1, 0);
  Weight w;
  w.dtype = DType::kU32;
  w.n_out = 1;
  w.n_in = 32;
  w.data = packed.data();
  w.quant = QuantInfo{6, 32, DType::kBF16, one.data(), zero.data()};
  std::vector<float> a(32);
  dequantize_row(w, 0, a.data());
  EXPECT_EQ(a[0], b[0] & 63);
  EXPECT_EQ(a[1], (b[0] >> 6) | ((b[1] & 15) << 2));
  EXPECT_EQ(a[2], (b[1] >> 4) | ((b[2] & 3) << 4));
  EXPECT_EQ(a[3], b[2] >> 2);
}

TEST(MatmulQ, HighwayMatchesOracleAllTargets) {
  TestKernels one(1);  // threading is covered by ThreadCountInvariant; one thread keeps this fast on a busy box
  const std::vector<int64_t> targets = targets_under_test();
  for (int64_t tgt : targets) std::printf("target %s\n", hwy::TargetName(tgt));
  for_each_oracle_case([&](const QWeight& q, const std::vector<float>& x, const std::vector<double>& ref,
                           const std::vector<float>& wdeq, int64_t T, int64_t N, int64_t K, const std::string& shape) {
    const std::vector<double> tol = close_tolerance(x, wdeq, T, N, K);
    for (int64_t tgt : targets) {
      hwy::SetSupportedTargetsForTest(tgt);
      std::vector<float> got(static_cast<size_t>(T * N), NAN);
      matmul_q_highway(got.data(), x.data(), T, q.w, one.ctx);
      hwy::SetSupportedTargetsForTest(0);
      expect_within(got, ref, tol, T, N, std::string(hwy::TargetName(tgt)) + shape);
      if (HasFatalFailure()) return;
    }
    std::vector<float> got(static_cast<size_t>(T * N), NAN);  // the dispatching entry point
    matmul(got.data(), x.data(), T, q.w, one.ctx);
    expect_within(got, ref, tol, T, N, "matmul" + shape);
  });
}

// The result must not depend on the thread count (each output is computed by exactly one thread).
TEST(MatmulQ, ThreadCountInvariant) {
  auto q = make_qweight(101, 256, 4, 64, DType::kBF16, 5);
  TestKernels p1(1), p2(2);
  for (int64_t T : {1, 3, 9, 40}) {
    const std::vector<float> x = random_x(T, 256, 6);
    std::vector<float> a(T * 101), b(T * 101), c(T * 101);
    matmul_q_highway(a.data(), x.data(), T, q->w, p1.ctx);
    matmul_q_highway(b.data(), x.data(), T, q->w, p2.ctx);
    EXPECT_EQ(a, b) << "highway T " << T;
    matmul(a.data(), x.data(), T, q->w, p1.ctx);
    matmul(c.data(), x.data(), T, q->w, p2.ctx);
    EXPECT_EQ(a, c) << "matmul T " << T;
  }
}

// matmul() on a matrix above the exact-path size: decode (T = 1) and block (T = 9) shapes through
// the dispatching entry point, against the oracle; and a tiny matrix through the exact path, which
// must match dequantize-then-fp32 to fp32 rounding.
TEST(MatmulQ, DispatchMatchesOracle) {
  TestKernels kern(2);
  for (int64_t N : {600, 24}) {
    const int64_t K = 256;
    auto q = make_qweight(N, K, 4, 64, DType::kBF16, 21);
    std::vector<float> wdeq(static_cast<size_t>(N * K));
    for (int64_t n = 0; n < N; ++n) dequantize_row_reference(q->w, n, wdeq.data() + n * K);
    for (int64_t T : {1, 9}) {
      const std::vector<float> x = random_x(T, K, 22);
      std::vector<double> ref(static_cast<size_t>(T * N));
      double max_ref = 0;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t n = 0; n < N; ++n) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += static_cast<double>(x[t * K + k]) * wdeq[n * K + k];
          ref[t * N + n] = s;
          max_ref = std::max(max_ref, std::fabs(s));
        }
      std::vector<float> got(static_cast<size_t>(T * N), NAN);
      matmul(got.data(), x.data(), T, q->w, kern.ctx);
      expect_close(got, ref, x, wdeq, T, N, K, "dispatch N " + std::to_string(N) + " T " + std::to_string(T));
      if (N * K <= (1 << 17)) {
        for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-6 * max_ref) << "exact path " << i;
      }
    }
  }
}

// matmul_multi on weights sharing an input (one preparation, one parallel pass over all rows on the
// VNNI path) equals each weight's own matmul, bit for bit: the same integer sums in the same order.
TEST(MatmulQ, MultiEqualsSeparate) {
  TestKernels kern(2);
  const int64_t K = 384;
  for (int bits : {4, 6, 8}) {
    auto a = make_qweight(600, K, bits, 64, DType::kBF16, 31);
    auto b = make_qweight(37, K, bits, 64, DType::kBF16, 32);
    auto c = make_qweight(371, K, bits, 64, DType::kBF16, 33);
    for (int64_t T : {1, 2, 5, 9}) {
      const std::vector<float> x = random_x(T, K, 34);
      std::vector<float> oa(T * 600), ob(T * 37), oc(T * 371), ra(oa.size()), rb(ob.size()), rc(oc.size());
      const MatmulOut outs[] = {{oa.data(), &a->w}, {ob.data(), &b->w}, {oc.data(), &c->w}};
      matmul_multi(outs, x.data(), T, kern.ctx);
      matmul(ra.data(), x.data(), T, a->w, kern.ctx);
      matmul(rb.data(), x.data(), T, b->w, kern.ctx);
      matmul(rc.data(), x.data(), T, c->w, kern.ctx);
      EXPECT_EQ(oa, ra) << bits << " T " << T;
      EXPECT_EQ(ob, rb) << bits << " T " << T;
      EXPECT_EQ(oc, rc) << bits << " T " << T;
    }
  }
}

// matmul_grouped computes every output's rows group by group, each group's fn seeing its rows
// ready, and its outputs equal matmul_multi's bit for bit, for quantized and dense weights, on any
// thread count; fn gets a worker context whose kernels stay on its thread.
TEST(MatmulQ, GroupedEqualsMulti) {
  const int64_t K = 384, G = 4;
  auto a = make_qweight(512, K, 4, 64, DType::kBF16, 41);
  auto b = make_qweight(128, K, 8, 64, DType::kBF16, 42);
  std::vector<float> dense_w(static_cast<size_t>(128 * K));
  for (size_t i = 0; i < dense_w.size(); ++i) dense_w[i] = std::sin(0.37f * static_cast<float>(i));
  Weight d;
  d.dtype = DType::kF32;
  d.n_out = 128;
  d.n_in = K;
  d.data = dense_w.data();
  const std::vector<float> x = random_x(1, K, 43);
  for (int threads : {1, 2, 3})
    for (const Weight* second : {static_cast<const Weight*>(&b->w), static_cast<const Weight*>(&d)}) {
      TestKernels kern(threads);
      std::vector<float> ra(512), rb(128), ga(512, NAN), gb(128, NAN);
      const MatmulOut whole[] = {{ra.data(), &a->w}, {rb.data(), second}};
      matmul_multi(whole, x.data(), 1, kern.ctx);
      const MatmulOut outs[] = {{ga.data(), &a->w}, {gb.data(), second}};
      std::vector<int> seen(G, 0);
      matmul_grouped(outs, x.data(), G, [&](int64_t g, const KernelContext& wctx) {
        EXPECT_FALSE(wctx.can_parallelize());
        ++seen[static_cast<size_t>(g)];
        for (int64_t r = g * 128; r < (g + 1) * 128; ++r) EXPECT_EQ(ga[r], ra[r]) << "group " << g << " row " << r;
        for (int64_t r = g * 32; r < (g + 1) * 32; ++r) EXPECT_EQ(gb[r], rb[r]) << "group " << g << " row " << r;
      }, kern.ctx);
      EXPECT_EQ(seen, std::vector<int>(G, 1)) << threads << " threads: each group once";
      EXPECT_EQ(ga, ra);
      EXPECT_EQ(gb, rb);
    }
}

// Forwards repeat their matmul sequence; the context records it to hand an idle worker the next
// call's weights (prefetch only). Repeating, changing and interleaving sequences on one scratch
// never changes a result.
TEST(MatmulQ, TracedSequencesKeepResults) {
  const int64_t K = 256;
  auto a = make_qweight(300, K, 4, 64, DType::kBF16, 51);
  auto b = make_qweight(200, K, 4, 64, DType::kBF16, 52);
  ThreadPool pool(2);
  KernelScratch scratch;
  std::vector<float> ra(300), rb(200);
  const std::vector<float> x = random_x(1, K, 53);
  {
    TestKernels ref(1);
    matmul(ra.data(), x.data(), 1, a->w, ref.ctx);
    matmul(rb.data(), x.data(), 1, b->w, ref.ctx);
  }
  for (int forward = 0; forward < 6; ++forward) {
    const KernelContext ctx(pool, scratch);
    std::vector<float> ya(300, NAN), yb(200, NAN);
    if (forward % 3 == 2) {  // another order: the trace is re-recorded from the first difference
      matmul(yb.data(), x.data(), 1, b->w, ctx);
      matmul(ya.data(), x.data(), 1, a->w, ctx);
    } else {
      matmul(ya.data(), x.data(), 1, a->w, ctx);
      matmul(yb.data(), x.data(), 1, b->w, ctx);
    }
    EXPECT_EQ(ya, ra) << "forward " << forward;
    EXPECT_EQ(yb, rb) << "forward " << forward;
  }
}

// All-zero activations give exactly zero (the per-row scale must not divide by zero).
TEST(MatmulQ, ZeroActivations) {
  auto q = make_qweight(17, 128, 4, 32, DType::kBF16, 8);
  std::vector<float> x(2 * 128, 0.f), out(2 * 17, NAN);
  TestKernels kern(2);
  matmul_q_highway(out.data(), x.data(), 2, q->w, kern.ctx);
  for (float v : out) EXPECT_EQ(v, 0.f);
}

}  // namespace
}  // namespace optiq
