// LoRA adapters for tests: random adapters over a model's adaptable linears, written as adapter
// directories, and float32 copies of checkpoints (to fuse without the bf16 rounding of the output).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "io/lora_adapter.h"
#include "io/safetensors.h"
#include "models/model.h"

namespace optiq::test {

// Rank-r LoRA on every linear `model` adapts (or those whose path contains `only`), mlx-lm's init for
// a (U(±1/√in)) and b ~ N(0, b_sd) so that the adapter changes the outputs.
inline LoraAdapter random_adapter(const Model& model, int64_t rank, float scale, float b_sd, uint64_t seed,
                                  const std::string& only = "") {
  std::mt19937_64 rng(seed);
  LoraAdapter ad;
  ad.name = "random";
  ad.scale = scale;
  for (const LoraTarget& t : model.adapter_targets()) {
    if (!only.empty() && t.module.find(only) == std::string::npos) continue;
    LoraModule& m = ad.modules[t.module];
    m.in = t.in;
    m.out = t.out;
    m.rank = rank;
    const float bound = 1.0f / std::sqrt(static_cast<float>(t.in));
    std::uniform_real_distribution<float> ua(-bound, bound);
    std::normal_distribution<float> nb(0.f, b_sd);
    m.a.resize(static_cast<size_t>(t.in * rank));
    m.b.resize(static_cast<size_t>(rank * t.out));
    for (float& v : m.a) v = ua(rng);
    for (float& v : m.b) v = nb(rng);
  }
  return ad;
}

// DIR/adapters.safetensors + DIR/adapter_config.json (mlx-lm and PEFT keys) for `ad`.
inline void write_adapter_dir(const LoraAdapter& ad, const std::string& dir, const std::string& base_model = "") {
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(save_lora_weights(dir + "/adapters.safetensors", ad).ok());
  const int64_t rank = ad.modules.empty() ? 0 : ad.modules.begin()->second.rank;
  nlohmann::json c = {{"fine_tune_type", "lora"},
                      {"num_layers", -1},
                      {"lora_parameters", {{"rank", rank}, {"scale", ad.scale}, {"dropout", 0.0}, {"keys", nullptr}}},
                      {"peft_type", "LORA"},
                      {"r", rank},
                      {"lora_alpha", static_cast<int64_t>(static_cast<float>(rank) * ad.scale)}};
  if (!base_model.empty()) c["base_model_name_or_path"] = base_model;
  std::ofstream(dir + "/adapter_config.json") << c.dump(2);
}

// A copy of model directory `src` in `dst` with every float tensor of model.safetensors stored as
// F32 (bf16 widens exactly, so the copy computes what the original does); other files copied.
inline void write_f32_copy(const std::string& src, const std::string& dst) {
  namespace fs = std::filesystem;
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().extension() != ".safetensors") fs::copy_file(e.path(), fs::path(dst) / e.path().filename());
  auto file = SafetensorsFile::open(src + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  std::vector<std::vector<float>> keep;
  keep.reserve((*file)->tensors().size());
  std::vector<TensorToWrite> out;
  for (const auto& [name, v] : (*file)->tensors()) {
    if (v.dtype != DType::kBF16 && v.dtype != DType::kF16) {
      out.push_back({name, v.dtype, v.shape, v.data, v.nbytes});
      continue;
    }
    keep.emplace_back(static_cast<size_t>(v.numel()));
    convert_to_f32(v.dtype, v.data, keep.back().data(), keep.back().size());
    out.push_back({name, DType::kF32, v.shape, keep.back().data(), keep.back().size() * 4});
  }
  ASSERT_TRUE(write_safetensors(dst + "/model.safetensors", out, (*file)->metadata()).ok());
}

}  // namespace optiq::test
