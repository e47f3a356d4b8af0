// `optiq lora fuse`: an adapter merged into a model's weights (specs/optiq-surface.md L.1),
//   W' = W + scale · (a b)ᵀ      [out, in] per adapted module,
// computed in double from W's exact values (bf16 widened; MLX affine weights dequantized as the
// kernels do, scale·q + bias) and rounded once:
//   - dense modules keep their dtype (bf16 → bf16, round to nearest even; f32 → f32);
//   - MLX affine modules are re-quantized with their own bits, group size and scale dtype
//     (quant/mlx_affine.h, bit-exact with mx.quantize), so the checkpoint's quantization config
//     stays valid.
// Every other tensor is copied bit for bit, within the same shard files; every other file (config,
// tokenizer, index, subdirectories) is copied unchanged.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "io/lora_adapter.h"

namespace optiq {

struct FuseStats {
  int64_t dense_modules = 0;        // fused in the weight's own float dtype
  int64_t requantized_modules = 0;  // dequantized, fused, re-quantized
  int64_t files_rewritten = 0;      // safetensors files holding a fused module
  int64_t files_copied = 0;         // every other file
};

// Writes `model_dir` with `adapter` fused to `out_dir`. The adapter is checked against the model
// first (validate_adapter: every module a linear of the model, with its sizes). The output appears
// atomically: everything is written under a temporary name beside `out_dir`, then renamed; on
// failure nothing is left. `out_dir` must not exist or be an empty directory (InvalidArgument
// otherwise), and must not be `model_dir`.
Result<FuseStats> fuse_lora(const std::string& model_dir, const LoraAdapter& adapter, const std::string& out_dir);

}  // namespace optiq
