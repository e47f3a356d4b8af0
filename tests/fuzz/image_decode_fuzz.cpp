// libFuzzer target: arbitrary bytes through the image decoder, then the vision preprocessing
// (target size + antialiased resize) on whatever decodes. Must never crash or hang.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/image.h"
#include "models/gemma4_vision.h"  // vision_target_size

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto img = optiq::decode_image(std::span<const uint8_t>(data, size));
  if (!img.ok()) return 0;
  if (static_cast<int64_t>(img->width) * img->height > (1 << 16)) return 0;  // keep runs fast
  const auto [th, tw] = optiq::vision_target_size(img->height, img->width, 4, 3, 4);
  const optiq::RgbImage r = optiq::resize_bicubic_aa(*img, th, tw);
  if (r.rgb.size() != static_cast<size_t>(th) * tw * 3) __builtin_trap();
  return 0;
}
