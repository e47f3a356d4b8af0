// Gemma-4 vision preprocessing: image decoding, target sizes, antialiased bicubic resize, and the
// tower on images that need resizing. Soft-token values are checked against the fixture in
// diffusion_gemma_test.cpp.
#include "models/gemma4_vision.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/image_write.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

RgbImage gradient(int w, int h) {
  RgbImage im;
  im.width = w;
  im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &im.rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 255 / std::max(1, w - 1));
      p[1] = static_cast<uint8_t>(y * 255 / std::max(1, h - 1));
      p[2] = static_cast<uint8_t>((x * 7 + y * 13) % 256);
    }
  return im;
}

TEST(VisionPreprocess, TargetSizeFollowsTheProcessorRule) {
  // specs/diffusiongemma.md §3.1: any square image → 768×768 (256 soft tokens) at 280 tokens.
  EXPECT_EQ(vision_target_size(1000, 1000, 16, 3, 280), std::make_pair(768, 768));
  EXPECT_EQ(vision_target_size(333, 333, 16, 3, 280), std::make_pair(768, 768));
  // The fixture's 24×24 image is already at its target (patch 4, pool 3, 4 soft tokens).
  EXPECT_EQ(vision_target_size(24, 24, 4, 3, 4), std::make_pair(24, 24));
  // Very thin: the short side collapses to one pooled cell, the long side is capped.
  EXPECT_EQ(vision_target_size(5000, 1, 16, 3, 280), std::make_pair(280 * 48, 48));
  EXPECT_EQ(vision_target_size(1, 5000, 16, 3, 280), std::make_pair(48, 280 * 48));
  for (auto [h, w] : {std::pair{480, 640}, {1080, 1920}, {37, 91}}) {
    auto [th, tw] = vision_target_size(h, w, 16, 3, 280);
    EXPECT_EQ(th % 48, 0);
    EXPECT_EQ(tw % 48, 0);
    EXPECT_LE((th / 16) * (tw / 16), 2520) << h << "x" << w;
  }
}

TEST(VisionPreprocess, ResizeKeepsConstantsAndIdentity) {
  RgbImage g = gradient(40, 30);
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
  RgbImage d = resize_bicubic_aa(gradient(200, 10), 5, 40);
  for (int x = 1; x < 40; ++x) EXPECT_GE(d.rgb[(2 * 40 + x) * 3], d.rgb[(2 * 40 + x - 1) * 3]);
}

TEST(VisionPreprocess, DecodesPngExactlyAndRejectsGarbage) {
  RgbImage g = gradient(9, 5);
  std::vector<uint8_t> png;
  ASSERT_TRUE(stbi_write_png_to_func(test::append_bytes, &png, 9, 5, 3, g.rgb.data(), 9 * 3));
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
  EXPECT_FALSE(load_image_file("/nonexistent/image.png").ok());
}

TEST(VisionPreprocess, RejectsPngChunksLongerThanTheData) {
  // Found by tests/fuzz/image_decode_fuzz: an IDAT length field claiming ~1.3 GB made stb allocate
  // that much before noticing the data ends.
  const std::vector<uint8_t> bad{137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 13, 0, 0, 0, 7, 8, 2, 0, 0, 0, 92, 18, 80, 77, 82, 0, 1, 35, 73, 68, 65, 84, 120, 156, 1, 24, 1, 231, 254, 0, 0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 98, 105, 112, 119, 126, 133, 140, 147, 154, 161, 168, 175, 182, 137, 80, 78, 71, 13, 10, 26, 10, 0, 189};
  auto r = decode_image(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("PNG chunk"), std::string::npos) << r.status().ToString();
}

TEST(VisionTower, ResizesArbitraryImagesToWholePooledCells) {
  auto m = load_model(test::fixture("dgemma-tiny"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ThreadPool pool(1);
  RgbImage g = gradient(30, 20);  // → 12×24 at patch 4 / pool 3 / 4 tokens: 1×2 cells
  auto e = (*m)->embed_image(g.rgb, g.width, g.height, pool);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->n_tokens, 2);
  ASSERT_EQ(e->embeds.size(), static_cast<size_t>(2 * (*m)->info().hidden_size));
  for (float v : e->embeds) ASSERT_TRUE(std::isfinite(v));
  EXPECT_FALSE((*m)->embed_image(g.rgb, 31, 20, pool).ok());  // byte count mismatch
}

}  // namespace
}  // namespace optiq
