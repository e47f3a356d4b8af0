// optiq lora train MODEL_DIR --data DATA_DIR --adapter-path OUT [options]: parses flags into a
// LoraTrainConfig and runs train/lora_train (specs/optiq-surface.md §5.1, L.8).
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/flags.h"
#include "train/lora_train.h"

namespace optiq::cli {

namespace {

const char kLoraTrainUsage[] = R"(usage: optiq lora train MODEL_DIR --data DATA_DIR [--adapter-path OUT] [options]

Trains a LoRA adapter on DATA_DIR/train.jsonl (validation loss on DATA_DIR/valid.jsonl if present).
Rows: {"text"}, {"prompt", "completion"}, {"messages"} (chat template applied), or pre-tokenized
{"prompt_ids", "completion_ids"}. Writes OUT/adapters.safetensors (F32 <module>.lora_a [in, r],
<module>.lora_b [r, out]) and OUT/adapter_config.json; checkpoints and a resumable training state.

  --data DIR                      directory with train.jsonl (and optional valid.jsonl)
  --adapter-path OUT, -o OUT      output directory (default optiq_lora_adapters)
  --objective ar|joint|canvas     ar: next-token loss; joint (block-diffusion models, dhara): ar + 0.3 x
                                  block-diffusion loss; canvas (DiffusionGemma): canvas denoising loss.
                                  Default: the model's native one (canvas for canvas models, else ar)
  --resume-adapter-file FILE      start from this adapters.safetensors (its modules and ranks)
  --resume                        continue OUT's interrupted run from its last checkpoint (same arguments)
  --optimizer adamw|adam|sgd      default adamw (MLX defaults: no bias correction, weight decay 0.01)
  --learning-rate LR              default 2e-4 (canvas: 1e-4), constant
  --iters N                       optimizer steps (default: 3 passes over the batches; canvas: 200)
  --batch-size B                  rows per batch (default 1)
  --grad-accumulation-steps K     batches per step, gradients averaged (default 1)
  --rank R                        LoRA rank of a fresh adapter (default 8)
  --scale S                       y = Wx + S (x A) B (default 1.0; canvas: 8.0)
  --dropout P                     dropout on the LoRA input (default 0)
  --num-layers N                  adapt the last N layers, -1 = all (default -1)
  --max-seq-length L              rows are cut to L tokens, with a warning (default 512)
  --mask-prompt                   train only the completion / last message (default off, as mlx-lm;
                                  text rows are never masked; canvas always excludes the prompt)
  --steps-per-report N            progress line every N steps (default 10)
  --steps-per-eval N              validation loss every N steps (default 200)
  --val-batches N                 validation batches, -1 = all (default 25)
  --save-every N                  checkpoint every N steps, 0 = only at the end (default 100)
  --seed S                        every random draw: shuffle, init, noise, dropout (default 0)
  --grad-checkpoint               recompute each layer's activations in backward (the default)
  --no-grad-checkpoint            keep all activations (faster, more memory)
  --threads N                     worker threads (default: all cores)
)";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "optiq lora train: %s\n\n%s", msg.c_str(), kLoraTrainUsage);
  return 2;
}

}  // namespace

