// Highway ops (ops_simd.cpp) against their scalar references (ops.cpp), odd sizes, every compiled
// target this CPU supports. Tolerance 1e-5 relative (plus 1e-6 absolute): the SIMD versions only
// reassociate fp32 sums and use vector exp/tanh accurate to a few ulp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <hwy/targets.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tests/kernels/kernel_test_util.h"

namespace optiq {
namespace {

void expect_near_rel(const std::vector<float>& got, const std::vector<float>& ref, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], ref[i], 1e-5 * std::fabs(ref[i]) + 1e-6) << what << " at " << i;
}

// The single-threaded context of the serial checks.
TestKernels& serial() {
  static TestKernels k(1);
  return k;
}

// Runs `body(target_name)` once per compiled target supported here.
template <class F>
void for_each_target(F body) {
  for (int64_t tgt : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(tgt);
    body(std::string(hwy::TargetName(tgt)));
    hwy::SetSupportedTargetsForTest(0);
  }
}

TEST(Ops, ElementwiseMatchReference) {
  for (int64_t n : {1, 7, 16, 37, 1000}) {
    auto g = randn(n, 1, 4.f), u = randn(n, 2), y = randn(n, 3);
    g[0] = -100.f;  // exp overflow side of silu
    std::vector<float> r(n), a(n);
    silu_mul_reference(r.data(), g.data(), u.data(), n);
    std::vector<float> rc = g, ra = g;
    softcap_inplace_reference(rc.data(), n, 30.f);
    add_inplace_reference(ra.data(), y.data(), n);
    for_each_target([&](const std::string& tn) {
      silu_mul(a.data(), g.data(), u.data(), n, serial().ctx);
      expect_near_rel(a, r, tn + " silu_mul n " + std::to_string(n));
      std::vector<float> c = g;
      softcap_inplace(c.data(), n, 30.f, serial().ctx);
      expect_near_rel(c, rc, tn + " softcap n " + std::to_string(n));
      std::vector<float> s = g;
      add_inplace(s.data(), y.data(), n, serial().ctx);
      expect_near_rel(s, ra, tn + " add n " + std::to_string(n));
    });
  }
}

TEST(Ops, RmsNormMatchesReference) {
  for (int64_t C : {20, 64, 77, 768}) {
    const int64_t T = 3;
    auto x = randn(T * C, 4, 3.f);
    auto wv = randn(C, 5);
    std::vector<uint16_t> wb(C);
    for (int64_t c = 0; c < C; ++c) wb[c] = f32_to_bf16(wv[c]);
    Weight wf{DType::kF32, C, 1, wv.data(), {}, nullptr, nullptr};
    Weight wbf{DType::kBF16, C, 1, wb.data(), {}, nullptr, nullptr};
    Weight none{DType::kF32, C, 1, nullptr, {}, nullptr, nullptr};
    for (const Weight* w : {&wf, &wbf, &none}) {
      std::vector<float> r(T * C);
      rms_norm_reference(r.data(), x.data(), T, C, *w, 1e-6f);
      for_each_target([&](const std::string& tn) {
        std::vector<float> a = x;  // in place, as models call it
        rms_norm(a.data(), a.data(), T, C, *w, 1e-6f, serial().ctx);
        expect_near_rel(a, r, tn + " rms_norm C " + std::to_string(C));
      });
    }
  }
}

