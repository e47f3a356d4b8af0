#include "models/registry.h"

#include <utility>

namespace optiq {

namespace {
const std::pair<const char*, ModelFactory> kRegistry[] = {
    {"dhara_ar", &make_dhara},
    {"diffusion_gemma", &make_diffusion_gemma},
};
}  // namespace

ModelFactory find_model_factory(const std::string& model_type) {
  for (auto& [name, f] : kRegistry)
    if (model_type == name) return f;
  return nullptr;
}

std::vector<std::string> registered_model_types() {
  std::vector<std::string> out;
  for (auto& [name, f] : kRegistry) out.push_back(name);
  return out;
}

Result<std::unique_ptr<Model>> load_model(const std::string& dir, const LoadOptions& opts) {
  OPTIQ_ASSIGN_OR_RETURN(std::shared_ptr<ModelDir> md, ModelDir::open(dir));
  return load_model(std::move(md), opts);
}

Result<std::unique_ptr<Model>> load_model(std::shared_ptr<ModelDir> md, const LoadOptions& opts) {
  const std::string dir = md->path;
  for (const auto& [name, o] : opts.tensor_overrides)
    OPTIQ_RETURN_IF_ERROR(md->tensors->set_override(name, o.dtype, o.shape, o.bytes).WithContext(dir));
  md->repack = opts.repack;
  auto it = md->config.find("model_type");
  if (it == md->config.end() || !it->is_string())
    return Status::Corruption(dir + "/config.json: missing string field model_type");
  const std::string type = it->get<std::string>();
  ModelFactory f = find_model_factory(type);
  if (!f) {
    std::string known;
    for (auto& n : registered_model_types()) known += (known.empty() ? "" : ", ") + n;
    return Status::Unsupported(dir + "/config.json: model_type \"" + type + "\" is not supported (known: " + known + ")");
  }
  return f(std::move(md), opts);
}

}  // namespace optiq