int cmd_lora_train(int argc, char** argv) {
  auto flags = Flags::parse(
      argc, argv,
      {"--data", "--adapter-path", "-o", "--resume-adapter-file", "--optimizer", "--learning-rate", "--iters",
       "--batch-size", "--rank", "--scale", "--dropout", "--num-layers", "--max-seq-length",
       "--grad-accumulation-steps", "--steps-per-report", "--steps-per-eval", "--val-batches", "--save-every",
       "--seed", "--objective", "--threads"},
      {"--mask-prompt", "--grad-checkpoint", "--no-grad-checkpoint", "--resume", "--help", "-h"});
  if (!flags.ok()) return usage_error(flags.status().message());
  const Flags& f = *flags;
  if (f.has("--help") || f.has("-h")) {
    std::fputs(kLoraTrainUsage, stdout);
    return 0;
  }
  if (f.positional().size() != 1) return usage_error("expected one MODEL_DIR, got " + std::to_string(f.positional().size()));
  if (!f.has("--data")) return usage_error("--data DATA_DIR is required");
  if (f.has("--adapter-path") && f.has("-o")) return usage_error("give --adapter-path or -o, not both");
  if (f.has("--grad-checkpoint") && f.has("--no-grad-checkpoint"))
    return usage_error("--grad-checkpoint and --no-grad-checkpoint contradict each other");

  LoraTrainConfig c;
  LoraTrainGiven given;
  c.model_dir = f.positional()[0];
  c.data_dir = f.str("--data");
  c.adapter_path = f.has("-o") ? f.str("-o") : f.str("--adapter-path", "optiq_lora_adapters");
  c.resume_adapter_file = f.str("--resume-adapter-file");
  c.resume = f.has("--resume");
  c.mask_prompt = f.has("--mask-prompt");
  c.grad_checkpoint = !f.has("--no-grad-checkpoint");
  if (f.has("--objective")) {
    auto o = parse_objective(f.str("--objective"));
    if (!o.ok()) return usage_error(o.status().message());
    given.objective = *o;
  }
  if (f.has("--optimizer")) {
    auto o = parse_optimizer(f.str("--optimizer"));
    if (!o.ok()) return usage_error(o.status().message());
    c.optimizer = *o;
  }
  struct IntFlag {
    const char* name;
    int64_t* out;
  };
  int64_t threads = 0, seed = 0;
  for (const IntFlag& i : {IntFlag{"--batch-size", &c.batch_size}, {"--rank", &c.rank}, {"--num-layers", &c.num_layers},
                           {"--max-seq-length", &c.max_seq_length}, {"--grad-accumulation-steps", &c.grad_accumulation_steps},
                           {"--steps-per-report", &c.steps_per_report}, {"--steps-per-eval", &c.steps_per_eval},
                           {"--val-batches", &c.val_batches}, {"--save-every", &c.save_every}, {"--threads", &threads},
                           {"--seed", &seed}}) {
    auto v = f.integer(i.name, *i.out);
    if (!v.ok()) return usage_error(v.status().message());
    *i.out = *v;
  }
  if (seed < 0) return usage_error("--seed must be non-negative");
  if (threads < 0) return usage_error("--threads must be non-negative");
  c.seed = static_cast<uint64_t>(seed);
  c.rank_given = f.has("--rank");
  if (f.has("--iters")) {
    auto v = f.integer("--iters", 0);
    if (!v.ok()) return usage_error(v.status().message());
    given.iters = *v;
  }
  auto lr = f.num("--learning-rate", 0), scale = f.num("--scale", 0), dropout = f.num("--dropout", 0);
  for (const auto* r : {&lr, &scale, &dropout})
    if (!r->ok()) return usage_error(r->status().message());
  if (f.has("--learning-rate")) given.learning_rate = *lr;
  if (f.has("--scale")) given.scale = static_cast<float>(*scale);
  c.dropout = static_cast<float>(*dropout);

  // Argument errors before anything is loaded (the model-dependent defaults are provisional here).
  {
    LoraTrainConfig check = c;
    apply_train_defaults(check, given, ModelInfo{}, 0);
    Status s = validate_train_config(check);
    if (!s.ok()) return usage_error(s.message());
  }

  ThreadPool pool(static_cast<int>(threads));
  TrainLog log;
  log.progress = [](const std::string& s) {
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  };
  log.warning = [](const std::string& s) { std::fprintf(stderr, "optiq lora train: warning: %s\n", s.c_str()); };
  auto r = run_lora_train(c, given, pool, log);
  if (!r.ok()) {
    std::fprintf(stderr, "optiq lora train: %s\n", r.status().ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace optiq::cli
