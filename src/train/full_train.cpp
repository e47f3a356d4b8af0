// The full-parameter training loop (train/full_train.h): random windows → objective sequences →
// FullTrainable gradients → AdamW, with progress, validation, checkpoints and a resumable state.
#include "train/full_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "decode/rng.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "tokenizer/tokenizer.h"
#include "train/dataset.h"

namespace optiq {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFullStateMeta = "optiq_full_training_state";
constexpr const char* kFullStateFile = "training_state.safetensors";

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Result<std::string> read_text(const std::string& path, int64_t skip_tail) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (skip_tail > 0) text.resize(text.size() > static_cast<size_t>(skip_tail) ? text.size() - static_cast<size_t>(skip_tail) : 0);
  return text;
}

// FNV-1a of the token stream: a resumed run must train on the same data.
std::string stream_fingerprint(const std::vector<int32_t>& t) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t v : t)
    for (int i = 0; i < 4; ++i) {
      h ^= (static_cast<uint32_t>(v) >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf) + "/" + std::to_string(t.size());
}

nlohmann::json run_fingerprint(const FullTrainConfig& c, const std::vector<int32_t>& train) {
  return {{"objective", objective_name(c.objective)},
          {"schedule", c.schedule == LrSchedule::kCosine ? "cosine" : "constant"},
          {"iters", c.iters},
          {"batch_size", c.batch_size},
          {"seq_length", c.seq_length},
          {"learning_rate", c.learning_rate},
          {"min_lr_ratio", c.min_lr_ratio},
          {"warmup", c.warmup},
          {"weight_decay", c.weight_decay},
          {"clip_norm", c.clip_norm},
          {"seed", std::to_string(c.seed)},
          {"train_data", stream_fingerprint(train)}};
}

Status copy_if_present(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (!fs::exists(from, ec)) return Status::Ok();
  std::ifstream in(from, std::ios::binary);
  if (!in) return Status::IOError(from.string() + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return write_file_atomic(to.string(), ss.str());
}

}  // namespace

Status validate_full_train_config(const FullTrainConfig& c) {
  auto positive = [](int64_t v, const char* flag) {
    return v > 0 ? Status::Ok() : Status::InvalidArgument(std::string(flag) + " must be positive, got " + std::to_string(v));
  };
  OPTIQ_RETURN_IF_ERROR(positive(c.iters, "--iters"));
  OPTIQ_RETURN_IF_ERROR(positive(c.batch_size, "--batch-size"));
  OPTIQ_RETURN_IF_ERROR(positive(c.seq_length, "--seq-length"));
  OPTIQ_RETURN_IF_ERROR(positive(c.steps_per_report, "--steps-per-report"));
  OPTIQ_RETURN_IF_ERROR(positive(c.steps_per_eval, "--steps-per-eval"));
  if (!(c.learning_rate > 0) || !std::isfinite(c.learning_rate))
    return Status::InvalidArgument("--learning-rate must be a positive number, got " + std::to_string(c.learning_rate));
  if (!(c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1)) return Status::InvalidArgument("--min-lr-ratio must be in [0, 1]");
  if (c.warmup < 0) return Status::InvalidArgument("--warmup must be >= 0, got " + std::to_string(c.warmup));
  if (!(c.weight_decay >= 0)) return Status::InvalidArgument("--weight-decay must be >= 0");
  if (!(c.clip_norm >= 0)) return Status::InvalidArgument("--clip-norm must be >= 0 (0: no clipping)");
  if (c.skip_tail_bytes < 0) return Status::InvalidArgument("--skip-tail-bytes must be >= 0");
  if (c.save_every < 0) return Status::InvalidArgument("--save-every must be >= 0 (0: only at the end)");
  if (c.stop_after < 0) return Status::InvalidArgument("--stop-after must be >= 0");
  if (c.val_batches < 0) return Status::InvalidArgument("--val-batches must be >= 0");
  if (c.objective == Objective::kCanvas) return Status::InvalidArgument("--objective must be ar or joint");
  if (c.config_path.empty() == c.init_dir.empty()) return Status::InvalidArgument("give exactly one of --config and --init");
  if (c.data_path.empty()) return Status::InvalidArgument("--data is required");
  if (c.out_dir.empty()) return Status::InvalidArgument("-o OUT is required");
  return Status::Ok();
}

