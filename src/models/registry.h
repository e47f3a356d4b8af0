// model_type → the architecture's entry points: its loader and its random-checkpoint writer. One line
// per architecture in registry.cpp; nothing outside src/models switches on model_type.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "io/model_dir.h"
#include "models/model.h"

namespace optiq {

using ModelFactory = Result<std::unique_ptr<Model>> (*)(std::shared_ptr<ModelDir> dir, const LoadOptions& opts);
// Writes a random-weight checkpoint (config.json, generation_config.json, model.safetensors) for
// `config` (the architecture's config.json keys) into `out_dir` (created if missing). `dtype` is kBF16
// or kF32; deterministic in `seed`. InvalidArgument / Corruption for configs the loader would reject.
using RandomCheckpointWriter = Status (*)(const nlohmann::json& config, const std::string& out_dir, DType dtype,
                                          uint64_t seed);

// Each defined in its architecture's file.
Result<std::unique_ptr<Model>> make_dhara(std::shared_ptr<ModelDir> dir, const LoadOptions& opts);
Result<std::unique_ptr<Model>> make_diffusion_gemma(std::shared_ptr<ModelDir> dir, const LoadOptions& opts);
// dhara: weights ~ N(0, 0.02) (scaled down for output projections), norms 1, Canon taps ~ N(0, 0.1),
// inv_freq from rope_theta.
Status write_random_dhara(const nlohmann::json& config, const std::string& out_dir, DType dtype, uint64_t seed);
// DiffusionGemma (text decoder and encoder scalars; no vision tower): linears ~ N(0, 1/fan_in),
// embeddings ~ N(0, 4/√hidden) (logits spread ≈ 4 before the soft-cap), norms 1 + N(0, 0.1), router
// N(0, 1), layer scalars U(0.9, 1.1).
Status write_random_diffusion_gemma(const nlohmann::json& config, const std::string& out_dir, DType dtype,
                                    uint64_t seed);

// load_model (model.h) on a directory already read: applies opts.tensor_overrides and opts.repack, then
// the factory for config.json's model_type. Unsupported for an unknown model_type, Corruption without one.
Result<std::unique_ptr<Model>> load_model(std::shared_ptr<ModelDir> md, const LoadOptions& opts = {});

// Returns the factory for `model_type`, or nullptr.
ModelFactory find_model_factory(const std::string& model_type);
std::vector<std::string> registered_model_types();

// The writer registered for config["model_type"]. InvalidArgument if model_type is missing or not a
// string, Unsupported if no architecture registers it; both list the registered types.
Status write_random_checkpoint(const nlohmann::json& config, const std::string& out_dir, DType dtype, uint64_t seed);

}  // namespace optiq
