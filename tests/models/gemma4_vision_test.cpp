// Gemma-4 vision preprocessing: target sizes, and the tower on images that need resizing. Soft-token
// values are checked against the fixture in diffusion_gemma_test.cpp; decoding and resizing in
// tests/io/image_test.cpp.
#include "models/gemma4_vision.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/image_write.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

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

TEST(VisionTower, ResizesArbitraryImagesToWholePooledCells) {
  auto m = load_model(test::fixture("dgemma-tiny"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ThreadPool pool(1);
  RgbImage g = test::gradient_image(30, 20);  // → 12×24 at patch 4 / pool 3 / 4 tokens: 1×2 cells
  auto e = (*m)->embed_image(g.rgb, g.width, g.height, pool);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->n_tokens, 2);
  ASSERT_EQ(e->embeds.size(), static_cast<size_t>(2 * (*m)->info().hidden_size));
  for (float v : e->embeds) ASSERT_TRUE(std::isfinite(v));
  EXPECT_FALSE((*m)->embed_image(g.rgb, 31, 20, pool).ok());  // byte count mismatch
}

}  // namespace
}  // namespace optiq
