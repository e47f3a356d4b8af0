// The LoRA training loop (train/lora_train.h): batches → objective sequences → model gradients →
// optimizer, with progress, validation, checkpoints and a resumable state.
#include "train/lora_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "decode/rng.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "train/batches.h"
#include "train/lora_init.h"
#include "train/train_state.h"

namespace optiq {

namespace fs = std::filesystem;

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  SplitMix64 a(seed);
  SplitMix64 b(a.next() ^ (stream * 0xD1B54A32D192ED03ull));
  return b.next();
}

std::string format_duration(double s) {
  char buf[32];
  const auto t = static_cast<long long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%llds", t);
  return buf;
}

size_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return static_cast<size_t>(std::strtoull(line.c_str() + 6, nullptr, 10)) * 1024;
  return 0;
}

Status validate_train_config(const LoraTrainConfig& c) {
  auto positive = [](int64_t v, const char* flag) {
    return v > 0 ? Status::Ok() : Status::InvalidArgument(std::string(flag) + " must be positive, got " + std::to_string(v));
  };
  OPTIQ_RETURN_IF_ERROR(positive(c.iters, "--iters"));
  OPTIQ_RETURN_IF_ERROR(positive(c.batch_size, "--batch-size"));
  OPTIQ_RETURN_IF_ERROR(positive(c.rank, "--rank"));
  OPTIQ_RETURN_IF_ERROR(positive(c.max_seq_length, "--max-seq-length"));
  OPTIQ_RETURN_IF_ERROR(positive(c.grad_accumulation_steps, "--grad-accumulation-steps"));
  OPTIQ_RETURN_IF_ERROR(positive(c.steps_per_report, "--steps-per-report"));
  OPTIQ_RETURN_IF_ERROR(positive(c.steps_per_eval, "--steps-per-eval"));
  if (!(c.learning_rate > 0) || !std::isfinite(c.learning_rate))
    return Status::InvalidArgument("--learning-rate must be a positive number, got " + std::to_string(c.learning_rate));
  if (!std::isfinite(c.scale)) return Status::InvalidArgument("--scale must be finite");
  if (!(c.dropout >= 0 && c.dropout < 1))
    return Status::InvalidArgument("--dropout must be in [0, 1), got " + std::to_string(c.dropout));
  if (c.num_layers == 0 || c.num_layers < -1)
    return Status::InvalidArgument("--num-layers must be positive or -1 (all), got " + std::to_string(c.num_layers));
  if (c.val_batches < -1) return Status::InvalidArgument("--val-batches must be -1 (all), 0 (none) or positive");
  if (c.save_every < 0) return Status::InvalidArgument("--save-every must be >= 0 (0: only at the end)");
  if (c.adapter_path.empty()) return Status::InvalidArgument("--adapter-path is required");
  if (c.resume && !c.resume_adapter_file.empty())
    return Status::InvalidArgument("--resume continues OUT's own state; it cannot be combined with --resume-adapter-file");
  return Status::Ok();
}

namespace {

// 64-bit FNV-1a over every row's tokens and offset: a resumed run must train on the same data.
std::string data_fingerprint(const Dataset& d) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  };
  for (const auto& r : d.rows) {
    mix(r.tokens.size());
    mix(static_cast<uint64_t>(r.offset));
    for (int32_t t : r.tokens) mix(static_cast<uint32_t>(t));
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf) + "/" + std::to_string(d.rows.size());
}

// What a resumed run must repeat: every argument that changes what a step computes.
nlohmann::json run_fingerprint(const LoraTrainConfig& c, const ModelInfo& info, const Dataset& train) {
  return {{"model_type", info.model_type},
          {"objective", objective_name(c.objective)},
          {"optimizer", optimizer_name(c.optimizer)},
          {"learning_rate", c.learning_rate},
          {"batch_size", c.batch_size},
          {"scale", c.scale},
          {"dropout", c.dropout},
          {"max_seq_length", c.max_seq_length},
          {"mask_prompt", c.mask_prompt},
          {"grad_accumulation_steps", c.grad_accumulation_steps},
          {"seed", std::to_string(c.seed)},
          {"train_data", data_fingerprint(train)}};
}

