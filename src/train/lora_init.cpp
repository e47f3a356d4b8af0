// LoRA initialisation and --resume-adapter-file, specs/optiq-surface.md L.1, L.2.
#include "train/lora_init.h"

#include <cmath>
#include <map>

#include "decode/rng.h"

namespace optiq {

Result<LoraAdapter> init_lora_adapter(const LoraTargets& targets, int64_t rank, float scale, uint64_t seed) {
  if (rank < 1) return Status::InvalidArgument("--rank must be at least 1, got " + std::to_string(rank));
  if (targets.empty()) return Status::InvalidArgument("the model has no LoRA targets in the chosen layers");
  SplitMix64 rng(seed);
  LoraAdapter ad;
  ad.scale = scale;
  for (const auto& [name, io] : targets) {
    LoraModule m;
    m.in = io.first;
    m.out = io.second;
    m.rank = rank;
    m.a.resize(static_cast<size_t>(m.in * rank));
    const double bound = 1.0 / std::sqrt(static_cast<double>(m.in));
    for (float& x : m.a) x = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
    m.b.assign(static_cast<size_t>(rank * m.out), 0.0f);
    ad.modules.emplace(name, std::move(m));
  }
  return ad;
}

Status check_lora_modules(const LoraAdapter& ad, const LoraTargets& all_targets, int64_t rank, const std::string& where) {
  std::map<std::string, std::pair<int64_t, int64_t>> known(all_targets.begin(), all_targets.end());
  for (const auto& [name, m] : ad.modules) {
    auto it = known.find(name);
    if (it == known.end())
      return Status::InvalidArgument(where + ": module " + name +
                                     " is not a LoRA target of this model (an adapter for another model?)");
    if (it->second.first != m.in || it->second.second != m.out)
      return Status::InvalidArgument(where + ": module " + name + " is " + std::to_string(m.in) + " → " +
                                     std::to_string(m.out) + ", the model's is " + std::to_string(it->second.first) +
                                     " → " + std::to_string(it->second.second) + " (an adapter for another model?)");
    if (rank > 0 && m.rank != rank)
      return Status::InvalidArgument(where + ": module " + name + " has rank " + std::to_string(m.rank) +
                                     ", --rank says " + std::to_string(rank) +
                                     " (the ranks come from the file; drop --rank or make them agree)");
  }
  return Status::Ok();
}

Result<LoraAdapter> load_resume_adapter(const std::string& path, const LoraTargets& all_targets, int64_t rank,
                                        float scale) {
  OPTIQ_ASSIGN_OR_RETURN(LoraAdapter ad, load_lora_weights(path));
  OPTIQ_RETURN_IF_ERROR(check_lora_modules(ad, all_targets, rank, path));
  ad.scale = scale;
  return ad;
}

}  // namespace optiq
