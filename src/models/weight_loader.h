// Looks up checkpoint tensors by name, checks shapes and dtypes against what the config implies,
// and resolves MLX affine quantization (specs/mlx-format.md §4 load rule) per module.
// Errors name the file, the tensor, and expected vs actual.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/model_dir.h"
#include "kernels/weight.h"

namespace optiq {

class WeightLoader {
 public:
  explicit WeightLoader(const ModelDir& dir) : dir_(dir) {}

  // A [n_out, n_in] linear (or embedding) module at `module` (the tensor is `module + ".weight"`).
  // Quantized iff the config's quantization block says so for this path, or `module.scales` exists
  // and a global quantization block is present.
  Result<Weight> linear(const std::string& module, int64_t n_out, int64_t n_in) const;

  // A dense float tensor with exactly `shape` (f32/bf16/f16), viewed in place.
  Result<Weight> dense(const std::string& name, const std::vector<int64_t>& shape) const;

  // A dense tensor converted to fp32 with exactly `shape` (small tensors: norms, conv taps, inv_freq).
  Result<std::vector<float>> f32(const std::string& name, const std::vector<int64_t>& shape) const;

  bool has(const std::string& name) const { return dir_.tensors->contains(name); }
  const ModelDir& dir() const { return dir_; }

 private:
  Result<const TensorView*> find(const std::string& name) const;
  const ModelDir& dir_;
};

}  // namespace optiq