TEST(Ops, Conv1dDwMatchesReference) {
  TestKernels pooled(2);
  // 700 × 33 rows takes the row-parallel path; so do 6000 × 3 rows, whose second part's P rows
  // before it mix the state and the first row.
  for (int64_t C : {5, 64, 81, 700, 6000}) {
    for (int64_t T : {1, 3, 33}) {
      if (C == 6000 && T != 3) continue;
      const int64_t Kw = 4;
      auto x = randn(T * C, 6), w = randn(C * Kw, 7, 0.3f), st0 = randn((Kw - 1) * C, 8);
      std::vector<float> rs = st0, ry(T * C), rw((Kw - 1 + T) * C);
      conv1d_dw_reference(ry.data(), x.data(), T, C, w.data(), Kw, rs.data(), true, rw.data());
      std::vector<float> wt(C * Kw);  // the fast kernel takes tap-major taps
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < Kw; ++j) wt[j * C + c] = w[c * Kw + j];
      for_each_target([&](const std::string& tn) {
        std::vector<float> s = st0, y = x, win((Kw - 1 + T) * C);
        conv1d_dw(y.data(), y.data(), T, C, wt.data(), Kw, s.data(), true, win.data(), serial().ctx);  // y aliases x
        const std::string what = tn + " conv C " + std::to_string(C) + " T " + std::to_string(T);
        expect_near_rel(y, ry, what);
        expect_near_rel(s, rs, what + " state");
        expect_near_rel(win, rw, what + " window");
        std::vector<float> sp = st0, yp = x, winp((Kw - 1 + T) * C);
        conv1d_dw(yp.data(), yp.data(), T, C, wt.data(), Kw, sp.data(), true, winp.data(), pooled.ctx);
        EXPECT_EQ(yp, y) << what << " with a pool";  // rows are independent: bit-identical
        EXPECT_EQ(sp, s) << what << " with a pool";
        // Read-only calls (no window, state kept), in place and out of place, serial and split.
        for (const KernelContext* kc : {&serial().ctx, &pooled.ctx}) {
          const bool pp = kc == &pooled.ctx;
          std::vector<float> sr = st0, yr = x, yo(T * C, NAN);
          conv1d_dw(yr.data(), yr.data(), T, C, wt.data(), Kw, sr.data(), false, nullptr, *kc);
          conv1d_dw(yo.data(), x.data(), T, C, wt.data(), Kw, sr.data(), false, nullptr, *kc);
          EXPECT_EQ(yr, y) << what << " read-only in place" << (pp ? " with a pool" : "");
          EXPECT_EQ(yo, y) << what << " read-only" << (pp ? " with a pool" : "");
          EXPECT_EQ(sr, st0) << what << " read-only leaves the state";
        }
        if (T == 1) {  // a decode step from row pointers (the model's ring)
          std::vector<float> y1(C);
          const float* rows[4] = {st0.data(), st0.data() + C, st0.data() + 2 * C, x.data()};
          conv1d_dw_row(y1.data(), rows, C, wt.data(), Kw, 0, serial().ctx);
          EXPECT_EQ(y1, y) << what << " conv1d_dw_row";
        }
      });
    }
  }
}

// Decode steps convolve slices of a row (a KV group's channels): each channel's result must not depend
// on the slice, including channels that fall in a slice's vector tail.
TEST(Ops, Conv1dDwRowSlicesEqualWholeRow) {
  const int64_t C = 81, Kw = 4;
  auto x = randn(C, 41), w = randn(C * Kw, 42, 0.3f), st = randn((Kw - 1) * C, 43);
  std::vector<uint16_t> wb(C * Kw);
  for (size_t i = 0; i < wb.size(); ++i) wb[i] = f32_to_bf16(w[i]);
  for (ConvTaps taps : {ConvTaps(w.data()), ConvTaps::from_bf16(wb.data())}) {
    for_each_target([&](const std::string& tn) {
      const float* rows[4] = {st.data(), st.data() + C, st.data() + 2 * C, x.data()};
      std::vector<float> whole(C);
      conv1d_dw_row(whole.data(), rows, C, taps, Kw, 0, serial().ctx);
      for (int64_t c0 : {0, 3, 16, 17, 64}) {
        for (int64_t n : {1, 5, 16, 17}) {
          if (c0 + n > C) continue;
          const float* srows[4] = {rows[0] + c0, rows[1] + c0, rows[2] + c0, rows[3] + c0};
          std::vector<float> part(n);
          conv1d_dw_row(part.data(), srows, n, taps.at(c0), Kw, C, serial().ctx);
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(part[i], whole[c0 + i]) << tn << (taps.bf16 ? " bf16" : " f32") << " c0 " << c0 << " n " << n;
        }
      }
    });
  }
}

