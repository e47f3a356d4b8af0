// optiq generate: one generation with any decoding mode, text streamed to stdout, stats on stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/errors.h"
#include "cli/flags.h"
#include "cli/text_codec.h"
#include "decode/canvas.h"
#include "decode/generate.h"
#include "io/image.h"
#include "io/model_dir.h"

namespace optiq::cli {

namespace {

// Each flag once, grouped by the models that read it; a flag of one family given for a model of the
// other is a usage error (check_flags_apply).
const char* kGenerateHelp = R"(usage: optiq generate [--model DIR] (--prompt TEXT | --prompt-ids 1,2,3) [options]

Every model:
  --model DIR|ORG/NAME[@REV]  model directory or Hugging Face id (docs/models.md; default: the bundled
                           models/dhara-brown-small)
  --offline                Hugging Face ids from the cache only, no network (as HF_HUB_OFFLINE=1)
  --prompt TEXT            prompt text (tokenized with the model's tokenizer)
  --prompt-ids LIST        prompt as comma-separated token ids
  --chat                   wrap the prompt as a user message with the chat template
  --max-tokens N           tokens to generate (default 128; canvas models 256, in whole canvases)
  --seed S                 seed of the sampler RNG (default 0)
  --threshold T            confidence to commit a position: dhara --mode diffusion (default 0.5), or
                           DiffusionGemma's confidence-threshold sampler τ (default: generation_config.json,
                           else 0.9)
  --json                   print one JSON object instead of streaming text
  --threads N              worker threads (default: all cores)
  --no-repack              keep 4/8-bit weights in the checkpoint layout only: saves their size in memory,
                           costs ~20% AR decode speed on AVX512-VNNI CPUs

Token-by-token models (dhara):
  --mode ar|diffusion|selfspec   decoding mode (default ar); diffusion and selfspec are greedy
  --temp T --top-k K --top-p P --min-p M   sampling (default greedy)
  --repetition-penalty R   HF repetition penalty (default: generation_config.json, else 1.0)
  --block-len N            block length: diffusion's blocks, self-speculation's draft mask grid
                           (--mode diffusion or selfspec; default 32)
  --draft-len K            self-speculation draft length (--mode selfspec; default 8)

Canvas-diffusion models (DiffusionGemma):
  --sampler entropy-bound|confidence-threshold   (default: generation_config.json, else entropy-bound)
  --steps N                max denoising steps per canvas (default: generation_config.json)
  --image FILE             JPEG/PNG image placed at the prompt's image token (prepended if absent);
                           models with a vision tower only

Adapters (either family):
  --adapter DIR            apply a LoRA adapter (adapters.safetensors + adapter_config.json), unmerged

Exit status: 0 done, 1 the model or a file failed, 2 a usage error (including a flag that does not
apply to the loaded model).
)";

int usage(const std::string& message) { return usage_error("generate", message); }
int fail(const Status& s) { return runtime_error("generate", s); }

// Flags only token-by-token models read, and flags only canvas models read.
const char* const kTokenOnlyFlags[] = {"--mode",  "--temp",  "--top-k",     "--top-p",
                                       "--min-p", "--repetition-penalty", "--block-len", "--draft-len"};
const char* const kCanvasOnlyFlags[] = {"--sampler", "--steps"};

// The first flag that does not apply to `info`'s model (or to the chosen dhara mode), as a usage
// message; empty when all apply. Mirrors the server, which answers 400 for request fields of the
// other family (serve/protocol_common.cpp, resolve_options / resolve_canvas_options).
std::string check_flags_apply(const Flags& f, const ModelInfo& info) {
  if (f.has("--image") && info.image_token_id < 0)
    return "--image: " + info.model_type + " has no vision tower (no image_token_id in config.json)";
  if (info.canvas_length > 0) {
    for (const char* flag : kTokenOnlyFlags)
      if (f.has(flag))
        return std::string(flag) + " applies to token-by-token models (dhara); " + info.model_type +
               " decodes by canvas diffusion (see --sampler, --threshold, --steps)";
    return {};
  }
  for (const char* flag : kCanvasOnlyFlags)
    if (f.has(flag))
      return std::string(flag) + " applies to canvas-diffusion models (DiffusionGemma); " + info.model_type +
             " is not one (see --mode)";
  const std::string mode = f.str("--mode", "ar");
  if (mode != "ar" && (!info.supports_block || info.mask_token_id < 0))
    return "--mode " + mode + " needs a block-diffusion model; " + info.model_type + " supports only ar";
  if (mode == "ar" && f.has("--block-len")) return "--block-len applies to --mode diffusion or selfspec, not --mode ar";
  if (mode != "diffusion" && f.has("--threshold")) return "--threshold applies to --mode diffusion, not --mode " + mode;
  if (mode != "selfspec" && f.has("--draft-len")) return "--draft-len applies to --mode selfspec, not --mode " + mode;
  return {};
}

Result<std::vector<int32_t>> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0 || v > INT32_MAX)
      return Status::InvalidArgument("--prompt-ids: not a token id: \"" + item + "\"");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) return Status::InvalidArgument("--prompt-ids: empty list");
  return ids;
}

