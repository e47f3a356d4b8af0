// optiq convert MODEL_DIR -o OUT [options]: parses flags into ConvertOptions and prints a summary.
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/errors.h"
#include "cli/flags.h"
#include "quant/convert.h"

namespace optiq::cli {

namespace {

const char kConvertUsage[] =
    "usage: optiq convert MODEL_DIR -o OUT [options]\n"
    "\n"
    "Quantizes a float checkpoint to MLX affine mixed precision (OptIQ). Writes OUT/optiq_mixed/\n"
    "(OUT/static_mixed/ with --method static), OUT/uniform_4bit/ and OUT/sensitivity_checkpoint.json.\n"
    "\n"
    "  -o, --output DIR        output directory (required)\n"
    "  --target-bpw X          nominal bits per weight to reach (a floor; default 4.5)\n"
    "  --candidate-bits LIST   comma-separated widths from {2,3,4,5,6,8,16} (default 4,8; 16 = keep bf16)\n"
    "  --group-size N          32, 64 or 128 (default 64)\n"
    "  --method M              optiq (measured KL, default) or static (structural rules)\n"
    "  --n-calibration N       calibration chunks (default 24)\n"
    "  --seq-len N             tokens per calibration chunk (default 512)\n"
    "  --calibration FILE      JSONL calibration mix (default: data/calibration/default.jsonl)\n"
    "  --reference R           bf16 (default; auto resolves to bf16)\n"
    "  --skip-baselines        do not write uniform_4bit/\n"
    "  --causal-only           probe only the causal mode (default: also block diffusion if supported)\n"
    "  --threads N             worker threads (default: all cores)\n"
    "  --quiet                 no progress bar\n"
    "  --offline               Hugging Face ids (MODEL_DIR may be ORG/NAME[@REV]) from the cache only, no network\n";

bool parse_int(const std::string& s, int* out) {
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (!end || *end || end == s.c_str() || v < INT32_MIN || v > INT32_MAX) return false;
  *out = static_cast<int>(v);
  return true;
}

bool parse_bits(const std::string& s, std::vector<int>* out) {
  out->clear();
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    int v;
    if (!parse_int(s.substr(pos, comma - pos), &v)) return false;
    out->push_back(v);
    pos = comma + 1;
  }
  return !out->empty();
}

int usage(const std::string& message) { return usage_error("convert", message); }

}  // namespace

int cmd_convert(int argc, char** argv) {
  auto flags = Flags::parse(argc, argv,
                            {"-o", "--output", "--target-bpw", "--candidate-bits", "--group-size", "--method",
                             "--n-calibration", "--seq-len", "--calibration", "--reference", "--threads"},
                            {"--skip-baselines", "--causal-only", "--quiet", "--help", "--offline"});
  if (!flags.ok()) return usage(flags.status().message());
  const Flags& f = *flags;
  if (f.has("--help")) {
    std::fputs(kConvertUsage, stdout);
    return 0;
  }
  if (f.positional().size() > 1) return usage("unexpected argument '" + f.positional()[1] + "'");
  if (f.has("-o") && f.has("--output")) return usage("give -o or --output, not both");
  ConvertOptions o;
  o.progress = f.has("--quiet") ? nullptr : stderr;
  if (!f.positional().empty()) o.model_dir = f.positional()[0];
  o.out_dir = f.has("-o") ? f.str("-o") : f.str("--output");
  if (o.model_dir.empty()) return usage("MODEL_DIR is required");
  if (o.out_dir.empty()) return usage("-o OUT is required");
  auto bad = [&](const char* flag) { return usage("invalid value '" + f.str(flag) + "' for " + flag); };
  if (f.has("--target-bpw")) {
    auto v = f.num("--target-bpw", 0);
    if (!v.ok() || *v <= 0) return bad("--target-bpw");
    o.target_bpw = *v;
  }
  if (f.has("--candidate-bits") && !parse_bits(f.str("--candidate-bits"), &o.candidate_bits))
    return bad("--candidate-bits");
  struct IntFlag {
    const char* name;
    int min;
    int* out;
  };
  int threads = 0;
  for (const IntFlag& i : {IntFlag{"--group-size", 1, &o.group_size}, {"--n-calibration", 1, &o.n_calibration},
                           {"--seq-len", 2, &o.seq_len}, {"--threads", 0, &threads}})
    if (f.has(i.name) && (!parse_int(f.str(i.name), i.out) || *i.out < i.min)) return bad(i.name);
  if (f.has("--method")) o.method = f.str("--method");
  if (o.method != "optiq" && o.method != "static")
    return usage("--method must be optiq or static, got '" + o.method + "'");
  o.calibration_path = f.str("--calibration");
  if (f.has("--reference")) o.reference = f.str("--reference");
  o.skip_baselines = f.has("--skip-baselines");
  if (f.has("--causal-only")) o.probe.block = false;
  if (auto dir = resolve_model_arg(o.model_dir, f.has("--offline")); dir.ok())
    o.model_dir = *dir;
  else
    return runtime_error("convert", dir.status());
  if (o.method == "optiq" && o.calibration_path.empty()) {
    auto bundled = bundled_path("data/calibration/default.jsonl", "pass --calibration FILE");
    if (!bundled.ok()) return runtime_error("convert", bundled.status());
    o.calibration_path = *bundled;
  }
  ThreadPool pool(threads);
  auto r = convert_model(o, pool);
  if (!r.ok()) return runtime_error("convert", r.status());
  std::map<int, int> hist;
  for (auto& [n, b] : r->allocation.bits) ++hist[b];
  std::printf("wrote %s (achieved %.3f nominal bpw, target %.3f;", r->artifact_dir.c_str(),
              r->allocation.achieved_bpw, o.target_bpw);
  for (auto& [b, n] : hist) std::printf(" %d layers at %d bits", n, b);
  std::printf(")\n");
  for (auto& [name, q] : r->modules)
    if (!r->allocation.bits.count(name)) std::printf("  %s: %d bits (unprobed, allocation maximum)\n", name.c_str(), q.bits);
  if (!r->baseline_dir.empty()) std::printf("wrote %s\n", r->baseline_dir.c_str());
  return 0;
}

}  // namespace optiq::cli
