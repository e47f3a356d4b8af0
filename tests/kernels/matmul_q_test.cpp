// matmul_q / dequantize_row against the scalar oracle, for every bits × group size × scale dtype,
// odd row counts and odd N, on every compiled Highway target this CPU supports.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <hwy/targets.h>

#include "kernels/matmul_q.h"
#include "kernels/matmul_q_amx.h"
#include "kernels/matmul_q_packed.h"
#include "kernels/matmul_q_vnni.h"
#include "kernels/weight.h"

namespace optiq {
namespace {

// Random MLX-affine weight built directly (random packed bytes are a valid code stream for every bit
// width; scales take both signs as MLX's edge-anchored quantizer produces).
struct QWeight {
  std::vector<uint8_t> packed;
  std::vector<uint8_t> scales, biases;
  Weight w;
};

void store_scales(DType t, const std::vector<float>& v, std::vector<uint8_t>* out) {
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

std::unique_ptr<QWeight> make_qweight(int64_t N, int64_t K, int bits, int gs, DType sdt, uint32_t seed) {
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

std::vector<float> random_x(int64_t T, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(T * K));
  for (auto& v : x) v = nd(rng);
  // An outlier channel, as real activations have: the per-group activation scale must cope with it.
  if (K > 5) x[5] = 40.f;
  return x;
}

std::vector<int64_t> targets_under_test() {
  std::vector<int64_t> t = hwy::SupportedAndGeneratedTargets();
  EXPECT_FALSE(t.empty());
  return t;
}

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

// The kernel quantizes activations to int8 per (row, group) (step amax/kActQMax), so against the exact
// oracle |out − ref| <= (amax/(2·kActQMax))·Σ_k|w_k| (amax of the whole row bounds every group's) plus fp32 rounding across steps (bounded by 1e-5 of Σ|x·w|).
// A wrong lane, group or scale mapping misses by orders of magnitude more.
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<float>& x,
                  const std::vector<float>& wdeq, int64_t T, int64_t N, int64_t K, const std::string& what) {
  for (int64_t t = 0; t < T; ++t) {
    double amax = 0;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(static_cast<double>(x[t * K + k])));
    for (int64_t n = 0; n < N; ++n) {
      double wabs = 0, xwabs = 0;
      for (int64_t k = 0; k < K; ++k) {
        wabs += std::fabs(wdeq[n * K + k]);
        xwabs += std::fabs(static_cast<double>(x[t * K + k]) * wdeq[n * K + k]);
      }
      const double tol = amax / (2.0 * kActQMax) * wabs * 1.001 + 1e-5 * xwabs + 1e-6;
      const double d = std::fabs(got[t * N + n] - ref[t * N + n]);
      ASSERT_LE(d, tol) << what << " t " << t << " n " << n << " got " << got[t * N + n] << " ref " << ref[t * N + n];
    }
  }
}

TEST(MatmulQ, MatchesOracleAllTargets) {
  ThreadPool pool(1);  // threading is covered by ThreadCountInvariant; one thread keeps this fast on a busy box
  const std::vector<int64_t> targets = targets_under_test();
  for (int64_t tgt : targets) std::printf("target %s\n", hwy::TargetName(tgt));
  std::printf("AMX %s\n", amx_available() ? "available: tested" : "not available on this machine");
  std::printf("AVX512-VNNI %s\n", vnni_available() ? "available: tested" : "not available on this machine");
  const int64_t N = 37;  // odd: uneven thread split and partial row blocks
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128})
      for (int64_t mult : {3, 7}) {  // K = 3·gs leaves partial SIMD steps for every layout
        const int64_t K = gs * mult;
        const DType sdt = (bits + gs) % 3 == 0 ? DType::kF16 : ((bits + gs) % 3 == 1 ? DType::kF32 : DType::kBF16);
        auto q = make_qweight(N, K, bits, gs, sdt, 1000u + bits * 7 + gs + mult);
        std::vector<float> wdeq(static_cast<size_t>(N * K));
        for (int64_t n = 0; n < N; ++n) dequantize_row_reference(q->w, n, wdeq.data() + n * K);
        for (int64_t T : {1, 3, 7, 8, 33, 64}) {
          if (mult == 7 && T > 8) continue;  // the long K is covered at small T; keeps the suite fast
          const std::vector<float> x = random_x(T, K, 77u + static_cast<uint32_t>(T));
          std::vector<double> ref(static_cast<size_t>(T * N));
          for (int64_t t = 0; t < T; ++t)
            for (int64_t n = 0; n < N; ++n) {
              double s = 0;
              for (int64_t k = 0; k < K; ++k) s += static_cast<double>(x[t * K + k]) * wdeq[n * K + k];
              ref[t * N + n] = s;
            }
          const std::string shape = " bits " + std::to_string(bits) + " gs " + std::to_string(gs) + " K " +
                                    std::to_string(K) + " T " + std::to_string(T);
          for (int64_t tgt : targets) {
            hwy::SetSupportedTargetsForTest(tgt);
            std::vector<float> got(static_cast<size_t>(T * N), NAN);
            matmul_q_highway(got.data(), x.data(), T, q->w, pool);
            hwy::SetSupportedTargetsForTest(0);
            expect_close(got, ref, x, wdeq, T, N, K, std::string(hwy::TargetName(tgt)) + shape);
            if (HasFatalFailure()) return;
          }
          if (amx_available()) {
            std::vector<float> got(static_cast<size_t>(T * N), NAN);
            matmul_q_amx(got.data(), x.data(), T, q->w, pool);
            expect_close(got, ref, x, wdeq, T, N, K, "AMX" + shape);
            if (HasFatalFailure()) return;
          }
          if (vnni_available()) {
            std::vector<float> got(static_cast<size_t>(T * N), NAN);
            const MatmulOut o{got.data(), &q->w};
            matmul_q_vnni({&o, 1}, x.data(), T, pool);
            expect_close(got, ref, x, wdeq, T, N, K, "VNNI" + shape);
            if (HasFatalFailure()) return;
          }
          std::vector<float> got(static_cast<size_t>(T * N), NAN);  // the dispatching entry point
          matmul(got.data(), x.data(), T, q->w, pool);
          expect_close(got, ref, x, wdeq, T, N, K, "matmul" + shape);
          if (HasFatalFailure()) return;
        }
      }
}

