// Decoding strategies over the Model interface (src/models/model.h), independent of any architecture:
//   AR               — prefill causally, then one token per forward.
//   block diffusion  — block-causal prefill; per 32-token block of mask tokens, refine with read-only
//                      forwards on the cached prefix, committing confident positions; one commit forward.
//   self-speculation — draft [anchor, mask × (k−1)] with the block mask (read-only), verify causally,
//                      keep the matching prefix by truncating the cache: output equals greedy AR.
// specs/dhara.md §6 is the reference for all three.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "decode/sampler.h"
#include "models/model.h"

namespace optiq {

enum class DecodeMode { kAR, kDiffusion, kSelfSpec };
const char* decode_mode_name(DecodeMode m);
bool decode_mode_from_name(const std::string& s, DecodeMode* out);

struct GenerateOptions {
  DecodeMode mode = DecodeMode::kAR;
  int max_new_tokens = 128;
  SamplingParams sampling;       // diffusion and self-speculation are greedy (temperature must be 0)
  int block_len = 32;            // diffusion block; also the mask grid for self-speculation drafts
  float threshold = 0.5f;        // diffusion: commit positions with confidence >= threshold
  int draft_len = 8;             // self-speculation k
  std::vector<int32_t> stop_ids; // empty: the model's eos_ids
};

struct GenerateResult {
  // Tokens as the reference decoders produce them (EOS included where emitted; cut to max_new_tokens).
  std::vector<int32_t> tokens;
  bool stopped = false;          // a stop id was produced (finish_reason "stop" vs "length")
  int64_t prompt_tokens = 0;
  int64_t forwards = 0;          // model forward calls, prefill included
  int64_t rows_forwarded = 0;    // tokens passed through the model, prefill included
  double prefill_seconds = 0;
  double decode_seconds = 0;
  // Diffusion: per block, per step, the block offsets committed (increasing).
  std::vector<std::vector<std::vector<int>>> committed_per_step;
  // Self-speculation: tokens emitted per round.
  std::vector<int> accepted_per_round;

  // Tokens before the first stop id (what a user sees as text).
  std::vector<int32_t> visible_tokens(const std::vector<int32_t>& stop_ids) const;
};

// Called with each newly final chunk of tokens (AR: one token; diffusion: a committed block;
// self-speculation: a round's accepted tokens), already cut to max_new_tokens. Return false to stop.
using TokenCallback = std::function<bool(std::span<const int32_t> tokens)>;

// Runs one generation on a fresh cache. Errors: invalid options, empty prompt, prompt + output
// beyond the model's context, or a mode the model does not support.
Result<GenerateResult> generate(const Model& model, ThreadPool& pool, std::span<const int32_t> prompt,
                                const GenerateOptions& opts, const TokenCallback& on_tokens = {});

}  // namespace optiq
