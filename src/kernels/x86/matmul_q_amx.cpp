// AMX-INT8 quantized matmul (see matmul_q_amx.h). Not Highway: Highway 1.0.3 has no AMX; the code is
// compiled with a function-level target attribute and only called after amx_available().
//
// Per 32 weight rows (two A tiles) × 32 activation rows (two B tiles) × one group:
//   A tiles = weight codes as u8 [16 n × kc k] (decoded from the packed row, natural order),
//   B tiles = activations as s8, VNNI-packed [kc/4 × (16 t · 4)] once per call,
//   C[a][b] += A_a·B_b (TDPBUSD: u8 × s8), exact in int32.
// Then f[n][t] += s[n, g]·sx[t, g]·C + b[n, g]·Σ_{k∈g} x[t, k] in fp32 (AVX-512). The C tiles of a
// step are stored to one of two buffers, and that epilogue runs after the next step's dot products
// are issued, so the vector units and the tile unit overlap.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* temporaries
// when inlined into target-attribute functions (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "kernels/x86/matmul_q_amx.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "core/aligned.h"
#include "core/status.h"
#include "kernels/matmul_q.h"
#include "kernels/x86/avx512_util.h"
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

// Activations prepared once per call: s8 B tiles per (m-tile, chunk) and per-(row, group) scales.
struct AmxX {
  int64_t Mt = 0, kc = 0, n_chunks = 0, ng = 0, blk = 0;  // blk = bytes of one B tile = kc·16
  AlignedVector<int8_t> planes;  // [Mt][n_chunks][kc/4][64]
  std::vector<float> sxv, xsv;  // [Mt][ng][16]: sx[t, g] and Σ_{k∈g} x[t, k] (0 for padded rows)
};

// B tile of chunk c for the activation rows of m-tile mt: per row, its group's amax and Σx, then
// x_int = rint(x / sx) as s8 (column tt of the VNNI-packed tile). One work item
// owns its tiles' bytes and its group's scale line, so items run in parallel without sharing cache
// lines. Groups are multiples of 32 elements, so vectors of 16 never straddle one.
OPTIQ_AMX_TARGET void prepare_tile(const float* x, int64_t T, int64_t K, int64_t gs, int64_t mt, int64_t c, AmxX* p) {
  const int64_t kc = p->kc, g = c * kc / gs;
  const bool first_chunk_of_group = (c * kc) % gs == 0;
  int8_t* tile = p->planes.data() + (mt * p->n_chunks + c) * p->blk;
  const int64_t t_end = std::min<int64_t>(kTile, T - mt * kTile);
  for (int64_t tt = 0; tt < t_end; ++tt) {
    const float* xr = x + (mt * kTile + tt) * K;
    const ActGroup ag = act_group_avx512(xr + g * gs, gs, kActQMax);
    const float sx = ag.scale;
    if (first_chunk_of_group) {
      p->sxv[(mt * p->ng + g) * kTile + tt] = sx;
      p->xsv[(mt * p->ng + g) * kTile + tt] = ag.sum;
    }
    const __m512 inv = _mm512_set1_ps(1.f / sx);
    for (int64_t kk = 0; kk < kc; kk += 16) {
      // Round to nearest even (MXCSR default), as the other paths.
      const __m512i xi = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + c * kc + kk), inv));
      // Bytes kk..kk+15 are four 4-byte groups, one per B-tile row (kk/4 .. kk/4 + 3), column tt.
      int8_t* dst = tile + (kk / 4) * 64 + tt * 4;
      alignas(16) uint32_t x4[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(x4), _mm512_cvtepi32_epi8(xi));  // |xi| <= 127
      for (int q = 0; q < 4; ++q) std::memcpy(dst + q * 64, &x4[q], 4);
    }
  }
}

void prepare_amx_x(const float* x, int64_t T, int64_t K, int64_t gs, AmxX* p, const KernelContext& ctx) {
  p->Mt = (T + kTile - 1) / kTile;
  p->kc = std::min<int64_t>(gs, 64);
  p->n_chunks = K / p->kc;
  p->ng = K / gs;
  p->blk = p->kc * kTile;
  // Reused buffers (per thread): no allocation or page faults in steady state. Planes of padded
  // activation rows (t >= T) keep stale bytes; they only reach output rows that are never written.
  p->planes.resize(static_cast<size_t>(p->Mt * p->n_chunks * p->blk));
  p->sxv.assign(static_cast<size_t>(p->Mt * p->ng * kTile), 0.f);
  p->xsv.assign(static_cast<size_t>(p->Mt * p->ng * kTile), 0.f);
  const int64_t items = p->Mt * p->n_chunks;
  ctx.parallel_for(items, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) prepare_tile(x, T, K, gs, i / p->n_chunks, i % p->n_chunks, p);
  }, items >= 4 ? 1 : items);  // ~1 µs per item; serial preparation would idle the other cores
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


