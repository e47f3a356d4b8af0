// Looks up checkpoint tensors by name, checks shapes and dtypes against what the config implies,
// and resolves MLX affine quantization (specs/mlx-format.md §4 load rule) per module.
// Errors name the file, the tensor, and expected vs actual.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/huge_pages.h"
#include "core/status.h"
#include "io/model_dir.h"
#include "kernels/weight.h"

namespace optiq {

class WeightLoader {
 public:
  explicit WeightLoader(const ModelDir& dir) : dir_(dir) {}

  // A [n_out, n_in] linear (or embedding) module at `module` (the tensor is `module + ".weight"`).
  // Quantized iff the config's quantization block has an entry for this path (a dict; `false`
  // keeps it float), or `module.scales` exists and a quantization block is present. A tensor
  // override (LoadOptions::tensor_overrides) of `module.weight` makes it dense.
  Result<Weight> linear(const std::string& module, int64_t n_out, int64_t n_in) const;

  // Stacked MoE experts (MLX QuantizedSwitchLinear, `…switch_mlp.{gate,up,down}_proj`): the tensor
  // `module.weight` is [E, n_out, n_in] (dense) or [E, n_out, n_in·bits/32] packed with
  // scales/biases [E, n_out, n_in/gs]. Returns E views into it, one [n_out, n_in] Weight per expert.
  Result<std::vector<Weight>> experts(const std::string& module, int64_t n_experts, int64_t n_out,
                                      int64_t n_in) const;

  // A dense float tensor with exactly `shape` (f32/bf16/f16), viewed in place.
  Result<Weight> dense(const std::string& name, const std::vector<int64_t>& shape) const;

  // A dense tensor converted to fp32 with exactly `shape` (small tensors: norms, conv taps, inv_freq).
  Result<std::vector<float>> f32(const std::string& name, const std::vector<int64_t>& shape) const;

  bool has(const std::string& name) const { return dir_.tensors->contains(name); }
  const ModelDir& dir() const { return dir_; }

 private:
  struct QuantParams {
    int bits = 0;  // 0: the module stays float
    int group_size = 0;
  };
  // specs/mlx-format.md §4 load rule for one module path (no shape checks).
  Result<QuantParams> quant_params(const std::string& module) const;
  // `module` as one [n_stack·n_out, n_in] Weight (n_stack 0: a plain 2-D linear), fully checked.
  Result<Weight> load_module(const std::string& module, int64_t n_stack, int64_t n_out, int64_t n_in) const;
  Result<const TensorView*> find(const std::string& name) const;
  const ModelDir& dir_;
  mutable std::unique_ptr<HugePageArena> arena_;  // decode-layout copies (kernels/kernels.h add_decode_layout), made on demand
};

}  // namespace optiq
