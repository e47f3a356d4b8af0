// Logit processing and token sampling, independent of any model.
//
// Order (as HF transformers' logits processors): repetition penalty → temperature → top-k →
// top-p → min-p → draw. temperature == 0 means greedy (argmax after the penalty).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/status.h"

namespace optiq {

struct SamplingParams {
  float temperature = 0.f;        // 0: greedy
  int top_k = 0;                  // 0: off
  float top_p = 1.f;              // 1: off
  float min_p = 0.f;              // 0: off
  float repetition_penalty = 1.f; // 1: off; HF semantics over the "seen" ids
  uint64_t seed = 0;

  bool greedy() const { return temperature <= 0.f; }
  // InvalidArgument naming the field for out-of-range values.
  Status validate() const;
};

// The set of token ids a repetition penalty applies to (distinct ids; insertion is O(1)).
class SeenTokens {
 public:
  explicit SeenTokens(int64_t vocab) : mark_(static_cast<size_t>(vocab), 0) {}
  void add(int32_t id) {
    if (id >= 0 && static_cast<size_t>(id) < mark_.size() && !mark_[id]) {
      mark_[id] = 1;
      ids_.push_back(id);
    }
  }
  void add(std::span<const int32_t> ids) {
    for (int32_t id : ids) add(id);
  }
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  std::vector<uint8_t> mark_;
  std::vector<int32_t> ids_;
};

// HF repetition penalty in place: z → z / p if z > 0 else z · p, for each distinct seen id.
void apply_repetition_penalty(float* logits, const std::vector<int32_t>& seen, float penalty);
// Same, for ids in `seen` plus `extra` (ids not already seen), without modifying `seen`.
void apply_repetition_penalty(float* logits, const SeenTokens& seen, std::span<const int32_t> extra, float penalty);

// Index of the largest value (first on ties).
int32_t argmax(const float* z, int64_t n);

// Draws tokens according to SamplingParams with its own seeded RNG. Not thread-safe.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : params_(p), rng_(p.seed) {}
  // `logits` [V] already repetition-penalised; it is used as scratch.
  int32_t sample(float* logits, int64_t V);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace optiq
