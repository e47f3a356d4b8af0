// Image decoding (stb_image plus the PNG chunk and JPEG Huffman table checks) and the antialiased bicubic resize.
#include "io/image.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/image_write.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

using test::gradient_image;

std::vector<uint8_t> encode_png(const RgbImage& im) {
  std::vector<uint8_t> png;
  EXPECT_TRUE(stbi_write_png_to_func(test::append_bytes, &png, im.width, im.height, 3, im.rgb.data(), im.width * 3));
  return png;
}

TEST(ImageResize, KeepsConstantsAndIdentity) {
  RgbImage g = gradient_image(40, 30);
  RgbImage same = resize_bicubic_aa(g, 30, 40);
  EXPECT_EQ(same.rgb, g.rgb);
  RgbImage flat;
  flat.width = 50;
  flat.height = 20;
  flat.rgb.assign(50 * 20 * 3, 77);
  for (auto [h, w] : {std::pair{7, 13}, {40, 100}, {20, 50}}) {
    RgbImage r = resize_bicubic_aa(flat, h, w);
    ASSERT_EQ(r.rgb.size(), static_cast<size_t>(h) * w * 3);
    for (uint8_t v : r.rgb) ASSERT_EQ(v, 77);  // normalised taps: constants stay constant
  }
  // Downscaling a ramp keeps it monotone (antialiasing does not ring on a linear signal).
  RgbImage d = resize_bicubic_aa(gradient_image(200, 10), 5, 40);
  for (int x = 1; x < 40; ++x) EXPECT_GE(d.rgb[(2 * 40 + x) * 3], d.rgb[(2 * 40 + x - 1) * 3]);
}

TEST(ImageDecode, DecodesPngExactlyAndRejectsGarbage) {
  RgbImage g = gradient_image(9, 5);
  const std::vector<uint8_t> png = encode_png(g);
  auto r = decode_image(png);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->width, 9);
  EXPECT_EQ(r->height, 5);
  EXPECT_EQ(r->rgb, g.rgb);
  std::vector<uint8_t> jpg;
  ASSERT_TRUE(stbi_write_jpg_to_func(test::append_bytes, &jpg, 9, 5, 3, g.rgb.data(), 95));
  auto j = decode_image(jpg);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->width, 9);
  std::vector<uint8_t> garbage{1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_FALSE(decode_image(garbage).ok());
  EXPECT_FALSE(decode_image({}).ok());
  std::vector<uint8_t> truncated(png.begin(), png.begin() + png.size() / 2);
  EXPECT_FALSE(decode_image(truncated).ok());
}

// A PNG's chunks as (offset, length of data) pairs; the layout is length, type, data, CRC.
std::vector<std::pair<size_t, uint32_t>> png_chunks(const std::vector<uint8_t>& png) {
  std::vector<std::pair<size_t, uint32_t>> out;
  for (size_t off = 8; off + 8 <= png.size();) {
    const uint32_t len = (uint32_t{png[off]} << 24) | (uint32_t{png[off + 1]} << 16) | (uint32_t{png[off + 2]} << 8) | png[off + 3];
    out.emplace_back(off, len);
    off += 12 + len;
  }
  return out;
}

TEST(ImageDecode, TruncatedImageDataReportsStbsReason) {
  // The IDAT chunk cut to half its data, its length field rewritten to match and IEND kept: every chunk
  // is whole, so only stb (inflating the cut zlib stream) can tell, and its reason must reach the caller.
  const std::vector<uint8_t> png = encode_png(gradient_image(9, 5));
  const auto chunks = png_chunks(png);
  ASSERT_EQ(chunks.size(), 3u);  // IHDR, IDAT, IEND
  const auto [idat, len] = chunks[1];
  ASSERT_EQ(std::string(png.begin() + idat + 4, png.begin() + idat + 8), "IDAT");
  const uint32_t keep = len / 2;
  std::vector<uint8_t> cut(png.begin(), png.begin() + idat);
  for (int s = 24; s >= 0; s -= 8) cut.push_back(static_cast<uint8_t>(keep >> s));
  cut.insert(cut.end(), png.begin() + idat + 4, png.begin() + idat + 8 + keep);
  cut.insert(cut.end(), png.begin() + idat + 8 + len, png.end());  // the CRC (stb skips it) and IEND
  auto r = decode_image(cut);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << r.status().ToString();
  const std::string& msg = r.status().message();
  const std::string prefix = "image: cannot decode (";
  ASSERT_EQ(msg.rfind(prefix, 0), 0u) << msg;
  ASSERT_EQ(msg.back(), ')') << msg;
  EXPECT_GT(msg.size(), prefix.size() + 1) << "stb's reason is empty: " << msg;
}

