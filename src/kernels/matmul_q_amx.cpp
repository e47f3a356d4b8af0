// AMX-INT8 quantized matmul (see matmul_q_amx.h). Not Highway: Highway 1.0.3 has no AMX; the code is
// compiled with a function-level target attribute and only called after amx_available().
//
// Per 16 weight rows × 16 activation rows × one group:
//   A tile = weight codes as u8 [16 n × kc k] (decoded from the packed row, natural order),
//   B tiles = activations as int16 split into two byte planes, x = 256·hi + lo (hi s8, lo u8),
//             VNNI-packed [kc/4 × (16 t · 4)] once per call,
//   C_hi += A·B_hi (TDPBUSD: u8 × s8), C_lo += A·B_lo (TDPBUUD: u8 × u8), exact in int32
//   (|256·C_hi| <= 256·128·255·128 < 2^31 for groups up to 128).
// Then out[t, n] += s[n, g]·sx[t, g]·(256·C_hi + C_lo) + b[n, g]·Σ_{k∈g} x[t, k] in fp32 (AVX-512).
#include "kernels/matmul_q_amx.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/status.h"
#include "kernels/matmul_q.h"
#include "kernels/parallel.h"
#include "kernels/quant_codes.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define OPTIQ_HAVE_AMX_CODE 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define OPTIQ_HAVE_AMX_CODE 0
#endif

namespace optiq {

#if OPTIQ_HAVE_AMX_CODE

#define OPTIQ_AMX_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,fma")))

namespace {

constexpr int kTile = 16;  // rows of every tile; 16 int32 / fp32 lanes per C row

bool detect_amx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx = ((d >> 24) & 1) && ((d >> 25) & 1);     // AMX-TILE, AMX-INT8
  const bool avx512 = ((b >> 16) & 1) && ((b >> 30) & 1);  // AVX512F, AVX512BW
  if (!amx || !avx512) return false;
  // Linux hands out the 8 KiB tile state only on request (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

struct alignas(64) TileConfig {
  uint8_t palette_id = 0;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Activations prepared once per call: byte planes per (m-tile, chunk) and per-(row, group) scales.
struct AmxX {
  int64_t Mt = 0, kc = 0, n_chunks = 0, ng = 0, blk = 0;  // blk = bytes of one B tile = kc·16
  std::vector<uint8_t> planes;  // [Mt][n_chunks][2][kc/4][64]: hi plane, then lo plane
  std::vector<float> sxv, xsv;  // [Mt][ng][16]: sx[t, g] and Σ_{k∈g} x[t, k] (0 for padded rows)
};

// One activation row t: per group, amax and Σx, then x_int = rint(x / sx) split into the byte planes
// at row tt of m-tile mt. Groups are multiples of 32 elements, so vectors of 16 never straddle one.
OPTIQ_AMX_TARGET void prepare_row(const float* xr, int64_t K, int64_t gs, int64_t mt, int64_t tt, AmxX* p) {
  for (int64_t g = 0; g < p->ng; ++g) {
    const float* xg = xr + g * gs;
    __m512 vmax = _mm512_setzero_ps(), vsum = _mm512_setzero_ps();
    for (int64_t k = 0; k < gs; k += 16) {
      const __m512 v = _mm512_loadu_ps(xg + k);
      vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
      vsum = _mm512_add_ps(vsum, v);
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    const float sx = amax > 0.f ? amax / kActQMax : 1.f;
    const __m512 inv = _mm512_set1_ps(1.f / sx);
    p->sxv[(mt * p->ng + g) * kTile + tt] = sx;
    p->xsv[(mt * p->ng + g) * kTile + tt] = _mm512_reduce_add_ps(vsum);
    for (int64_t k = g * gs; k < (g + 1) * gs; k += 16) {
      // Round to nearest even (MXCSR default), as lrintf in the Highway path.
      const __m512i xi = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + k), inv));
      const __m128i hi = _mm512_cvtepi32_epi8(_mm512_srai_epi32(xi, 8));
      const __m128i lo = _mm512_cvtepi32_epi8(_mm512_and_si512(xi, _mm512_set1_epi32(0xff)));
      const int64_t c = k / p->kc, kk = k % p->kc;
      // Bytes k..k+15 are four 4-byte groups, one per B-tile row (kk/4 .. kk/4 + 3), column tt.
      uint8_t* dst = p->planes.data() + (mt * p->n_chunks + c) * 2 * p->blk + (kk / 4) * 64 + tt * 4;
      alignas(16) uint32_t h4[4], l4[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(h4), hi);
      _mm_store_si128(reinterpret_cast<__m128i*>(l4), lo);
      for (int q = 0; q < 4; ++q) {
        std::memcpy(dst + q * 64, &h4[q], 4);
        std::memcpy(dst + q * 64 + p->blk, &l4[q], 4);
      }
    }
  }
}

void prepare_amx_x(const float* x, int64_t T, int64_t K, int64_t gs, AmxX* p, ThreadPool& pool) {
  p->Mt = (T + kTile - 1) / kTile;
  p->kc = std::min<int64_t>(gs, 64);
  p->n_chunks = K / p->kc;
  p->ng = K / gs;
  p->blk = p->kc * kTile;
  p->planes.assign(static_cast<size_t>(p->Mt * p->n_chunks * 2 * p->blk), 0);
  p->sxv.assign(static_cast<size_t>(p->Mt * p->ng * kTile), 0.f);
  p->xsv.assign(static_cast<size_t>(p->Mt * p->ng * kTile), 0.f);
  auto rows = [&](int64_t tb, int64_t te, int) {
    for (int64_t t = tb; t < te; ++t) prepare_row(x + t * K, K, gs, t / kTile, t % kTile, p);
  };
  pool.parallel_for(T, rows, parallel_grain(T, 4 * K, 1));
}

// Writes the K codes of a packed row as bytes (natural order).
OPTIQ_AMX_TARGET void decode_row(const uint8_t* src, int64_t K, int bits, uint8_t* dst) {
  if (bits == 8) {
    std::memcpy(dst, src, static_cast<size_t>(K));
    return;
  }
  if (bits != 4) {
    decode_codes_u8(src, K, bits, dst);
    return;
  }
  // 4-bit: byte b holds codes 2b (low nibble) and 2b+1 (high nibble); widen bytes to words and move
  // the high nibble into the word's upper byte.
  const int64_t nbytes = K / 2;
  const __m512i m_lo = _mm512_set1_epi16(0x000f), m_hi = _mm512_set1_epi16(0x00f0);
  int64_t i = 0;
  for (; i + 32 <= nbytes; i += 32) {
    const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    const __m512i v = _mm512_or_si512(_mm512_and_si512(w, m_lo), _mm512_slli_epi16(_mm512_and_si512(w, m_hi), 4));
    _mm512_storeu_si512(dst + 2 * i, v);
  }
  if (i < nbytes) {  // K is a multiple of 32, so 16 bytes remain
    const __mmask32 m = static_cast<__mmask32>((1ull << (nbytes - i)) - 1);
    const __m512i w = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, src + i));
    const __m512i v = _mm512_or_si512(_mm512_and_si512(w, m_lo), _mm512_slli_epi16(_mm512_and_si512(w, m_hi), 4));
    _mm512_mask_storeu_epi8(dst + 2 * i, (1ull << (2 * (nbytes - i))) - 1, v);
  }
}

