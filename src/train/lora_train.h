// LoRA training: the loop behind `optiq lora train` (specs/optiq-surface.md §5 and "LoRA training:
// exact semantics" L.1–L.8). Model-independent: it drives a Trainable (models/model.h) with the
// sequences an objective builds (train/objectives.h) from batches of rows (train/batches.h).
//
// One iteration = one optimizer step over --grad-accumulation-steps k batches (each batch's loss is its
// own token-weighted mean; the k gradients are summed and divided by k). Random draws come from
// streams derived from --seed (derive_seed below): 0 the batch shuffle, 1 the LoRA init, 2 the
// objective's noise, 3 and 4 validation's batch order and noise (fixed, so every evaluation sees the
// same batches), and each micro-batch's dropout seed.
//
// Files under OUT (--adapter-path):
//   adapter_config.json            written at the start and at the end (mlx-lm, PEFT and "optiq" keys)
//   adapters.safetensors           F32 `<module>.lora_a` [in, r] / `.lora_b` [r, out], every
//                                  --save-every steps and at the end
//   NNNNNNN_adapters.safetensors   the same, kept per checkpoint (7-digit step)
//   training_state.safetensors     parameters, optimizer moments, step and RNG states (train_state.h)
// All written atomically. With `resume`, the run continues from OUT's training state (the arguments
// recorded in it must match) and ends exactly where the uninterrupted run would have.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/thread_pool.h"
#include "io/lora_adapter.h"
#include "models/model.h"
#include "train/dataset.h"
#include "train/objectives.h"
#include "train/optimizer.h"

namespace optiq {

struct LoraTrainConfig {
  std::string model_dir;            // recorded in adapter_config.json (base_model_name_or_path)
  std::string data_dir;             // recorded
  std::string adapter_path;         // OUT; created if missing
  std::string resume_adapter_file;  // empty: a fresh adapter (L.1); else its modules and ranks (L.2)
  bool resume = false;              // continue OUT's training_state.safetensors
  Objective objective = Objective::kAr;      // see LoraTrainGiven for the CLI's defaults
  OptimizerKind optimizer = OptimizerKind::kAdamW;
  double learning_rate = 2e-4;
  int64_t iters = 1;
  int64_t batch_size = 1;
  int64_t rank = 8;
  bool rank_given = false;          // --rank was on the command line (checked against a resume file)
  float scale = 1.0f;
  float dropout = 0.0f;
  int64_t num_layers = -1;
  int64_t max_seq_length = 512;
  bool mask_prompt = false;
  int64_t grad_accumulation_steps = 1;
  int64_t steps_per_report = 10;
  int64_t steps_per_eval = 200;
  int64_t val_batches = 25;         // −1: all; 0: no validation
  int64_t save_every = 100;         // 0: only at the end
  uint64_t seed = 0;
  bool grad_checkpoint = true;
};

// The arguments whose defaults depend on the objective, the model or the data; unset = default.
struct LoraTrainGiven {
  std::optional<Objective> objective;   // default: the model's native one (default_objective)
  std::optional<double> learning_rate;  // default 2e-4 (optiq §5.1); canvas 1e-4 (§5.5)
  std::optional<float> scale;           // default 1.0 (optiq §5.1); canvas 8.0 (§5.5)
  std::optional<int64_t> iters;         // default 3 passes over the batches (optiq: 3 epochs); canvas 200
};
// Fills those fields of `c` from `given`, else their defaults for a model with `info` and
// `train_rows` training rows.
void apply_train_defaults(LoraTrainConfig& c, const LoraTrainGiven& given, const ModelInfo& info, int64_t train_rows);

// Where the loop's messages go (the CLI prints progress on stdout, warnings on stderr). Either may be
// empty (silent).
struct TrainLog {
  std::function<void(const std::string&)> progress;
  std::function<void(const std::string&)> warning;
};

struct LoraTrainResult {
  LoraAdapter adapter;                                   // the final parameters (what adapters.safetensors holds)
  int64_t steps = 0;                                     // optimizer steps done in total
  std::vector<double> step_losses;                       // this invocation's steps, in order
  std::vector<std::pair<int64_t, double>> val_losses;    // (step, validation loss)
  int64_t tokens = 0;                                    // rows forwarded in this invocation
};

// Checks the numeric arguments (positive iters, batch size, learning rate, ...); InvalidArgument
// naming the flag.
Status validate_train_config(const LoraTrainConfig& c);

// The training loop over data already loaded. `valid` may be null (no validation). Writes the files
// above; errors from the model carry the step ("step 12: ...").
Result<LoraTrainResult> train_lora(const Trainable& model, const ModelInfo& info, const ObjectiveParams& objective,
                                   const Dataset& train, const Dataset* valid, const LoraTrainConfig& config,
                                   ThreadPool& pool, const TrainLog& log);

// Everything from the directories: loads the model (which must be trainable), its tokenizer when
// present, DATA_DIR/train.jsonl and the optional valid.jsonl (printing the data's warnings), applies
// the defaults of `given`, then train_lora.
Result<LoraTrainResult> run_lora_train(LoraTrainConfig config, const LoraTrainGiven& given, ThreadPool& pool,
                                       const TrainLog& log);

// adapter_config.json for `adapter` trained under `config` on a model with `info`: the training
// arguments, mlx-lm's fine_tune_type / num_layers / lora_parameters {rank, scale, dropout, keys: null},
// PEFT's keys, model_type, and "optiq": {rank_scaling, applied_ranks, objective}.
nlohmann::json adapter_config_json(const LoraTrainConfig& config, const LoraAdapter& adapter, const ModelInfo& info);

// The stream seeds of a run (see the header comment): a mix of `seed` and `stream`.
uint64_t derive_seed(uint64_t seed, uint64_t stream);

// A duration for progress lines: "42s", "3m07s", "1h05m".
std::string format_duration(double seconds);

// The process's peak resident memory (VmHWM of /proc/self/status) in bytes; 0 where unavailable.
size_t peak_rss_bytes();

}  // namespace optiq
