// optiq train --config CONFIG.json --data DATA -o OUT [options]: parses flags into a FullTrainConfig
// and runs train/full_train (full-parameter training from a random or existing model; issue 17 item 4).
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/errors.h"
#include "cli/flags.h"
#include "train/full_train.h"

namespace optiq::cli {

namespace {

const char kTrainUsage[] = R"(usage: optiq train (--config CONFIG.json | --init MODEL_DIR) --data DATA -o OUT [options]

Trains every parameter of a model: a fresh random one from CONFIG.json (any registered model_type
with a trainable architecture: dhara_ar) or the weights of MODEL_DIR. DATA is a text file, a
directory of text files (joined by EOS), or a train.jsonl of {"text"} rows; it is tokenized with
--tokenizer and every step trains on --batch-size random windows of --seq-length tokens.
Writes OUT/config.json, OUT/model.safetensors, the tokenizer files and generation_config.json
(every --save-every steps and at the end) and OUT/training_state.safetensors (for --resume).

  --config FILE             config.json of a fresh random model (seeded by --seed)
  --init DIR                continue from this model's weights instead (or a Hugging Face id
                            ORG/NAME[@REV], docs/models.md; --offline: from the cache only)
  --data PATH               training text (file, directory, or *.jsonl)
  -o OUT, --output OUT      output directory
  --tokenizer DIR           tokenizer.json / tokenizer_config.json / generation_config.json
                            (default: the bundled models/dhara-brown-tiny)
  --objective ar|joint      ar: next-token loss; joint: ar + 0.3 x block-diffusion loss (default joint)
  --optimizer adamw         AdamW with bias correction, betas (0.9, 0.95), eps 1e-8 (the only one)
  --learning-rate LR        peak learning rate (default 3e-3)
  --lr-schedule cosine|constant   after warmup (default cosine, down to --min-lr-ratio x LR)
  --min-lr-ratio R          default 0.1
  --warmup N                linear warmup steps (default 100)
  --weight-decay WD         decoupled, on matrices only (default 0.1)
  --clip-norm C             clip the gradient's global L2 norm, 0 = off (default 1.0)
  --iters N                 optimizer steps (default 1000)
  --batch-size B            windows per step (default 8)
  --seq-length L            tokens per window (default 256)
  --skip-tail-bytes N       drop the last N bytes of each text file (e.g. 200000 keeps the held-out
                            tail of brown.txt, data/heldout/brown-heldout.txt, out of training)
  --valid FILE              text for a validation loss (ar, nll per token) every --steps-per-eval
  --val-batches N           validation batches (default 8)
  --steps-per-report N      progress line every N steps (default 10)
  --steps-per-eval N        default 200
  --save-every N            checkpoint every N steps, 0 = only at the end (default 100)
  --stop-after N            stop after step N with a checkpoint (time-boxed runs; --resume goes on)
  --save-dtype bf16|f32     model.safetensors dtype (default bf16)
  --seed S                  init, windows and noise (default 0)
  --resume                  continue OUT's run from its last checkpoint (same arguments)
  --no-grad-checkpoint      keep all activations (faster, more memory)
  --threads N               worker threads (default: all cores)
)";

int usage(const std::string& message) { return usage_error("train", message); }

}  // namespace

