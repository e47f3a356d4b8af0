// Canvas diffusion decoding (DiffusionGemma, specs/diffusiongemma.md §5 and "Reproducible
// sampling"): the prompt is prefilled causally into the cache; each canvas of `canvas_length`
// tokens starts from uniform random ids and is refined by decoder steps (kFull, read-only) with
// self-conditioning; the last step's argmax canvas is emitted, then committed through the encoder
// (kCausal) before the next canvas. All randomness comes from one splitmix64 seeded with the
// request's seed, drawn in the documented order, so a seed reproduces a run exactly.
//
// Uses only the Model interface and ModelInfo (canvas_length, eos_ids, vocab_size).
//
// Typical use (CLI / server):
//   auto md = ModelDir::open(dir);                     // for generation_config.json
//   auto opts = canvas_options_from_generation_config((*md)->generation_config);
//   opts->sampler = CanvasSampler::kConfidenceThreshold;  opts->seed = seed;
//   // with images: rgb → model.embed_image(...) per image, then
//   //   ids = expand_image_prompt(ids, model.info(), images, &embeds)
//   auto r = canvas_generate(model, pool, ids, *opts, images.empty() ? nullptr : &embeds);
//   r->tokens; canvas_result_to_json(*r)  // golden.json layout for --json
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "models/model.h"

namespace optiq {

enum class CanvasSampler {
  kEntropyBound,         // the checkpoint's default: accept low-entropy samples within a budget γ
  kConfidenceThreshold,  // commit positions whose argmax probability ≥ τ; committed ones frozen
};

// Parses "entropy-bound" / "confidence-threshold"; InvalidArgument otherwise.
Result<CanvasSampler> parse_canvas_sampler(const std::string& name);
const char* canvas_sampler_name(CanvasSampler s);

struct CanvasOptions {
  CanvasSampler sampler = CanvasSampler::kEntropyBound;
  int max_steps = 48;                  // max_denoising_steps
  double t_min = 0.4, t_max = 0.8;     // temperature schedule over the remaining steps
  double entropy_bound = 0.1;          // γ (entropy-bound)
  double threshold = 0.9;              // τ (confidence-threshold)
  double confidence_threshold = 0.005; // stop when mean entropy is below this (and argmax stable)
  int stability_threshold = 1;         // consecutive unchanged argmax canvases required to stop
  uint64_t seed = 0;
  int64_t max_new_tokens = 256;
  int max_retries = 3;                 // re-runs with seed+1, seed+2, ... when the reply is empty
  std::vector<int32_t> eos_ids;        // empty: the model's (config.json ∪ generation_config.json)
};

// Sampler defaults from a generation_config.json object (missing keys keep the defaults above):
// max_denoising_steps, t_min, t_max, sampler_config.entropy_bound, stability_threshold,
// confidence_threshold, max_new_tokens. EOS ids are left to the model (ModelInfo::eos_ids already
// joins config.json's and generation_config.json's). Corruption on mistyped values.
Result<CanvasOptions> canvas_options_from_generation_config(const nlohmann::json& gen);

// The prompt's image rows: embeds [P, C] with override[t] true at soft-token rows (ForwardBatch
// semantics). Empty for text-only prompts.
struct PromptEmbeds {
  std::vector<float> embeds;
  std::vector<bool> override_rows;
};

// Expands each image_token_id in `ids` into boi + n_i × image_token_id + eoi (n_i = images[i]
// soft tokens, images in order of appearance) and fills the soft-token rows. An image token already
// preceded by boi keeps it (no doubled delimiters). InvalidArgument when the count of image tokens
// and images differ or the model has no image tokens.
Result<std::vector<int32_t>> expand_image_prompt(std::span<const int32_t> ids, const ModelInfo& info,
                                                 std::span<const ImageEmbedding> images, PromptEmbeds* out);

struct CanvasStep {
  std::vector<int32_t> accepted;  // entropy-bound: accepted positions; confidence: newly revealed ones
  bool argmax_changed = true;     // argmax canvas differs from the previous step's (always true at step 1)
  double mean_entropy = 0;
};

struct CanvasTrace {
  std::vector<CanvasStep> steps;
  std::vector<int32_t> argmax;  // the emitted canvas (last step's argmax), untrimmed
  int eos_at = -1;              // first EOS position in `argmax`, -1 if none
};

struct CanvasResult {
  std::vector<int32_t> tokens;       // output, cut at the first EOS and at max_new_tokens
  std::vector<CanvasTrace> canvases; // of the final (successful or last) attempt
  int retries = 0;                   // re-runs because the reply was empty
  uint64_t seed_used = 0;
  int64_t decoder_forwards = 0;      // denoising steps, all attempts
  int64_t encoder_forwards = 0;      // prompt prefill + canvas commits, all attempts
  int64_t prompt_tokens = 0;
  double tokens_per_forward() const {
    return decoder_forwards ? static_cast<double>(tokens.size()) / static_cast<double>(decoder_forwards) : 0.0;
  }
};

// Called after each finished canvas with its trace (for streaming); return false to stop early.
using CanvasCallback = std::function<bool(const CanvasTrace&)>;
// Polled before every denoising step (a server's cancellation); true abandons the canvas in progress.
using CanvasCancel = std::function<bool()>;

// Generates a reply to `prompt` (token ids; image rows via `embeds`, may be null).
// Stopping early (on_canvas returned false, or `cancelled` returned true) ends the generation with the
// canvases finished so far and never triggers an empty-reply retry.
// Errors: InvalidArgument for an empty prompt, a model without canvas_length, bad options, or a
// context too small; model forward errors are passed through.
Result<CanvasResult> canvas_generate(const Model& model, ThreadPool& pool, std::span<const int32_t> prompt,
                                     const CanvasOptions& opts, const PromptEmbeds* embeds = nullptr,
                                     const CanvasCallback& on_canvas = nullptr,
                                     const CanvasCancel& cancelled = nullptr);

// Serialises a result in golden.json's layout: {"tokens", "canvases": [{"steps": [{"accepted",
// "argmax_changed"}], "argmax", "eos_at"}], "retries", ...}.
nlohmann::json canvas_result_to_json(const CanvasResult& r);

}  // namespace optiq