// The result must not depend on the thread count (each output is computed by exactly one thread).
TEST(MatmulQ, ThreadCountInvariant) {
  auto q = make_qweight(101, 256, 4, 64, DType::kBF16, 5);
  for (int64_t T : {1, 3, 9, 40}) {
    const std::vector<float> x = random_x(T, 256, 6);
    ThreadPool p1(1), p2(2);
    std::vector<float> a(T * 101), b(T * 101);
    matmul_q_highway(a.data(), x.data(), T, q->w, p1);
    matmul_q_highway(b.data(), x.data(), T, q->w, p2);
    EXPECT_EQ(a, b) << "highway T " << T;
    if (amx_available()) {
      matmul_q_amx(a.data(), x.data(), T, q->w, p1);
      matmul_q_amx(b.data(), x.data(), T, q->w, p2);
      EXPECT_EQ(a, b) << "AMX T " << T;
    }
    if (vnni_available()) {
      const MatmulOut oa{a.data(), &q->w}, ob{b.data(), &q->w};
      matmul_q_vnni({&oa, 1}, x.data(), T, p1);
      matmul_q_vnni({&ob, 1}, x.data(), T, p2);
      EXPECT_EQ(a, b) << "VNNI T " << T;
    }
  }
}

// The Highway, VNNI and AMX kernels quantize activations identically and form the same int32 group
// sums; only the fp32 order of the scale-and-add epilogue differs. So they agree to fp32 rounding
// (1e-5 of Σ|x·w|), far inside the activation-rounding bound the oracle tests allow. Self-speculation
// relies on this: its verify forward (a block, AMX) must pick the tokens greedy AR (T = 1, VNNI) picks.
TEST(MatmulQ, IntegerPathsAgree) {
  ThreadPool pool(2);
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128}) {
      const int64_t N = 67, K = 6 * gs, T = 33;
      auto q = make_qweight(N, K, bits, gs, DType::kBF16, 31u + bits * 5 + gs);
      std::vector<float> wdeq(static_cast<size_t>(N * K));
      for (int64_t n = 0; n < N; ++n) dequantize_row_reference(q->w, n, wdeq.data() + n * K);
      const std::vector<float> x = random_x(T, K, 91u + static_cast<uint32_t>(bits));
      std::vector<float> hw(static_cast<size_t>(T * N));
      matmul_q_highway(hw.data(), x.data(), T, q->w, pool);
      std::vector<std::pair<const char*, std::vector<float>>> others;
      if (amx_available()) {
        std::vector<float> got(static_cast<size_t>(T * N), NAN);
        matmul_q_amx(got.data(), x.data(), T, q->w, pool);
        others.emplace_back("AMX", std::move(got));
      }
      if (vnni_available()) {
        std::vector<float> got(static_cast<size_t>(T * N), NAN);
        for (int64_t t = 0; t < T; ++t) {  // one row at a time, as AR decode calls it
          const MatmulOut o{got.data() + t * N, &q->w};
          matmul_q_vnni({&o, 1}, x.data() + t * K, 1, pool);
        }
        others.emplace_back("VNNI", std::move(got));
      }
      for (const auto& [name, got] : others)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t n = 0; n < N; ++n) {
            double mag = 0;
            for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(x[t * K + k]) * wdeq[n * K + k]);
            ASSERT_LE(std::fabs(got[t * N + n] - hw[t * N + n]), 1e-5 * mag)
                << name << " bits " << bits << " gs " << gs << " t " << t << " n " << n;
          }
    }
}