TEST(ImageDecode, PngCutAtAChunkBoundarySaysTruncated) {
  // Without the IEND check stb reports an empty reason here ("image: cannot decode ()").
  const std::vector<uint8_t> png = encode_png(gradient_image(9, 5));
  const auto chunks = png_chunks(png);
  ASSERT_EQ(chunks.size(), 3u);
  for (size_t end : {size_t{8}, chunks[1].first, chunks[2].first, chunks[2].first + 5}) {
    auto r = decode_image(std::span<const uint8_t>(png.data(), end));
    ASSERT_FALSE(r.ok()) << end;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << r.status().ToString();
    EXPECT_EQ(r.status().message(),
              "image: PNG truncated: data ends at byte " + std::to_string(end) + " before the IEND chunk");
  }
}

TEST(ImageDecode, RejectsPngChunksLongerThanTheData) {
  // Found by tests/fuzz/image_decode_fuzz: an IDAT length field claiming ~1.3 GB made stb allocate
  // that much before noticing the data ends.
  const std::vector<uint8_t> bad{137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 13, 0, 0, 0, 7, 8, 2, 0, 0, 0, 92, 18, 80, 77, 82, 0, 1, 35, 73, 68, 65, 84, 120, 156, 1, 24, 1, 231, 254, 0, 0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 98, 105, 112, 119, 126, 133, 140, 147, 154, 161, 168, 175, 182, 137, 80, 78, 71, 13, 10, 26, 10, 0, 189};
  auto r = decode_image(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("PNG chunk"), std::string::npos) << r.status().ToString();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  return {s.begin(), s.end()};
}

std::vector<uint8_t> encode_jpg(const RgbImage& im, int quality) {
  std::vector<uint8_t> jpg;
  EXPECT_TRUE(stbi_write_jpg_to_func(test::append_bytes, &jpg, im.width, im.height, 3, im.rgb.data(), quality));
  return jpg;
}

// A JPEG's markers in order as (marker, offset of its FF), entropy-coded data skipped; stops after EOI.
std::vector<std::pair<uint8_t, size_t>> jpeg_markers(const std::vector<uint8_t>& jpg) {
  std::vector<std::pair<uint8_t, size_t>> out{{0xD8, 0}};
  for (size_t p = 2; p + 1 < jpg.size();) {
    EXPECT_EQ(jpg[p], 0xFF) << "at byte " << p;
    const uint8_t m = jpg[p + 1];
    out.emplace_back(m, p);
    if (m == 0xD9) break;
    p += 2 + ((size_t{jpg[p + 2]} << 8) | jpg[p + 3]);
    if (m == 0xDA)
      while (p + 1 < jpg.size() && !(jpg[p] == 0xFF && jpg[p + 1] != 0 && (jpg[p + 1] < 0xD0 || jpg[p + 1] > 0xD7))) ++p;
  }
  return out;
}

// Offsets of the SOS markers' FF bytes, in order.
std::vector<size_t> scans(const std::vector<uint8_t>& jpg) {
  std::vector<size_t> out;
  for (auto [m, off] : jpeg_markers(jpg))
    if (m == 0xDA) out.push_back(off);
  return out;
}

// The byte holding (Td << 4 | Ta) of component i of the scan whose FF is at `sos`.
size_t scan_tables_byte(size_t sos, int i) { return sos + 6 + 2 * static_cast<size_t>(i); }

std::string undefined_table_message(size_t sos, const std::string& kind, int id) {
  return "image: JPEG scan at byte " + std::to_string(sos) + " decodes with " + kind + " Huffman table " +
         std::to_string(id) + ", which no DHT segment before it defines";
}

void expect_refused(const std::vector<uint8_t>& jpg, const std::string& message) {
  auto r = decode_image(jpg);
  ASSERT_FALSE(r.ok()) << message;
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), message);
}