// Weight rows per pass: two A tiles share every B (activation) tile load.
constexpr int64_t kRowsPerPass = 2 * kTile;

// Per-thread buffers of one pass. A step's C tiles go to one of two buffers: [a + 2·j][16][16] for
// A tile a and the j-th m-tile of the step, i.e. [j][32 weight rows][16 activation rows].
struct PassScratch {
  AlignedVector<uint8_t> codes;  // [32][K]
  std::vector<float> sc, bc;     // [32][ng]
  AlignedVector<float> f;        // [Mt][32][16]: f[mt][i][t], output column i for the m-tile's 16 rows
  alignas(64) int32_t c[2][4 * kTile * kTile];
};

// f[i] += scale and bias terms of group g for weight rows i < n_rows, m-tile mt (16 activation rows
// per vector), from the stored C tile rows c[i][t].
OPTIQ_AMX_TARGET inline void apply_group(const int32_t* c, PassScratch& ps, const AmxX& px, int64_t g, int64_t mt,
                                         int n_rows) {
  const int64_t ng = px.ng;
  const float* sc = ps.sc.data() + g;
  const float* bc = ps.bc.data() + g;
  float* f = ps.f.data() + mt * kRowsPerPass * kTile;
  const __m512 sxg = _mm512_loadu_ps(px.sxv.data() + (mt * ng + g) * kTile);
  const __m512 xsg = _mm512_loadu_ps(px.xsv.data() + (mt * ng + g) * kTile);
  for (int i = 0; i < n_rows; ++i) {
    __m512 fi = _mm512_load_ps(f + i * kTile);
    fi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + i * kTile)),
                         _mm512_mul_ps(_mm512_set1_ps(sc[i * ng]), sxg), fi);
    fi = _mm512_fmadd_ps(_mm512_set1_ps(bc[i * ng]), xsg, fi);
    _mm512_store_ps(f + i * kTile, fi);
  }
}

// The epilogue of one step: group g of m-tile mt (and mt + 1 when the step had a pair), from its
// stored C tiles.
OPTIQ_AMX_TARGET inline void apply_step(const int32_t* c, PassScratch& ps, const AmxX& px, int64_t g, int64_t mt,
                                        bool pair, int n_rows) {
  apply_group(c, ps, px, g, mt, n_rows);
  if (pair) apply_group(c + 2 * kTile * kTile, ps, px, g, mt + 1, n_rows);
}

// out[t][i] = f[i][t] for t < t_end, i < n_cols: a 16 × 16 register transpose, then one (masked) row
// store per activation row instead of 256 scalar stores.
OPTIQ_AMX_TARGET inline void store_transposed(const float* f, float* out, int64_t ld, int64_t t_end, int n_cols) {
  __m512 r[16], u[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(f + i * kTile);
  for (int i = 0; i < 16; i += 2) {  // 32-bit interleave of row pairs
    u[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    u[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // 64-bit interleave
    for (int j = 0; j < 2; ++j) {
      r[i + j] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u[i + j]), _mm512_castps_pd(u[i + 2 + j])));
      r[i + 2 + j] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u[i + j]), _mm512_castps_pd(u[i + 2 + j])));
    }
  }
  // r[4q + m] now holds, in 128-bit lane L, elements t = 4L + m' of rows 4q .. 4q + 3 (m' from m).
  for (int i = 0; i < 16; i += 8) {  // 128-bit lanes: pairs of row quads
    for (int j = 0; j < 4; ++j) {
      u[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + 4 + j], 0x88);      // lanes 0, 2 | 0, 2
      u[i + 4 + j] = _mm512_shuffle_f32x4(r[i + j], r[i + 4 + j], 0xdd);  // lanes 1, 3 | 1, 3
    }
  }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(u[j], u[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(u[j], u[8 + j], 0xdd);
  }
  // Row order after the stages: transposed row t sits in r[perm[t]].
  static constexpr int kPerm[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};
  const __mmask16 m = static_cast<__mmask16>((1u << n_cols) - 1);
  for (int64_t t = 0; t < t_end; ++t) _mm512_mask_storeu_ps(out + t * ld, m, r[kPerm[t]]);
}

