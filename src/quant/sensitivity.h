// OptIQ per-layer sensitivity (specs/mlx-format.md §8): for each quantizable linear L and candidate
// bit width b, load the model with L's weight replaced by dequantize(quantize(W, b, gs)) (a
// LoadOptions::tensor_override) and measure KL against the bf16 reference on the calibration
// chunks (causal, plus block-diffusion mode for models that have one; see quant/kl.h).
//
// What is quantizable is read from the checkpoint by name, never from the architecture: every
// 2-D float `<module>.weight` whose input size is a multiple of the group size, except norms and
// multimodal towers (kept float, §13). Embeddings (`embed` in the last path component, wte, wpe) are
// quantized but never probed (§8). Results are checkpointed after each layer and a rerun with the
// same settings resumes.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "quant/kl.h"

namespace optiq {

struct QuantCandidate {
  std::string module;  // path without ".weight"
  int64_t n_out = 0, n_in = 0;
  DType dtype = DType::kBF16;
  bool embedding = false;  // quantized at the allocation's max bits, never probed
  int64_t params() const { return n_out * n_in; }
};

// Quantizable modules of a float checkpoint, sorted by name.
std::vector<QuantCandidate> find_quantizable(const TensorStore& tensors, int group_size);

// The float tensor that replaces `c`'s weight when it is fake-quantized: fp32
// scale · q + bias from the bf16-stored scales/biases, exactly what a converted checkpoint computes.
Result<TensorOverride> fake_quant_override(const TensorStore& tensors, const QuantCandidate& c, int bits,
                                           int group_size);

struct LayerSensitivity {
  std::string name;
  int64_t params = 0;
  std::map<int, double> kl;         // bits → score (KlValues::score); NaN replaced by 1e9
  std::map<int, double> kl_causal;  // bits → mean causal KL
  std::map<int, double> kl_block;   // bits → mean block-mode KL (absent without a block mode)
};

struct SensitivityOptions {
  std::vector<int> bits{4, 8};  // 16 = keep float (KL 0 by definition, not measured)
  int group_size = 64;
  ProbeOptions probe;
  std::string checkpoint_path;   // "" = no checkpoint
  std::FILE* progress = nullptr;  // progress bar stream (stderr in the CLI)
};

// Measures every probed candidate of the float model in `model_dir` on `chunks`.
Result<std::vector<LayerSensitivity>> measure_sensitivity(const std::string& model_dir,
                                                          const std::vector<std::vector<int32_t>>& chunks,
                                                          const SensitivityOptions& opts, ThreadPool& pool);

// Fingerprint of the settings a checkpoint is valid for (model, chunks, bits, group, probes).
std::string sensitivity_fingerprint(const std::string& model_dir, const std::vector<std::vector<int32_t>>& chunks,
                                    const SensitivityOptions& opts);

}  // namespace optiq