TEST(ImageDecode, RefusesAScanThatDecodesWithAnUndefinedHuffmanTable) {
  // stb 2.27 reads an undefined table from uninitialized memory and indexes its symbols with whatever it
  // finds (tests/fuzz: index 16712520 out of bounds for stbi_uc[256]; the fuzzer's file is the corpus seed
  // reject_jpeg_scan_uses_undefined_ac_table.jpg). stb_image_write defines DC and AC tables 0 and 1.
  const std::vector<uint8_t> jpg = encode_jpg(gradient_image(16, 8), 90);
  ASSERT_EQ(scans(jpg).size(), 1u);
  const size_t sos = scans(jpg)[0];
  ASSERT_EQ(jpg[scan_tables_byte(sos, 2)], 0x11);  // Cr: DC 1, AC 1
  ASSERT_TRUE(decode_image(jpg).ok());

  std::vector<uint8_t> bad = jpg;
  bad[scan_tables_byte(sos, 2)] = 0x12;
  expect_refused(bad, undefined_table_message(sos, "AC", 2));
  bad[scan_tables_byte(sos, 2)] = 0x31;
  expect_refused(bad, undefined_table_message(sos, "DC", 3));
  bad[scan_tables_byte(sos, 2)] = 0x17;  // an id stb refuses itself ("bad AC huff")
  expect_refused(bad, undefined_table_message(sos, "AC", 7));

  // Fill bytes before SOI, which stb accepts, do not hide the scan (the offset moves by one).
  bad[scan_tables_byte(sos, 2)] = 0x12;
  bad.insert(bad.begin(), 0xFF);
  expect_refused(bad, undefined_table_message(sos + 1, "AC", 2));

  // No DHT segment at all, as in Motion-JPEG frames (which rely on the standard tables; stb has none).
  std::vector<uint8_t> no_dht;
  const auto markers = jpeg_markers(jpg);
  for (size_t i = 0; i + 1 < markers.size(); ++i)
    if (markers[i].first != 0xC4) no_dht.insert(no_dht.end(), jpg.begin() + markers[i].second, jpg.begin() + markers[i + 1].second);
  no_dht.insert(no_dht.end(), jpg.begin() + markers.back().second, jpg.end());
  ASSERT_EQ(no_dht.size(), jpg.size() - 420);  // stb_image_write: one DHT segment with all four tables
  expect_refused(no_dht, undefined_table_message(sos - 420, "DC", 0));
}

TEST(ImageDecode, ProgressiveScansNeedOnlyTheTablesStbDecodesThemWith) {
  // libjpeg-turbo's progressive script: the first DC scan names AC table 0 before any DHT defines it,
  // a DC refinement scan decodes no Huffman codes, AC scans use only their AC table.
  const std::vector<uint8_t> jpg = read_bytes(test::repo_dir() + "/tests/fuzz/corpus/image_decode/libjpeg_progressive_420_37x23.jpg");
  const std::vector<size_t> sos = scans(jpg);
  ASSERT_EQ(sos.size(), 10u);
  auto good = decode_image(jpg);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  // Scan 0: first DC scan of all three components (Ss = 0, Ah = 0); scan 1: AC of component 1 (Ss = 1);
  // scan 6: DC refinement of all three (Ss = 0, Ah = 1).
  ASSERT_EQ(jpg[sos[0] + 11], 0);
  ASSERT_EQ(jpg[sos[0] + 13] >> 4, 0);
  ASSERT_EQ(jpg[sos[1] + 7], 1);
  ASSERT_EQ(jpg[sos[6] + 11], 0);
  ASSERT_EQ(jpg[sos[6] + 13] >> 4, 1);

  std::vector<uint8_t> bad = jpg;
  bad[scan_tables_byte(sos[0], 1)] = 0x20;  // first DC scan: DC table 2 is used and undefined
  expect_refused(bad, undefined_table_message(sos[0], "DC", 2));
  bad = jpg;
  bad[scan_tables_byte(sos[1], 0)] = 0x03;  // AC scan: AC table 3
  expect_refused(bad, undefined_table_message(sos[1], "AC", 3));

  std::vector<uint8_t> unused = jpg;
  unused[scan_tables_byte(sos[0], 0)] = 0x03;  // first DC scan naming an undefined AC table: not used
  unused[scan_tables_byte(sos[6], 0)] = 0x30;  // DC refinement naming an undefined DC table: not used
  unused[scan_tables_byte(sos[1], 0)] = 0x30;  // AC scan naming an undefined DC table: not used
  auto r = decode_image(unused);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rgb, good->rgb);
}

// Mean absolute difference per channel value.
double mean_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  double s = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += std::abs(int{a[i]} - int{b[i]});
  return a.empty() ? 0 : s / static_cast<double>(a.size());
}