Status check_same_run(const nlohmann::json& saved, const nlohmann::json& now, const std::string& path) {
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (!saved.contains(it.key()))
      return Status::InvalidArgument(path + ": the saved run has no \"" + it.key() + "\"; cannot resume");
    if (saved[it.key()] != it.value())
      return Status::InvalidArgument(path + ": cannot resume: " + it.key() + " was " + saved[it.key()].dump() +
                                     ", now " + it.value().dump() + " (resume with the original arguments)");
  }
  return Status::Ok();
}

// mlx-lm's "{it:07d}_adapters.safetensors".
std::string checkpoint_name(int64_t it) {
  char name[64];
  std::snprintf(name, sizeof name, "%07lld_adapters.safetensors", static_cast<long long>(it));
  return name;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The loop's state and steps; one per train_lora call.
class Trainer {
 public:
  Trainer(const Trainable& model, const ModelInfo& info, const ObjectiveParams& obj, const Dataset& train,
          const Dataset* valid, const LoraTrainConfig& c, ThreadPool& pool, const TrainLog& log)
      : model_(model), info_(info), obj_(obj), train_(train), valid_(valid), c_(c), pool_(pool), log_(log),
        noise_(derive_seed(c.seed, 2)) {}

  Result<LoraTrainResult> run();

 private:
  void progress(const std::string& s) const {
    if (log_.progress) log_.progress(s);
  }
  void warn(const std::string& s) const {
    if (log_.warning) log_.warning(s);
  }
  std::string out(const std::string& name) const { return (fs::path(c_.adapter_path) / name).string(); }
  Status setup();
  Status step(int64_t it, BatchStream& batches);
  Result<double> validation_loss();
  Status checkpoint(int64_t it, BatchStream& batches, bool numbered);
  Status write_config() const {
    return write_file_atomic(out("adapter_config.json"), adapter_config_json(c_, params_, info_).dump(2) + "\n");
  }

  const Trainable& model_;
  const ModelInfo& info_;
  const ObjectiveParams& obj_;
  const Dataset& train_;
  const Dataset* valid_;
  const LoraTrainConfig& c_;
  ThreadPool& pool_;
  const TrainLog& log_;

  LoraAdapter params_, grads_;
  std::optional<Optimizer> opt_;
  std::optional<BatchStream> batches_;
  SplitMix64 noise_;
  int64_t start_step_ = 0;
  bool warned_empty_ = false;
  LoraTrainResult result_;
  // Since the last progress line.
  double window_loss_ = 0;
  int64_t window_steps_ = 0, window_tokens_ = 0;
  Clock::time_point window_t0_;
};

Status Trainer::setup() {
  std::error_code ec;
  fs::create_directories(c_.adapter_path, ec);
  if (ec) return Status::IOError(c_.adapter_path + ": cannot create: " + ec.message());
  OPTIQ_ASSIGN_OR_RETURN(BatchStream b, BatchStream::make(train_.rows, c_.batch_size, derive_seed(c_.seed, 0), train_.path));
  batches_.emplace(std::move(b));
  if (valid_ && c_.val_batches != 0 && static_cast<int64_t>(valid_->rows.size()) < c_.batch_size)
    return Status::InvalidArgument(valid_->path + ": " + std::to_string(valid_->rows.size()) +
                                   " row(s), fewer than --batch-size " + std::to_string(c_.batch_size));
  const nlohmann::json run = run_fingerprint(c_, info_, train_);
  if (c_.resume) {
    const std::string path = out(kTrainStateFile);
    OPTIQ_ASSIGN_OR_RETURN(TrainState s, load_train_state(path));
    OPTIQ_RETURN_IF_ERROR(check_same_run(s.run, run, path));
    // The modules must still be the model's (a state copied between models fails here).
    OPTIQ_RETURN_IF_ERROR(check_lora_modules(s.params, model_.lora_targets(-1), 0, path));
    params_ = std::move(s.params);
    params_.scale = c_.scale;
    opt_.emplace(c_.optimizer, static_cast<float>(c_.learning_rate), params_);
    if (opt_->has_moments()) OPTIQ_RETURN_IF_ERROR(opt_->set_moments(std::move(s.m), std::move(s.v)).WithContext(path));
    OPTIQ_RETURN_IF_ERROR(batches_->restore(s.batches).WithContext(path));
    noise_ = SplitMix64(s.noise_rng);
    start_step_ = s.step;
    progress("Resuming " + c_.adapter_path + " at iteration " + std::to_string(start_step_));
  } else {
    if (!c_.resume_adapter_file.empty()) {
      OPTIQ_ASSIGN_OR_RETURN(params_, load_resume_adapter(c_.resume_adapter_file, model_.lora_targets(-1),
                                                          c_.rank_given ? c_.rank : 0, c_.scale));
    } else {
      OPTIQ_ASSIGN_OR_RETURN(params_, init_lora_adapter(model_.lora_targets(c_.num_layers), c_.rank, c_.scale,
                                                        derive_seed(c_.seed, 1)));
    }
    opt_.emplace(c_.optimizer, static_cast<float>(c_.learning_rate), params_);
    if (fs::exists(out(kTrainStateFile), ec))
      warn(out(kTrainStateFile) + " exists from an earlier run; starting over (pass --resume to continue it)");
  }
  grads_ = params_.zeros_like();
  return write_config();
}

Status Trainer::step(int64_t it, BatchStream& batches) {
  const int64_t k = c_.grad_accumulation_steps;
  for (auto& [name, g] : grads_.modules) {
    std::fill(g.a.begin(), g.a.end(), 0.0f);
    std::fill(g.b.begin(), g.b.end(), 0.0f);
  }
  double loss = 0;
  for (int64_t micro = 0; micro < k; ++micro) {
    std::vector<const TrainRow*> rows;
    for (int64_t i : batches.next()) rows.push_back(&train_.rows[static_cast<size_t>(i)]);
    // Each batch's loss is its own mean; the k gradients are summed and divided by k (weights · 1/k).
    BatchSequences bs = make_batch_sequences(rows, obj_, noise_, 1.0f / static_cast<float>(k));
    if (bs.seqs.empty()) {
      if (!warned_empty_)
        warn("iteration " + std::to_string(it) + ": a batch has no targets (rows too short or fully masked); it adds nothing");
      warned_empty_ = true;
      continue;
    }
    TrainOptions o;
    o.lora_dropout = c_.dropout;
    o.dropout_seed = derive_seed(c_.seed, 5 + static_cast<uint64_t>((it - 1) * k + micro));
    o.grad_checkpoint = c_.grad_checkpoint;
    auto stats = model_.accumulate_lora_gradients(bs.seqs, params_, grads_, o, pool_);
    if (!stats.ok()) return stats.status().WithContext("iteration " + std::to_string(it));
    loss += stats->loss;
    window_tokens_ += stats->tokens;
    result_.tokens += stats->tokens;
  }
  if (!std::isfinite(loss))
    return Status::InvalidArgument("iteration " + std::to_string(it) + ": the loss is " + std::to_string(loss) +
                                   " (try a lower --learning-rate)");
  opt_->step(params_, grads_);
  result_.step_losses.push_back(loss);
  window_loss_ += loss;
  ++window_steps_;
  return Status::Ok();
}

Result<double> Trainer::validation_loss() {
  // The same batches and noise at every evaluation, so successive losses are comparable.
  OPTIQ_ASSIGN_OR_RETURN(BatchStream vb, BatchStream::make(valid_->rows, c_.batch_size, derive_seed(c_.seed, 3), valid_->path));
  SplitMix64 noise(derive_seed(c_.seed, 4));
  const int64_t n = c_.val_batches < 0 ? vb.batches_per_pass() : std::min(c_.val_batches, vb.batches_per_pass());
  // The Trainable interface has no loss-only forward: gradients go to a scratch accumulator.
  LoraAdapter scratch = params_.zeros_like();
  double sum = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < n; ++b) {
    std::vector<const TrainRow*> rows;
    for (int64_t i : vb.next()) rows.push_back(&valid_->rows[static_cast<size_t>(i)]);
    BatchSequences bs = make_batch_sequences(rows, obj_, noise, 1.0f);
    if (bs.seqs.empty()) continue;
    TrainOptions o;
    o.grad_checkpoint = c_.grad_checkpoint;
    auto stats = model_.accumulate_lora_gradients(bs.seqs, params_, scratch, o, pool_);
    if (!stats.ok()) return stats.status().WithContext("validation");
    // mlx-lm's evaluate: batch losses weighted by their target counts.
    sum += stats->loss * static_cast<double>(bs.targets);
    count += bs.targets;
  }
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

Status Trainer::checkpoint(int64_t it, BatchStream& batches, bool numbered) {
  if (numbered) OPTIQ_RETURN_IF_ERROR(save_lora_weights(out(checkpoint_name(it)), params_));
  OPTIQ_RETURN_IF_ERROR(save_lora_weights(out("adapters.safetensors"), params_));
  TrainState s;
  s.step = it;
  s.params = params_;
  if (opt_->has_moments()) {
    s.m = opt_->first_moment();
    s.v = opt_->second_moment();
  }
  s.batches = batches.state();
  s.noise_rng = noise_.state();
  s.run = run_fingerprint(c_, info_, train_);
  return save_train_state(out(kTrainStateFile), s);
}

Result<LoraTrainResult> Trainer::run() {
  OPTIQ_RETURN_IF_ERROR(validate_train_config(c_));
  OPTIQ_RETURN_IF_ERROR(setup());
  const bool validate = valid_ != nullptr && c_.val_batches != 0;
  {
    std::string what = std::to_string(params_.modules.size()) + " LoRA modules, " +
                       std::to_string(params_.parameter_count()) + " trainable parameters; " +
                       std::to_string(train_.rows.size()) + " training rows, " +
                       std::to_string(batches_->batches_per_pass()) + " batches per pass; objective " +
                       objective_name(c_.objective) + ", " + optimizer_name(c_.optimizer);
    progress(what);
  }
  if (validate && start_step_ == 0) {
    auto t0 = Clock::now();
    OPTIQ_ASSIGN_OR_RETURN(double v, validation_loss());
    result_.val_losses.push_back({0, v});
    char buf[128];
    std::snprintf(buf, sizeof buf, "Iter 0: val loss %.3f, val took %.2fs", v, seconds_since(t0));
    progress(buf);
  }
  const auto t_start = Clock::now();
  window_t0_ = t_start;
  for (int64_t it = start_step_ + 1; it <= c_.iters; ++it) {
    OPTIQ_RETURN_IF_ERROR(step(it, *batches_));
    if (it % c_.steps_per_report == 0 || it == c_.iters) {
      const double secs = seconds_since(window_t0_), total = seconds_since(t_start);
      const double eta = total / static_cast<double>(it - start_step_) * static_cast<double>(c_.iters - it);
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "Iter %lld: train loss %.3f, learning rate %.3e, %.1f tokens/s, peak memory %.1f MB, ETA %s",
                    static_cast<long long>(it), window_loss_ / static_cast<double>(std::max<int64_t>(window_steps_, 1)),
                    c_.learning_rate, secs > 0 ? static_cast<double>(window_tokens_) / secs : 0.0,
                    static_cast<double>(peak_rss_bytes()) / 1e6, format_duration(eta).c_str());
      progress(buf);
      window_loss_ = 0;
      window_steps_ = window_tokens_ = 0;
      window_t0_ = Clock::now();
    }
    if (validate && (it % c_.steps_per_eval == 0 || it == c_.iters)) {
      auto t0 = Clock::now();
      OPTIQ_ASSIGN_OR_RETURN(double v, validation_loss());
      result_.val_losses.push_back({it, v});
      char buf[128];
      std::snprintf(buf, sizeof buf, "Iter %lld: val loss %.3f, val took %.2fs", static_cast<long long>(it), v,
                    seconds_since(t0));
      progress(buf);
    }
    if (c_.save_every > 0 && it % c_.save_every == 0) {
      OPTIQ_RETURN_IF_ERROR(checkpoint(it, *batches_, /*numbered=*/true));
      progress("Iter " + std::to_string(it) + ": saved " + out("adapters.safetensors") + " and " +
               out(checkpoint_name(it)));
    }
  }
  // The end: the final adapter, its config, and the state (a later --resume with more --iters goes on).
  const int64_t done = std::max(start_step_, c_.iters);
  OPTIQ_RETURN_IF_ERROR(checkpoint(done, *batches_, /*numbered=*/false));
  OPTIQ_RETURN_IF_ERROR(write_config());
  progress("Saved final weights to " + out("adapters.safetensors"));
  result_.adapter = params_;
  result_.steps = done;
  return std::move(result_);
}

}  // namespace

Result<LoraTrainResult> train_lora(const Trainable& model, const ModelInfo& info, const ObjectiveParams& objective,
                                   const Dataset& train, const Dataset* valid, const LoraTrainConfig& config,
                                   ThreadPool& pool, const TrainLog& log) {
  Trainer t(model, info, objective, train, valid, config, pool, log);
  return t.run();
}

}  // namespace optiq
