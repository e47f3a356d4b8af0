// Gemma-4 vision tower and its image preprocessing (specs/diffusiongemma.md §3), composed by
// models that take images (DiffusionGemma). Output: soft tokens in the text model's hidden space.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/weight.h"
#include "models/model.h"
#include "models/weight_loader.h"

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
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 26;
Result<RgbImage> decode_image(std::span<const uint8_t> bytes, int64_t max_pixels = kMaxImagePixels);
// Reads and decodes an image file; errors name the file.
Result<RgbImage> load_image_file(const std::string& path);

// Target size of the aspect-preserving resize (§3.1 step 2): multiples of patch·pool with at most
// max_soft_tokens·pool² patches. Returns {height, width}.
std::pair<int, int> vision_target_size(int height, int width, int patch, int pool, int max_soft_tokens);

// Bicubic resize with antialiasing (PIL / torchvision antialias=True semantics: a = -0.5, the
// kernel stretched by the downscale factor), rounded and clamped back to 8 bits.
RgbImage resize_bicubic_aa(const RgbImage& img, int out_height, int out_width);

struct Gemma4VisionConfig {
  int64_t hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  int64_t patch_size = 16, position_embedding_size = 0, pooling_kernel_size = 3;
  int64_t default_output_length = 280;
  float rope_theta = 100.f, rms_norm_eps = 1e-6f;
  bool standardize = true;

  static Result<Gemma4VisionConfig> from_json(const nlohmann::json& j, const std::string& where);

 private:
  static Result<Gemma4VisionConfig> parse(const nlohmann::json& j, const std::string& where);
};

class Gemma4Vision {
 public:
  // Loads `prefix`vision_tower.* and `prefix`embed_vision.embedding_projection (prefix e.g.
  // "model.encoder."), projecting to `text_hidden`.
  static Result<std::unique_ptr<Gemma4Vision>> load(const WeightLoader& wl, const Gemma4VisionConfig& cfg,
                                                     const std::string& prefix, int64_t text_hidden);

  // Resizes (if needed), then runs the tower. `max_soft_tokens` <= 0 uses default_output_length.
  Result<ImageEmbedding> embed(std::span<const uint8_t> rgb, int width, int height, ThreadPool& pool,
                               int max_soft_tokens = 0) const;
  // The tower on an image whose sides are already multiples of patch·pool (no resize).
  Result<ImageEmbedding> embed_resized(const RgbImage& img, ThreadPool& pool) const;

  const Gemma4VisionConfig& config() const { return cfg_; }
  size_t weight_bytes() const;

 private:
  struct Layer {
    Weight input_layernorm, post_attention_layernorm, pre_feedforward_layernorm, post_feedforward_layernorm;  // [Cv]
    Weight q_proj, k_proj, v_proj, o_proj;  // [Cv, Cv]
    Weight q_norm, k_norm;                  // [Dv]
    Weight gate_proj, up_proj, down_proj;   // [Fv, Cv] ×2, [Cv, Fv]
  };
  Gemma4Vision() = default;

  Gemma4VisionConfig cfg_;
  int64_t text_hidden_ = 0;
  Weight input_proj_;                   // [Cv, 3·p²]
  std::vector<float> pos_table_;        // [2, P, Cv]
  std::vector<float> std_bias_, std_scale_;  // [Cv]
  Weight embedding_projection_;         // [C, Cv]
  std::vector<Layer> layers_;
};

}  // namespace optiq
