// optiq lora: the LoRA subcommands (specs/optiq-surface.md §1.5, §5).
//   train  — cmd_lora_train (cli/cmd_lora_train.cpp)
//   info   — what an adapter directory holds (adapter_config.json: mlx-lm, PEFT and optiq keys;
//            optiq_lora_config.json when present; the weights for ranks, modules and parameters)
//   fuse   — the adapter merged into a model's weights (quant/lora_fuse.h)
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "cli/flags.h"
#include "io/lora_adapter.h"
#include "io/model_dir.h"
#include "quant/lora_fuse.h"

namespace optiq::cli {

namespace {

const char kLoraUsage[] =
    "usage: optiq lora <command> [options]\n"
    "\n"
    "  optiq lora train MODEL_DIR --data DIR --adapter-path OUT [options]   fine-tune a LoRA adapter\n"
    "  optiq lora info ADAPTER_DIR [--json]     base model, ranks, scale, modules, parameters\n"
    "  optiq lora fuse MODEL_DIR --adapter ADAPTER_DIR -o OUT   merge the adapter into the weights\n"
    "\n"
    "`optiq lora <command> --help` describes a command's options.\n";

const char kInfoUsage[] =
    "usage: optiq lora info ADAPTER_DIR [--json]\n"
    "\n"
    "Reads ADAPTER_DIR/adapter_config.json (mlx-lm or PEFT keys; optiq_lora_config.json too when present)\n"
    "and ADAPTER_DIR/adapters.safetensors, and prints the base model, rank(s), scale, dropout, the adapted\n"
    "modules and the parameter count.\n"
    "\n"
    "  --json   one JSON object instead of the table\n";

const char kFuseUsage[] =
    "usage: optiq lora fuse MODEL_DIR --adapter ADAPTER_DIR -o OUT\n"
    "\n"
    "Writes MODEL_DIR with the adapter merged, W' = W + scale * (lora_a lora_b)^T, to OUT (a new or empty\n"
    "directory, written under a temporary name and renamed when complete). bf16 weights stay bf16; MLX\n"
    "quantized weights are dequantized, fused and re-quantized to their own bits and group size. Every\n"
    "other tensor and file is copied unchanged.\n"
    "\n"
    "  --adapter DIR        the adapter directory (adapters.safetensors + adapter_config.json);\n"
    "                       also --adapter-path\n"
    "  -o, --output DIR     output directory (also --save-path)\n";

int fail(const char* cmd, const Status& s) {
  std::fprintf(stderr, "optiq lora %s: %s\n", cmd, s.ToString().c_str());
  return 1;
}

// lora_adapter_summary plus what only the directory has: optiq_lora_config.json (OptIQ's record of
// the source model and rank scaling) and the path.
nlohmann::json adapter_info(const std::string& dir, const LoraAdapter& ad) {
  nlohmann::json out = lora_adapter_summary(ad);
  out["adapter"] = ad.name;
  out["path"] = dir;
  const nlohmann::json& c = ad.config;
  nlohmann::json optiq_cfg = nlohmann::json::object();
  if (auto o = read_json_file(dir + "/optiq_lora_config.json"); o.ok() && o->is_object()) optiq_cfg = *o;
  for (const char* k : {"source_model", "base_model"})
    if (optiq_cfg.contains(k) && optiq_cfg[k].is_string()) {
      out["base_model"] = optiq_cfg[k];
      break;
    }
  if (c.contains("optiq") && c["optiq"].is_object() && c["optiq"].contains("rank_scaling"))
    out["rank_scaling"] = c["optiq"]["rank_scaling"];
  else if (optiq_cfg.contains("rank_scaling"))
    out["rank_scaling"] = optiq_cfg["rank_scaling"];
  return out;
}

int lora_info(int argc, char** argv) {
  auto flags = Flags::parse(argc, argv, {}, {"--json", "--help"});
  if (!flags.ok()) return fail("info", flags.status());
  const Flags& f = *flags;
  if (f.has("--help")) {
    std::fputs(kInfoUsage, stdout);
    return 0;
  }
  if (f.positional().size() != 1) {
    std::fputs(kInfoUsage, stderr);
    return 2;
  }
  const std::string dir = f.positional()[0];
  auto ad = load_lora_adapter(dir);
  if (!ad.ok()) return fail("info", ad.status());
  const nlohmann::json j = adapter_info(dir, *ad);
  if (f.has("--json")) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::string rank;
  if (!j["rank"].is_null()) {
    rank = std::to_string(j["rank"].get<int64_t>());
  } else {
    const nlohmann::json& dist = j["rank_distribution"];
    for (auto it = dist.begin(); it != dist.end(); ++it)
      rank += (rank.empty() ? "" : ", ") + it.key() + " (" + std::to_string(it.value().get<int64_t>()) + " modules)";
  }
  std::string kinds;
  for (const auto& k : j["module_kinds"]) kinds += (kinds.empty() ? "" : ", ") + k.get<std::string>();
  const int64_t params = j["parameters"].get<int64_t>();
  std::printf("adapter       %s (%s)\n", ad->name.c_str(), dir.c_str());
  std::printf("base model    %s\n", j["base_model"].is_null() ? "(not recorded)" : j["base_model"].get<std::string>().c_str());
  std::printf("type          %s\n", j["fine_tune_type"].is_null() ? "lora" : j["fine_tune_type"].get<std::string>().c_str());
  std::printf("rank          %s\n", rank.c_str());
  std::printf("scale         %g\n", j["scale"].get<double>());
  std::printf("dropout       %g\n", j["dropout"].get<double>());
  if (!j["num_layers"].is_null()) std::printf("num_layers    %s\n", j["num_layers"].dump().c_str());
  if (j.contains("rank_scaling")) std::printf("rank scaling  %s\n", j["rank_scaling"].dump().c_str());
  std::printf("modules       %zu in %zu layers: %s\n", ad->modules.size(), j["layers"].get<size_t>(), kinds.c_str());
  std::printf("parameters    %lld (%.2f MiB as F32)\n", static_cast<long long>(params),
              static_cast<double>(params) * 4.0 / (1 << 20));
  return 0;
}

int lora_fuse(int argc, char** argv) {
  auto flags = Flags::parse(argc, argv, {"--model", "--adapter", "--adapter-path", "-o", "--output", "--save-path"},
                            {"--help"});
  if (!flags.ok()) return fail("fuse", flags.status());
  const Flags& f = *flags;
  if (f.has("--help")) {
    std::fputs(kFuseUsage, stdout);
    return 0;
  }
  std::string model = f.str("--model");
  if (model.empty() && f.positional().size() == 1) model = f.positional()[0];
  const std::string adapter_dir = f.str("--adapter", f.str("--adapter-path"));
  const std::string out = f.str("-o", f.str("--output", f.str("--save-path")));
  if (model.empty() || adapter_dir.empty() || out.empty() || f.positional().size() > (f.has("--model") ? 0u : 1u)) {
    std::fputs(kFuseUsage, stderr);
    return 2;
  }
  auto ad = load_lora_adapter(adapter_dir);
  if (!ad.ok()) return fail("fuse", ad.status());
  auto st = fuse_lora(model, *ad, out);
  if (!st.ok()) return fail("fuse", st.status());
  std::printf("fused %s (%zu modules, scale %g) into %s -> %s: %lld dense, %lld re-quantized; %lld safetensors "
              "files rewritten, %lld files copied\n",
              ad->name.c_str(), ad->modules.size(), ad->scale, model.c_str(), out.c_str(),
              static_cast<long long>(st->dense_modules), static_cast<long long>(st->requantized_modules),
              static_cast<long long>(st->files_rewritten), static_cast<long long>(st->files_copied));
  return 0;
}

}  // namespace

int cmd_lora(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kLoraUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // Each subcommand sees argv[0] = its own name, as top-level commands do.
  const std::string sub = argv[1];
  if (sub == "train") return cmd_lora_train(argc - 1, argv + 1);
  if (sub == "info") return lora_info(argc - 1, argv + 1);
  if (sub == "fuse") return lora_fuse(argc - 1, argv + 1);
  std::fprintf(stderr, "optiq lora: unknown subcommand '%s'\n\n%s", sub.c_str(), kLoraUsage);
  return 2;
}

}  // namespace optiq::cli
