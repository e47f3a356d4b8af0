// Full-parameter training: the loop behind `optiq train` (issue 17, item 4; specs/dhara.md §7).
// Model-independent: it drives a FullTrainable (models/model.h) with the sequences the shared
// objectives build (train/objectives.h, ar or joint) from random windows of a token stream.
//
// Data: a text file, a directory of text files (sorted by name, each tokenized without special
// tokens, files joined by the EOS id), or a train.jsonl ({"text"} rows, train/dataset.h) — all turned
// into one token stream. A step draws batch_size windows of seq_length + 1 tokens at uniform random
// offsets (stream 0 of --seed) and builds the objective's sequences (noise: stream 2).
//
// Optimizer (a choice for from-scratch training, unlike LoRA's MLX-parity rule L.6): AdamW with bias
// correction, β = (0.9, 0.95), ε = 1e-8, decoupled weight decay on tensors of two or more dimensions
// only (norm gains and Canon taps are not pulled towards zero):
//   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;  m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t)
//   w ← w − lr_t·(m̂ / (√v̂ + ε) + wd·w)
// The gradient is first scaled so that its global L2 norm is at most clip_norm (0: no clipping).
// Learning rate: linear warmup from 0 over `warmup` steps, then cosine down to min_lr_ratio·lr at
// `iters` (schedule kCosine) or constant.
//
// Files under OUT: config.json and model.safetensors (save_dtype; FullTrainable::save), the
// tokenizer files and generation_config.json copied, written at every --save-every step and at the
// end; training_state.safetensors (fp32 parameters, Adam moments, step, RNG states and the run's
// arguments). All atomic. With `resume` the run continues OUT's state and ends exactly where the
// uninterrupted run would have (same arguments required).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "models/model.h"
#include "train/lora_train.h"
#include "train/objectives.h"

namespace optiq {

enum class LrSchedule { kCosine, kConstant };

struct FullTrainConfig {
  std::string config_path;     // a config.json for a fresh random model (registry writer) ...
  std::string init_dir;        // ... or a model directory to continue from; exactly one of the two
  std::string data_path;       // text file, directory of text files, or *.jsonl
  std::string valid_path;      // optional text file: validation loss (ar, fixed windows) every steps_per_eval
  std::string tokenizer_dir;   // tokenizer.json / tokenizer_config.json / generation_config.json source
  std::string out_dir;
  bool resume = false;
  Objective objective = Objective::kJoint;
  LrSchedule schedule = LrSchedule::kCosine;
  int64_t iters = 1000;
  int64_t batch_size = 8;
  int64_t seq_length = 256;
  double learning_rate = 3e-3;
  double min_lr_ratio = 0.1;
  int64_t warmup = 100;
  double weight_decay = 0.1;
  double clip_norm = 1.0;
  int64_t skip_tail_bytes = 0;  // drop the last N bytes of each text file (keep a held-out split out)
  int64_t steps_per_report = 10;
  int64_t steps_per_eval = 200;
  int64_t val_batches = 8;
  int64_t save_every = 100;     // 0: only at the end
  uint64_t seed = 0;
  int64_t stop_after = 0;       // > 0: stop after this step with a checkpoint, as if interrupted (not
                                // part of the run's arguments: --resume continues to `iters`)
  bool grad_checkpoint = true;
  DType save_dtype = DType::kBF16;
};

// InvalidArgument naming the flag for a bad numeric argument or a missing/duplicated source.
Status validate_full_train_config(const FullTrainConfig& c);

// The learning rate of step `it` (1-based).
double full_train_lr(const FullTrainConfig& c, int64_t it);

// The token stream of `path` (see the header comment). NotFound / InvalidArgument naming the file.
Result<std::vector<int32_t>> load_token_stream(const std::string& path, const Tokenizer& tok, int32_t eos_id,
                                               int64_t skip_tail_bytes);

// AdamW over a ParamSet (the update above). Thread safety: none; one owner.
class FullOptimizer {
 public:
  explicit FullOptimizer(const ParamSet& params) : m_(zeros_like(params)), v_(zeros_like(params)) {}
  // One update at step t (1-based) with learning rate lr; returns the gradient's global norm before
  // clipping. `grads` is scaled in place when clipped.
  double step(ParamSet& params, ParamSet& grads, int64_t t, double lr, double weight_decay, double clip_norm);
  ParamSet& first_moment() { return m_; }
  ParamSet& second_moment() { return v_; }

 private:
  ParamSet m_, v_;
};

struct FullTrainResult {
  int64_t steps = 0;
  std::vector<double> step_losses;                     // this invocation's steps
  std::vector<std::pair<int64_t, double>> val_losses;  // (step, mean ar nll per token)
  int64_t tokens = 0;
};

// The loop over a token stream already loaded, on a model already made trainable. Writes the files
// above (save_files copies the tokenizer files from c.tokenizer_dir).
Result<FullTrainResult> train_full(FullTrainable& model, const ModelInfo& info, const ObjectiveParams& obj,
                                   const std::vector<int32_t>& train, const std::vector<int32_t>* valid,
                                   const FullTrainConfig& c, ThreadPool& pool, const TrainLog& log);

// Everything from the paths: the random (or --init) model, tokenizer, data, objective; then train_full.
Result<FullTrainResult> run_full_train(const FullTrainConfig& c, ThreadPool& pool, const TrainLog& log);

}  // namespace optiq
