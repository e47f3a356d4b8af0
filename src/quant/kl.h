// Logit probes and KL divergence against a reference model (specs/mlx-format.md §8, step 4).
//
// A probe set is what one calibration/evaluation chunk [L tokens] is run through:
//   - causal: one causal forward of the whole chunk; every position's logits;
//   - block (models with a block-diffusion mode: ModelInfo::supports_block, mask_token_id, block_len):
//     block-causal prefill of the first L − B tokens, then, for each mask fraction f (default
//     1.0/0.75/0.5/0.25), the last B-token block with round(f·B) positions replaced by the mask
//     token, forwarded under MaskMode::kBlock without writing the cache; the logits of the masked
//     positions (the ones a diffusion decoder reads; dhara predicts them unshifted).
// Mask positions come from a seeded permutation per chunk, so fractions nest and every model sees
// identical inputs.
//
// KL(ref ‖ cur) per compared row = Σ_v p_ref(v) · (log p_ref(v) − log p_cur(v)), fp32 logits,
// accumulated in double.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "models/model.h"

namespace optiq {

struct ProbeOptions {
  bool block = true;  // also probe the block-diffusion mode when the model has one
  std::vector<double> mask_fractions{1.0, 0.75, 0.5, 0.25};
  uint64_t seed = 42;
};

// Whether `info` describes a model whose block-diffusion mode the probes can exercise.
bool probes_block_mode(const ModelInfo& info, const ProbeOptions& opts, int64_t chunk_len);

// Runs the probes of one chunk, calling fn(mode, rows, logits[rows, V]) with mode 0 = causal and
// mode k >= 1 = block mode at mask_fractions[k − 1]. `logits` is valid only during the call.
Status run_probes(const Model& model, const std::vector<int32_t>& chunk, size_t chunk_index,
                  const ProbeOptions& opts, ThreadPool& pool,
                  const std::function<void(int mode, int64_t rows, const float* logits)>& fn);

// In-place log-softmax of `rows` rows of width V.
void log_softmax_rows(float* x, int64_t rows, int64_t V);

// Per-position KL values, split by mode kind.
struct KlValues {
  std::vector<float> causal;  // one per causal position
  std::vector<float> block;   // one per masked block position, all fractions
  static double mean(const std::vector<float>& v);
  static double quantile(std::vector<float> v, double q);  // linear interpolation
  // The sensitivity score: mean causal KL, averaged with mean block KL when block rows exist.
  double score() const;
};

// Reference log-probabilities of a chunk set (held in memory: chunks × rows × V floats).
class ReferenceLogits {
 public:
  static Result<ReferenceLogits> compute(const Model& model, const std::vector<std::vector<int32_t>>& chunks,
                                         const ProbeOptions& opts, ThreadPool& pool);
  // KL(reference ‖ model) on every probed row. The model must have the reference's vocabulary.
  Result<KlValues> compare(const Model& model, ThreadPool& pool) const;
  const ProbeOptions& options() const { return opts_; }
  bool has_block() const { return has_block_; }

 private:
  std::vector<std::vector<int32_t>> chunks_;
  ProbeOptions opts_;
  int64_t V_ = 0;
  bool has_block_ = false;
  std::vector<std::vector<std::vector<float>>> logp_;  // [chunk][mode] rows × V
};

}  // namespace optiq
