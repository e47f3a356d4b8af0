// From directories to a training run (run_lora_train), and adapter_config.json (train/lora_train.h).
#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>

#include "io/model_dir.h"
#include "tokenizer/tokenizer.h"
#include "train/lora_train.h"

namespace optiq {

namespace fs = std::filesystem;

nlohmann::json adapter_config_json(const LoraTrainConfig& c, const LoraAdapter& adapter, const ModelInfo& info) {
  // The rank recorded for loaders that read one rank (mlx-lm): the modules' own when they agree.
  std::set<int64_t> ranks;
  for (const auto& [name, m] : adapter.modules) ranks.insert(m.rank);
  const int64_t rank = ranks.size() == 1 ? *ranks.begin() : (ranks.empty() ? c.rank : *ranks.rbegin());
  nlohmann::json applied = nlohmann::json::object();
  std::vector<std::string> targets;
  for (const auto& [name, m] : adapter.modules) {
    applied[name] = m.rank;
    const size_t dot = name.rfind('.');
    const std::string suffix = dot == std::string::npos ? name : name.substr(dot + 1);
    if (std::find(targets.begin(), targets.end(), suffix) == targets.end()) targets.push_back(suffix);
  }
  // Module order in the model (q, k, v, o, gate, up, down), not the map's alphabetical one.
  static const char* kOrder[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  std::vector<std::string> ordered;
  for (const char* k : kOrder)
    if (std::find(targets.begin(), targets.end(), k) != targets.end()) ordered.push_back(k);
  for (const auto& t : targets)
    if (std::find(ordered.begin(), ordered.end(), t) == ordered.end()) ordered.push_back(t);

  nlohmann::json j;  // nlohmann::json keeps keys sorted: "all training arguments, sorted" (L.7)
  // mlx-lm's training arguments and the keys its load_adapters needs.
  j["model"] = c.model_dir;
  j["data"] = c.data_dir;
  j["adapter_path"] = c.adapter_path;
  j["resume_adapter_file"] = c.resume_adapter_file.empty() ? nlohmann::json() : nlohmann::json(c.resume_adapter_file);
  j["train"] = true;
  j["fine_tune_type"] = "lora";
  j["optimizer"] = optimizer_name(c.optimizer);
  j["learning_rate"] = c.learning_rate;
  j["iters"] = c.iters;
  j["batch_size"] = c.batch_size;
  j["num_layers"] = c.num_layers;
  j["max_seq_length"] = c.max_seq_length;
  j["mask_prompt"] = c.mask_prompt;
  j["grad_accumulation_steps"] = c.grad_accumulation_steps;
  j["steps_per_report"] = c.steps_per_report;
  j["steps_per_eval"] = c.steps_per_eval;
  j["val_batches"] = c.val_batches;
  j["save_every"] = c.save_every;
  j["seed"] = c.seed;
  j["grad_checkpoint"] = c.grad_checkpoint;
  j["objective"] = objective_name(c.objective);
  j["lora_parameters"] = {{"rank", rank}, {"scale", c.scale}, {"dropout", c.dropout}, {"keys", nullptr}};
  j["model_type"] = info.model_type;
  // PEFT (§5.4).
  j["base_model_name_or_path"] = c.model_dir;
  j["peft_type"] = "LORA";
  j["r"] = rank;
  j["lora_alpha"] = static_cast<int64_t>(static_cast<double>(rank) * c.scale);  // Python int(): truncation
  j["lora_dropout"] = c.dropout;
  j["target_modules"] = ordered;
  j["task_type"] = "CAUSAL_LM";
  j["bias"] = "none";
  j["optiq"] = {{"rank_scaling", "constant"}, {"applied_ranks", applied}, {"objective", objective_name(c.objective)}};
  return j;
}

void apply_train_defaults(LoraTrainConfig& c, const LoraTrainGiven& given, const ModelInfo& info, int64_t train_rows) {
  c.objective = given.objective.value_or(default_objective(info));
  const bool canvas = c.objective == Objective::kCanvas;
  c.learning_rate = given.learning_rate.value_or(canvas ? 1e-4 : 2e-4);
  c.scale = given.scale.value_or(canvas ? 8.0f : 1.0f);
  const int64_t passes = 3, per_pass = c.batch_size > 0 ? train_rows / c.batch_size : 0;
  c.iters = given.iters.value_or(canvas ? 200 : std::max<int64_t>(1, passes * per_pass));
}

Result<LoraTrainResult> run_lora_train(LoraTrainConfig c, const LoraTrainGiven& given, ThreadPool& pool,
                                       const TrainLog& log) {
  apply_train_defaults(c, given, ModelInfo{}, 0);  // provisional, to check the arguments before loading
  OPTIQ_RETURN_IF_ERROR(validate_train_config(c));
  LoadOptions lo;
  lo.repack = false;  // training runs whole-sequence forwards, never the decode layout
  OPTIQ_ASSIGN_OR_RETURN(auto model, load_model(c.model_dir, lo));
  const ModelInfo& info = model->info();
  const Trainable* trainable = model->trainable();
  if (!trainable) return Status::Unsupported(c.model_dir + ": " + info.model_type + " cannot be trained yet");

  apply_train_defaults(c, given, info, 0);  // the objective, learning rate and scale (iters after the data)
  OPTIQ_ASSIGN_OR_RETURN(nlohmann::json config, read_json_file((fs::path(c.model_dir) / "config.json").string()));
  nlohmann::json gen = nlohmann::json::object();
  const std::string gen_path = (fs::path(c.model_dir) / "generation_config.json").string();
  std::error_code ec;
  if (fs::exists(gen_path, ec)) {
    OPTIQ_ASSIGN_OR_RETURN(gen, read_json_file(gen_path));
  }
  OPTIQ_ASSIGN_OR_RETURN(ObjectiveParams obj, objective_params(c.objective, info, config, gen));

  // Models without tokenizer.json train on pre-tokenized rows only.
  std::unique_ptr<Tokenizer> tok;
  RowEncoder enc;
  enc.vocab_size = info.vocab_size;
  if (fs::exists(fs::path(c.model_dir) / "tokenizer.json", ec)) {
    OPTIQ_ASSIGN_OR_RETURN(tok, Tokenizer::from_dir(c.model_dir));
    enc.tokenizer = tok.get();
    auto eos = text_eos_id(c.model_dir, *tok);
    if (eos.ok()) enc.eos_id = *eos;  // else text rows fail naming their line
  }
  DatasetOptions dopts;
  // The canvas objective never trains the prompt (L.8).
  dopts.mask_prompt = c.mask_prompt || c.objective == Objective::kCanvas;
  dopts.warn_unmasked_text = c.mask_prompt;
  dopts.max_seq_length = c.max_seq_length;
  const std::string train_path = (fs::path(c.data_dir) / "train.jsonl").string();
  const std::string valid_path = (fs::path(c.data_dir) / "valid.jsonl").string();
  if (!fs::is_directory(c.data_dir, ec)) return Status::NotFound(c.data_dir + ": no such data directory");
  OPTIQ_ASSIGN_OR_RETURN(Dataset train, load_dataset(train_path, enc, dopts));
  std::optional<Dataset> valid;
  if (fs::exists(valid_path, ec)) {
    OPTIQ_ASSIGN_OR_RETURN(Dataset v, load_dataset(valid_path, enc, dopts));
    valid = std::move(v);
  }
  apply_train_defaults(c, given, info, static_cast<int64_t>(train.rows.size()));
  if (log.warning) {
    for (const auto& w : train.warnings) log.warning(w);
    if (valid)
      for (const auto& w : valid->warnings) log.warning(w);
  }
  return train_lora(*trainable, info, obj, train, valid ? &*valid : nullptr, c, pool, log);
}

}  // namespace optiq
