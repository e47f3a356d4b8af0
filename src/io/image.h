// Images from the outside world: decoding (stb_image) and a generic antialiased resize. Used by the
// vision tower's preprocessing and by the shells (serve, cli) that read images from requests and files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace optiq {

// An 8-bit RGB image, [height, width, 3] row-major.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

// Decodes JPEG / PNG / BMP / GIF (first frame) bytes with stb_image, converting to RGB.
// InvalidArgument (with stb's reason) on malformed or unsupported data, and on an image of more than
// `max_pixels` (width·height, read from the header before anything is allocated or decoded).
// Thread-safe: stb's failure reason is thread-local.
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 26;
Result<RgbImage> decode_image(std::span<const uint8_t> bytes, int64_t max_pixels = kMaxImagePixels);
// Reads and decodes an image file; NotFound if it cannot be opened; every error names the file.
Result<RgbImage> load_image_file(const std::string& path);

// Bicubic resize with antialiasing (PIL / torchvision antialias=True semantics: a = -0.5, the
// kernel stretched by the downscale factor), rounded and clamped back to 8 bits. Same size: a copy.
RgbImage resize_bicubic_aa(const RgbImage& img, int out_height, int out_width);

}  // namespace optiq