TEST(ImageDecode, DecodesJpegsFromCommonEncoders) {
  // stb_image_write: baseline, standard tables, 4:2:0 below quality 90. Bounds: measured error plus margin.
  for (auto [w, h] : {std::pair{1, 1}, {9, 5}, {33, 17}, {64, 48}})
    for (auto [q, bound] : {std::pair{1, 35.0}, {50, 12.0}, {90, 10.0}, {100, 1.0}}) {
      const RgbImage g = gradient_image(w, h);
      auto r = decode_image(encode_jpg(g, q));
      ASSERT_TRUE(r.ok()) << w << "x" << h << " q" << q << ": " << r.status().ToString();
      ASSERT_EQ(r->width, w);
      ASSERT_EQ(r->height, h);
      EXPECT_LT(mean_abs_diff(r->rgb, g.rgb), bound) << w << "x" << h << " q" << q;
    }
  // libjpeg-turbo 2.1.5 (tests/fuzz/corpus/image_decode/libjpeg_*, docs/fuzzing.md): default, optimized
  // and restart-interval baseline files, and progressive ones, which define their tables scan by scan.
  // Chroma subsampling blurs the pattern's 17-periodic blue texture, hence the larger bounds there.
  struct File {
    const char* name;
    int w, h;
    bool gray;
    double bound;
  };
  const std::string dir = test::repo_dir() + "/tests/fuzz/corpus/image_decode/";
  for (const File& f : {File{"libjpeg_baseline_420_37x23.jpg", 37, 23, false, 28}, {"libjpeg_optimized_444_20x12.jpg", 20, 12, false, 10},
                        {"libjpeg_restart_422_33x17.jpg", 33, 17, false, 28}, {"libjpeg_progressive_420_37x23.jpg", 37, 23, false, 28},
                        {"libjpeg_progressive_gray_19x11.jpg", 19, 11, true, 10},
                        {"libjpeg_progressive_restart_444_24x16.jpg", 24, 16, false, 10}}) {
    auto r = decode_image(read_bytes(dir + f.name));
    ASSERT_TRUE(r.ok()) << f.name << ": " << r.status().ToString();
    ASSERT_EQ(r->width, f.w) << f.name;
    ASSERT_EQ(r->height, f.h) << f.name;
    // The pattern they were written from: R ramps with x, G with y, B is a 17-periodic texture.
    std::vector<uint8_t> want(static_cast<size_t>(f.w) * f.h * 3);
    for (int y = 0; y < f.h; ++y)
      for (int x = 0; x < f.w; ++x) {
        const int rgb[3] = {x * 255 / (f.w - 1), y * 255 / (f.h - 1), (x * 7 + y * 13) % 17 * 15};
        for (int c = 0; c < 3; ++c)
          want[(static_cast<size_t>(y) * f.w + x) * 3 + c] = static_cast<uint8_t>(f.gray ? (rgb[0] + rgb[1] + rgb[2]) / 3 : rgb[c]);
      }
    EXPECT_LT(mean_abs_diff(r->rgb, want), f.bound) << f.name;
  }
  // Same pixels, quality and sampling: progressive coding reorders the same quantized coefficients, so once
  // every refinement scan is applied the image equals the baseline one exactly.
  auto baseline = decode_image(read_bytes(dir + "libjpeg_baseline_420_37x23.jpg"));
  auto progressive = decode_image(read_bytes(dir + "libjpeg_progressive_420_37x23.jpg"));
  ASSERT_TRUE(baseline.ok() && progressive.ok());
  EXPECT_EQ(progressive->rgb, baseline->rgb);
}

TEST(ImageFile, LoadsAFileAndNamesMissingOrBadOnes) {
  test::TempDir tmp;
  const RgbImage g = gradient_image(6, 4);
  const std::vector<uint8_t> png = encode_png(g);
  const std::string good = tmp.str() + "/g.png";
  std::ofstream(good, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), png.size());
  auto r = load_image_file(good);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rgb, g.rgb);

  const std::string missing = tmp.str() + "/no_such_image.png";
  auto m = load_image_file(missing);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Status::Code::kNotFound);
  EXPECT_NE(m.status().ToString().find(missing), std::string::npos) << m.status().ToString();

  const std::string bad = tmp.str() + "/bad.png";
  std::ofstream(bad) << "not an image";
  auto b = load_image_file(bad);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(b.status().ToString().find(bad), std::string::npos) << b.status().ToString();
}

}  // namespace
}  // namespace optiq