// The packed (row-interleaved) decode kernel forms the same int8 activations and int32 group sums as
// the Highway path: for every packable bits × group size × scale dtype, odd N (a padded last block)
// and T from 1 to 9 (4-row tiles and their remainders), it agrees to fp32 rounding.
TEST(MatmulQPacked, AgreesWithIntegerPaths) {
  ThreadPool pool(2);
  for (int bits : {2, 4, 8})
    for (int gs : {32, 64, 128})
      for (DType sdt : {DType::kBF16, DType::kF32}) {
        const int64_t N = 83, K = 5 * gs;
        auto q = make_qweight(N, K, bits, gs, sdt, 7u + bits * 3 + gs);
        ASSERT_EQ(packable(q->w), vnni_available() && bits != 2) << "bits " << bits;
        if (!packable(q->w)) continue;
        HugePageArena arena;
        q->w.packed = pack_rows(q->w, arena);
        std::vector<float> wdeq(static_cast<size_t>(N * K));
        for (int64_t n = 0; n < N; ++n) dequantize_row_reference(q->w, n, wdeq.data() + n * K);
        for (int64_t T : {1, 2, 5, 9}) {
          const std::vector<float> x = random_x(T, K, 17u + static_cast<uint32_t>(T));
          std::vector<float> hw(static_cast<size_t>(T * N)), got(static_cast<size_t>(T * N), NAN);
          matmul_q_highway(hw.data(), x.data(), T, q->w, pool);
          const MatmulOut o{got.data(), &q->w};
          matmul_q_packed({&o, 1}, x.data(), T, pool);
          for (int64_t t = 0; t < T; ++t)
            for (int64_t n = 0; n < N; ++n) {
              double mag = 0;
              for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(x[t * K + k]) * wdeq[n * K + k]);
              ASSERT_LE(std::fabs(got[t * N + n] - hw[t * N + n]), 1e-5 * mag)
                  << "bits " << bits << " gs " << gs << " scales " << dtype_name(sdt) << " T " << T << " t " << t
                  << " n " << n;
            }
        }
      }
}

