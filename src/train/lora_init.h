// The LoRA parameters a training run starts from, specs/optiq-surface.md L.1 and L.2: a fresh adapter
// over a model's LoRA targets, or the modules of a --resume-adapter-file checked against the model.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "io/lora_adapter.h"

namespace optiq {

// (module path, {in, out}) in model order: what Trainable::lora_targets returns.
using LoraTargets = std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>>;

// A fresh adapter over `targets` (L.1): lora_a [in, rank] ~ U(−1/√in, +1/√in), lora_b [rank, out] = 0,
// drawn from SplitMix64(seed) module by module in target order, each a row-major, as
// (2·uniform() − 1)/√in. InvalidArgument for rank < 1 or no targets.
Result<LoraAdapter> init_lora_adapter(const LoraTargets& targets, int64_t rank, float scale, uint64_t seed);

// The adapter of a --resume-adapter-file (L.2): its modules and ranks are trained, no others. Each
// module must be one of `all_targets` (the model's LoRA targets over every layer) with the same in/out,
// else InvalidArgument naming the file and module ("an adapter for another model"); `rank` > 0 (the
// --rank given on the command line) must equal every module's rank.
Result<LoraAdapter> load_resume_adapter(const std::string& path, const LoraTargets& all_targets, int64_t rank,
                                        float scale);

// The module checks of load_resume_adapter on an adapter already read from `where`.
Status check_lora_modules(const LoraAdapter& ad, const LoraTargets& all_targets, int64_t rank, const std::string& where);

}  // namespace optiq