int cmd_train(int argc, char** argv) {
  auto flags = Flags::parse(
      argc, argv,
      {"--config", "--init", "--data", "-o", "--output", "--tokenizer", "--objective", "--optimizer",
       "--learning-rate", "--lr-schedule", "--min-lr-ratio", "--warmup", "--weight-decay", "--clip-norm", "--iters",
       "--batch-size", "--seq-length", "--skip-tail-bytes", "--valid", "--val-batches", "--steps-per-report",
       "--steps-per-eval", "--save-every", "--stop-after", "--save-dtype", "--seed", "--threads"},
      {"--resume", "--no-grad-checkpoint", "--help", "--offline"});
  if (!flags.ok()) return usage(flags.status().message());
  const Flags& f = *flags;
  if (f.has("--help")) {
    std::fputs(kTrainUsage, stdout);
    return 0;
  }
  if (!f.positional().empty()) return usage("unexpected argument '" + f.positional()[0] + "'");
  if (f.has("-o") && f.has("--output")) return usage("give -o or --output, not both");

  FullTrainConfig c;
  c.config_path = f.str("--config");
  c.init_dir = f.str("--init");
  c.data_path = f.str("--data");
  c.valid_path = f.str("--valid");
  c.out_dir = f.has("-o") ? f.str("-o") : f.str("--output");
  c.resume = f.has("--resume");
  c.grad_checkpoint = !f.has("--no-grad-checkpoint");
  if (f.has("--objective")) {
    auto o = parse_objective(f.str("--objective"));
    if (!o.ok()) return usage(o.status().message());
    c.objective = *o;
  }
  if (f.has("--optimizer") && f.str("--optimizer") != "adamw")
    return usage("--optimizer: only adamw is supported, got '" + f.str("--optimizer") + "'");
  const std::string sched = f.str("--lr-schedule", "cosine");
  if (sched == "cosine") c.schedule = LrSchedule::kCosine;
  else if (sched == "constant") c.schedule = LrSchedule::kConstant;
  else return usage("--lr-schedule must be cosine or constant, got '" + sched + "'");
  const std::string dt = f.str("--save-dtype", "bf16");
  if (dt == "bf16") c.save_dtype = DType::kBF16;
  else if (dt == "f32") c.save_dtype = DType::kF32;
  else return usage("--save-dtype must be bf16 or f32, got '" + dt + "'");

  struct IntFlag {
    const char* name;
    int64_t* out;
  };
  int64_t threads = 0, seed = 0;
  for (const IntFlag& i : {IntFlag{"--iters", &c.iters}, {"--batch-size", &c.batch_size}, {"--seq-length", &c.seq_length},
                           {"--warmup", &c.warmup}, {"--skip-tail-bytes", &c.skip_tail_bytes},
                           {"--val-batches", &c.val_batches}, {"--steps-per-report", &c.steps_per_report},
                           {"--steps-per-eval", &c.steps_per_eval}, {"--save-every", &c.save_every}, {"--stop-after", &c.stop_after},
                           {"--threads", &threads}, {"--seed", &seed}}) {
    auto v = f.integer(i.name, *i.out);
    if (!v.ok()) return usage(v.status().message());
    *i.out = *v;
  }
  struct NumFlag {
    const char* name;
    double* out;
  };
  for (const NumFlag& n : {NumFlag{"--learning-rate", &c.learning_rate}, {"--min-lr-ratio", &c.min_lr_ratio},
                           {"--weight-decay", &c.weight_decay}, {"--clip-norm", &c.clip_norm}}) {
    auto v = f.num(n.name, *n.out);
    if (!v.ok()) return usage(v.status().message());
    *n.out = *v;
  }
  if (seed < 0) return usage("--seed must be non-negative");
  if (threads < 0) return usage("--threads must be non-negative");
  c.seed = static_cast<uint64_t>(seed);
  if (Status s = validate_full_train_config(c); !s.ok()) return usage(s.message());
  if (!c.init_dir.empty()) {
    auto dir = resolve_model_arg(c.init_dir, f.has("--offline"));
    if (!dir.ok()) return runtime_error("train", dir.status());
    c.init_dir = *dir;
  }
  // The bundled tokenizer is looked up only once the arguments are known to be valid.
  if (f.has("--tokenizer")) {
    c.tokenizer_dir = f.str("--tokenizer");
  } else {
    auto b = bundled_path("models/dhara-brown-tiny", "pass --tokenizer DIR");
    if (!b.ok()) return runtime_error("train", b.status());
    c.tokenizer_dir = *b;
  }

  ThreadPool pool(static_cast<int>(threads));
  TrainLog log;
  log.progress = [](const std::string& s) {
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  };
  log.warning = [](const std::string& s) { std::fprintf(stderr, "optiq train: warning: %s\n", s.c_str()); };
  auto r = run_full_train(c, pool, log);
  if (!r.ok()) return runtime_error("train", r.status());
  return 0;
}

}  // namespace optiq::cli