// rope_qk keeps the last call's angles: a call with other positions, another inv_freq or another
// length must still rotate exactly as the formula says.
TEST(Ops, RopeMatchesFormulaAcrossCalls) {
  const int64_t D = 8, half = D / 2, Hq = 3, Hk = 1;
  const std::vector<float> f1 = {1.0f, 0.1f, 0.01f, 0.001f}, f2 = {0.5f, 0.1f, 0.01f, 0.001f};
  struct Call {
    std::vector<int64_t> pos;
    const std::vector<float>* inv_freq;
  };
  const Call calls[] = {{{7}, &f1}, {{7}, &f1}, {{8}, &f1}, {{8}, &f2}, {{8, 9}, &f2}, {{8}, &f2}, {{8}, &f1}};
  TestKernels kern(1);  // one scratch across the calls: the angles kept from the last one
  for (const Call& c : calls) {
    const int64_t T = static_cast<int64_t>(c.pos.size());
    auto q = randn(T * Hq * D, 31), k = randn(T * Hk * D, 32);
    std::vector<float> gq = q, gk = k;
    rope_qk(gq.data(), Hq, gk.data(), Hk, T, D, c.pos.data(), c.inv_freq->data(), half, kern.ctx);
    for (auto [x, got, H] : {std::tuple{&q, &gq, Hq}, std::tuple{&k, &gk, Hk}})
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i = 0; i < half; ++i) {
            const float a = static_cast<float>(c.pos[t]) * (*c.inv_freq)[i];
            const float* r = x->data() + (t * H + h) * D;
            const float* g = got->data() + (t * H + h) * D;
            // A stale angle is off by O(1); the tolerance only absorbs fma contraction.
            ASSERT_NEAR(g[i], r[i] * std::cos(a) - r[i + half] * std::sin(a), 1e-5) << "pos " << c.pos[t] << " i " << i;
            ASSERT_NEAR(g[i + half], r[i + half] * std::cos(a) + r[i] * std::sin(a), 1e-5) << "pos " << c.pos[t] << " i " << i;
          }
  }
}

// The SIMD rotation on every compiled target: whole vectors of pairs, a vector tail (partial rotary,
// rot_pairs < D/2), and pairs past rot_pairs left untouched.
TEST(Ops, RopeRowsMatchFormulaOnEveryTarget) {
  const int64_t D = 64, half = D / 2, rows = 3;
  for (int64_t rot_pairs : {32, 20, 3}) {
    std::vector<float> cs(rot_pairs), sn(rot_pairs);
    for (int64_t i = 0; i < rot_pairs; ++i) {
      cs[i] = std::cos(0.37f * static_cast<float>(i + 1));
      sn[i] = std::sin(0.37f * static_cast<float>(i + 1));
    }
    const auto x = randn(rows * D, 51);
    for_each_target([&](const std::string& tn) {
      std::vector<float> got = x;
      rope_rows(got.data(), rows, D, cs.data(), sn.data(), rot_pairs);
      for (int64_t h = 0; h < rows; ++h) {
        const float* r = x.data() + h * D;
        const float* g = got.data() + h * D;
        for (int64_t i = 0; i < half; ++i) {
          if (i >= rot_pairs) {
            ASSERT_EQ(g[i], r[i]) << tn << " untouched pair " << i;
            ASSERT_EQ(g[i + half], r[i + half]) << tn << " untouched pair " << i;
            continue;
          }
          // The tolerance only absorbs fma contraction.
          ASSERT_NEAR(g[i], r[i] * cs[i] - r[i + half] * sn[i], 1e-5) << tn << " rot " << rot_pairs << " i " << i;
          ASSERT_NEAR(g[i + half], r[i + half] * cs[i] + r[i] * sn[i], 1e-5) << tn << " rot " << rot_pairs << " i " << i;
        }
      }
    });
  }
}