// Canvas diffusion (DiffusionGemma): the model's traits pick this path, not its architecture name.
// Streams generated tokens to stdout (text through the codec, else ids) up to the first stop id;
// `stopped` carries that across calls.
void print_until_stop(std::span<const int32_t> toks, std::span<const int32_t> stops, TextCodec* codec, bool& stopped) {
  for (int32_t t : toks) {
    if (stopped || std::find(stops.begin(), stops.end(), t) != stops.end()) {
      stopped = true;
      break;
    }
    if (codec) {
      std::string s = codec->push(t);
      std::fwrite(s.data(), 1, s.size(), stdout);
    } else {
      std::printf("%d ", t);
    }
  }
  std::fflush(stdout);
}

int generate_canvas(const Flags& f, const std::string& dir, const Model& model, TextCodec* codec,
                    std::vector<int32_t> prompt, ThreadPool& pool, int64_t max_tokens) {
  const ModelInfo& info = model.info();
  CanvasOptions o;
  {
    auto gen = read_json_file(dir + "/generation_config.json");
    if (gen.ok()) {
      auto parsed = canvas_options_from_generation_config(*gen);
      if (!parsed.ok()) return fail(parsed.status().WithContext(dir + "/generation_config.json"));
      o = *parsed;
    }
  }
  if (f.has("--sampler")) {
    auto s = parse_canvas_sampler(f.str("--sampler"));
    if (!s.ok()) return usage("--" + s.status().message());
    o.sampler = *s;
  }
  auto thr = f.num("--threshold", o.threshold);
  auto steps = f.integer("--steps", o.max_steps);
  auto seed = f.integer("--seed", static_cast<long long>(o.seed));
  if (!thr.ok()) return usage(thr.status().message());
  if (!steps.ok()) return usage(steps.status().message());
  if (!seed.ok()) return usage(seed.status().message());
  if (!(*thr > 0 && *thr <= 1)) return usage("--threshold must be in (0, 1], got " + f.str("--threshold"));
  if (*steps < 1 || *steps > 1 << 20) return usage("--steps must be in [1, 1048576], got " + f.str("--steps"));
  if (*seed < 0) return usage("--seed must be non-negative, got " + f.str("--seed"));
  if (f.has("--max-tokens") && max_tokens < 1) return usage("--max-tokens must be >= 1 for canvas models");
  o.threshold = *thr;
  o.max_steps = static_cast<int>(*steps);
  o.seed = static_cast<uint64_t>(*seed);
  if (f.has("--max-tokens")) o.max_new_tokens = max_tokens;

  PromptEmbeds embeds;
  if (f.has("--image")) {
    auto img = load_image_file(f.str("--image"));
    if (!img.ok()) return fail(img.status());
    auto emb = model.embed_image(img->rgb, img->width, img->height, pool);
    if (!emb.ok()) return fail(emb.status());
    if (std::find(prompt.begin(), prompt.end(), info.image_token_id) == prompt.end())
      prompt.insert(prompt.begin(), info.image_token_id);
    auto expanded = expand_image_prompt(prompt, info, std::span<const ImageEmbedding>(&*emb, 1), &embeds);
    if (!expanded.ok()) return fail(expanded.status());
    prompt = std::move(*expanded);
  }
  const bool json_out = f.has("--json");
  auto on_canvas = [&](const CanvasTrace& c) {
    if (json_out) return true;
    bool stopped = false;  // each canvas prints up to its own EOS; decoding ends there anyway
    print_until_stop(c.argmax, info.eos_ids, codec, stopped);
    return true;
  };
  auto t0 = std::chrono::steady_clock::now();
  auto r = canvas_generate(model, pool, prompt, o, f.has("--image") ? &embeds : nullptr, on_canvas);
  if (!r.ok()) return fail(r.status());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (json_out) {
    nlohmann::json j = canvas_result_to_json(*r);
    j["sampler"] = canvas_sampler_name(o.sampler);
    if (codec) j["text"] = codec->decode(r->tokens);
    std::printf("%s\n", j.dump().c_str());
  } else {
    if (codec) {
      std::string rest = codec->flush();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
    }
    std::fputc('\n', stdout);
  }
  std::fflush(stdout);  // the text before the stats line (stderr) when both go to one pipe or file
  size_t steps_total = 0;
  for (auto& c : r->canvases) steps_total += c.steps.size();
  // tokens/forward divides by the decoder forwards (denoising steps), as CanvasResult::tokens_per_forward,
  // the JSON and `optiq bench` do; the line names that count as the denominator and the encoder
  // forwards (prefill and canvas commits) apart.
  std::fprintf(stderr,
               "[%s] prompt %lld tokens, generated %zu tokens, %zu canvases, %.1f steps/canvas, %lld decoder "
               "forwards (+ %lld encoder), %.2f tokens/decoder forward, %.1f tok/s, %d retries\n",
               canvas_sampler_name(o.sampler), static_cast<long long>(r->prompt_tokens), r->tokens.size(),
               r->canvases.size(), r->canvases.empty() ? 0.0 : static_cast<double>(steps_total) / r->canvases.size(),
               static_cast<long long>(r->decoder_forwards), static_cast<long long>(r->encoder_forwards),
               r->tokens_per_forward(), secs > 0 ? static_cast<double>(r->tokens.size()) / secs : 0.0, r->retries);
  return 0;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  auto flags = Flags::parse(argc, argv,
                            {"--model", "--prompt", "--prompt-ids", "--mode", "--max-tokens", "--temp", "--top-k",
                             "--top-p", "--min-p", "--seed", "--repetition-penalty", "--block-len", "--threshold",
                             "--draft-len", "--threads", "--sampler", "--steps", "--image", "--adapter"},
                            {"--chat", "--json", "--help", "--no-repack", "--offline"});
  if (!flags.ok()) return usage(flags.status().message());
  const Flags& f = *flags;
  if (f.has("--help")) {
    std::fputs(kGenerateHelp, stdout);
    return 0;
  }
  if (!f.positional().empty()) return usage("unexpected argument '" + f.positional()[0] + "'");
  if (f.has("--prompt") == f.has("--prompt-ids")) return usage("give exactly one of --prompt and --prompt-ids");
  if (f.has("--chat") && f.has("--prompt-ids")) return usage("--chat applies to --prompt, not --prompt-ids");
  GenerateOptions o;
  if (!decode_mode_from_name(f.str("--mode", "ar"), &o.mode))
    return usage("--mode must be ar, diffusion or selfspec, got '" + f.str("--mode") + "'");
  Result<std::vector<int32_t>> ids = std::vector<int32_t>{};
  if (f.has("--prompt-ids")) {
    ids = parse_ids(f.str("--prompt-ids"));
    if (!ids.ok()) return usage(ids.status().message());
  }
  struct NumFlag {
    const char* name;
    double def, lo, hi;
    double* out;
  };
  // Repetition penalty's default comes from the model directory: parsed here, defaulted below.
  double max_tokens, temp, top_k, top_p, min_p, seed, penalty, block_len, threshold, draft_len, threads;
  NumFlag nums[] = {{"--max-tokens", 128, 0, 1e7, &max_tokens},
                    {"--temp", 0, 0, 1e6, &temp},
                    {"--top-k", 0, 0, 1e9, &top_k},
                    {"--top-p", 1, 0, 1, &top_p},
                    {"--min-p", 0, 0, 1, &min_p},
                    {"--seed", 0, 0, 9.2e18, &seed},
                    {"--repetition-penalty", 1, 0, 1e6, &penalty},
                    {"--block-len", 32, 1, 4096, &block_len},
                    {"--threshold", 0.5, 0, 1, &threshold},
                    {"--draft-len", 8, 2, 64, &draft_len},
                    {"--threads", 0, 0, 4096, &threads}};
  for (auto& n : nums) {
    auto v = f.num(n.name, n.def);
    if (!v.ok()) return usage(v.status().message());
    if (*v < n.lo || *v > n.hi) {
      char range[96];
      std::snprintf(range, sizeof range, " must be in [%.15g, %.15g], got ", n.lo, n.hi);
      return usage(n.name + (range + f.str(n.name)));
    }
    *n.out = *v;
  }
  // Open at zero: a zero threshold would commit every position, a zero penalty divides by zero.
  for (const char* name : {"--threshold", "--repetition-penalty"})
    if (f.has(name) && *f.num(name, 1) <= 0) return usage(std::string(name) + " must be positive, got " + f.str(name));

  auto model_dir = model_dir_flag(f);
  if (!model_dir.ok()) return fail(model_dir.status());
  const std::string dir = *model_dir;
  LoadOptions lo;
  lo.repack = !f.has("--no-repack");
  auto base = load_model(dir, lo);
  if (!base.ok()) return fail(base.status());
  if (std::string m = check_flags_apply(f, (*base)->info()); !m.empty()) return usage(m);
  std::unique_ptr<Model> adapted;
  if (f.has("--adapter")) {
    auto a = adapted_model(**base, f.str("--adapter"));
    if (!a.ok()) return fail(a.status());
    adapted = std::move(a).value();
  }
  const Model& model = adapted ? *adapted : **base;
  const ModelInfo& info = model.info();
  // Without a tokenizer, --prompt-ids still works and output is printed as ids.
  std::unique_ptr<TextCodec> codec;
  {
    auto c = TextCodec::open(dir);
    if (c.ok()) codec = std::move(c.value());
    else if (!f.has("--prompt-ids")) return fail(c.status());
  }
  Result<std::vector<int32_t>> prompt = std::move(ids);
  if (f.has("--chat")) prompt = codec->encode_chat(f.str("--prompt"));
  else if (f.has("--prompt")) prompt = codec->encode(f.str("--prompt"));
  if (!prompt.ok()) return fail(prompt.status());

  ThreadPool pool(static_cast<int>(threads));
  if (info.canvas_length > 0)
    return generate_canvas(f, dir, model, codec.get(), *prompt, pool, static_cast<int64_t>(max_tokens));

  // Defaults from generation_config.json where the user gave none (e.g. dhara's repetition penalty 1.3).
  if (!f.has("--repetition-penalty")) {
    auto md = read_json_file(dir + "/generation_config.json");
    if (md.ok() && md->is_object() && (*md).contains("repetition_penalty") && (*md)["repetition_penalty"].is_number())
      penalty = (*md)["repetition_penalty"].get<double>();
  }
  o.max_new_tokens = static_cast<int>(max_tokens);
  o.sampling.temperature = static_cast<float>(temp);
  o.sampling.top_k = static_cast<int>(top_k);
  o.sampling.top_p = static_cast<float>(top_p);
  o.sampling.min_p = static_cast<float>(min_p);
  o.sampling.seed = static_cast<uint64_t>(seed);
  o.sampling.repetition_penalty = static_cast<float>(penalty);
  o.block_len = static_cast<int>(block_len);
  o.threshold = static_cast<float>(threshold);
  o.draft_len = static_cast<int>(draft_len);
  if (Status st = o.sampling.validate(); !st.ok()) return usage(st.message());
  if (o.mode != DecodeMode::kAR && !o.sampling.greedy())
    return usage(std::string("--mode ") + decode_mode_name(o.mode) + " decodes greedily; drop the sampling flags or " +
                 "use --mode ar");

  const bool json_out = f.has("--json");
  const std::vector<int32_t> stops = info.eos_ids;
  bool stopped_text = false;
  auto on_tokens = [&](std::span<const int32_t> toks) {
    if (json_out) return true;
    print_until_stop(toks, stops, codec.get(), stopped_text);
    return true;
  };
  auto r = generate(model, pool, *prompt, o, on_tokens);
  if (!r.ok()) return fail(r.status());
  const auto visible = r->visible_tokens(stops);
  const std::string text = codec ? codec->decode(visible) : std::string();
  const double tok_s = r->decode_seconds > 0 ? static_cast<double>(r->tokens.size()) / r->decode_seconds : 0;
  if (json_out) {
    nlohmann::json j;
    j["mode"] = decode_mode_name(o.mode);
    j["tokens"] = r->tokens;
    if (codec) j["text"] = text;
    j["finish_reason"] = r->stopped ? "stop" : "length";
    j["prompt_tokens"] = r->prompt_tokens;
    j["forwards"] = r->forwards;
    j["tok_s"] = tok_s;
    if (o.mode == DecodeMode::kDiffusion) j["committed_per_step"] = r->committed_per_step;
    if (o.mode == DecodeMode::kSelfSpec) j["accepted_per_round"] = r->accepted_per_round;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::string rest = codec ? codec->flush() : std::string();
    if (!stopped_text) std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputc('\n', stdout);
  }
  std::fflush(stdout);  // the text before the stats line (stderr) when both go to one pipe or file
  // tokens/forward divides by the forwards the line reports, prefill included (the prefill forward
  // yields the first token): AR is exactly 1.00, and the modes compare on the same count.
  const double per_forward = r->forwards > 0 ? static_cast<double>(r->tokens.size()) / r->forwards : 0.0;
  std::string per;
  if (o.mode == DecodeMode::kSelfSpec && !r->accepted_per_round.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", %.2f tokens/round",
                  static_cast<double>(r->tokens.size()) / r->accepted_per_round.size());
    per = buf;
  }
  std::fprintf(stderr, "[%s] prompt %lld tokens, generated %zu tokens, %lld forwards (1 prefill + %lld), %.2f "
               "tokens/forward%s, %.1f tok/s\n",
               decode_mode_name(o.mode), static_cast<long long>(r->prompt_tokens), r->tokens.size(),
               static_cast<long long>(r->forwards), static_cast<long long>(r->forwards - 1), per_forward, per.c_str(),
               tok_s);
  return 0;
}

}  // namespace optiq::cli