double full_train_lr(const FullTrainConfig& c, int64_t it) {
  if (c.warmup > 0 && it <= c.warmup) return c.learning_rate * static_cast<double>(it) / static_cast<double>(c.warmup);
  if (c.schedule == LrSchedule::kConstant) return c.learning_rate;
  const double span = static_cast<double>(std::max<int64_t>(c.iters - c.warmup, 1));
  const double progress = std::clamp(static_cast<double>(it - c.warmup) / span, 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return c.learning_rate * (c.min_lr_ratio + (1.0 - c.min_lr_ratio) * cosine);
}

Result<std::vector<int32_t>> load_token_stream(const std::string& path, const Tokenizer& tok, int32_t eos_id,
                                               int64_t skip_tail_bytes) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::NotFound(path + ": no such file or directory");
  std::vector<int32_t> out;
  if (path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0) {
    RowEncoder enc;
    enc.tokenizer = &tok;
    enc.eos_id = eos_id;
    DatasetOptions o;
    o.max_seq_length = int64_t{1} << 40;
    OPTIQ_ASSIGN_OR_RETURN(Dataset d, load_dataset(path, enc, o));
    for (const auto& r : d.rows) out.insert(out.end(), r.tokens.begin(), r.tokens.end());
    return out;
  }
  std::vector<fs::path> files;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) return Status::InvalidArgument(path + ": no files in the data directory");
  } else {
    files.push_back(path);
  }
  for (const auto& f : files) {
    OPTIQ_ASSIGN_OR_RETURN(std::string text, read_text(f.string(), skip_tail_bytes));
    if (!out.empty() && eos_id >= 0) out.push_back(eos_id);
    std::vector<int32_t> ids = tok.encode(text, /*add_special_tokens=*/false);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

double FullOptimizer::step(ParamSet& params, ParamSet& grads, int64_t t, double lr, double weight_decay,
                           double clip_norm) {
  double sq = 0;
  for (const auto& [name, g] : grads)
    for (float x : g.data) sq += static_cast<double>(x) * x;
  const double norm = std::sqrt(sq);
  const float scale = clip_norm > 0 && norm > clip_norm ? static_cast<float>(clip_norm / norm) : 1.0f;
  const double b1 = 0.9, b2 = 0.95, eps = 1e-8;
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(b1, static_cast<double>(t))));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(b2, static_cast<double>(t))));
  for (auto& [name, p] : params) {
    auto& g = grads.at(name).data;
    auto& m = m_.at(name).data;
    auto& v = v_.at(name).data;
    OPTIQ_CHECK(g.size() == p.data.size() && m.size() == p.data.size());
    const float wd = p.shape.size() >= 2 ? static_cast<float>(weight_decay) : 0.0f;
    const float flr = static_cast<float>(lr);
    for (size_t i = 0; i < p.data.size(); ++i) {
      const float gi = g[i] * scale;
      m[i] = static_cast<float>(b1) * m[i] + static_cast<float>(1 - b1) * gi;
      v[i] = static_cast<float>(b2) * v[i] + static_cast<float>(1 - b2) * gi * gi;
      const float upd = (m[i] * c1) / (std::sqrt(v[i] * c2) + static_cast<float>(eps));
      p.data[i] -= flr * (upd + wd * p.data[i]);
    }
  }
  return norm;
}