// A T-row call computes each row exactly as a one-row call does (self-speculation's verify forward
// runs T rows through the kernel AR decode runs one row at a time through), and several weights in
// one call (q/k/v) equal separate calls.
TEST(MatmulQPacked, RowsAndWeightsAreIndependent) {
  if (!vnni_available()) {
    ASSERT_FALSE(packable(make_qweight(32, 128, 4, 64, DType::kBF16, 1)->w));
    return;
  }
  ThreadPool pool(2);
  const int64_t K = 384, T = 11;
  HugePageArena arena;
  auto a = make_qweight(700, K, 4, 64, DType::kBF16, 5);
  auto b = make_qweight(130, K, 8, 64, DType::kBF16, 6);
  a->w.packed = pack_rows(a->w, arena);
  b->w.packed = pack_rows(b->w, arena);
  const std::vector<float> x = random_x(T, K, 3);
  std::vector<float> ya(static_cast<size_t>(T * 700)), yb(static_cast<size_t>(T * 130));
  const MatmulOut both[] = {{ya.data(), &a->w}, {yb.data(), &b->w}};
  matmul_q_packed(both, x.data(), T, pool);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float> ra(700), rb(130);
    const MatmulOut oa{ra.data(), &a->w}, ob{rb.data(), &b->w};
    matmul_q_packed({&oa, 1}, x.data() + t * K, 1, pool);
    matmul_q_packed({&ob, 1}, x.data() + t * K, 1, pool);
    for (int64_t n = 0; n < 700; ++n) ASSERT_EQ(ya[t * 700 + n], ra[n]) << "t " << t << " n " << n;
    for (int64_t n = 0; n < 130; ++n) ASSERT_EQ(yb[t * 130 + n], rb[n]) << "t " << t << " n " << n;
  }
}

// Threads claim runs of blocks from both ends of the call's work, shorter near the end (down to
// single blocks, walked as pieces of 1-3); every output is written once and the same whatever the
// thread count, with or without a prefetch hint first.
TEST(MatmulQPacked, ClaimsCoverEveryRowForAnyThreadCount) {
  if (!vnni_available()) {
    ASSERT_FALSE(packable(make_qweight(32, 128, 4, 64, DType::kBF16, 1)->w));
    return;
  }
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
      ThreadPool one(1);
      const MatmulOut outs[] = {{ra.data(), &a->w}, {rb.data(), &b->w}};
      matmul_q_packed(outs, x.data(), T, one);
    }
    for (int threads : {2, 3, 5}) {
      ThreadPool pool(threads);
      for (bool hint : {false, true}) {
        std::vector<float> ya(ra.size(), NAN), yb(rb.size(), NAN);
        const MatmulOut outs[] = {{ya.data(), &a->w}, {yb.data(), &b->w}};
        if (hint) matmul_prefetch_hint(outs, T, pool);
        matmul_q_packed(outs, x.data(), T, pool);
        for (size_t i = 0; i < ra.size(); ++i) ASSERT_EQ(ya[i], ra[i]) << threads << " threads, T " << T << " i " << i;
        for (size_t i = 0; i < rb.size(); ++i) ASSERT_EQ(yb[i], rb[i]) << threads << " threads, T " << T << " i " << i;
      }
    }
  }
}

