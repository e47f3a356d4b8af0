// lora_add (kernels/kernels.h): an unmerged LoRA adapter's term on a linear layer's output,
//   out[T, N] += scale · (x[T, K] · a[K, r]) · b[r, N]      (specs/optiq-surface.md L.1)
// in two fp32 passes, Highway with runtime dispatch:
//   down: u[t, j] = Σ_k x[t, k] · a[k, j], as dot products against aᵀ [r, K] (transposed once per
//         call into the caller's scratch: rows of a are only r wide, too narrow for a vector);
//   up:   out[t, n] += scale · Σ_j u[t, j] · b[j, n], vectors along n, four rows per pass so each
//         loaded vector of b feeds four FMAs.
// A row's arithmetic (summation order included) never depends on T, the row's place in a block or
// the thread that computes it, so every row equals a one-row call (Numerics::row_invariant).
// The scalar reference, in double, is lora_add_reference (kernels/ops.h).

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/lora.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <vector>

#include "core/status.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace optiq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// u[t, j] = x[t, :] · a_t[j, :] for rows [t0, t1), j < r. Four ranks per pass share each x load;
// each u is one vector accumulator reduced once, then the K % L tail added in order.
void LoraDown(float* HWY_RESTRICT u, const float* HWY_RESTRICT x, const float* HWY_RESTRICT a_t, int64_t K,
              int64_t r, int64_t t0, int64_t t1) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t Kv = K / L * L;
  for (int64_t t = t0; t < t1; ++t) {
    const float* xr = x + t * K;
    float* ur = u + t * r;
    int64_t j = 0;
    for (; j + 4 <= r; j += 4) {
      const float* a0 = a_t + j * K;
      VF s0 = hn::Zero(df), s1 = hn::Zero(df), s2 = hn::Zero(df), s3 = hn::Zero(df);
      for (int64_t k = 0; k < Kv; k += L) {
        const VF xv = hn::LoadU(df, xr + k);
        s0 = hn::MulAdd(xv, hn::LoadU(df, a0 + k), s0);
        s1 = hn::MulAdd(xv, hn::LoadU(df, a0 + K + k), s1);
        s2 = hn::MulAdd(xv, hn::LoadU(df, a0 + 2 * K + k), s2);
        s3 = hn::MulAdd(xv, hn::LoadU(df, a0 + 3 * K + k), s3);
      }
      float s[4] = {hn::GetLane(hn::SumOfLanes(df, s0)), hn::GetLane(hn::SumOfLanes(df, s1)),
                    hn::GetLane(hn::SumOfLanes(df, s2)), hn::GetLane(hn::SumOfLanes(df, s3))};
      for (int64_t k = Kv; k < K; ++k)
        for (int q = 0; q < 4; ++q) s[q] += xr[k] * a0[q * K + k];
      for (int q = 0; q < 4; ++q) ur[j + q] = s[q];
    }
    for (; j < r; ++j) {
      const float* aj = a_t + j * K;
      VF s0 = hn::Zero(df);
      for (int64_t k = 0; k < Kv; k += L) s0 = hn::MulAdd(hn::LoadU(df, xr + k), hn::LoadU(df, aj + k), s0);
      float s = hn::GetLane(hn::SumOfLanes(df, s0));
      for (int64_t k = Kv; k < K; ++k) s += xr[k] * aj[k];
      ur[j] = s;
    }
  }
}

// One step j of the up pass for RM (1 or 4) rows: acc_i += u[t + i, j] · b[j, n..n + L), with uj =
// &u[t, j] and bv the loaded vector of b. Named accumulators, not an array: SVE vectors are sizeless.
template <int RM>
HWY_INLINE void lora_up_step(DF df, VF bv, const float* HWY_RESTRICT uj, int64_t r, VF& acc0, VF& acc1, VF& acc2,
                             VF& acc3) {
  acc0 = hn::MulAdd(hn::Set(df, uj[0]), bv, acc0);
  if constexpr (RM > 1) {
    acc1 = hn::MulAdd(hn::Set(df, uj[r]), bv, acc1);
    acc2 = hn::MulAdd(hn::Set(df, uj[2 * r]), bv, acc2);
    acc3 = hn::MulAdd(hn::Set(df, uj[3 * r]), bv, acc3);
  }
}

// o[0, L) += scale · acc.
HWY_INLINE void lora_up_store(DF df, VF vs, VF acc, float* HWY_RESTRICT o) {
  hn::StoreU(hn::MulAdd(vs, acc, hn::LoadU(df, o)), df, o);
}

// o[0, cols) += scale · acc[0, cols), cols < L, through the zero-padded buffer ot.
HWY_INLINE void lora_up_store_tail(DF df, VF vs, VF acc, float* HWY_RESTRICT o, int64_t cols, float* HWY_RESTRICT ot) {
  std::fill(ot, ot + hn::Lanes(df), 0.f);
  std::copy(o, o + cols, ot);
  hn::Store(hn::MulAdd(vs, acc, hn::Load(df, ot)), df, ot);
  std::copy(ot, ot + cols, o);
}