namespace {

class FullTrainer {
 public:
  FullTrainer(FullTrainable& model, const ObjectiveParams& obj, const std::vector<int32_t>& train,
              const std::vector<int32_t>* valid, const FullTrainConfig& c, ThreadPool& pool, const TrainLog& log)
      : model_(model), obj_(obj), train_(train), valid_(valid), c_(c), pool_(pool), log_(log), opt_(model.parameters()),
        windows_(derive_seed(c.seed, 0)), noise_(derive_seed(c.seed, 2)) {}

  Result<FullTrainResult> run();

 private:
  void progress(const std::string& s) const {
    if (log_.progress) log_.progress(s);
  }
  std::string out(const std::string& name) const { return (fs::path(c_.out_dir) / name).string(); }
  Status setup();
  Status step(int64_t it);
  Result<double> validation_loss();
  Status checkpoint(int64_t it);
  std::vector<TrainRow> draw_windows(const std::vector<int32_t>& stream, SplitMix64& rng) const {
    std::vector<TrainRow> rows(static_cast<size_t>(c_.batch_size));
    const auto n = static_cast<uint64_t>(stream.size() - static_cast<size_t>(c_.seq_length));
    for (auto& r : rows) {
      const auto at = static_cast<size_t>(rng.next() % n);
      r.tokens.assign(stream.begin() + static_cast<std::ptrdiff_t>(at),
                      stream.begin() + static_cast<std::ptrdiff_t>(at) + c_.seq_length + 1);
      r.full_length = static_cast<int64_t>(r.tokens.size());
    }
    return rows;
  }

  FullTrainable& model_;
  const ObjectiveParams& obj_;
  const std::vector<int32_t>& train_;
  const std::vector<int32_t>* valid_;
  const FullTrainConfig& c_;
  ThreadPool& pool_;
  const TrainLog& log_;
  FullOptimizer opt_;
  ParamSet grads_;
  SplitMix64 windows_, noise_;
  int64_t start_step_ = 0;
  FullTrainResult result_;
  double window_loss_ = 0, window_norm_ = 0;
  int64_t window_steps_ = 0, window_tokens_ = 0;
  Clock::time_point window_t0_;
};

Status FullTrainer::setup() {
  std::error_code ec;
  fs::create_directories(c_.out_dir, ec);
  if (ec) return Status::IOError(c_.out_dir + ": cannot create: " + ec.message());
  if (static_cast<int64_t>(train_.size()) <= c_.seq_length + 1)
    return Status::InvalidArgument(c_.data_path + ": " + std::to_string(train_.size()) + " tokens, fewer than --seq-length + 2");
  if (valid_ && static_cast<int64_t>(valid_->size()) <= c_.seq_length + 1)
    return Status::InvalidArgument(c_.valid_path + ": fewer tokens than --seq-length + 2");
  grads_ = zeros_like(model_.parameters());
  if (!c_.resume) {
    if (fs::exists(out(kFullStateFile), ec) && log_.warning)
      log_.warning(out(kFullStateFile) + " exists from an earlier run; starting over (pass --resume to continue it)");
    return Status::Ok();
  }
  const std::string path = out(kFullStateFile);
  if (!fs::exists(path, ec)) return Status::NotFound(path + ": no training state to resume");
  OPTIQ_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(path));
  auto it = file->metadata().find(kFullStateMeta);
  if (it == file->metadata().end()) return Status::Corruption(path + ": not an optiq full training state");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(it->second);
    const nlohmann::json now = run_fingerprint(c_, train_);
    for (auto kv = now.begin(); kv != now.end(); ++kv)
      if (!meta["run"].contains(kv.key()) || meta["run"][kv.key()] != kv.value())
        return Status::InvalidArgument(path + ": cannot resume: " + kv.key() + " was " + meta["run"][kv.key()].dump() +
                                       ", now " + kv.value().dump() + " (resume with the original arguments)");
    start_step_ = meta.at("step").get<int64_t>();
    windows_ = SplitMix64(std::stoull(meta.at("window_rng").get<std::string>()));
    noise_ = SplitMix64(std::stoull(meta.at("noise_rng").get<std::string>()));
  } catch (const std::exception& e) {
    return Status::Corruption(path + ": " + kFullStateMeta + ": " + e.what());
  }
  for (auto [prefix, set] : {std::pair<const char*, ParamSet*>{"params.", &model_.parameters()},
                             {"adam_m.", &opt_.first_moment()}, {"adam_v.", &opt_.second_moment()}}) {
    for (auto& [name, p] : *set) {
      auto t = file->tensors().find(prefix + name);
      if (t == file->tensors().end()) return Status::Corruption(path + ": missing " + prefix + name);
      if (t->second.dtype != DType::kF32 || t->second.shape != p.shape)
        return Status::Corruption(path + ": " + prefix + name + ": not F32 of the model's shape");
      std::memcpy(p.data.data(), t->second.data, p.data.size() * sizeof(float));
    }
  }
  progress("Resuming " + c_.out_dir + " at iteration " + std::to_string(start_step_));
  return Status::Ok();
}

