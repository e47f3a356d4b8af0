// dhara helpers other code needs besides the Model interface.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "core/tensor.h"

namespace optiq {

// Writes a random-weight dhara checkpoint (config.json, generation_config.json, model.safetensors)
// for `config` (dhara_ar keys) into `out_dir` (created if missing). Weights ~ N(0, 0.02) (scaled
// down for output projections), norms 1, Canon taps ~ N(0, 0.1), inv_freq from rope_theta.
// `dtype` is kBF16 or kF32. Deterministic in `seed`.
Status write_random_dhara(const nlohmann::json& config, const std::string& out_dir, DType dtype, uint64_t seed);

}  // namespace optiq
