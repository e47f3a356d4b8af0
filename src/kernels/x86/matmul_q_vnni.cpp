// AVX512-VNNI quantized matmul (see matmul_q_vnni.h). Not Highway: Highway 1.0.3 has no
// u8×s8 dot product; the code is compiled with a function-level target attribute and only called
// after vnni_available().
//
// Layout. A step is one 64-byte vector of a packed row: 16 lanes of 32 bits, each lane holding
// cpl = 32/B consecutive codes of one group (cpl <= 16 < 32 <= group size). For B = 8, 4, 2 the
// lane is split into V = cpl/4 byte vectors w_v = (lane >> B·v) & mask, whose byte b of lane i is
// code cpl·i + V·b + v. vpdpbusd (u8 codes × s8 activations) sums the 4 bytes of each lane, so lane
// i of the accumulator is a partial dot product of one group. The activations are laid out to match
// once per call: plane v of a step holds, at byte p, activation V·p + v of the step.
// 3/5/6-bit rows are decoded to bytes first and use the 8-bit layout.
//
// Per step and weight row: acc = Σ w·x (exact int32), then
// facc += float(acc) · s_w[group(lane)] · s_x[group(lane)] in fp32. The bias term
// b_g·Σ_{k∈g} x_k uses exact fp32 group sums, added once per output.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* temporaries
// when inlined into target-attribute functions (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "kernels/x86/matmul_q_vnni.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "core/status.h"
#include "kernels/matmul_q.h"
#include "kernels/x86/avx512_util.h"
#include "kernels/parallel.h"
#include "kernels/quant_codes.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define OPTIQ_HAVE_VNNI_CODE 1
#include <immintrin.h>
#else
#define OPTIQ_HAVE_VNNI_CODE 0
#endif

namespace optiq {

#if OPTIQ_HAVE_VNNI_CODE

#define OPTIQ_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))

namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kStepBytes = 64;
constexpr int64_t kBlockN = 16;       // weight rows whose scales are converted together
constexpr int64_t kPrefetchRows = 16;  // software prefetch distance, in weight rows

// Activations of T rows in the kernel's layout. Reused across calls (per thread) so the decode
// path allocates nothing.
struct PreparedX8 {
  AlignedVector<int8_t> planes;  // [T][n_steps][V][64]
  AlignedVector<float> sx_lane;  // [T][n_steps · 16]: activation scale of each lane
  AlignedVector<float> xs;       // [T][ngp]: Σ_{k∈g} x, zero padded to ngp
  std::vector<float> sxg;    // one row's group scales, [ng + 1]
  int64_t V = 0, n_steps = 0, Kp = 0, ngp = 0, row_stride = 0, n_sl = 0;
};


OPTIQ_VNNI_TARGET void prepare_row(const float* xr, int64_t K, int64_t gs, PreparedX8* px, int8_t* planes,
                                   float* sx_lane, float* xs) {
  const int64_t ng = K / gs, V = px->V, cpl = 4 * V, step = kLanes * cpl, per_plane = kLanes / V;
  float* sxg = px->sxg.data();
  // Codes past K (the last step's padding) must be zero in every plane.
  std::memset(planes + (px->n_steps - 1) * V * kStepBytes, 0, static_cast<size_t>(V * kStepBytes));
  // Lane order after this permutation: plane v's codes (lane i = p·V + v) in lanes v·16/V + p.
  alignas(64) int32_t perm[kLanes];
  for (int64_t o = 0; o < kLanes; ++o) perm[o] = static_cast<int32_t>((o % per_plane) * V + o / per_plane);
  const __m512i vperm = _mm512_load_si512(perm);
  for (int64_t g = 0; g < ng; ++g) {
    const ActGroup ag = act_group_avx512(xr + g * gs, gs, kActQMax);  // group sizes are multiples of 32
    const float sx = ag.scale;
    sxg[g] = sx;
    xs[g] = ag.sum;
    const __m512 inv = _mm512_set1_ps(1.f / sx);
    for (int64_t k = g * gs; k < (g + 1) * gs; k += 16) {
      // Round to nearest even (MXCSR default), as the other paths; |x| <= kActQMax fits a signed byte.
      const __m512i xi = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + k), inv));
      alignas(16) int8_t x8[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(x8), _mm512_cvtepi32_epi8(_mm512_permutexvar_epi32(vperm, xi)));
      // Code c of a step goes to plane c % V at byte c / V; these 16 codes never straddle a step.
      const int64_t s = k / step, c = k % step;
      int8_t* step_planes = planes + s * V * kStepBytes + c / V;
      for (int64_t v = 0; v < V; ++v)
        std::memcpy(step_planes + v * kStepBytes, x8 + v * per_plane, static_cast<size_t>(per_plane));
    }
  }
  for (int64_t g = ng; g < px->ngp; ++g) xs[g] = 0.f;
  sxg[ng] = 0.f;
  for (int64_t l = 0; l < px->n_sl; ++l) sx_lane[l] = sxg[std::min(ng, l * cpl / gs)];
}

