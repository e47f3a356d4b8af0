// optiq convert MODEL_DIR -o OUT [options]: parses flags into ConvertOptions and prints a summary.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"
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

bool parse_int(const char* s, int* out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (!end || *end || end == s) return false;
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
    if (!parse_int(s.substr(pos, comma - pos).c_str(), &v)) return false;
    out->push_back(v);
    pos = comma + 1;
  }
  return !out->empty();
}

}  // namespace

int cmd_convert(int argc, char** argv) {
  ConvertOptions o;
  o.progress = stderr;
  int threads = 0;
  bool offline = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto need = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "convert: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    auto bad = [&](const char* flag, const char* v) {
      std::fprintf(stderr, "convert: invalid value '%s' for %s\n", v, flag);
      return 2;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kConvertUsage, stdout);
      return 0;
    } else if (a == "-o" || a == "--output") {
      o.out_dir = need("-o");
    } else if (a == "--target-bpw") {
      const char* v = need("--target-bpw");
      char* end = nullptr;
      o.target_bpw = std::strtod(v, &end);
      if (!end || *end || o.target_bpw <= 0) return bad("--target-bpw", v);
    } else if (a == "--candidate-bits") {
      const char* v = need("--candidate-bits");
      if (!parse_bits(v, &o.candidate_bits)) return bad("--candidate-bits", v);
    } else if (a == "--group-size") {
      const char* v = need("--group-size");
      if (!parse_int(v, &o.group_size)) return bad("--group-size", v);
    } else if (a == "--method") {
      o.method = need("--method");
    } else if (a == "--n-calibration") {
      const char* v = need("--n-calibration");
      if (!parse_int(v, &o.n_calibration) || o.n_calibration <= 0) return bad("--n-calibration", v);
    } else if (a == "--seq-len") {
      const char* v = need("--seq-len");
      if (!parse_int(v, &o.seq_len) || o.seq_len < 2) return bad("--seq-len", v);
    } else if (a == "--calibration") {
      o.calibration_path = need("--calibration");
    } else if (a == "--reference") {
      o.reference = need("--reference");
    } else if (a == "--skip-baselines") {
      o.skip_baselines = true;
    } else if (a == "--causal-only") {
      o.probe.block = false;
    } else if (a == "--threads") {
      const char* v = need("--threads");
      if (!parse_int(v, &threads) || threads < 0) return bad("--threads", v);
    } else if (a == "--quiet") {
      o.progress = nullptr;
    } else if (a == "--offline") {
      offline = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "convert: unknown option %s\n\n%s", a.c_str(), kConvertUsage);
      return 2;
    } else if (o.model_dir.empty()) {
      o.model_dir = a;
    } else {
      std::fprintf(stderr, "convert: unexpected argument %s\n", a.c_str());
      return 2;
    }
  }
  if (o.model_dir.empty() || o.out_dir.empty()) {
    std::fprintf(stderr, "convert: MODEL_DIR and -o OUT are required\n\n%s", kConvertUsage);
    return 2;
  }
  if (auto dir = resolve_model_arg(o.model_dir, offline); dir.ok()) {
    o.model_dir = *dir;
  } else {
    std::fprintf(stderr, "convert: %s\n", dir.status().ToString().c_str());
    return 1;
  }
  if (o.method == "optiq" && o.calibration_path.empty()) {
    auto bundled = bundled_path("data/calibration/default.jsonl", "pass --calibration FILE");
    if (!bundled.ok()) {
      std::fprintf(stderr, "convert: %s\n", bundled.status().ToString().c_str());
      return 1;
    }
    o.calibration_path = *bundled;
  }
  ThreadPool pool(threads);
  auto r = convert_model(o, pool);
  if (!r.ok()) {
    std::fprintf(stderr, "convert: %s\n", r.status().ToString().c_str());
    return 1;
  }
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
