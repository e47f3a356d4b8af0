// The packed (row-interleaved) AVX-512 VNNI decode kernel: agreement with the integer paths, row and
// weight independence, claims over any thread count, and row slices. Skipped, saying so, on CPUs
// without AVX-512 VNNI (no packed copies are made there).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/huge_pages.h"
#include "kernels/x86/matmul_q_packed.h"
#include "kernels/x86/matmul_q_vnni.h"
#include "tests/kernels/matmul_q_test_util.h"

namespace optiq {
namespace {

TEST(MatmulQPacked, NothingIsPackableWithoutVnni) {
  if (vnni_available()) GTEST_SKIP() << "this CPU has AVX-512 VNNI: the other tests cover packing";
  EXPECT_FALSE(packable(make_qweight(32, 128, 4, 64, DType::kBF16, 1)->w));
}

// The packed (row-interleaved) decode kernel forms the same int8 activations and int32 group sums as
// the Highway path: for every packable bits × group size × scale dtype, odd N (a padded last block)
// and T from 1 to 9 (4-row tiles and their remainders), it agrees to fp32 rounding.
TEST(MatmulQPacked, AgreesWithIntegerPaths) {
  OPTIQ_SKIP_UNLESS_CPU(vnni_available(), "AVX-512 VNNI");
  TestKernels kern(2);
  for (int bits : {2, 4, 8})
    for (int gs : {32, 64, 128})
      for (DType sdt : {DType::kBF16, DType::kF32}) {
        const int64_t N = 83, K = 5 * gs;
        auto q = make_qweight(N, K, bits, gs, sdt, 7u + bits * 3 + gs);
        ASSERT_EQ(packable(q->w), bits != 2) << "bits " << bits;
        if (!packable(q->w)) continue;
        HugePageArena arena;
        q->w.packed = pack_rows(q->w, arena);
        const std::vector<float> wdeq = dequantized(q->w);
        for (int64_t T : {1, 2, 5, 9}) {
          const std::vector<float> x = random_x(T, K, 17u + static_cast<uint32_t>(T));
          std::vector<float> hw(static_cast<size_t>(T * N)), got(static_cast<size_t>(T * N), NAN);
          matmul_q_highway(hw.data(), x.data(), T, q->w, kern.ctx);
          const MatmulOut o{got.data(), &q->w};
          matmul_q_packed({&o, 1}, x.data(), T, kern.ctx);
          expect_same_integer_sums(got, hw, x, wdeq, T, N, K,
                                   "bits " + std::to_string(bits) + " gs " + std::to_string(gs) + " scales " +
                                       dtype_name(sdt) + " T " + std::to_string(T));
          if (HasFatalFailure()) return;
        }
      }
}

// A T-row call computes each row exactly as a one-row call does (self-speculation's verify forward
// runs T rows through the kernel AR decode runs one row at a time through), and several weights in
// one call (q/k/v) equal separate calls.
TEST(MatmulQPacked, RowsAndWeightsAreIndependent) {
  OPTIQ_SKIP_UNLESS_CPU(vnni_available(), "AVX-512 VNNI");
  TestKernels kern(2);
  const int64_t K = 384, T = 11;
  HugePageArena arena;
  auto a = make_qweight(700, K, 4, 64, DType::kBF16, 5);
  auto b = make_qweight(130, K, 8, 64, DType::kBF16, 6);
  a->w.packed = pack_rows(a->w, arena);
  b->w.packed = pack_rows(b->w, arena);
  const std::vector<float> x = random_x(T, K, 3);
  std::vector<float> ya(static_cast<size_t>(T * 700)), yb(static_cast<size_t>(T * 130));
  const MatmulOut both[] = {{ya.data(), &a->w}, {yb.data(), &b->w}};
  matmul_q_packed(both, x.data(), T, kern.ctx);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float> ra(700), rb(130);
    const MatmulOut oa{ra.data(), &a->w}, ob{rb.data(), &b->w};
    matmul_q_packed({&oa, 1}, x.data() + t * K, 1, kern.ctx);
    matmul_q_packed({&ob, 1}, x.data() + t * K, 1, kern.ctx);
    for (int64_t n = 0; n < 700; ++n) ASSERT_EQ(ya[t * 700 + n], ra[n]) << "t " << t << " n " << n;
    for (int64_t n = 0; n < 130; ++n) ASSERT_EQ(yb[t * 130 + n], rb[n]) << "t " << t << " n " << n;
  }
}

// Threads claim runs of blocks from both ends of the call's work, shorter near the end (down to
// single blocks, walked as pieces of 1-3); every output is written once and the same whatever the
// thread count, with or without a prefetch hint first.
TEST(MatmulQPacked, ClaimsCoverEveryRowForAnyThreadCount) {
  OPTIQ_SKIP_UNLESS_CPU(vnni_available(), "AVX-512 VNNI");
  const int64_t K = 768, Na = 2000, Nb = 300;  // a: 125 blocks, ~8 claims; b: a partial last block
  HugePageArena arena;
  auto a = make_qweight(Na, K, 4, 64, DType::kBF16, 21);
  auto b = make_qweight(Nb, K, 8, 64, DType::kBF16, 22);
  a->w.packed = pack_rows(a->w, arena);
  b->w.packed = pack_rows(b->w, arena);
  for (int64_t T : {1, 3}) {
    const std::vector<float> x = random_x(T, K, 9u + static_cast<uint32_t>(T));
    std::vector<float> ra(static_cast<size_t>(T * Na)), rb(static_cast<size_t>(T * Nb));
    {
      TestKernels one(1);
      const MatmulOut outs[] = {{ra.data(), &a->w}, {rb.data(), &b->w}};
      matmul_q_packed(outs, x.data(), T, one.ctx);
    }
    for (int threads : {2, 3, 5}) {
      TestKernels kern(threads);
      for (bool hint : {false, true}) {
        std::vector<float> ya(ra.size(), NAN), yb(rb.size(), NAN);
        const MatmulOut outs[] = {{ya.data(), &a->w}, {yb.data(), &b->w}};
        if (hint) {
          ThreadPool::Span spans[ThreadPool::kMaxPrefetchSpans];
          const int n = matmul_q_packed_prefetch_spans(outs, threads, spans);
          kern.pool.prefetch_while_idle({spans, static_cast<size_t>(n)});
        }
        matmul_q_packed(outs, x.data(), T, kern.ctx);
        for (size_t i = 0; i < ra.size(); ++i) ASSERT_EQ(ya[i], ra[i]) << threads << " threads, T " << T << " i " << i;
        for (size_t i = 0; i < rb.size(); ++i) ASSERT_EQ(yb[i], rb[i]) << threads << " threads, T " << T << " i " << i;
      }
    }
  }
}

// A decode step computes each KV group's q/k/v rows as slices on its own thread: every slice row
// equals the whole matmul's, and slices that do not start on a 64-row boundary are refused.
TEST(MatmulQPacked, SlicesEqualTheWholeMatmul) {
  OPTIQ_SKIP_UNLESS_CPU(vnni_available(), "AVX-512 VNNI");
  const int64_t K = 384, Na = 200, Nb = 128;  // a ends in a partial block
  HugePageArena arena;
  auto a = make_qweight(Na, K, 4, 64, DType::kBF16, 31);
  auto b = make_qweight(Nb, K, 8, 64, DType::kBF16, 32);
  a->w.packed = pack_rows(a->w, arena);
  b->w.packed = pack_rows(b->w, arena);
  TestKernels kern(2);
  for (int64_t T : {1, 2}) {
    const std::vector<float> x = random_x(T, K, 40u + static_cast<uint32_t>(T));
    std::vector<float> ra(static_cast<size_t>(T * Na)), rb(static_cast<size_t>(T * Nb));
    const MatmulOut whole[] = {{ra.data(), &a->w}, {rb.data(), &b->w}};
    matmul_q_packed(whole, x.data(), T, kern.ctx);
    std::vector<float> ya(ra.size(), NAN), yb(rb.size(), NAN);
    for (int64_t r0 : {0, 64, 128}) {  // a in three slices (the last one to the end), b in two
      const int64_t r1 = r0 == 128 ? Na : r0 + 64;
      std::vector<RowSlice> slices = {{ya.data(), &a->w, r0, r1}};
      if (r0 < Nb) slices.push_back({yb.data(), &b->w, r0, r0 + 64});
      ASSERT_TRUE(packed_slices_ok(slices));
      matmul_q_packed_slices(slices, x.data(), T, kern.ctx);
    }
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t n = 0; n < Na; ++n) ASSERT_EQ(ya[t * Na + n], ra[t * Na + n]) << "T " << T << " a row " << n;
      for (int64_t n = 0; n < Nb; ++n) ASSERT_EQ(yb[t * Nb + n], rb[t * Nb + n]) << "T " << T << " b row " << n;
    }
  }
  const RowSlice misaligned[] = {{nullptr, &a->w, 16, 64}};
  EXPECT_FALSE(packed_slices_ok(misaligned));
  const RowSlice short_end[] = {{nullptr, &a->w, 64, 100}};
  EXPECT_FALSE(packed_slices_ok(short_end));
}

}  // namespace
}  // namespace optiq
