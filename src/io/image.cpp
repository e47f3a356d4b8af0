// Images: stb_image decoding with checks stb lacks, and PIL-style antialiased bicubic resizing.

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
// Only the documented formats (decode_image): stb 2.27's PNM, TGA, HDR, PSD and PIC readers are
// attack surface with known memory bugs (a 16-bit PNM overflows the heap in stbi__convert_16_to_8).
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_MAX_DIMENSIONS (1 << 15)
// stb's mallocs zeroed, as upstream 2.28 zeroes its JPEG decoder state (2.27 leaves it uninitialized): a
// scan that decodes with a Huffman table no DHT segment defined, which check_jpeg_huffman_tables refuses
// first, would find zeros (every code decodes as symbol 0) instead of stale memory that indexes anywhere.
#define STBI_MALLOC(size) calloc(1, size)
#define STBI_REALLOC(p, size) realloc(p, size)
#define STBI_FREE(p) free(p)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "io/image.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace optiq {

namespace {
// stb sizes its PNG buffers from the chunk length fields before reading them, so a few bytes
// claiming a 2 GB chunk cost a 2 GB allocation: check every chunk fits the data first. Also check the
// chunks reach IEND: stb reads past the end as zero bytes and then reports a chunk type made of NULs,
// an empty reason, for data cut at a chunk boundary.
Status check_png_chunks(std::span<const uint8_t> b) {
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 8 || std::memcmp(b.data(), kSig, 8) != 0) return Status::Ok();  // not a PNG
  size_t off = 8;
  while (off + 8 <= b.size()) {
    const uint32_t len = (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) | b[off + 3];
    if (len > b.size() - off - 8)
      return Status::InvalidArgument("image: PNG chunk at byte " + std::to_string(off) + " claims " +
                                     std::to_string(len) + " bytes, only " + std::to_string(b.size() - off - 8) +
                                     " follow");
    if (std::memcmp(b.data() + off + 4, "IEND", 4) == 0) return Status::Ok();
    off += 12 + static_cast<size_t>(len);
  }
  return Status::InvalidArgument("image: PNG truncated: data ends at byte " + std::to_string(b.size()) +
                                 " before the IEND chunk");
}

// Huffman tables are where stb_image 2.27 (Debian 12) trusts a JPEG too far; upstream 2.28 fixed both ways:
// - a DHT table declaring more than 256 codes makes stbi__build_huffman write past its arrays, already in
//   stbi_info (2.28 checks the count);
// - a scan that decodes with a table no DHT segment defined reads that table from uninitialized memory (stb
//   mallocs its decoder state; 2.28 zeroes it), and stbi__jpeg_huff_decode then indexes the table's
//   values[256] with a symbol number computed from garbage (UBSan: index 16712520). A table that
//   stbi__build_huffman did build cannot do that: its canonical codes of up to 9 bits cover, through the
//   fast table, every bit pattern below maxcode[9], so the slow path only sees patterns at or above it,
//   which maxcode / delta map to symbols below the table's code count, at most 256.
// So refuse both before stb runs. Walks the markers as stb reads them (segments back to back, bytes between
// them skipped, entropy-coded data up to the next marker other than a restart), keeps which tables are
// defined so far, and checks each scan against the tables stb's stbi__parse_entropy_coded_data decodes it
// with: in a sequential frame (SOF0, SOF1) every component's DC and AC table; in a progressive one (SOF2)
// the DC table in a first DC scan (Ss = 0, Ah = 0), none in a DC refinement (raw bits), the AC table in an
// AC scan. libjpeg's progressive files rely on that: their first DC scan names AC table 0 before any exists.
Status check_jpeg_huffman_tables(std::span<const uint8_t> b) {
  const size_t n = b.size();
  if (n < 2 || b[0] != 0xFF) return Status::Ok();  // not a JPEG
  size_t p = 1;
  while (p < n && b[p] == 0xFF) ++p;  // stb takes FF FF ... D8 as the start marker too
  if (p >= n || b[p] != 0xD8) return Status::Ok();
  ++p;
  auto at = [&](size_t i) -> size_t { return i < n ? b[i] : 0; };  // stb reads zeros past the end
  auto is_rst = [](size_t m) { return m >= 0xD0 && m <= 0xD7; };
  bool defined[2][4] = {};  // [DC, AC][table id], stb's huff_dc / huff_ac; other ids stb refuses
  size_t sof = 0;           // the frame stb decodes: the first SOF0-2 (it refuses any other and a second one)
  while (p < n) {
    if (b[p] != 0xFF) {
      ++p;
      continue;
    }
    while (p < n && b[p] == 0xFF) ++p;  // fill bytes
    if (p >= n) break;
    const size_t m = b[p++];
    if (m == 0xD9) break;                               // EOI
    if (m == 0x00 || m == 0x01 || is_rst(m) || m == 0xD8) continue;  // no length field
    const size_t len = (at(p) << 8) | at(p + 1);
    if (m == 0xC4) {
      size_t t = p + 2;
      for (int64_t left = static_cast<int64_t>(len) - 2; left > 0 && t < n;) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += at(t + i);
        if (codes > 256)
          return Status::InvalidArgument("image: JPEG Huffman table at byte " + std::to_string(t) + " declares " +
                                         std::to_string(codes) + " codes (at most 256)");
        const size_t tc = at(t) >> 4, th = at(t) & 15;
        if (tc <= 1 && th <= 3) defined[tc][th] = true;
        t += 17 + codes;
        left -= static_cast<int64_t>(17 + codes);
      }
    }
    if ((m == 0xC0 || m == 0xC1 || m == 0xC2) && sof == 0) sof = m;
    if (m == 0xDA) {
      // Ns, then (component id, Td << 4 | Ta) per component, then Ss, Se, Ah << 4 | Al.
      const size_t ns = at(p + 2), ss = at(p + 3 + 2 * ns), ah = at(p + 5 + 2 * ns) >> 4;
      const bool progressive = sof == 0xC2;  // before any SOF (stb refuses the scan) check both tables
      const bool uses_dc = !progressive || (ss == 0 && ah == 0), uses_ac = !progressive || ss != 0;
      auto undefined = [&](const char* kind, size_t id) {
        return Status::InvalidArgument("image: JPEG scan at byte " + std::to_string(p - 2) + " decodes with " + kind +
                                       " Huffman table " + std::to_string(id) +
                                       ", which no DHT segment before it defines");
      };
      for (size_t i = 0; i < ns; ++i) {
        const size_t td = at(p + 4 + 2 * i) >> 4, ta = at(p + 4 + 2 * i) & 15;
        if (uses_dc && !(td <= 3 && defined[0][td])) return undefined("DC", td);
        if (uses_ac && !(ta <= 3 && defined[1][ta])) return undefined("AC", ta);
      }
    }
    p += len;
    if (m == 0xDA)  // start of scan: skip the entropy-coded data (0xFF is stuffed as FF 00 there)
      while (p + 1 < n && !(b[p] == 0xFF && b[p + 1] != 0x00 && b[p + 1] != 0xFF && !is_rst(b[p + 1]))) ++p;
  }
  return Status::Ok();
}
}  // namespace