// Rows [n0, n0 + rows) of w (rows <= 32) against all activation rows. Tiles: A0 = 4, A1 = 5 (weight
// rows 0-15, 16-31), B0 = 6, B1 = 7 (two m-tiles), C[a + 2·j] = A_a × B_j. A step is one group of one
// pair of m-tiles.
OPTIQ_AMX_TARGET void amx_pass(const Weight& w, const AmxX& px, float* out, int64_t T, int64_t n0, int64_t rows,
                               PassScratch& ps) {
  const int64_t K = w.n_in, N = w.n_out, ng = px.ng, kc = px.kc, Mt = px.Mt;
  const int64_t chunks_per_group = w.quant.group_size / kc;
  const int bits = w.quant.bits;
  const int64_t row_bytes = K * bits / 8;
  const size_t ssz = dtype_size(w.quant.scale_dtype);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  // 8-bit rows are already one byte per code in natural order: full passes load their A tiles
  // straight from the mapped weights. Other widths, and the last partial pass (whose tiles would read
  // past the matrix), go through the decoded copy.
  const uint8_t* codes = ps.codes.data();
  if (bits == 8 && rows == kRowsPerPass) {
    codes = base + n0 * row_bytes;
  } else {
    for (int64_t i = 0; i < rows; ++i) decode_row(base + (n0 + i) * row_bytes, K, bits, ps.codes.data() + i * K);
    if (rows < kRowsPerPass)
      std::memset(ps.codes.data() + rows * K, 0, static_cast<size_t>((kRowsPerPass - rows) * K));
  }
  const size_t off = static_cast<size_t>(n0 * ng) * ssz, cnt = static_cast<size_t>(rows * ng);
  scales_to_f32_avx512(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.scales) + off, ps.sc.data(), cnt);
  scales_to_f32_avx512(w.quant.scale_dtype, static_cast<const uint8_t*>(w.quant.biases) + off, ps.bc.data(), cnt);
  std::fill(ps.sc.begin() + static_cast<int64_t>(cnt), ps.sc.end(), 0.f);
  std::fill(ps.bc.begin() + static_cast<int64_t>(cnt), ps.bc.end(), 0.f);
  const bool two = rows > kTile;
  const int n_rows = two ? static_cast<int>(kRowsPerPass) : static_cast<int>(kTile);
  std::fill(ps.f.begin(), ps.f.begin() + Mt * kRowsPerPass * kTile, 0.f);
  // The next pass's packed rows, fetched while this one computes (spread over its groups).
  const int64_t next_bytes = std::max<int64_t>(0, std::min<int64_t>(kRowsPerPass, N - n0 - kRowsPerPass)) * row_bytes;
  const uint8_t* next = base + (n0 + kRowsPerPass) * row_bytes;
  const int64_t pf_per_group = (next_bytes / 64 + ng - 1) / ng;

  int64_t prev_g = -1, prev_mt = 0;
  bool prev_pair = false;
  int buf = 0;
  auto* planes = px.planes.data();
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t l = g * pf_per_group; l < (g + 1) * pf_per_group && l * 64 < next_bytes; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(next + l * 64), _MM_HINT_T0);
    for (int64_t mt = 0; mt < Mt; mt += 2) {
      const bool pair = mt + 1 < Mt;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t c = g * chunks_per_group; c < (g + 1) * chunks_per_group; ++c) {
        _tile_loadd(4, codes + c * kc, K);
        _tile_loadd(6, planes + (mt * px.n_chunks + c) * px.blk, 64);
        _tile_dpbusd(0, 4, 6);
        if (two) {
          _tile_loadd(5, codes + kTile * K + c * kc, K);
          _tile_dpbusd(1, 5, 6);
        }
        if (pair) {
          _tile_loadd(7, planes + ((mt + 1) * px.n_chunks + c) * px.blk, 64);
          _tile_dpbusd(2, 4, 7);
          if (two) _tile_dpbusd(3, 5, 7);
        }
      }
      if (prev_g >= 0) apply_step(ps.c[buf ^ 1], ps, px, prev_g, prev_mt, prev_pair, n_rows);
      int32_t* cb = ps.c[buf];
      _tile_stored(0, cb, 64);
      if (two) _tile_stored(1, cb + kTile * kTile, 64);
      if (pair) {
        _tile_stored(2, cb + 2 * kTile * kTile, 64);
        if (two) _tile_stored(3, cb + 3 * kTile * kTile, 64);
      }
      prev_g = g;
      prev_mt = mt;
      prev_pair = pair;
      buf ^= 1;
    }
  }
  apply_step(ps.c[buf ^ 1], ps, px, prev_g, prev_mt, prev_pair, n_rows);
  for (int64_t mt = 0; mt < Mt; ++mt) {
    const int64_t t_end = std::min<int64_t>(kTile, T - mt * kTile);
    for (int64_t i0 = 0; i0 < rows; i0 += kTile)
      store_transposed(ps.f.data() + (mt * kRowsPerPass + i0) * kTile, out + mt * kTile * N + n0 + i0, N, t_end,
                       static_cast<int>(std::min<int64_t>(kTile, rows - i0)));
  }
}