// out[t, n] += scale · Σ_j u[t, j] · b[j, n] for rows [t0, t1): RM rows per pass (RM = 4, then 1).
template <int RM>
HWY_INLINE void lora_up_rows(float* HWY_RESTRICT out, const float* HWY_RESTRICT u, const float* HWY_RESTRICT b,
                             int64_t N, int64_t r, float scale, int64_t t) {
  static_assert(RM == 1 || RM == 4);
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const VF vs = hn::Set(df, scale);
  const float* ut = u + t * r;
  int64_t n = 0;
  for (; n + L <= N; n += L) {
    VF acc0 = hn::Zero(df), acc1 = hn::Zero(df), acc2 = hn::Zero(df), acc3 = hn::Zero(df);
    for (int64_t j = 0; j < r; ++j)
      lora_up_step<RM>(df, hn::LoadU(df, b + j * N + n), ut + j, r, acc0, acc1, acc2, acc3);
    float* o = out + t * N + n;
    lora_up_store(df, vs, acc0, o);
    if constexpr (RM > 1) {
      lora_up_store(df, vs, acc1, o + N);
      lora_up_store(df, vs, acc2, o + 2 * N);
      lora_up_store(df, vs, acc3, o + 3 * N);
    }
  }
  if (n < N) {  // the tail through the same vector math, from zero-padded copies
    HWY_ALIGN float bt[hn::MaxLanes(df)];
    HWY_ALIGN float ot[hn::MaxLanes(df)];
    VF acc0 = hn::Zero(df), acc1 = hn::Zero(df), acc2 = hn::Zero(df), acc3 = hn::Zero(df);
    for (int64_t j = 0; j < r; ++j) {
      std::fill(bt, bt + L, 0.f);
      std::copy(b + j * N + n, b + j * N + N, bt);
      lora_up_step<RM>(df, hn::Load(df, bt), ut + j, r, acc0, acc1, acc2, acc3);
    }
    float* o = out + t * N + n;
    lora_up_store_tail(df, vs, acc0, o, N - n, ot);
    if constexpr (RM > 1) {
      lora_up_store_tail(df, vs, acc1, o + N, N - n, ot);
      lora_up_store_tail(df, vs, acc2, o + 2 * N, N - n, ot);
      lora_up_store_tail(df, vs, acc3, o + 3 * N, N - n, ot);
    }
  }
}

void LoraUp(float* out, const float* u, const float* b, int64_t N, int64_t r, float scale, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + 4 <= t1; t += 4) lora_up_rows<4>(out, u, b, N, r, scale, t);
  for (; t < t1; ++t) lora_up_rows<1>(out, u, b, N, r, scale, t);
}

}  // namespace HWY_NAMESPACE
}  // namespace optiq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace optiq {
HWY_EXPORT(LoraDown);
HWY_EXPORT(LoraUp);

namespace {

// A call's aᵀ [r, K] and u [T, r], reused across calls (KernelContext scratch).
struct LoraScratch {
  std::vector<float> a_t, u;
};

}  // namespace

void lora_add(float* out, const float* x, int64_t T, const float* a, const float* b, int64_t n_in, int64_t rank,
              int64_t n_out, float scale, const KernelContext& ctx) {
  OPTIQ_CHECK(T >= 0 && n_in > 0 && rank > 0 && n_out > 0);
  if (T == 0) return;
  LoraScratch& s = ctx.buffers<LoraScratch>();
  s.a_t.resize(static_cast<size_t>(rank * n_in));
  s.u.resize(static_cast<size_t>(T * rank));
  for (int64_t k = 0; k < n_in; ++k)
    for (int64_t j = 0; j < rank; ++j) s.a_t[j * n_in + k] = a[k * rank + j];
  const float* a_t = s.a_t.data();
  float* u = s.u.data();
  // Rows split across the pool in blocks of 4 (the up pass's tile) when the call is big enough.
  const int64_t grain = parallel_grain(T, rank * (n_in + n_out), 4);
  ctx.parallel_for(T, [&](int64_t t0, int64_t t1, int) {
    HWY_DYNAMIC_DISPATCH(LoraDown)(u, x, a_t, n_in, rank, t0, t1);
    HWY_DYNAMIC_DISPATCH(LoraUp)(out, u, b, n_out, rank, scale, t0, t1);
  }, grain);
}

void lora_add_reference(float* out, const float* x, int64_t T, const float* a, const float* b, int64_t n_in,
                        int64_t rank, int64_t n_out, float scale) {
  std::vector<double> u(static_cast<size_t>(rank));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < rank; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n_in; ++k) s += static_cast<double>(x[t * n_in + k]) * a[k * rank + j];
      u[j] = s;
    }
    for (int64_t n = 0; n < n_out; ++n) {
      double s = 0;
      for (int64_t j = 0; j < rank; ++j) s += u[j] * b[j * n_out + n];
      out[t * n_out + n] = static_cast<float>(out[t * n_out + n] + static_cast<double>(scale) * s);
    }
  }
}

}  // namespace optiq
#endif  // HWY_ONCE