void prepare_x8(const float* x, int64_t T, int64_t K, int64_t gs, int64_t V, PreparedX8* px) {
  const int64_t step = kLanes * 4 * V;
  const int64_t ng = K / gs;
  px->V = V;
  px->n_steps = (K + step - 1) / step;
  px->Kp = px->n_steps * step;
  px->ngp = (ng + kLanes - 1) / kLanes * kLanes;
  px->row_stride = px->n_steps * V * kStepBytes;
  px->n_sl = px->n_steps * kLanes;
  int8_t* planes = grow(px->planes, T * px->row_stride);
  float* sx_lane = grow(px->sx_lane, T * px->n_sl);
  float* xs = grow(px->xs, T * px->ngp);
  px->sxg.resize(static_cast<size_t>(ng + 1));
  // Rows are cheap (a few µs) and share px's per-row scratch, so this runs on the calling thread.
  for (int64_t t = 0; t < T; ++t)
    prepare_row(x + t * K, K, gs, px, planes + t * px->row_stride, sx_lane + t * px->n_sl, xs + t * px->ngp);
}


struct Args {
  const PreparedX8* px;
  int64_t K, gs, gshift, ng;
  int64_t row_bytes;  // bytes per row in the rows passed to the tile (packed, or decoded codes)
  const int32_t* lane_group;
};

// Weight rows [0, nrows) at `rows` (row_bytes apart) against activation rows [t0, t0 + TT), R weight
// rows at a time: out[t · ldo + n]. sc / bc: the rows' scales / biases as f32 [nrows, ng], readable
// kLanes past the end.
template <int V, int TT, int R>
OPTIQ_VNNI_TARGET void tile(const Args& a, const uint8_t* rows, const float* sc, const float* bc, int64_t nrows,
                            float* out, int64_t ldo, int64_t t0) {
  constexpr int B = 8 / V;
  constexpr int64_t cpl = 4 * V, step = kLanes * cpl;
  const PreparedX8& px = *a.px;
  const int64_t row_bytes = a.row_bytes, ng = a.ng, gshift = a.gshift;
  const int64_t n_steps = px.n_steps, n_full = row_bytes / kStepBytes;
  const __mmask64 tail_mask = (uint64_t{1} << (row_bytes - n_full * kStepBytes)) - 1;
  const __m512i mask = _mm512_set1_epi8(static_cast<char>((1 << B) - 1));
  const __m512i idx = _mm512_loadu_si512(a.lane_group);
  const bool multi_group = step > a.gs;
  for (int64_t n = 0; n + R <= nrows; n += R) {
    __m512 facc[R][TT];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < TT; ++t) facc[r][t] = _mm512_setzero_ps();
    for (int64_t s = 0; s < n_steps; ++s) {
      const int64_t g0 = (s * step) >> gshift;
      __m512i w[R][V];
      __m512 sv[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const uint8_t* p = rows + (n + r) * row_bytes + s * kStepBytes;
        __m512i lw;
        if (__builtin_expect(s < n_full, 1)) {
          // R rows in flight, each prefetching kPrefetchRows ahead: the matvec is bound by memory.
          _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchRows * row_bytes), _MM_HINT_T0);
          lw = _mm512_loadu_si512(p);
        } else {
          lw = _mm512_maskz_loadu_epi8(tail_mask, p);  // masked bytes are not read
        }
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
          w[r][v] = V == 1 ? lw : _mm512_and_si512(v == 0 ? lw : _mm512_srli_epi32(lw, B * v), mask);
        const float* scr = sc + (n + r) * ng + g0;
        sv[r] = multi_group ? _mm512_permutexvar_ps(idx, _mm512_loadu_ps(scr)) : _mm512_set1_ps(*scr);
      }
