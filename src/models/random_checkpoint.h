// Building blocks of the random-weight checkpoint writers each architecture registers
// (registry.h: write_random_checkpoint): tensors filled from a seeded generator, then written as
// config.json, generation_config.json and model.safetensors. Benchmarks and property tests use
// these checkpoints for shapes no fixture has.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace optiq {

class RandomCheckpoint {
 public:
  // InvalidArgument unless `dtype` is kBF16 or kF32; `what` names the writer in errors ("random dhara").
  static Result<RandomCheckpoint> create(DType dtype, uint64_t seed, const std::string& what);

  // Adds tensor `name` of `shape`, element i = gen(i) (in order), stored as the checkpoint dtype.
  void add(const std::string& name, std::vector<int64_t> shape, const std::function<float(int64_t)>& gen);
  // Element generators drawing from the checkpoint's one seeded stream (valid while *this lives).
  std::function<float(int64_t)> normal(float mean, float sd);
  std::function<float(int64_t)> uniform(float lo, float hi);
  static std::function<float(int64_t)> constant(float v);

  // Creates `out_dir` and writes model.safetensors, config.json (`config` plus torch_dtype) and
  // generation_config.json (eos_token_id copied from `config` when present). Writes are atomic per file.
  Status write(const std::string& out_dir, nlohmann::json config) const;

  DType dtype() const { return dtype_; }

 private:
  RandomCheckpoint(DType dtype, uint64_t seed) : dtype_(dtype), rng_(seed) {}

  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  DType dtype_;
  std::mt19937_64 rng_;
  std::vector<Tensor> tensors_;
};

}  // namespace optiq
