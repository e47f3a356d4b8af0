#include "models/random_checkpoint.h"

#include <cstring>
#include <filesystem>

#include "io/safetensors.h"

namespace optiq {

Result<RandomCheckpoint> RandomCheckpoint::create(DType dtype, uint64_t seed, const std::string& what) {
  if (dtype != DType::kBF16 && dtype != DType::kF32)
    return Status::InvalidArgument(what + ": dtype must be BF16 or F32, not " + dtype_name(dtype));
  return RandomCheckpoint(dtype, seed);
}

void RandomCheckpoint::add(const std::string& name, std::vector<int64_t> shape,
                           const std::function<float(int64_t)>& gen) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<uint8_t> buf(static_cast<size_t>(n) * dtype_size(dtype_));
  for (int64_t i = 0; i < n; ++i) {
    const float v = gen(i);
    if (dtype_ == DType::kF32) {
      std::memcpy(buf.data() + i * 4, &v, 4);
    } else {
      const uint16_t h = f32_to_bf16(v);
      std::memcpy(buf.data() + i * 2, &h, 2);
    }
  }
  tensors_.push_back({name, std::move(shape), std::move(buf)});
}

std::function<float(int64_t)> RandomCheckpoint::normal(float mean, float sd) {
  // A fresh distribution per draw: libstdc++'s caches its second Box-Muller value, and this keeps
  // every element one independent draw from the stream (as the dhara checkpoints always were).
  return [this, mean, sd](int64_t) { return std::normal_distribution<float>(mean, sd)(rng_); };
}

std::function<float(int64_t)> RandomCheckpoint::uniform(float lo, float hi) {
  return [this, lo, hi](int64_t) { return std::uniform_real_distribution<float>(lo, hi)(rng_); };
}

std::function<float(int64_t)> RandomCheckpoint::constant(float v) {
  return [v](int64_t) { return v; };
}

Status RandomCheckpoint::write(const std::string& out_dir, nlohmann::json config) const {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Status::IOError(out_dir + ": " + ec.message());
  std::vector<TensorToWrite> tw;
  for (const Tensor& t : tensors_) tw.push_back({t.name, dtype_, t.shape, t.bytes.data(), t.bytes.size()});
  const std::string dir = out_dir + "/";
  OPTIQ_RETURN_IF_ERROR(write_safetensors(dir + "model.safetensors", tw, {{"format", "pt"}}));
  config["torch_dtype"] = dtype_ == DType::kF32 ? "float32" : "bfloat16";
  OPTIQ_RETURN_IF_ERROR(write_file_atomic(dir + "config.json", config.dump(2)));
  nlohmann::json gen = nlohmann::json::object();
  if (config.contains("eos_token_id")) gen["eos_token_id"] = config["eos_token_id"];
  return write_file_atomic(dir + "generation_config.json", gen.dump(2));
}

}  // namespace optiq
