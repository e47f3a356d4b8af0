// A training run's resumable state: OUT/training_state.safetensors, written atomically beside every
// checkpoint. It holds everything the rest of the run depends on, so that a run resumed from it
// (`optiq lora train ... --resume`) writes bit for bit what the uninterrupted run writes:
//   tensors   params.<module>.lora_a / .lora_b          the LoRA parameters after `step` updates (F32)
//             adam_m.<module>.lora_{a,b}, adam_v.…      the optimizer moments (adam, adamw; F32)
//   metadata  "optiq_training_state": JSON {"format": 1, "step", "batch_rng", "batch_order",
//             "batch_pos", "noise_rng", "run"}; the RNG states are decimal strings (uint64), "run"
//             holds the arguments a resumed run must repeat (see lora_train.h).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "io/lora_adapter.h"
#include "train/batches.h"

namespace optiq {

struct TrainState {
  int64_t step = 0;                // optimizer steps done
  LoraAdapter params;
  LoraAdapter m, v;                // no modules for sgd
  BatchStream::State batches;
  uint64_t noise_rng = 0;          // the objective's noise stream (joint, canvas)
  nlohmann::json run;              // arguments that must match on resume
};

inline constexpr const char* kTrainStateFile = "training_state.safetensors";

Status save_train_state(const std::string& path, const TrainState& s);
// Corruption naming the file for a malformed or foreign file; NotFound if absent.
Result<TrainState> load_train_state(const std::string& path);

}  // namespace optiq
