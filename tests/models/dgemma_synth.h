// Synthetic DiffusionGemma checkpoints for tests and benchmarks: the library's random checkpoint
// (write_random_diffusion_gemma: HF tensor names and config layout, specs/diffusiongemma.md §6.1) for a
// config built from a few shape knobs, optionally with MLX affine-quantized experts / linears
// (specs/mlx-format.md: LSB-first packing into uint32, w = scale·q + bias).
#pragma once

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "models/registry.h"

namespace optiq::test {

struct DgSynthSpec {
  int64_t vocab = 256, hidden = 64, layers = 6, window = 8;
  int64_t heads = 4, kv_heads = 2, global_kv_heads = 1, head_dim = 16, global_head_dim = 32;
  int64_t ffn = 48, experts = 8, top_k = 2, moe_ffn = 16, canvas = 16;
  double partial_rotary_factor = 0.25;
  int expert_bits = 0;      // > 0: experts MLX-quantized (group `group_size`)
  int linear_bits = 0;      // > 0: embedding, attention and dense MLP projections quantized too
  int group_size = 32;
  bool dequantized = false; // write quantized modules as their dequantized F32 values instead
  uint64_t seed = 1;
};

// Affine quantization of w [N, K] per group of `gs` inputs: q = round((w − min)/scale),
// scale = (max − min)/(2^bits − 1), bias = min; scales/biases rounded to bf16 first so the
// dequantized values below are exactly what a loader computes.
struct QuantizedMatrix {
  std::vector<uint32_t> packed;   // [N, K·bits/32]
  std::vector<uint16_t> scales, biases;  // bf16 [N, K/gs]
  std::vector<float> dequantized;        // [N, K]
};

inline QuantizedMatrix quantize_affine(const float* w, int64_t N, int64_t K, int bits, int gs) {
  QuantizedMatrix q;
  const int64_t G = K / gs;
  const uint32_t qmax = (1u << bits) - 1;
  q.packed.assign(static_cast<size_t>(N * K * bits / 32), 0u);
  q.scales.resize(static_cast<size_t>(N * G));
  q.biases.resize(static_cast<size_t>(N * G));
  q.dequantized.resize(static_cast<size_t>(N * K));
  auto* bytes = reinterpret_cast<uint8_t*>(q.packed.data());
  for (int64_t n = 0; n < N; ++n) {
    uint8_t* row = bytes + n * K * bits / 8;
    for (int64_t g = 0; g < G; ++g) {
      const float* x = w + n * K + g * gs;
      float mn = x[0], mx = x[0];
      for (int i = 1; i < gs; ++i) mn = std::min(mn, x[i]), mx = std::max(mx, x[i]);
      const float scale = round_bf16(mx > mn ? (mx - mn) / static_cast<float>(qmax) : 1.0f);
      const float bias = round_bf16(mn);
      q.scales[n * G + g] = f32_to_bf16(scale);
      q.biases[n * G + g] = f32_to_bf16(bias);
      for (int i = 0; i < gs; ++i) {
        const long v = std::lround((x[i] - bias) / scale);
        const uint32_t qi = static_cast<uint32_t>(std::clamp<long>(v, 0, qmax));
        const uint64_t bit = static_cast<uint64_t>(g * gs + i) * bits;
        for (int b = 0; b < bits; ++b)
          if (qi >> b & 1u) row[(bit + b) >> 3] |= static_cast<uint8_t>(1u << ((bit + b) & 7));
        q.dequantized[n * K + g * gs + i] = scale * static_cast<float>(qi) + bias;
      }
    }
  }
  return q;
}

// The config.json of a spec: layer types follow the released pattern (every sixth layer and the last
// are full attention).
inline nlohmann::json dgemma_synth_config(const DgSynthSpec& s) {
  std::vector<std::string> types;
  for (int64_t l = 0; l < s.layers; ++l)
    types.push_back((l % 6) == 5 || l == s.layers - 1 ? "full_attention" : "sliding_attention");
  nlohmann::json text = {
      {"model_type", "diffusion_gemma_text"}, {"vocab_size", s.vocab}, {"hidden_size", s.hidden},
      {"num_hidden_layers", s.layers}, {"layer_types", types}, {"sliding_window", s.window},
      {"num_attention_heads", s.heads}, {"num_key_value_heads", s.kv_heads},
      {"num_global_key_value_heads", s.global_kv_heads}, {"head_dim", s.head_dim},
      {"global_head_dim", s.global_head_dim},
      {"rope_parameters",
       {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
        {"full_attention",
         {{"rope_type", "proportional"}, {"rope_theta", 1e6}, {"partial_rotary_factor", s.partial_rotary_factor}}}}},
      {"intermediate_size", s.ffn}, {"num_experts", s.experts}, {"top_k_experts", s.top_k},
      {"moe_intermediate_size", s.moe_ffn}, {"hidden_activation", "gelu_pytorch_tanh"}, {"rms_norm_eps", 1e-6},
      {"final_logit_softcapping", 30.0}, {"max_position_embeddings", 1 << 16}};
  return {{"model_type", "diffusion_gemma"}, {"canvas_length", s.canvas}, {"text_config", text},
          {"eos_token_id", {1, 106 % s.vocab}}, {"pad_token_id", 0}};
}

namespace dgemma_synth_detail {

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Rewrites the BF16 checkpoint in `dir` with the spec's MLX quantization: the embedding and the
// attention / dense MLP projections at linear_bits, expert stacks at expert_bits; modules whose input
// size the group does not divide stay BF16. With `dequantized`, quantized modules are written as their
// dequantized F32 values under the dense names instead (the reference a quantized load must match).
inline Status quantize(const std::string& dir, const DgSynthSpec& s) {
  OPTIQ_ASSIGN_OR_RETURN(std::shared_ptr<ModelDir> md, ModelDir::open(dir));
  const int global_bits = s.expert_bits > 0 ? s.expert_bits : s.linear_bits;
  nlohmann::json qcfg = nlohmann::json::object();
  qcfg["model.decoder.self_conditioning.down_proj"] = false;
  std::vector<TensorToWrite> out;
  std::vector<std::vector<uint8_t>> storage;  // bytes of the rewritten tensors until written
  auto keep = [&](const std::string& name, const TensorView& tv) {
    out.push_back({name, tv.dtype, tv.shape, tv.data, tv.nbytes});
  };
  auto put = [&](const std::string& name, DType dt, std::vector<int64_t> shape, const void* data, size_t bytes) {
    storage.emplace_back(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
    out.push_back({name, dt, std::move(shape), storage.back().data(), bytes});
  };
  for (const std::string& name : md->tensors->names()) {
    const TensorView& tv = *md->tensors->find(name);
    const bool expert = ends_with(name, "experts.gate_up_proj") || ends_with(name, "experts.down_proj");
    const bool linear = name == "model.decoder.embed_tokens.weight" ||
                        (name.find(".layers.") != std::string::npos &&
                         (name.find(".self_attn.") != std::string::npos || name.find(".mlp.") != std::string::npos) &&
                         ends_with(name, "_proj.weight"));
    const int bits = expert ? s.expert_bits : linear ? s.linear_bits : 0;
    const std::string module = expert ? name : name.substr(0, name.size() - std::string(".weight").size());
    const int64_t K = tv.shape.back();
    if (bits <= 0) {
      keep(name, tv);
      continue;
    }
    if (K % s.group_size != 0) {
      // Left unquantized: an expert stack gets MLX's `.weight` name and a `false` quantization entry.
      if (expert && !s.dequantized) {
        keep(module + ".weight", tv);
        qcfg[module] = false;
      } else {
        keep(name, tv);
      }
      continue;
    }
    std::vector<float> w(static_cast<size_t>(tv.numel()));
    convert_to_f32(tv.dtype, tv.data, w.data(), w.size());
    const QuantizedMatrix q = quantize_affine(w.data(), tv.numel() / K, K, bits, s.group_size);
    std::vector<int64_t> packed_shape = tv.shape, group_shape = tv.shape;
    packed_shape.back() = K * bits / 32;
    group_shape.back() = K / s.group_size;
    if (s.dequantized) {
      put(name, DType::kF32, tv.shape, q.dequantized.data(), q.dequantized.size() * 4);
      continue;
    }
    put(module + ".weight", DType::kU32, packed_shape, q.packed.data(), q.packed.size() * 4);
    put(module + ".scales", DType::kBF16, group_shape, q.scales.data(), q.scales.size() * 2);
    put(module + ".biases", DType::kBF16, group_shape, q.biases.data(), q.biases.size() * 2);
    if (bits != global_bits) qcfg[module] = {{"bits", bits}, {"group_size", s.group_size}};
  }
  OPTIQ_RETURN_IF_ERROR(write_safetensors(dir + "/model.safetensors", out));
  if (s.dequantized) return Status::Ok();
  nlohmann::json cfg = md->config;
  qcfg["group_size"] = s.group_size;
  qcfg["bits"] = global_bits;
  qcfg["mode"] = "affine";
  cfg["quantization"] = qcfg;
  return write_file_atomic(dir + "/config.json", cfg.dump(1));
}

}  // namespace dgemma_synth_detail

// Writes the spec's checkpoint into `dir`, with a generation_config.json for canvas decoding.
inline Status write_dgemma_synth(const std::string& dir, const DgSynthSpec& spec) {
  OPTIQ_RETURN_IF_ERROR(write_random_diffusion_gemma(dgemma_synth_config(spec), dir, DType::kBF16, spec.seed));
  const nlohmann::json gen = {{"max_new_tokens", spec.canvas * 2}, {"max_denoising_steps", 12}, {"t_min", 0.4},
                              {"t_max", 0.8}, {"sampler_config", {{"entropy_bound", 0.1}}},
                              {"stability_threshold", 1}, {"confidence_threshold", 0.005},
                              {"eos_token_id", {1}}};
  OPTIQ_RETURN_IF_ERROR(write_file_atomic(dir + "/generation_config.json", gen.dump(1)));
  if (spec.expert_bits <= 0 && spec.linear_bits <= 0) return Status::Ok();
  return dgemma_synth_detail::quantize(dir, spec);
}

}  // namespace optiq::test