Status FullTrainer::step(int64_t it) {
  for (auto& [name, g] : grads_) std::fill(g.data.begin(), g.data.end(), 0.0f);
  std::vector<TrainRow> rows = draw_windows(train_, windows_);
  std::vector<const TrainRow*> ptrs;
  for (const auto& r : rows) ptrs.push_back(&r);
  BatchSequences bs = make_batch_sequences(ptrs, obj_, noise_);
  TrainOptions o;
  o.grad_checkpoint = c_.grad_checkpoint;
  auto stats = model_.accumulate_gradients(bs.seqs, grads_, o, pool_);
  if (!stats.ok()) return stats.status().WithContext("iteration " + std::to_string(it));
  if (!std::isfinite(stats->loss))
    return Status::InvalidArgument("iteration " + std::to_string(it) + ": the loss is " + std::to_string(stats->loss) +
                                   " (try a lower --learning-rate)");
  window_norm_ += opt_.step(model_.parameters(), grads_, it, full_train_lr(c_, it), c_.weight_decay, c_.clip_norm);
  result_.step_losses.push_back(stats->loss);
  result_.tokens += stats->tokens;
  window_tokens_ += stats->tokens;
  window_loss_ += stats->loss;
  ++window_steps_;
  return Status::Ok();
}

Result<double> FullTrainer::validation_loss() {
  // Fixed windows (stream 3) and the ar objective: comparable across evaluations, nll per token.
  SplitMix64 rng(derive_seed(c_.seed, 3));
  ObjectiveParams ar = obj_;
  ar.kind = Objective::kAr;
  ParamSet scratch = zeros_like(model_.parameters());
  double sum = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < c_.val_batches; ++b) {
    std::vector<TrainRow> rows = draw_windows(*valid_, rng);
    std::vector<const TrainRow*> ptrs;
    for (const auto& r : rows) ptrs.push_back(&r);
    SplitMix64 unused(0);
    BatchSequences bs = make_batch_sequences(ptrs, ar, unused);
    TrainOptions o;
    o.grad_checkpoint = c_.grad_checkpoint;
    auto stats = model_.accumulate_gradients(bs.seqs, scratch, o, pool_);
    if (!stats.ok()) return stats.status().WithContext("validation");
    sum += stats->loss * static_cast<double>(bs.targets);
    count += bs.targets;
  }
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