struct AmxArgs {
  const Weight* w;
  const AmxX* px;
  float* out;
  int64_t T;
};

// Two weight tiles (32 rows) share every activation tile load: the activation planes are re-read
// from L2 once per 32 weight rows instead of once per 16, which is the bottleneck at K >= 768.
constexpr int kRowsPerPass = 2 * kTile;

OPTIQ_AMX_TARGET void amx_rows(const AmxArgs& a, int64_t nb, int64_t ne) {
  const Weight& w = *a.w;
  const AmxX& px = *a.px;
  const int64_t K = w.n_in, N = w.n_out, ng = px.ng, kc = px.kc, blk = px.blk;
  const int64_t chunks_per_group = w.quant.group_size / kc;
  const int bits = w.quant.bits;
  const int64_t row_bytes = K * bits / 8;
  const size_t ssz = dtype_size(w.quant.scale_dtype);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);

  TileConfig cfg;
  cfg.palette_id = 1;
  for (int i : {0, 1, 5, 6}) {  // C_hi, C_lo of weight tiles 0 and 1: 16 × 16 int32
    cfg.rows[i] = kTile;
    cfg.colsb[i] = 64;
  }
  for (int i : {2, 7}) {  // A of weight tiles 0 and 1: 16 weight rows × kc codes
    cfg.rows[i] = kTile;
    cfg.colsb[i] = static_cast<uint16_t>(kc);
  }
  for (int i : {3, 4}) {  // B_hi, B_lo: kc/4 rows × (16 activation rows · 4 bytes)
    cfg.rows[i] = static_cast<uint8_t>(kc / 4);
    cfg.colsb[i] = 64;
  }
  _tile_loadconfig(&cfg);

  std::vector<uint8_t> codes(static_cast<size_t>(kRowsPerPass * K));
  std::vector<float> sc(static_cast<size_t>(kRowsPerPass * ng)), bc(static_cast<size_t>(kRowsPerPass * ng));
  alignas(64) int32_t c_hi[kRowsPerPass * kTile], c_lo[kRowsPerPass * kTile];
  alignas(64) float facc[kRowsPerPass * kTile];

  for (int64_t n0 = nb; n0 < ne; n0 += kRowsPerPass) {
    const int64_t rows = std::min<int64_t>(kRowsPerPass, ne - n0);
    const bool two = rows > kTile;
    for (int64_t i = 0; i < rows; ++i) decode_row(base + (n0 + i) * row_bytes, K, bits, codes.data() + i * K);
    std::fill(codes.begin() + rows * K, codes.end(), 0);
    const size_t off = static_cast<size_t>(n0 * ng) * ssz, cnt = static_cast<size_t>(rows * ng);
    convert_to_f32(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.scales) + off, sc.data(), cnt);
    convert_to_f32(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.biases) + off, bc.data(), cnt);
    std::fill(sc.begin() + static_cast<int64_t>(cnt), sc.end(), 0.f);
    std::fill(bc.begin() + static_cast<int64_t>(cnt), bc.end(), 0.f);
    // The next pass's packed rows, fetched while this one computes (spread over its groups).
    const uint8_t* next = base + (n0 + kRowsPerPass) * row_bytes;
    const int64_t next_bytes = std::max<int64_t>(0, std::min<int64_t>(kRowsPerPass, ne - n0 - kRowsPerPass)) * row_bytes;
    const int64_t pf_per_group = (next_bytes / 64 + ng - 1) / ng;
    const int n_rows_post = two ? kRowsPerPass : kTile;

    for (int64_t mt = 0; mt < px.Mt; ++mt) {
      std::fill(facc, facc + kRowsPerPass * kTile, 0.f);
      for (int64_t g = 0; g < ng; ++g) {
        if (mt == 0)
          for (int64_t l = g * pf_per_group; l < (g + 1) * pf_per_group && l * 64 < next_bytes; ++l)
            _mm_prefetch(reinterpret_cast<const char*>(next + l * 64), _MM_HINT_T0);
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(5);
        _tile_zero(6);
        for (int64_t c = g * chunks_per_group; c < (g + 1) * chunks_per_group; ++c) {
          const uint8_t* pb = px.planes.data() + (mt * px.n_chunks + c) * 2 * blk;
          _tile_loadd(3, pb, 64);
          _tile_loadd(4, pb + blk, 64);
          _tile_loadd(2, codes.data() + c * kc, K);
          _tile_dpbusd(0, 2, 3);
          _tile_dpbuud(1, 2, 4);
          if (two) {
            _tile_loadd(7, codes.data() + kTile * K + c * kc, K);
            _tile_dpbusd(5, 7, 3);
            _tile_dpbuud(6, 7, 4);
          }
        }
        _tile_stored(0, c_hi, 64);
        _tile_stored(1, c_lo, 64);
        if (two) {
          _tile_stored(5, c_hi + kTile * kTile, 64);
          _tile_stored(6, c_lo + kTile * kTile, 64);
        }
        const __m512 sxg = _mm512_loadu_ps(px.sxv.data() + (mt * ng + g) * kTile);
        const __m512 xsg = _mm512_loadu_ps(px.xsv.data() + (mt * ng + g) * kTile);
        for (int i = 0; i < n_rows_post; ++i) {
          const __m512i ci = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(c_hi + i * kTile), 8),
                                              _mm512_load_si512(c_lo + i * kTile));
          const __m512 s = _mm512_mul_ps(_mm512_set1_ps(sc[i * ng + g]), sxg);
          __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ci), s, _mm512_load_ps(facc + i * kTile));
          f = _mm512_fmadd_ps(_mm512_set1_ps(bc[i * ng + g]), xsg, f);
          _mm512_store_ps(facc + i * kTile, f);
        }
      }
      const int64_t t_end = std::min<int64_t>(kTile, a.T - mt * kTile);
      for (int64_t tt = 0; tt < t_end; ++tt) {
        float* o = a.out + (mt * kTile + tt) * N + n0;
        for (int64_t i = 0; i < rows; ++i) o[i] = facc[i * kTile + tt];
      }
    }
  }
  _tile_release();
}

}  // namespace

bool amx_available() {
  static const bool ok = detect_amx();
  return ok;
}

void matmul_q_amx(float* out, const float* x, int64_t T, const Weight& w, ThreadPool& pool) {
  OPTIQ_CHECK(w.quantized() && amx_available());
  AmxX px;
  prepare_amx_x(x, T, w.n_in, w.quant.group_size, &px, pool);
  AmxArgs a{&w, &px, out, T};
  pool.parallel_for(w.n_out, [&](int64_t b, int64_t e, int) { amx_rows(a, b, e); },
                    parallel_grain(w.n_out, T * w.n_in, kRowsPerPass));
}

#else  // !OPTIQ_HAVE_AMX_CODE

bool amx_available() { return false; }

void matmul_q_amx(float*, const float*, int64_t, const Weight&, ThreadPool&) {
  OPTIQ_CHECK_MSG(false, "matmul_q_amx: built without AMX support");
}

#endif

}  // namespace optiq
