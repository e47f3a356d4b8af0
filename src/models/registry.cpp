#include "models/registry.h"

#include <utility>

namespace optiq {

namespace {

struct Registration {
  const char* model_type;
  ModelFactory load;
  RandomCheckpointWriter write_random;
};

const Registration kRegistry[] = {
    {"dhara_ar", &make_dhara, &write_random_dhara},
    {"diffusion_gemma", &make_diffusion_gemma, &write_random_diffusion_gemma},
};

const Registration* find(const std::string& model_type) {
  for (const Registration& r : kRegistry)
    if (model_type == r.model_type) return &r;
  return nullptr;
}

// "(known: a, b)", for errors about unknown model types.
std::string registered_list() {
  std::string known;
  for (auto& n : registered_model_types()) known += (known.empty() ? "" : ", ") + n;
  return "(known: " + known + ")";
}

}  // namespace

ModelFactory find_model_factory(const std::string& model_type) {
  const Registration* r = find(model_type);
  return r ? r->load : nullptr;
}

std::vector<std::string> registered_model_types() {
  std::vector<std::string> out;
  for (const Registration& r : kRegistry) out.push_back(r.model_type);
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
  const Registration* r = find(type);
  if (!r)
    return Status::Unsupported(dir + "/config.json: model_type \"" + type + "\" is not supported " + registered_list());
  return r->load(std::move(md), opts);
}

Status write_random_checkpoint(const nlohmann::json& config, const std::string& out_dir, DType dtype, uint64_t seed) {
  auto it = config.find("model_type");
  if (it == config.end() || !it->is_string())
    return Status::InvalidArgument("config: missing string field model_type " + registered_list());
  const std::string type = it->get<std::string>();
  const Registration* r = find(type);
  if (!r) return Status::Unsupported("config: model_type \"" + type + "\" is not registered " + registered_list());
  return r->write_random(config, out_dir, dtype, seed);
}

}  // namespace optiq