Status FullTrainer::checkpoint(int64_t it) {
  OPTIQ_RETURN_IF_ERROR(model_.save(c_.out_dir, c_.save_dtype));
  const fs::path tok(c_.tokenizer_dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    OPTIQ_RETURN_IF_ERROR(copy_if_present(tok / f, fs::path(c_.out_dir) / f));
  std::vector<TensorToWrite> tensors;
  for (auto [prefix, set] : {std::pair<const char*, ParamSet*>{"params.", &model_.parameters()},
                             {"adam_m.", &opt_.first_moment()}, {"adam_v.", &opt_.second_moment()}})
    for (const auto& [name, p] : *set)
      tensors.push_back({prefix + name, DType::kF32, p.shape, p.data.data(), p.data.size() * sizeof(float)});
  const nlohmann::json meta = {{"format", 1},
                               {"step", it},
                               {"window_rng", std::to_string(windows_.state())},
                               {"noise_rng", std::to_string(noise_.state())},
                               {"run", run_fingerprint(c_, train_)}};
  return write_safetensors(out(kFullStateFile), tensors, {{kFullStateMeta, meta.dump()}});
}

Result<FullTrainResult> FullTrainer::run() {
  OPTIQ_RETURN_IF_ERROR(validate_full_train_config(c_));
  OPTIQ_RETURN_IF_ERROR(setup());
  int64_t n_params = 0;
  for (const auto& [name, p] : model_.parameters()) n_params += static_cast<int64_t>(p.data.size());
  progress(std::to_string(model_.parameters().size()) + " tensors, " + std::to_string(n_params) +
           " parameters; " + std::to_string(train_.size()) + " training tokens; objective " +
           objective_name(c_.objective) + ", adamw, batch " + std::to_string(c_.batch_size) + " x " +
           std::to_string(c_.seq_length) + " tokens");
  const bool validate = valid_ != nullptr && c_.val_batches > 0;
  auto report_val = [&](int64_t it) -> Status {
    auto t0 = Clock::now();
    OPTIQ_ASSIGN_OR_RETURN(double v, validation_loss());
    result_.val_losses.push_back({it, v});
    char buf[160];
    std::snprintf(buf, sizeof buf, "Iter %lld: val loss %.4f (%.4f bits/token), val took %.2fs",
                  static_cast<long long>(it), v, v / std::log(2.0), seconds_since(t0));
    progress(buf);
    return Status::Ok();
  };
  if (validate && start_step_ == 0) OPTIQ_RETURN_IF_ERROR(report_val(0));
  const auto t_start = Clock::now();
  window_t0_ = t_start;
  for (int64_t it = start_step_ + 1; it <= c_.iters; ++it) {
    OPTIQ_RETURN_IF_ERROR(step(it));
    if (it % c_.steps_per_report == 0 || it == c_.iters) {
      const double secs = seconds_since(window_t0_), total = seconds_since(t_start);
      const double eta = total / static_cast<double>(it - start_step_) * static_cast<double>(c_.iters - it);
      const double w = static_cast<double>(std::max<int64_t>(window_steps_, 1));
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "Iter %lld: train loss %.3f, grad norm %.3f, learning rate %.3e, %.1f tokens/s, peak memory %.1f MB, ETA %s",
                    static_cast<long long>(it), window_loss_ / w, window_norm_ / w, full_train_lr(c_, it),
                    secs > 0 ? static_cast<double>(window_tokens_) / secs : 0.0,
                    static_cast<double>(peak_rss_bytes()) / 1e6, format_duration(eta).c_str());
      progress(buf);
      window_loss_ = window_norm_ = 0;
      window_steps_ = window_tokens_ = 0;
      window_t0_ = Clock::now();
    }
    if (validate && (it % c_.steps_per_eval == 0 || it == c_.iters)) OPTIQ_RETURN_IF_ERROR(report_val(it));
    if ((c_.save_every > 0 && it % c_.save_every == 0) || it == c_.iters) {
      OPTIQ_RETURN_IF_ERROR(checkpoint(it));
      progress("Iter " + std::to_string(it) + ": saved " + c_.out_dir);
    }
    if (c_.stop_after > 0 && it == c_.stop_after && it < c_.iters) {
      if (c_.save_every == 0 || it % c_.save_every != 0) OPTIQ_RETURN_IF_ERROR(checkpoint(it));
      progress("Iter " + std::to_string(it) + ": stopped (--stop-after); continue with --resume");
      result_.steps = it;
      return result_;
    }
  }
  result_.steps = c_.iters;
  return result_;
}

}  // namespace

