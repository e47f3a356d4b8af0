// optiq eval MODEL_DIR --task kl|perplexity [--reference DIR] [--baseline DIR]: parses flags, runs
// quant/evaluate, prints a table (MODEL and BASELINE side by side).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.h"
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
    "  --quiet             no progress bar\n";

bool to_int(const char* s, long long* out) {
  char* end = nullptr;
  *out = std::strtoll(s, &end, 10);
  return end && !*end && end != s;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  std::string model, task, reference, baseline, text, adapter;
  long long heldout = 200000, n_samples = 16, seq_len = 512, max_windows = 0, threads = 0;
  ProbeOptions probe;
  std::FILE* progress = stderr;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto need = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "eval: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    auto num = [&](const char* flag, long long* out, long long min) {
      const char* v = need(flag);
      if (!to_int(v, out) || *out < min) {
        std::fprintf(stderr, "eval: invalid value '%s' for %s\n", v, flag);
        std::exit(2);
      }
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kEvalUsage, stdout);
      return 0;
    } else if (a == "--task") {
      task = need("--task");
    } else if (a == "--reference") {
      reference = need("--reference");
    } else if (a == "--baseline") {
      baseline = need("--baseline");
    } else if (a == "--adapter") {
      adapter = need("--adapter");
    } else if (a == "--text") {
      text = need("--text");
    } else if (a == "--heldout-bytes") {
      num("--heldout-bytes", &heldout, 0);
    } else if (a == "--n-samples") {
      num("--n-samples", &n_samples, 1);
    } else if (a == "--seq-len") {
      num("--seq-len", &seq_len, 2);
    } else if (a == "--max-windows") {
      num("--max-windows", &max_windows, 0);
    } else if (a == "--threads") {
      num("--threads", &threads, 0);
    } else if (a == "--causal-only") {
      probe.block = false;
    } else if (a == "--quiet") {
      progress = nullptr;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "eval: unknown option %s\n\n%s", a.c_str(), kEvalUsage);
      return 2;
    } else if (model.empty()) {
      model = a;
    } else {
      std::fprintf(stderr, "eval: unexpected argument %s\n", a.c_str());
      return 2;
    }
  }
  if (model.empty() || (task != "kl" && task != "perplexity")) {
    std::fprintf(stderr, "eval: MODEL_DIR and --task kl|perplexity are required\n\n%s", kEvalUsage);
    return 2;
  }
  if (task == "kl" && reference.empty()) {
    std::fprintf(stderr, "eval: --task kl needs --reference DIR\n");
    return 2;
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "eval: %s\n", s.ToString().c_str());
    return 1;
  };
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
  std::vector<std::string> labels = dirs;
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
    labels.push_back(reference);
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
