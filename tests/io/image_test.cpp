// Image decoding (stb_image plus the PNG chunk check) and the antialiased bicubic resize.
#include "io/image.h"

#include <gtest/gtest.h>

#include <fstream>
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