// A decode step computes each KV group's q/k/v rows as slices on its own thread: every slice row
// equals the whole matmul's, and slices that do not start on a 64-row boundary are refused.
TEST(MatmulQPacked, SlicesEqualTheWholeMatmul) {
  if (!vnni_available()) {
    ASSERT_FALSE(packable(make_qweight(32, 128, 4, 64, DType::kBF16, 1)->w));
    return;
  }
  const int64_t K = 384, Na = 200, Nb = 128;  // a ends in a partial block
  HugePageArena arena;
  auto a = make_qweight(Na, K, 4, 64, DType::kBF16, 31);
  auto b = make_qweight(Nb, K, 8, 64, DType::kBF16, 32);
  a->w.packed = pack_rows(a->w, arena);
  b->w.packed = pack_rows(b->w, arena);
  ThreadPool pool(2);
  for (int64_t T : {1, 2}) {
    const std::vector<float> x = random_x(T, K, 40u + static_cast<uint32_t>(T));
    std::vector<float> ra(static_cast<size_t>(T * Na)), rb(static_cast<size_t>(T * Nb));
    const MatmulOut whole[] = {{ra.data(), &a->w}, {rb.data(), &b->w}};
    matmul_q_packed(whole, x.data(), T, pool);
    std::vector<float> ya(ra.size(), NAN), yb(rb.size(), NAN);
    for (int64_t r0 : {0, 64, 128}) {  // a in three slices (the last one to the end), b in two
      const int64_t r1 = r0 == 128 ? Na : r0 + 64;
      std::vector<RowSlice> slices = {{ya.data(), &a->w, r0, r1}};
      if (r0 < Nb) slices.push_back({yb.data(), &b->w, r0, r0 + 64});
      ASSERT_TRUE(packed_slices_ok(slices));
      matmul_q_packed_slices(slices, x.data(), T);
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

// matmul() on a matrix above the exact-path size: decode (T = 1) and block (T = 9) shapes through
// the dispatching entry point, against the oracle; and a tiny matrix through the exact path, which
// must match dequantize-then-fp32 to fp32 rounding.
TEST(MatmulQ, DispatchMatchesOracle) {
  ThreadPool pool(2);
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
      matmul(got.data(), x.data(), T, q->w, pool);
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
  ThreadPool pool(2);
  const int64_t K = 384;
  for (int bits : {4, 6, 8}) {
    auto a = make_qweight(600, K, bits, 64, DType::kBF16, 31);
    auto b = make_qweight(37, K, bits, 64, DType::kBF16, 32);
    auto c = make_qweight(371, K, bits, 64, DType::kBF16, 33);
    for (int64_t T : {1, 2, 5, 9}) {
      const std::vector<float> x = random_x(T, K, 34);
      std::vector<float> oa(T * 600), ob(T * 37), oc(T * 371), ra(oa.size()), rb(ob.size()), rc(oc.size());
      const MatmulOut outs[] = {{oa.data(), &a->w}, {ob.data(), &b->w}, {oc.data(), &c->w}};
      matmul_multi(outs, x.data(), T, pool);
      matmul(ra.data(), x.data(), T, a->w, pool);
      matmul(rb.data(), x.data(), T, b->w, pool);
      matmul(rc.data(), x.data(), T, c->w, pool);
      EXPECT_EQ(oa, ra) << bits << " T " << T;
      EXPECT_EQ(ob, rb) << bits << " T " << T;
      EXPECT_EQ(oc, rc) << bits << " T " << T;
    }
  }
}

// All-zero activations give exactly zero (the per-row scale must not divide by zero).
TEST(MatmulQ, ZeroActivations) {
  auto q = make_qweight(17, 128, 4, 32, DType::kBF16, 8);
  std::vector<float> x(2 * 128, 0.f), out(2 * 17, NAN);
  ThreadPool pool(2);
  matmul_q_highway(out.data(), x.data(), 2, q->w, pool);
  for (float v : out) EXPECT_EQ(v, 0.f);
  if (amx_available()) {
    std::fill(out.begin(), out.end(), NAN);
    matmul_q_amx(out.data(), x.data(), 2, q->w, pool);
    for (float v : out) EXPECT_EQ(v, 0.f);
  }
  if (vnni_available()) {
    std::fill(out.begin(), out.end(), NAN);
    const MatmulOut o{out.data(), &q->w};
    matmul_q_vnni({&o, 1}, x.data(), 2, pool);
    for (float v : out) EXPECT_EQ(v, 0.f);
  }
}

}  // namespace
}  // namespace optiq
