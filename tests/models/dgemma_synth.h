// Synthetic DiffusionGemma checkpoints for tests and benchmarks: random weights with the HF tensor
// names and config layout (specs/diffusiongemma.md §6.1), optionally with MLX affine-quantized
// experts / linears (specs/mlx-format.md: LSB-first packing into uint32, w = scale·q + bias).
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "decode/rng.h"
#include "io/safetensors.h"

namespace optiq::test {

struct DgSynthSpec {
  int64_t vocab = 256, hidden = 64, layers = 6, window = 8;
  int64_t heads = 4, kv_heads = 2, global_kv_heads = 1, head_dim = 16, global_head_dim = 32;
  int64_t ffn = 48, experts = 8, top_k = 2, moe_ffn = 16, canvas = 16;
  double partial_rotary_factor = 0.25;
  float embed_std = 0.5f;   // logit spread: std ≈ embed_std·√hidden
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

class DgSynthWriter {
 public:
  explicit DgSynthWriter(const DgSynthSpec& s) : s_(s), rng_(s.seed) {}

  Status write(const std::string& dir) {
    const int64_t C = s_.hidden, V = s_.vocab, F = s_.ffn, E = s_.experts, Fe = s_.moe_ffn, H = s_.heads;
    const std::string d = "model.decoder.";
    linear(d + "embed_tokens", V, C, s_.embed_std, s_.linear_bits);
    norm(d + "norm.weight", C);
    norm(d + "self_conditioning.pre_norm.weight", C);
    linear(d + "self_conditioning.gate_proj", F, C, 1.0f / std::sqrt(float(C)), 0);
    linear(d + "self_conditioning.up_proj", F, C, 1.0f / std::sqrt(float(C)), 0);
    linear(d + "self_conditioning.down_proj", C, F, 1.0f / std::sqrt(float(F)), 0);
    qcfg_[d + "self_conditioning.down_proj"] = false;
    std::vector<std::string> types;
    for (int64_t l = 0; l < s_.layers; ++l) {
      const bool full = (l % 6) == 5 || l == s_.layers - 1;
      types.push_back(full ? "full_attention" : "sliding_attention");
      const int64_t D = full ? s_.global_head_dim : s_.head_dim, Hkv = full ? s_.global_kv_heads : s_.kv_heads;
      const std::string p = d + "layers." + std::to_string(l) + ".";
      for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                            "post_feedforward_layernorm", "pre_feedforward_layernorm_2",
                            "post_feedforward_layernorm_1", "post_feedforward_layernorm_2"})
        norm(p + n + ".weight", C);
      const float ic = 1.0f / std::sqrt(float(C));
      linear(p + "self_attn.q_proj", H * D, C, ic, s_.linear_bits);
      linear(p + "self_attn.k_proj", Hkv * D, C, ic, s_.linear_bits);
      if (!full) linear(p + "self_attn.v_proj", Hkv * D, C, ic, s_.linear_bits);
      linear(p + "self_attn.o_proj", C, H * D, 1.0f / std::sqrt(float(H * D)), s_.linear_bits);
      norm(p + "self_attn.q_norm.weight", D);
      norm(p + "self_attn.k_norm.weight", D);
      linear(p + "mlp.gate_proj", F, C, ic, s_.linear_bits);
      linear(p + "mlp.up_proj", F, C, ic, s_.linear_bits);
      linear(p + "mlp.down_proj", C, F, 1.0f / std::sqrt(float(F)), s_.linear_bits);
      linear(p + "router.proj", E, C, 1.0f, 0);
      norm(p + "router.scale", C);
      norm(p + "router.per_expert_scale", E);
      experts(p + "experts.gate_up_proj", E, 2 * Fe, C, ic);
      experts(p + "experts.down_proj", E, C, Fe, 1.0f / std::sqrt(float(Fe)));
      scalar(p + "layer_scalar", 0.9f + 0.2f * uni());
      scalar("model.encoder.language_model.layers." + std::to_string(l) + ".layer_scalar", 0.9f + 0.2f * uni());
    }
    nlohmann::json text = {
        {"model_type", "diffusion_gemma_text"}, {"vocab_size", V}, {"hidden_size", C},
        {"num_hidden_layers", s_.layers}, {"layer_types", types}, {"sliding_window", s_.window},
        {"num_attention_heads", H}, {"num_key_value_heads", s_.kv_heads},
        {"num_global_key_value_heads", s_.global_kv_heads}, {"head_dim", s_.head_dim},
        {"global_head_dim", s_.global_head_dim},
        {"rope_parameters",
         {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
          {"full_attention",
           {{"rope_type", "proportional"}, {"rope_theta", 1e6}, {"partial_rotary_factor", s_.partial_rotary_factor}}}}},
        {"intermediate_size", F}, {"num_experts", E}, {"top_k_experts", s_.top_k}, {"moe_intermediate_size", Fe},
        {"hidden_activation", "gelu_pytorch_tanh"}, {"rms_norm_eps", 1e-6}, {"final_logit_softcapping", 30.0},
        {"max_position_embeddings", 1 << 16}};
    nlohmann::json cfg = {{"model_type", "diffusion_gemma"}, {"canvas_length", s_.canvas}, {"text_config", text},
                          {"eos_token_id", {1, 106 % V}}, {"pad_token_id", 0}};
    if ((s_.expert_bits > 0 || s_.linear_bits > 0) && !s_.dequantized) {
      qcfg_["group_size"] = s_.group_size;
      qcfg_["bits"] = s_.expert_bits > 0 ? s_.expert_bits : s_.linear_bits;
      qcfg_["mode"] = "affine";
      cfg["quantization"] = qcfg_;
    }
    nlohmann::json gen = {{"max_new_tokens", s_.canvas * 2}, {"max_denoising_steps", 12}, {"t_min", 0.4},
                          {"t_max", 0.8}, {"sampler_config", {{"entropy_bound", 0.1}}},
                          {"stability_threshold", 1}, {"confidence_threshold", 0.005},
                          {"eos_token_id", {1}}};
    OPTIQ_RETURN_IF_ERROR(write_file_atomic(dir + "/config.json", cfg.dump(1)));
    OPTIQ_RETURN_IF_ERROR(write_file_atomic(dir + "/generation_config.json", gen.dump(1)));
    std::vector<TensorToWrite> tw;
    for (auto& [name, t] : tensors_)
      tw.push_back({name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
    return write_safetensors(dir + "/model.safetensors", tw);
  }

 private:
  struct Blob {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  float uni() { return static_cast<float>(rng_.uniform()); }
  float normal() {
    const double u1 = std::max(rng_.uniform(), 1e-12), u2 = rng_.uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  template <typename T>
  void put(const std::string& name, DType dt, std::vector<int64_t> shape, const std::vector<T>& v) {
    Blob b{dt, std::move(shape), {}};
    b.bytes.resize(v.size() * sizeof(T));
    std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
    tensors_[name] = std::move(b);
  }
  std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
    std::vector<uint16_t> o(v.size());
    for (size_t i = 0; i < v.size(); ++i) o[i] = f32_to_bf16(v[i]);
    return o;
  }
  std::vector<float> random(int64_t n, float stdv) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = round_bf16(normal() * stdv);
    return v;
  }
  void norm(const std::string& name, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = 1.0f + 0.1f * normal();
    put(name, DType::kBF16, {n}, to_bf16(v));
  }
  void scalar(const std::string& name, float v) { put(name, DType::kBF16, {1}, to_bf16({v})); }
  // A [N, K] linear at `module` (+ ".weight"), quantized when bits > 0.
  void linear(const std::string& module, int64_t N, int64_t K, float stdv, int bits) {
    const auto w = random(N * K, stdv);
    if (bits <= 0 || K % s_.group_size != 0) {
      put(module + ".weight", DType::kBF16, {N, K}, to_bf16(w));
      return;
    }
    const QuantizedMatrix q = quantize_affine(w.data(), N, K, bits, s_.group_size);
    if (s_.dequantized) {
      put(module + ".weight", DType::kF32, {N, K}, q.dequantized);
      return;
    }
    put(module + ".weight", DType::kU32, {N, K * bits / 32}, q.packed);
    put(module + ".scales", DType::kBF16, {N, K / s_.group_size}, q.scales);
    put(module + ".biases", DType::kBF16, {N, K / s_.group_size}, q.biases);
    if (bits != (s_.expert_bits > 0 ? s_.expert_bits : s_.linear_bits))
      qcfg_[module] = {{"bits", bits}, {"group_size", s_.group_size}};
  }
  // A 3-D [E, N, K] expert stack: HF's bare name when dense, MLX `.weight/.scales/.biases` when quantized.
  void experts(const std::string& module, int64_t E, int64_t N, int64_t K, float stdv) {
    const auto w = random(E * N * K, stdv);
    const int bits = s_.expert_bits;
    if (bits <= 0 || K % s_.group_size != 0) {
      // Left unquantized: HF's bare name, or MLX's `.weight` with a `false` quantization entry.
      put(bits > 0 && !s_.dequantized ? module + ".weight" : module, DType::kBF16, {E, N, K}, to_bf16(w));
      if (bits > 0) qcfg_[module] = false;
      return;
    }
    const QuantizedMatrix q = quantize_affine(w.data(), E * N, K, bits, s_.group_size);
    if (s_.dequantized) {
      put(module, DType::kF32, {E, N, K}, q.dequantized);
      return;
    }
    put(module + ".weight", DType::kU32, {E, N, K * bits / 32}, q.packed);
    put(module + ".scales", DType::kBF16, {E, N, K / s_.group_size}, q.scales);
    put(module + ".biases", DType::kBF16, {E, N, K / s_.group_size}, q.biases);
  }

  DgSynthSpec s_;
  SplitMix64 rng_;
  std::map<std::string, Blob> tensors_;
  nlohmann::json qcfg_ = nlohmann::json::object();
};

inline Status write_dgemma_synth(const std::string& dir, const DgSynthSpec& spec) {
  return DgSynthWriter(spec).write(dir);
}

}  // namespace optiq::test
