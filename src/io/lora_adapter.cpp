#include "io/lora_adapter.h"

#include <cstring>
#include <set>

#include "io/model_dir.h"
#include "io/safetensors.h"

namespace optiq {

LoraAdapter LoraAdapter::zeros_like() const {
  LoraAdapter z;
  z.name = name;
  z.scale = scale;
  for (const auto& [k, m] : modules) {
    LoraModule& o = z.modules[k];
    o.in = m.in;
    o.rank = m.rank;
    o.out = m.out;
    o.a.assign(m.a.size(), 0.0f);
    o.b.assign(m.b.size(), 0.0f);
  }
  return z;
}

size_t LoraAdapter::parameter_count() const {
  size_t n = 0;
  for (const auto& [k, m] : modules) n += m.a.size() + m.b.size();
  return n;
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<std::vector<float>> read_f32(const TensorView& v, const std::string& where) {
  std::vector<float> out(static_cast<size_t>(v.numel()));
  const auto* p = static_cast<const uint8_t*>(v.data);
  switch (v.dtype) {
    case DType::kF32: std::memcpy(out.data(), p, out.size() * sizeof(float)); break;
    case DType::kBF16:
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      break;
    case DType::kF16:
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      break;
    default: return Status::Corruption(where + ": dtype must be F32, BF16 or F16");
  }
  return out;
}

}  // namespace

Result<LoraAdapter> load_lora_weights(const std::string& path) {
  OPTIQ_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(path));
  LoraAdapter ad;
  for (const auto& [name, view] : file->tensors()) {
    const std::string where = path + ": tensor " + name;
    const bool is_a = ends_with(name, ".lora_a"), is_b = ends_with(name, ".lora_b");
    if (!is_a && !is_b) return Status::Corruption(where + ": not a LoRA tensor (expected <module>.lora_a / .lora_b)");
    if (view.shape.size() != 2) return Status::Corruption(where + ": must be 2-D");
    const std::string module = name.substr(0, name.size() - 7);
    LoraModule& m = ad.modules[module];
    OPTIQ_ASSIGN_OR_RETURN(std::vector<float> data, read_f32(view, where));
    if (is_a) {
      m.in = view.shape[0];
      m.a = std::move(data);
      if (m.rank && m.rank != view.shape[1]) return Status::Corruption(where + ": rank differs from its lora_b");
      m.rank = view.shape[1];
    } else {
      m.out = view.shape[1];
      m.b = std::move(data);
      if (m.rank && m.rank != view.shape[0]) return Status::Corruption(where + ": rank differs from its lora_a");
      m.rank = view.shape[0];
    }
  }
  for (const auto& [module, m] : ad.modules) {
    if (m.a.empty()) return Status::Corruption(path + ": " + module + ".lora_b has no " + module + ".lora_a");
    if (m.b.empty()) return Status::Corruption(path + ": " + module + ".lora_a has no " + module + ".lora_b");
  }
  if (ad.modules.empty()) return Status::Corruption(path + ": no LoRA tensors");
  return ad;
}

Result<LoraAdapter> load_lora_adapter(const std::string& dir) {
  OPTIQ_ASSIGN_OR_RETURN(LoraAdapter ad, load_lora_weights(dir + "/adapters.safetensors"));
  const std::string cfg_path = dir + "/adapter_config.json";
  OPTIQ_ASSIGN_OR_RETURN(ad.config, read_json_file(cfg_path));
  const auto& c = ad.config;
  if (c.contains("lora_parameters") && c["lora_parameters"].is_object() &&
      c["lora_parameters"].contains("scale")) {
    if (!c["lora_parameters"]["scale"].is_number())
      return Status::Corruption(cfg_path + ": lora_parameters.scale must be a number");
    ad.scale = c["lora_parameters"]["scale"].get<float>();
  } else if (c.contains("lora_alpha") && c.contains("r") && c["lora_alpha"].is_number() && c["r"].is_number() &&
             c["r"].get<double>() > 0) {
    ad.scale = static_cast<float>(c["lora_alpha"].get<double>() / c["r"].get<double>());
  } else {
    return Status::Corruption(cfg_path + ": no lora_parameters.scale (nor PEFT lora_alpha and r)");
  }
  std::string name = dir;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  const size_t slash = name.rfind('/');
  ad.name = slash == std::string::npos ? name : name.substr(slash + 1);
  return ad;
}

Status save_lora_weights(const std::string& path, const LoraAdapter& adapter) {
  std::vector<TensorToWrite> tensors;
  for (const auto& [module, m] : adapter.modules) {
    tensors.push_back({module + ".lora_a", DType::kF32, {m.in, m.rank}, m.a.data(), m.a.size() * sizeof(float)});
    tensors.push_back({module + ".lora_b", DType::kF32, {m.rank, m.out}, m.b.data(), m.b.size() * sizeof(float)});
  }
  return write_safetensors(path, tensors);
}

nlohmann::json lora_adapter_summary(const LoraAdapter& ad) {
  using json = nlohmann::json;
  const json& c = ad.config.is_object() ? ad.config : json::object();
  auto str = [&](std::initializer_list<const char*> keys) -> json {
    for (const char* k : keys)
      if (c.contains(k) && c[k].is_string() && !c[k].get<std::string>().empty()) return c[k];
    return nullptr;
  };
  json out;
  out["base_model"] = str({"base_model_name_or_path", "base_model", "model", "source_model"});
  out["fine_tune_type"] = str({"fine_tune_type", "peft_type"});
  std::map<int64_t, int64_t> ranks;  // rank → modules (optiq's rank scaling gives layers their own)
  std::set<int64_t> layers;
  std::set<std::string> kinds;
  for (const auto& [name, m] : ad.modules) {
    ++ranks[m.rank];
    // "<prefix>layers.<N>.<kind>" → N and kind; other names are their own kind.
    const size_t at = name.find("layers.");
    size_t end = at == std::string::npos ? at : at + 7;
    while (end != std::string::npos && end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
    if (at != std::string::npos && end > at + 7 && end < name.size() && name[end] == '.') {
      layers.insert(std::stoll(name.substr(at + 7, end - at - 7)));
      kinds.insert(name.substr(end + 1));
    } else {
      kinds.insert(name);
    }
  }
  out["rank"] = ranks.size() == 1 ? json(ranks.begin()->first) : json(nullptr);
  json dist = json::object();
  for (auto [r, n] : ranks) dist[std::to_string(r)] = n;
  out["rank_distribution"] = dist;
  out["scale"] = ad.scale;
  const json* lp = c.contains("lora_parameters") && c["lora_parameters"].is_object() ? &c["lora_parameters"] : nullptr;
  if (lp && lp->contains("dropout") && (*lp)["dropout"].is_number()) out["dropout"] = (*lp)["dropout"];
  else if (c.contains("lora_dropout") && c["lora_dropout"].is_number()) out["dropout"] = c["lora_dropout"];
  else out["dropout"] = 0.0;
  out["num_layers"] = c.contains("num_layers") && c["num_layers"].is_number_integer() ? c["num_layers"] : json(nullptr);
  out["modules"] = ad.modules.size();
  out["layers"] = layers.size();
  out["module_kinds"] = kinds;
  out["parameters"] = ad.parameter_count();
  return out;
}

}  // namespace optiq
