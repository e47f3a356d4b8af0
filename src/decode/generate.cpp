#include "decode/generate.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/softmax.h"
#include "decode/sampler.h"

namespace optiq {

const char* decode_mode_name(DecodeMode m) {
  switch (m) {
    case DecodeMode::kAR: return "ar";
    case DecodeMode::kDiffusion: return "diffusion";
    case DecodeMode::kSelfSpec: return "selfspec";
  }
  return "?";
}

bool decode_mode_from_name(const std::string& s, DecodeMode* out) {
  if (s == "ar") *out = DecodeMode::kAR;
  else if (s == "diffusion" || s == "block-diffusion") *out = DecodeMode::kDiffusion;
  else if (s == "selfspec" || s == "self-speculation" || s == "mtp") *out = DecodeMode::kSelfSpec;
  else return false;
  return true;
}

std::vector<int32_t> GenerateResult::visible_tokens(const std::vector<int32_t>& stop_ids) const {
  std::vector<int32_t> out;
  for (int32_t t : tokens) {
    if (std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end()) break;
    out.push_back(t);
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Shared state of one generation: model, cache, counters and the output.
struct Run {
  const Model& model;
  ThreadPool& pool;
  const GenerateOptions& opts;
  const TokenCallback& on_tokens;
  std::unique_ptr<Cache> cache;
  GenerateResult result;
  std::vector<int32_t> stop_ids;
  int64_t V;
  bool cancelled = false;

  Status forward(std::span<const int32_t> toks, MaskMode mask, bool write, bool last_only, float* logits, int block_len,
                 bool row_invariant = false) {
    ForwardBatch b;
    b.tokens = toks;
    b.pos0 = cache->length();
    b.mask = mask;
    b.block_len = block_len;
    b.write_cache = write;
    b.last_logits_only = last_only;
    b.row_invariant = row_invariant;
    result.forwards++;
    result.rows_forwarded += static_cast<int64_t>(toks.size());
    return model.forward(b, *cache, logits, pool);
  }
  bool is_stop(int32_t t) const { return std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end(); }
  // Appends tokens to the output (cut to max_new_tokens) and reports them.
  void emit(std::span<const int32_t> toks) {
    const size_t room = static_cast<size_t>(opts.max_new_tokens) - result.tokens.size();
    toks = toks.first(std::min(room, toks.size()));
    if (toks.empty()) return;
    result.tokens.insert(result.tokens.end(), toks.begin(), toks.end());
    if (on_tokens && !on_tokens(toks)) cancelled = true;
  }
  bool full() const { return result.tokens.size() >= static_cast<size_t>(opts.max_new_tokens); }
};

Status decode_ar(Run& r, std::span<const int32_t> prompt) {
  const int64_t V = r.V;
  std::vector<float> logits(static_cast<size_t>(V));
  SeenTokens seen(V);
  seen.add(prompt);
  Sampler sampler(r.opts.sampling);
  auto t0 = Clock::now();
  OPTIQ_RETURN_IF_ERROR(r.forward(prompt, MaskMode::kCausal, true, true, logits.data(), r.opts.block_len));
  r.result.prefill_seconds = seconds_since(t0);
  t0 = Clock::now();
  while (!r.full() && !r.cancelled) {
    apply_repetition_penalty(logits.data(), seen.ids(), r.opts.sampling.repetition_penalty);
    const int32_t tok = sampler.sample(logits.data(), V);
    r.emit(std::span<const int32_t>(&tok, 1));
    seen.add(tok);
    if (r.is_stop(tok)) {
      r.result.stopped = true;
      break;
    }
    if (r.full() || r.cancelled) break;
    OPTIQ_RETURN_IF_ERROR(r.forward(std::span<const int32_t>(&tok, 1), MaskMode::kCausal, true, true, logits.data(),
                                    r.opts.block_len));
  }
  r.result.decode_seconds = seconds_since(t0);
  return Status::Ok();
}

Status decode_diffusion(Run& r, std::span<const int32_t> prompt) {
  const int64_t V = r.V;
  const int B = r.opts.block_len;
  const int32_t mask_id = r.model.info().mask_token_id;
  const float penalty = r.opts.sampling.repetition_penalty;
  std::vector<float> logits(static_cast<size_t>(B) * V), probs(static_cast<size_t>(V));
  SeenTokens seen(V);
  seen.add(prompt);
  auto t0 = Clock::now();
  // Block-causal prefill (not causal): mirrors the uncached reference (specs/dhara.md §4.2).
  OPTIQ_RETURN_IF_ERROR(r.forward(prompt, MaskMode::kBlock, true, true, logits.data(), B));
  r.result.prefill_seconds = seconds_since(t0);
  t0 = Clock::now();
  std::vector<int32_t> block(static_cast<size_t>(B));
  std::vector<int> masked, take;
  std::vector<float> conf(static_cast<size_t>(B));
  std::vector<int32_t> pred(static_cast<size_t>(B));
  while (!r.full() && !r.cancelled) {
    std::fill(block.begin(), block.end(), mask_id);
    auto& steps = r.result.committed_per_step.emplace_back();
    for (int step = 0; step < B; ++step) {
      masked.clear();
      for (int j = 0; j < B; ++j)
        if (block[j] == mask_id) masked.push_back(j);
      if (masked.empty()) break;
      // Refinement forwards read the cached prefix without writing it: no snapshot/restore needed.
      OPTIQ_RETURN_IF_ERROR(r.forward(block, MaskMode::kBlock, false, false, logits.data(), B));
      take.clear();
      int best = -1;
      for (int j : masked) {
        float* z = logits.data() + static_cast<size_t>(j) * V;
        apply_repetition_penalty(z, seen.ids(), penalty);
        pred[j] = static_cast<int32_t>(softmax_row(z, probs.data(), V));
        conf[j] = probs[pred[j]];
        if (conf[j] >= r.opts.threshold) take.push_back(j);
        if (best < 0 || conf[j] > conf[best]) best = j;
      }
      if (take.empty()) take.push_back(best);  // at least one commit per step
      for (int j : take) block[j] = pred[j];
      steps.push_back(take);
    }
    // Commit forward: writes the final block's KV and conv state.
    OPTIQ_RETURN_IF_ERROR(r.forward(block, MaskMode::kBlock, true, true, logits.data(), B));
    seen.add(block);
    r.emit(block);
    if (std::any_of(block.begin(), block.end(), [&](int32_t t) { return r.is_stop(t); })) {
      r.result.stopped = true;
      break;
    }
  }
  r.result.decode_seconds = seconds_since(t0);
  return Status::Ok();
}

Status decode_selfspec(Run& r, std::span<const int32_t> prompt) {
  const int64_t V = r.V;
  const int k = r.opts.draft_len;
  const int32_t mask_id = r.model.info().mask_token_id;
  const float penalty = r.opts.sampling.repetition_penalty;
  std::vector<float> logits(static_cast<size_t>(k) * V), z(static_cast<size_t>(V));
  SeenTokens seen(V);
  seen.add(prompt);
  auto t0 = Clock::now();
  OPTIQ_RETURN_IF_ERROR(r.forward(prompt, MaskMode::kCausal, true, true, logits.data(), r.opts.block_len));
  r.result.prefill_seconds = seconds_since(t0);
  t0 = Clock::now();
  apply_repetition_penalty(logits.data(), seen.ids(), penalty);
  int32_t anchor = argmax(logits.data(), V);  // next AR token, not yet in the cache
  std::vector<int32_t> draft(static_cast<size_t>(k)), ar_pred(static_cast<size_t>(k));
  while (!r.full() && !r.cancelled) {
    const int64_t S0 = r.cache->length();
    std::fill(draft.begin(), draft.end(), mask_id);
    draft[0] = anchor;
    // Draft: one read-only forward under the global block mask; predictions are unshifted.
    OPTIQ_RETURN_IF_ERROR(r.forward(draft, MaskMode::kBlock, false, false, logits.data(), r.opts.block_len));
    for (int j = 1; j < k; ++j) {
      std::memcpy(z.data(), logits.data() + static_cast<size_t>(j) * V, sizeof(float) * V);
      apply_repetition_penalty(z.data(), seen.ids(), penalty);
      draft[j] = argmax(z.data(), V);
    }
    // Verify: one causal forward that writes the cache; position j predicts the token after draft[j].
    // Row-invariant numerics: each row computes exactly what an AR step computes.
    OPTIQ_RETURN_IF_ERROR(
        r.forward(draft, MaskMode::kCausal, true, false, logits.data(), r.opts.block_len, /*row_invariant=*/true));
    for (int j = 0; j < k; ++j) {
      std::memcpy(z.data(), logits.data() + static_cast<size_t>(j) * V, sizeof(float) * V);
      apply_repetition_penalty(z.data(), seen, std::span<const int32_t>(draft.data(), static_cast<size_t>(j) + 1),
                               penalty);
      ar_pred[j] = argmax(z.data(), V);
    }
    int m = 1;
    while (m < k && draft[m] == ar_pred[m - 1]) ++m;
    // Commit without a third forward: keep the verify KV of draft[0..m) and rebuild conv state
    // from the recorded input window.
    OPTIQ_RETURN_IF_ERROR(r.cache->truncate(S0 + m));
    std::span<const int32_t> accepted(draft.data(), static_cast<size_t>(m));
    r.result.accepted_per_round.push_back(m);
    seen.add(accepted);
    r.emit(accepted);
    anchor = ar_pred[m - 1];
    if (std::any_of(accepted.begin(), accepted.end(), [&](int32_t t) { return r.is_stop(t); }) || r.is_stop(anchor)) {
      r.result.stopped = true;
      break;
    }
  }
  r.result.decode_seconds = seconds_since(t0);
  return Status::Ok();
}

}  // namespace

Result<GenerateResult> generate(const Model& model, ThreadPool& pool, std::span<const int32_t> prompt,
                                const GenerateOptions& opts, const TokenCallback& on_tokens) {
  OPTIQ_RETURN_IF_ERROR(opts.sampling.validate());
  const ModelInfo& info = model.info();
  if (info.canvas_length > 0)
    return Status::Unsupported("generate: " + info.model_type +
                               " decodes by canvas diffusion (canvas_generate in decode/canvas.h), not token by token");
  if (prompt.empty()) return Status::InvalidArgument("generate: empty prompt");
  if (opts.max_new_tokens < 0) return Status::InvalidArgument("generate: max_new_tokens must be >= 0");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= info.vocab_size)
      return Status::InvalidArgument("generate: prompt token " + std::to_string(prompt[i]) + " at index " +
                                     std::to_string(i) + " outside the vocabulary [0, " +
                                     std::to_string(info.vocab_size) + ")");
  int64_t extra = opts.max_new_tokens;
  if (opts.mode == DecodeMode::kDiffusion || opts.mode == DecodeMode::kSelfSpec) {
    if (!info.supports_block || info.mask_token_id < 0)
      return Status::Unsupported(std::string("generate: ") + info.model_type + " has no mask token; mode " +
                                 decode_mode_name(opts.mode) + " needs one");
    if (!opts.sampling.greedy())
      return Status::InvalidArgument(std::string("generate: mode ") + decode_mode_name(opts.mode) +
                                     " decodes greedily; set temperature 0 or use mode ar");
    if (opts.block_len < 1) return Status::InvalidArgument("generate: block_len must be >= 1");
    if (!(opts.threshold > 0.f && opts.threshold <= 1.f))
      return Status::InvalidArgument("generate: threshold must be in (0, 1]");
    if (opts.draft_len < 2 || opts.draft_len > 64) return Status::InvalidArgument("generate: draft_len must be in [2, 64]");
    // Diffusion decodes whole blocks; self-speculation verifies a full draft past the last token.
    extra += opts.mode == DecodeMode::kDiffusion ? opts.block_len : opts.draft_len;
  }
  const int64_t need = static_cast<int64_t>(prompt.size()) + extra;
  if (need > info.max_position)
    return Status::InvalidArgument("generate: prompt (" + std::to_string(prompt.size()) + " tokens) + output needs " +
                                   std::to_string(need) + " positions; the model's context is " +
                                   std::to_string(info.max_position));
  Run r{model, pool, opts, on_tokens, model.make_cache(need), {}, opts.stop_ids.empty() ? info.eos_ids : opts.stop_ids,
        info.vocab_size};
  r.result.prompt_tokens = static_cast<int64_t>(prompt.size());
  if (opts.max_new_tokens == 0) return std::move(r.result);
  switch (opts.mode) {
    case DecodeMode::kAR: OPTIQ_RETURN_IF_ERROR(decode_ar(r, prompt)); break;
    case DecodeMode::kDiffusion: OPTIQ_RETURN_IF_ERROR(decode_diffusion(r, prompt)); break;
    case DecodeMode::kSelfSpec: OPTIQ_RETURN_IF_ERROR(decode_selfspec(r, prompt)); break;
  }
  return std::move(r.result);
}

}  // namespace optiq