#pragma GCC unroll 8
      for (int t = 0; t < TT; ++t) {
        const int8_t* xp = px.planes.data() + (t0 + t) * px.row_stride + s * V * kStepBytes;
        const __m512 sxl = _mm512_load_ps(px.sx_lane.data() + (t0 + t) * px.n_sl + s * kLanes);
        __m512i xv[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) xv[v] = _mm512_load_si512(xp + v * kStepBytes);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 4
          for (int v = 0; v < V; ++v) acc = _mm512_dpbusd_epi32(acc, w[r][v], xv[v]);
          facc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(sv[r], sxl), facc[r][t]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const float* bcr = bc + (n + r) * ng;
      for (int t = 0; t < TT; ++t) {
        const float* xs = px.xs.data() + (t0 + t) * px.ngp;
        __m512 f = facc[r][t];
        for (int64_t c = 0; c < px.ngp; c += kLanes)
          f = _mm512_fmadd_ps(_mm512_loadu_ps(bcr + c), _mm512_load_ps(xs + c), f);
        out[(t0 + t) * ldo + n + r] = _mm512_reduce_add_ps(f);
      }
    }
  }
}

// All activation rows against weight rows [0, nrows): register tiles of up to 8 activation rows, and
// for small T several weight rows per pass (independent accumulators hide the dot-product latency).
template <int V>
void rows_all_t(const Args& a, int64_t T, const uint8_t* rows, const float* sc, const float* bc, int64_t nrows,
                float* out, int64_t ldo) {
  auto rest = [&](auto tt, int64_t t, int64_t done) {  // the remaining rows one at a time
    constexpr int TT = decltype(tt)::value;
    for (int64_t n = done; n < nrows; ++n)
      tile<V, TT, 1>(a, rows + n * a.row_bytes, sc + n * a.ng, bc + n * a.ng, 1, out + n, ldo, t);
  };
  int64_t t = 0;
  for (; t + 8 <= T; t += 8) tile<V, 8, 1>(a, rows, sc, bc, nrows, out, ldo, t);
  if (t + 4 <= T) {
    tile<V, 4, 1>(a, rows, sc, bc, nrows, out, ldo, t);
    t += 4;
  }
  if (t + 2 <= T) {
    const int64_t n2 = nrows - nrows % 2;
    tile<V, 2, 2>(a, rows, sc, bc, n2, out, ldo, t);
    rest(std::integral_constant<int, 2>(), t, n2);
    t += 2;
  }
  if (t < T) {
    const int64_t n4 = nrows - nrows % 4;
    tile<V, 1, 4>(a, rows, sc, bc, n4, out, ldo, t);
    rest(std::integral_constant<int, 1>(), t, n4);
  }
}


// A pool thread's buffers for one block of weight rows: scales and biases as f32, and decoded codes
// for 3/5/6-bit rows. Reused across calls, like the activations.
struct BlockScratch {
  std::vector<float> sc, bc;
  AlignedVector<uint8_t> dec;
};

}  // namespace

bool vnni_available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512vnni");
  return ok;
}

