// model_type → factory. One line per architecture in registry.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/model_dir.h"
#include "models/model.h"

namespace optiq {

using ModelFactory = Result<std::unique_ptr<Model>> (*)(std::shared_ptr<ModelDir> dir, const LoadOptions& opts);

// Factories, each defined in its architecture's file.
Result<std::unique_ptr<Model>> make_dhara(std::shared_ptr<ModelDir> dir, const LoadOptions& opts);
Result<std::unique_ptr<Model>> make_diffusion_gemma(std::shared_ptr<ModelDir> dir, const LoadOptions& opts);

// load_model (model.h) on a directory already read: applies opts.tensor_overrides and opts.repack, then
// the factory for config.json's model_type. Unsupported for an unknown model_type, Corruption without one.
Result<std::unique_ptr<Model>> load_model(std::shared_ptr<ModelDir> md, const LoadOptions& opts = {});

// Returns the factory for `model_type`, or nullptr.
ModelFactory find_model_factory(const std::string& model_type);
std::vector<std::string> registered_model_types();

}  // namespace optiq
