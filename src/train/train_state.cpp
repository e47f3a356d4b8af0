// The resumable training state file (train/train_state.h).
#include "train/train_state.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "io/safetensors.h"

namespace optiq {

namespace {

constexpr const char* kMetaKey = "optiq_training_state";

void add_tensors(std::vector<TensorToWrite>& out, const std::string& prefix, const LoraAdapter& ad) {
  for (const auto& [name, m] : ad.modules) {
    out.push_back({prefix + name + ".lora_a", DType::kF32, {m.in, m.rank}, m.a.data(), m.a.size() * sizeof(float)});
    out.push_back({prefix + name + ".lora_b", DType::kF32, {m.rank, m.out}, m.b.data(), m.b.size() * sizeof(float)});
  }
}

Result<uint64_t> parse_u64(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) return Status::Corruption(where + ": " + key + " missing");
  const std::string s = j[key].get<std::string>();
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0) return Status::Corruption(where + ": " + key + " is not a uint64: " + s);
  return static_cast<uint64_t>(v);
}

}  // namespace

Status save_train_state(const std::string& path, const TrainState& s) {
  std::vector<TensorToWrite> tensors;
  add_tensors(tensors, "params.", s.params);
  add_tensors(tensors, "adam_m.", s.m);
  add_tensors(tensors, "adam_v.", s.v);
  nlohmann::json meta = {{"format", 1},
                         {"step", s.step},
                         {"batch_rng", std::to_string(s.batches.rng)},
                         {"batch_order", s.batches.order},
                         {"batch_pos", s.batches.pos},
                         {"noise_rng", std::to_string(s.noise_rng)},
                         {"run", s.run}};
  return write_safetensors(path, tensors, {{kMetaKey, meta.dump()}});
}

Result<TrainState> load_train_state(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound(path + ": no training state");
  OPTIQ_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(path));
  auto it = file->metadata().find(kMetaKey);
  if (it == file->metadata().end()) return Status::Corruption(path + ": not an optiq training state (no " + kMetaKey + ")");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(path + ": " + kMetaKey + ": " + e.what());
  }
  TrainState s;
  try {
    if (meta.value("format", 0) != 1) return Status::Corruption(path + ": unknown training state format");
    s.step = meta.at("step").get<int64_t>();
    s.batches.order = meta.at("batch_order").get<std::vector<int64_t>>();
    s.batches.pos = meta.at("batch_pos").get<int64_t>();
    s.run = meta.at("run");
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(path + ": " + kMetaKey + ": " + e.what());
  }
  OPTIQ_ASSIGN_OR_RETURN(s.batches.rng, parse_u64(meta, "batch_rng", path));
  OPTIQ_ASSIGN_OR_RETURN(s.noise_rng, parse_u64(meta, "noise_rng", path));
  for (const auto& [name, view] : file->tensors()) {
    LoraAdapter* dst = nullptr;
    std::string rest;
    for (auto [prefix, ad] : {std::pair{"params.", &s.params}, {"adam_m.", &s.m}, {"adam_v.", &s.v}}) {
      if (name.rfind(prefix, 0) == 0) {
        dst = ad;
        rest = name.substr(std::strlen(prefix));
      }
    }
    const bool is_a = rest.size() > 7 && rest.compare(rest.size() - 7, 7, ".lora_a") == 0;
    const bool is_b = rest.size() > 7 && rest.compare(rest.size() - 7, 7, ".lora_b") == 0;
    if (!dst || (!is_a && !is_b) || view.dtype != DType::kF32 || view.shape.size() != 2)
      return Status::Corruption(path + ": unexpected tensor " + name);
    LoraModule& m = dst->modules[rest.substr(0, rest.size() - 7)];
    std::vector<float> data(static_cast<size_t>(view.numel()));
    std::memcpy(data.data(), view.data, data.size() * sizeof(float));
    if (is_a) {
      m.in = view.shape[0];
      m.rank = view.shape[1];
      m.a = std::move(data);
    } else {
      m.rank = view.shape[0];
      m.out = view.shape[1];
      m.b = std::move(data);
    }
  }
  for (const LoraAdapter* ad : {&s.params, &s.m, &s.v})
    for (const auto& [name, m] : ad->modules)
      if (m.in <= 0 || m.out <= 0 || m.a.size() != static_cast<size_t>(m.in * m.rank) || m.b.size() != static_cast<size_t>(m.rank * m.out))
        return Status::Corruption(path + ": module " + name + ": lora_a and lora_b missing or of different ranks");
  if (s.params.modules.empty()) return Status::Corruption(path + ": no parameters");
  return s;
}

}  // namespace optiq