void matmul_q_vnni(std::span<const MatmulOut> outs, const float* x, int64_t T, const KernelContext& ctx) {
  OPTIQ_CHECK(!outs.empty() && vnni_available());
  const Weight& w0 = *outs[0].w;
  const int bits = w0.quant.bits;
  const int64_t gs = w0.quant.group_size, K = w0.n_in;
  for (const MatmulOut& o : outs)
    OPTIQ_CHECK_MSG(o.w->quantized() && o.w->quant.bits == bits && o.w->quant.group_size == gs && o.w->n_in == K,
                    "matmul_q_vnni: weights of one call must share bits, group size and K");
  // 2/4/8-bit rows are read in place; other widths are decoded to bytes and use the 8-bit layout.
  const bool direct = bits == 2 || bits == 4 || bits == 8;
  const int64_t V = direct ? 8 / bits : 1;
  // Reused across calls (the decode path runs hundreds of small matmuls per token); read by every thread.
  PreparedX8& px = ctx.buffers<PreparedX8>();
  prepare_x8(x, T, K, gs, V, &px);

  Args a;
  a.px = &px;
  a.K = K;
  a.gs = gs;
  a.ng = K / gs;
  a.gshift = 0;
  while ((int64_t{1} << a.gshift) < gs) ++a.gshift;
  OPTIQ_CHECK((int64_t{1} << a.gshift) == gs);
  alignas(64) int32_t lane_group[kLanes];
  for (int64_t i = 0; i < kLanes; ++i) lane_group[i] = static_cast<int32_t>((4 * V * i) >> a.gshift);
  a.lane_group = lane_group;
  a.row_bytes = direct ? K * bits / 8 : px.Kp;
  const int64_t src_row_bytes = K * bits / 8;

  // Work items: blocks of kBlockN rows of each weight, in order, so a thread's blocks are contiguous.
  std::vector<int64_t> first_block(outs.size() + 1, 0);
  for (size_t i = 0; i < outs.size(); ++i)
    first_block[i + 1] = first_block[i] + (outs[i].w->n_out + kBlockN - 1) / kBlockN;
  const int64_t n_blocks = first_block.back();
  const int64_t ng = a.ng;
  ctx.parallel_for(n_blocks, [&](int64_t b, int64_t e, int thread) {
    BlockScratch& bs = ctx.scratch().get<BlockScratch>(thread);
    std::vector<float>& sc = bs.sc;
    std::vector<float>& bc = bs.bc;
    sc.resize(static_cast<size_t>(kBlockN * ng + 2 * kLanes));
    bc.resize(static_cast<size_t>(kBlockN * ng + px.ngp));
    uint8_t* dec = direct ? nullptr : grow(bs.dec, kBlockN * px.Kp);
    size_t wi = 0;
    for (int64_t blk = b; blk < e; ++blk) {
      while (blk >= first_block[wi + 1]) ++wi;
      const Weight& w = *outs[wi].w;
      if (blk == b) {
        // A chunk starts a new stream: request its first block's rows at once (the row loop only
        // prefetches kPrefetchRows ahead of itself), so the chunk does not begin latency-bound.
        const int64_t r0 = (blk - first_block[wi]) * kBlockN, r1 = std::min(w.n_out, r0 + kBlockN);
        const char* p0 = static_cast<const char*>(w.data) + r0 * src_row_bytes;
        for (int64_t l = 0; l < (r1 - r0) * src_row_bytes; l += 64) _mm_prefetch(p0 + l, _MM_HINT_T0);
      }
      const int64_t N = w.n_out;
      const int64_t n0 = (blk - first_block[wi]) * kBlockN, n1 = std::min(N, n0 + kBlockN);
      const size_t ssz = dtype_size(w.quant.scale_dtype);
      const size_t off = static_cast<size_t>(n0 * ng) * ssz, cnt = static_cast<size_t>((n1 - n0) * ng);
      // The next block's scales and biases: a second stream (1/8 of the weights' bytes at 4-bit g64)
      // that the hardware prefetcher, busy with the rows, would leave to demand misses.
      if (n1 < N)
        for (size_t l = 0; l < cnt * ssz; l += 64) {
          _mm_prefetch(static_cast<const char*>(w.quant.scales) + off + cnt * ssz + l, _MM_HINT_T0);
          _mm_prefetch(static_cast<const char*>(w.quant.biases) + off + cnt * ssz + l, _MM_HINT_T0);
        }
      scales_to_f32_avx512(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.scales) + off, sc.data(), cnt);
      scales_to_f32_avx512(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.biases) + off, bc.data(), cnt);
      std::fill(sc.begin() + static_cast<int64_t>(cnt), sc.end(), 0.f);
      std::fill(bc.begin() + static_cast<int64_t>(cnt), bc.end(), 0.f);
      const uint8_t* base = static_cast<const uint8_t*>(w.data) + n0 * src_row_bytes;
      if (!direct)
        for (int64_t n = n0; n < n1; ++n) {
          uint8_t* row = dec + (n - n0) * px.Kp;
          decode_codes_u8(base + (n - n0) * src_row_bytes, K, bits, row);
          std::memset(row + K, 0, static_cast<size_t>(px.Kp - K));  // codes past K stay zero
        }
      const uint8_t* rows = direct ? base : dec;
      float* out = outs[wi].out + n0;
      switch (V) {
        case 4: rows_all_t<4>(a, T, rows, sc.data(), bc.data(), n1 - n0, out, N); break;
        case 2: rows_all_t<2>(a, T, rows, sc.data(), bc.data(), n1 - n0, out, N); break;
        default: rows_all_t<1>(a, T, rows, sc.data(), bc.data(), n1 - n0, out, N); break;
      }
    }
  }, parallel_grain(n_blocks, kBlockN * T * K, 1));
}

#else  // !OPTIQ_HAVE_VNNI_CODE

bool vnni_available() { return false; }

void matmul_q_vnni(std::span<const MatmulOut>, const float*, int64_t, const KernelContext&) {
  OPTIQ_CHECK_MSG(false, "matmul_q_vnni: built without AVX512-VNNI support");
}

#endif

}  // namespace optiq