Result<FullTrainResult> train_full(FullTrainable& model, const ModelInfo& info, const ObjectiveParams& obj,
                                   const std::vector<int32_t>& train, const std::vector<int32_t>* valid,
                                   const FullTrainConfig& c, ThreadPool& pool, const TrainLog& log) {
  (void)info;
  FullTrainer t(model, obj, train, valid, c, pool, log);
  return t.run();
}

Result<FullTrainResult> run_full_train(const FullTrainConfig& c, ThreadPool& pool, const TrainLog& log) {
  OPTIQ_RETURN_IF_ERROR(validate_full_train_config(c));
  std::string model_dir = c.init_dir;
  std::error_code ec;
  fs::path tmp;
  if (!c.config_path.empty()) {
    // A fresh random model, written by the registry's writer into a temporary directory (F32, so
    // the initial weights are exact), loaded back and copied into the trainer.
    OPTIQ_ASSIGN_OR_RETURN(nlohmann::json config, read_json_file(c.config_path));
    tmp = fs::temp_directory_path() / ("optiq-train-init-" + std::to_string(derive_seed(c.seed, 7)) + "-" +
                                       std::to_string(static_cast<long long>(::getpid())));
    fs::create_directories(tmp, ec);
    if (ec) return Status::IOError(tmp.string() + ": cannot create: " + ec.message());
    OPTIQ_RETURN_IF_ERROR(write_random_checkpoint(config, tmp.string(), DType::kF32, derive_seed(c.seed, 1)));
    model_dir = tmp.string();
  }
  LoadOptions lo;
  lo.repack = false;
  auto loaded = load_model(model_dir, lo);
  auto full = loaded.ok() ? (*loaded)->trainable() ? (*loaded)->trainable()->make_full_trainable()
                                                   : Result<std::unique_ptr<FullTrainable>>(Status::Unsupported(
                                                         model_dir + ": this model cannot be trained"))
                          : Result<std::unique_ptr<FullTrainable>>(loaded.status());
  nlohmann::json config = nlohmann::json::object();
  if (full.ok()) {
    auto cj = read_json_file((fs::path(model_dir) / "config.json").string());
    if (cj.ok()) config = *cj;
  }
  if (!tmp.empty()) fs::remove_all(tmp, ec);
  if (!full.ok()) return full.status();
  const ModelInfo& info = (*loaded)->info();

  OPTIQ_ASSIGN_OR_RETURN(auto tok, Tokenizer::from_dir(c.tokenizer_dir));
  int32_t eos = -1;
  if (auto e = text_eos_id(c.tokenizer_dir, *tok); e.ok()) eos = *e;
  nlohmann::json gen = nlohmann::json::object();
  const std::string gen_path = (fs::path(c.tokenizer_dir) / "generation_config.json").string();
  if (fs::exists(gen_path, ec)) {
    OPTIQ_ASSIGN_OR_RETURN(gen, read_json_file(gen_path));
  }
  OPTIQ_ASSIGN_OR_RETURN(ObjectiveParams obj, objective_params(c.objective, info, config, gen));
  OPTIQ_ASSIGN_OR_RETURN(std::vector<int32_t> train, load_token_stream(c.data_path, *tok, eos, c.skip_tail_bytes));
  for (int32_t t : train)
    if (t < 0 || t >= info.vocab_size)
      return Status::InvalidArgument(c.data_path + ": token id " + std::to_string(t) + " outside the model's vocabulary of " +
                                     std::to_string(info.vocab_size) + " (use the model's --tokenizer)");
  std::optional<std::vector<int32_t>> valid;
  if (!c.valid_path.empty()) {
    OPTIQ_ASSIGN_OR_RETURN(std::vector<int32_t> v, load_token_stream(c.valid_path, *tok, eos, 0));
    valid = std::move(v);
  }
  return train_full(**full, info, obj, train, valid ? &*valid : nullptr, c, pool, log);
}

}  // namespace optiq