// bf16 taps (as checkpoints store them) give exactly what the same values in fp32 give.
TEST(Ops, Conv1dDwBf16TapsEqualFp32Taps) {
  TestKernels pooled(2);
  for (int64_t C : {5, 64, 81, 700}) {
    for (int64_t T : {1, 33}) {
      const int64_t Kw = 4;
      auto x = randn(T * C, 16), w = randn(C * Kw, 17, 0.3f), st0 = randn((Kw - 1) * C, 18);
      std::vector<uint16_t> wb(C * Kw);
      std::vector<float> wf(C * Kw);
      for (size_t i = 0; i < wb.size(); ++i) {
        wb[i] = f32_to_bf16(w[i]);
        wf[i] = bf16_to_f32(wb[i]);
      }
      for_each_target([&](const std::string& tn) {
        const std::string what = tn + " C " + std::to_string(C) + " T " + std::to_string(T);
        std::vector<float> sf = st0, yf = x, sb = st0, yb = x;
        conv1d_dw(yf.data(), yf.data(), T, C, wf.data(), Kw, sf.data(), true, nullptr, pooled.ctx);
        conv1d_dw(yb.data(), yb.data(), T, C, ConvTaps::from_bf16(wb.data()), Kw, sb.data(), true, nullptr, pooled.ctx);
        EXPECT_EQ(yb, yf) << what;
        EXPECT_EQ(sb, sf) << what << " state";
        const float* rows[4] = {st0.data(), st0.data() + C, st0.data() + 2 * C, x.data()};
        std::vector<float> rf(C), rb(C);
        conv1d_dw_row(rf.data(), rows, C, wf.data(), Kw, 0, serial().ctx);
        conv1d_dw_row(rb.data(), rows, C, ConvTaps::from_bf16(wb.data()), Kw, 0, serial().ctx);
        EXPECT_EQ(rb, rf) << what << " conv1d_dw_row";
      });
    }
  }
}

TEST(Ops, AttentionMatchesReference) {
  TestKernels pooled(2);
  struct Case {
    int64_t T, H, Hkv, D, S;
  };
  // Decode shapes (T · H/Hkv <= 4) take the per-key kernels: batched when D is a multiple of the
  // vector width (full and partial key blocks), one key at a time otherwise.
  for (const Case& c : {Case{1, 4, 2, 64, 1}, Case{7, 12, 4, 64, 50}, Case{33, 6, 3, 20, 70}, Case{5, 2, 1, 17, 9},
                        Case{1, 12, 4, 64, 70}, Case{2, 4, 2, 32, 33}, Case{1, 2, 1, 20, 40}}) {
    auto q = randn(c.T * c.H * c.D, 9), k = randn(c.S * c.Hkv * c.D, 10), v = randn(c.S * c.Hkv * c.D, 11);
    std::vector<int64_t> kb(c.T), ke(c.T);
    std::mt19937 rng(12);
    for (int64_t t = 0; t < c.T; ++t) {  // assorted ranges, including an empty one
      kb[t] = static_cast<int64_t>(rng() % static_cast<uint32_t>(c.S));
      ke[t] = kb[t] + 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(c.S - kb[t]));
    }
    if (c.T > 2) ke[1] = kb[1];
    const float scale = 1.f / std::sqrt(static_cast<float>(c.D));
    std::vector<float> r(c.T * c.H * c.D);
    attention_reference(r.data(), q.data(), k.data(), v.data(), c.T, c.H, c.Hkv, c.D, kb.data(), ke.data(), scale, pooled.pool);
    for_each_target([&](const std::string& tn) {
      std::vector<float> a(r.size(), NAN);
      attention_rows(a.data(), q.data(), k.data(), v.data(), c.T, c.H, c.Hkv, c.D, kb.data(), ke.data(), scale, pooled.ctx);
      expect_near_rel(a, r, tn + " attention T " + std::to_string(c.T) + " D " + std::to_string(c.D));
    });
  }
}

}  // namespace
}  // namespace optiq