Result<RgbImage> decode_image(std::span<const uint8_t> bytes, int64_t max_pixels) {
  if (bytes.empty()) return Status::InvalidArgument("image: empty data");
  OPTIQ_RETURN_IF_ERROR(check_png_chunks(bytes));
  OPTIQ_RETURN_IF_ERROR(check_jpeg_huffman_tables(bytes));
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) return Status::InvalidArgument("image: larger than 2 GiB");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp))
    return Status::InvalidArgument(std::string("image: cannot decode (") + stbi_failure_reason() + ")");
  // Refuse absurd sizes before stb allocates (the patch grid is capped anyway after resizing).
  if (w <= 0 || h <= 0 || static_cast<int64_t>(w) * h > max_pixels)
    return Status::InvalidArgument("image: size " + std::to_string(w) + "x" + std::to_string(h) + " out of range");
  unsigned char* px = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp, 3);
  if (!px) return Status::InvalidArgument(std::string("image: cannot decode (") + stbi_failure_reason() + ")");
  RgbImage img;
  img.width = w;
  img.height = h;
  img.rgb.assign(px, px + static_cast<size_t>(w) * h * 3);
  stbi_image_free(px);
  return img;
}

Result<RgbImage> load_image_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  auto r = decode_image(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  if (!r.ok()) return r.status().WithContext(path);
  return r;
}

namespace {

double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// PIL-style separable resampling weights: for each output index, [first input, count) and weights.
struct Taps {
  std::vector<int> first, count;
  std::vector<double> w;  // [out, max_count]
  int max_count = 0;
};

Taps make_taps(int in, int out) {
  Taps t;
  const double scale = static_cast<double>(in) / out;
  const double fs = std::max(scale, 1.0);  // antialias: stretch the kernel when shrinking
  const double support = 2.0 * fs;
  t.max_count = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out);
  t.count.resize(out);
  t.w.assign(static_cast<size_t>(out) * t.max_count, 0.0);
  for (int i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    int hi = std::min(static_cast<int>(center + support + 0.5), in);
    hi = std::min(hi, lo + t.max_count);
    double sum = 0;
    for (int j = lo; j < hi; ++j) {
      const double w = bicubic((j - center + 0.5) / fs);
      t.w[static_cast<size_t>(i) * t.max_count + (j - lo)] = w;
      sum += w;
    }
    if (sum != 0)
      for (int j = 0; j < hi - lo; ++j) t.w[static_cast<size_t>(i) * t.max_count + j] /= sum;
    t.first[i] = lo;
    t.count[i] = hi - lo;
  }
  return t;
}

}  // namespace

RgbImage resize_bicubic_aa(const RgbImage& img, int oh, int ow) {
  if (img.height == oh && img.width == ow) return img;
  const Taps th = make_taps(img.width, ow), tv = make_taps(img.height, oh);
  // Horizontal pass into float, then vertical, rounding once at the end.
  std::vector<float> mid(static_cast<size_t>(img.height) * ow * 3);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c) {
        double s = 0;
        for (int j = 0; j < th.count[x]; ++j)
          s += th.w[static_cast<size_t>(x) * th.max_count + j] *
               img.rgb[(static_cast<size_t>(y) * img.width + th.first[x] + j) * 3 + c];
        mid[(static_cast<size_t>(y) * ow + x) * 3 + c] = static_cast<float>(s);
      }
  RgbImage out;
  out.width = ow;
  out.height = oh;
  out.rgb.resize(static_cast<size_t>(oh) * ow * 3);
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c) {
        double s = 0;
        for (int j = 0; j < tv.count[y]; ++j)
          s += tv.w[static_cast<size_t>(y) * tv.max_count + j] * mid[(static_cast<size_t>(tv.first[y] + j) * ow + x) * 3 + c];
        out.rgb[(static_cast<size_t>(y) * ow + x) * 3 + c] =
            static_cast<uint8_t>(std::clamp(std::lround(s), 0L, 255L));
      }
  return out;
}

}  // namespace optiq