OPTIQ_AMX_TARGET void amx_blocks(std::span<const MatmulOut> outs, const std::vector<int64_t>& first_block,
                                 const AmxX& px, int64_t T, int64_t b, int64_t e) {
  TileConfig cfg;
  cfg.palette_id = 1;
  for (int i : {0, 1, 2, 3}) {  // C: 16 × 16 int32
    cfg.rows[i] = kTile;
    cfg.colsb[i] = 64;
  }
  for (int i : {4, 5}) {  // A0, A1: 16 weight rows × kc codes
    cfg.rows[i] = kTile;
    cfg.colsb[i] = static_cast<uint16_t>(px.kc);
  }
  for (int i : {6, 7}) {  // B0, B1: kc/4 rows × (16 activation rows · 4 bytes)
    cfg.rows[i] = static_cast<uint8_t>(px.kc / 4);
    cfg.colsb[i] = 64;
  }
  _tile_loadconfig(&cfg);
  const int64_t K = outs[0].w->n_in;
  PassScratch ps;
  ps.codes.resize(static_cast<size_t>(kRowsPerPass * K));
  ps.sc.resize(static_cast<size_t>(kRowsPerPass * px.ng));
  ps.bc.resize(static_cast<size_t>(kRowsPerPass * px.ng));
  ps.f.resize(static_cast<size_t>(px.Mt * kRowsPerPass * kTile));
  size_t wi = 0;
  for (int64_t blk = b; blk < e; ++blk) {
    while (blk >= first_block[wi + 1]) ++wi;
    const Weight& w = *outs[wi].w;
    const int64_t n0 = (blk - first_block[wi]) * kRowsPerPass;
    amx_pass(w, px, outs[wi].out, T, n0, std::min<int64_t>(kRowsPerPass, w.n_out - n0), ps);
  }
  _tile_release();
}

}  // namespace

bool amx_available() {
  static const bool ok = detect_amx();
  return ok;
}

void matmul_q_amx(std::span<const MatmulOut> outs, const float* x, int64_t T, const KernelContext& ctx) {
  OPTIQ_CHECK(!outs.empty() && amx_available());
  const Weight& w0 = *outs[0].w;
  for (const MatmulOut& o : outs)
    OPTIQ_CHECK_MSG(o.w->quantized() && o.w->quant.bits == w0.quant.bits &&
                        o.w->quant.group_size == w0.quant.group_size && o.w->n_in == w0.n_in,
                    "matmul_q_amx: weights of one call must share bits, group size and K");
  AmxX& px = ctx.buffers<AmxX>();  // reused across calls; read by every thread
  prepare_amx_x(x, T, w0.n_in, w0.quant.group_size, &px, ctx);
  // Work items: 32-row passes of each weight, in order.
  std::vector<int64_t> first_block(outs.size() + 1, 0);
  for (size_t i = 0; i < outs.size(); ++i)
    first_block[i + 1] = first_block[i] + (outs[i].w->n_out + kRowsPerPass - 1) / kRowsPerPass;
  const int64_t n_blocks = first_block.back();
  ctx.parallel_for(n_blocks, [&](int64_t b, int64_t e, int) { amx_blocks(outs, first_block, px, T, b, e); },
                    parallel_grain(n_blocks, kRowsPerPass * T * w0.n_in, 1));
}

void matmul_q_amx(float* out, const float* x, int64_t T, const Weight& w, const KernelContext& ctx) {
  const MatmulOut o{out, &w};
  matmul_q_amx({&o, 1}, x, T, ctx);
}

#else  // !OPTIQ_HAVE_AMX_CODE

bool amx_available() { return false; }

void matmul_q_amx(std::span<const MatmulOut>, const float*, int64_t, const KernelContext&) {
  OPTIQ_CHECK_MSG(false, "matmul_q_amx: built without AMX support");
}

void matmul_q_amx(float*, const float*, int64_t, const Weight&, const KernelContext&) {
  OPTIQ_CHECK_MSG(false, "matmul_q_amx: built without AMX support");
}

#endif

}  // namespace optiq
