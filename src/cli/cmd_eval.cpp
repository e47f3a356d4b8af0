// optiq eval MODEL_DIR --task kl|perplexity [--reference DIR] [--baseline DIR]: parses flags, runs
// quant/evaluate, prints a table (MODEL and BASELINE side by side).
#include <algorithm>
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/errors.h"
#include "cli/flags.h"
#include "quant/evaluate.h"

namespace optiq::cli {

namespace {

const char kEvalUsage[] =
    "usage: optiq eval MODEL_DIR --task kl|perplexity [options]\n"
    "\n"
    "  --task T            kl (needs --reference) or perplexity\n"
    "  --reference DIR     the reference model for KL (usually the bf16 source)\n"
    "  --baseline DIR      a second model evaluated the same way, shown side by side\n"
    "  --adapter DIR       apply a LoRA adapter to MODEL_DIR (unmerged; not to --baseline or --reference)\n"
    "  --text FILE         held-out text (default: the bundled data/heldout/brown-heldout.txt)\n"
    "  --heldout-bytes N   use the last N bytes of the text (default 200000; 0 = all)\n"
    "  --n-samples N       KL windows (default 16)\n"
    "  --seq-len N         tokens per window (default 512)\n"
    "  --max-windows N     perplexity windows, 0 = all (default 0)\n"
    "  --causal-only       KL in causal mode only\n"
    "  --threads N         worker threads (default: all cores)\n"
    "  --quiet             no progress bar\n"
    "  --offline           Hugging Face ids (MODEL_DIR may be ORG/NAME[@REV]) from the cache only, no network\n";

// The tasks `--task` accepts, in the order the help lists them.
const char* const kTasks[] = {"kl", "perplexity"};

int usage(const std::string& message) { return usage_error("eval", message); }

}  // namespace

int cmd_eval(int argc, char** argv) {
  auto flags = Flags::parse(argc, argv,
                            {"--task", "--reference", "--baseline", "--adapter", "--text", "--heldout-bytes",
                             "--n-samples", "--seq-len", "--max-windows", "--threads"},
                            {"--causal-only", "--quiet", "--help", "--offline"});
  if (!flags.ok()) return usage(flags.status().message());
  const Flags& f = *flags;
  if (f.has("--help")) {
    std::fputs(kEvalUsage, stdout);
    return 0;
  }
  if (f.positional().size() > 1) return usage("unexpected argument '" + f.positional()[1] + "'");
  if (f.positional().empty()) return usage("MODEL_DIR is required");
  if (!f.has("--task")) return usage("--task is required (kl or perplexity)");
  const std::string task = f.str("--task"), adapter = f.str("--adapter");
  std::string model = f.positional()[0], reference = f.str("--reference"), baseline = f.str("--baseline");
  std::string text = f.str("--text");
  if (std::find(std::begin(kTasks), std::end(kTasks), task) == std::end(kTasks)) {
    std::string valid;
    for (const char* t : kTasks) valid += (valid.empty() ? "" : ", ") + std::string(t);
    return usage("unknown task '" + task + "'; valid tasks: " + valid);
  }
  if (task == "kl" && reference.empty()) return usage("--task kl needs --reference DIR");
  struct IntFlag {
    const char* name;
    long long def, min;
    long long* out;
  };
  long long heldout, n_samples, seq_len, max_windows, threads;
  for (const IntFlag& i : {IntFlag{"--heldout-bytes", 200000, 0, &heldout}, {"--n-samples", 16, 1, &n_samples},
                           {"--seq-len", 512, 2, &seq_len}, {"--max-windows", 0, 0, &max_windows},
                           {"--threads", 0, 0, &threads}}) {
    auto v = f.integer(i.name, i.def);
    if (!v.ok()) return usage(v.status().message());
    if (*v < i.min) return usage(std::string(i.name) + " must be >= " + std::to_string(i.min) + ", got " + f.str(i.name));
    *i.out = *v;
  }
  ProbeOptions probe;
  probe.block = !f.has("--causal-only");
  std::FILE* progress = f.has("--quiet") ? nullptr : stderr;
  auto fail = [](const Status& s) { return runtime_error("eval", s); };
  // Hugging Face ids (MODEL_DIR, --reference, --baseline) become cache snapshot directories; the table
  // names the models as given.
  std::vector<std::string> labels = {model};
  if (!baseline.empty()) labels.push_back(baseline);
  const std::string reference_label = reference;
  for (std::string* m : {&model, &reference, &baseline}) {
    if (m->empty()) continue;
    auto dir = resolve_model_arg(*m, f.has("--offline"));
    if (!dir.ok()) return fail(dir.status());
    *m = *dir;
  }
  if (text.empty()) {
    auto bundled = bundled_path("data/heldout/brown-heldout.txt", "pass --text FILE");
    if (!bundled.ok()) return fail(bundled.status());
    text = *bundled;
  }
  if (!adapter.empty()) {  // the files up front; the check against the model when it is loaded
    if (auto ad = load_lora_adapter(adapter); !ad.ok()) return fail(ad.status());
  }
  ThreadPool pool(static_cast<int>(threads));
  auto tokens = read_heldout_tokens(text, heldout, model);
  if (!tokens.ok()) return fail(tokens.status());
  std::vector<std::string> dirs = {model};
  if (!baseline.empty()) dirs.push_back(baseline);

  LoadOptions block_only;  // evaluation runs whole windows: no decode-matmul copies
  block_only.repack = false;
  // dirs[i] loaded; MODEL_DIR (i = 0) with --adapter applied.
  struct Loaded {
    std::unique_ptr<Model> base, adapted;
    const Model& get() const { return adapted ? *adapted : *base; }
  };
  auto load = [&](size_t i) -> Result<Loaded> {
    Loaded l;
    OPTIQ_ASSIGN_OR_RETURN(l.base, load_model(dirs[i], block_only));
    if (i == 0 && !adapter.empty()) {
      OPTIQ_ASSIGN_OR_RETURN(l.adapted, adapted_model(*l.base, adapter));
    }
    return Result<Loaded>(std::move(l));
  };
  if (!adapter.empty()) labels[0] += " + " + adapter;
  if (task == "kl") {
    auto windows = eval_windows(*tokens, static_cast<int>(n_samples), static_cast<int>(seq_len));
    if (windows.empty()) return fail(Status::InvalidArgument(text + ": too short for one window"));
    auto ref_model = load_model(reference, block_only);
    if (!ref_model.ok()) return fail(ref_model.status());
    if (progress) std::fprintf(progress, "reference logits (%zu windows of %lld tokens)...\n", windows.size(), seq_len);
    auto ref = ReferenceLogits::compute(**ref_model, windows, probe, pool);
    if (!ref.ok()) return fail(ref.status());
    std::vector<KlSummary> rows;
    for (size_t i = 0; i < dirs.size(); ++i) {
      auto m = load(i);
      if (!m.ok()) return fail(m.status());
      auto kv = ref->compare(m->get(), pool);
      if (!kv.ok()) return fail(kv.status().WithContext(dirs[i]));
      rows.push_back(summarize_kl(*kv));
    }
    std::printf("KL(reference || model), reference %s, %zu held-out windows x %lld tokens\n", reference.c_str(),
                windows.size(), seq_len);
    std::printf("%-44s %12s %12s %12s %12s\n", "model", "causal mean", "causal p95", "block mean", "block p95");
    for (size_t i = 0; i < dirs.size(); ++i) {
      const KlSummary& s = rows[i];
      if (s.n_block > 0)
        std::printf("%-44s %12.5f %12.5f %12.5f %12.5f\n", labels[i].c_str(), s.causal_mean, s.causal_p95, s.block_mean,
                    s.block_p95);
      else
        std::printf("%-44s %12.5f %12.5f %12s %12s\n", labels[i].c_str(), s.causal_mean, s.causal_p95, "-", "-");
    }
    return 0;
  }

  if (!reference.empty()) {
    dirs.push_back(reference);
    labels.push_back(reference_label);
  }
  std::vector<PerplexityResult> rows;
  for (size_t i = 0; i < dirs.size(); ++i) {
    auto m = load(i);
    if (!m.ok()) return fail(m.status());
    auto r = evaluate_perplexity(m->get(), *tokens, static_cast<int>(seq_len), static_cast<int>(max_windows), pool,
                                 progress);
    if (!r.ok()) return fail(r.status().WithContext(dirs[i]));
    rows.push_back(*r);
  }
  std::printf("perplexity on %s (last %lld bytes), windows of %lld tokens\n", text.c_str(), heldout, seq_len);
  std::printf("%-44s %12s %12s %10s\n", "model", "perplexity", "nll/token", "tokens");
  for (size_t i = 0; i < dirs.size(); ++i)
    std::printf("%-44s %12.4f %12.5f %10lld\n", labels[i].c_str(), rows[i].perplexity, rows[i].mean_nll,
                static_cast<long long>(rows[i].n_tokens));
  return 0;
}

}  // namespace optiq::cli
