// DiffusionGemma's config and weights, shared by the inference forward (models/diffusion_gemma.cpp)
// and the training forward and backward (models/diffusion_gemma_train.cpp). specs/diffusiongemma.md §1.2, §2.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "kernels/kernels.h"
#include "models/model.h"

namespace optiq {

// text_config, fields spelled as the config.json keys.
struct DiffusionGemmaConfig {
  int64_t vocab_size = 0, hidden_size = 0, num_hidden_layers = 0;
  std::vector<bool> full_attention;  // per layer, from layer_types
  int64_t sliding_window = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, num_global_key_value_heads = 0;
  int64_t head_dim = 0, global_head_dim = 0;
  double rope_theta = 10000.0, global_rope_theta = 1e6, partial_rotary_factor = 0.25;
  int64_t intermediate_size = 0, num_experts = 0, top_k_experts = 0, moe_intermediate_size = 0;
  float rms_norm_eps = 1e-6f;
  float final_logit_softcapping = 30.f;
  int64_t max_position_embeddings = 0;
  // Top level.
  int canvas_length = 0;
  int32_t boi_token_id = -1, image_token_id = -1, eoi_token_id = -1;
  int64_t vision_soft_tokens_per_image = 0;

  // Mistyped fields (a string where a number belongs, ...) become Corruption, never exceptions.
  static Result<DiffusionGemmaConfig> from_json(const nlohmann::json& top, const std::string& file) {
    try {
      return parse(top, file);
    } catch (const nlohmann::json::exception& e) {
      return Status::Corruption(file + ": " + e.what());
    }
  }

 private:
  static Result<DiffusionGemmaConfig> parse(const nlohmann::json& top, const std::string& file) {
    DiffusionGemmaConfig c;
    if (!top.contains("text_config") || !top["text_config"].is_object())
      return Status::Corruption(file + ": missing object text_config");
    const nlohmann::json& j = top["text_config"];
    auto need_int = [&](const char* key, int64_t* out) { return read_positive_int(j, key, file + ": text_config.", out); };
    OPTIQ_RETURN_IF_ERROR(need_int("vocab_size", &c.vocab_size));
    OPTIQ_RETURN_IF_ERROR(need_int("hidden_size", &c.hidden_size));
    OPTIQ_RETURN_IF_ERROR(need_int("num_hidden_layers", &c.num_hidden_layers));
    OPTIQ_RETURN_IF_ERROR(need_int("sliding_window", &c.sliding_window));
    OPTIQ_RETURN_IF_ERROR(need_int("num_attention_heads", &c.num_attention_heads));
    OPTIQ_RETURN_IF_ERROR(need_int("num_key_value_heads", &c.num_key_value_heads));
    OPTIQ_RETURN_IF_ERROR(need_int("head_dim", &c.head_dim));
    OPTIQ_RETURN_IF_ERROR(need_int("intermediate_size", &c.intermediate_size));
    OPTIQ_RETURN_IF_ERROR(need_int("num_experts", &c.num_experts));
    OPTIQ_RETURN_IF_ERROR(need_int("top_k_experts", &c.top_k_experts));
    OPTIQ_RETURN_IF_ERROR(need_int("moe_intermediate_size", &c.moe_intermediate_size));
    auto int_or = [&](const nlohmann::json& obj, const char* key, auto fallback, auto* out) {
      OPTIQ_ASSIGN_OR_RETURN(*out, read_int(obj, key, fallback, file + ": "));
      return Status::Ok();
    };
    OPTIQ_RETURN_IF_ERROR(int_or(j, "num_global_key_value_heads", c.num_key_value_heads, &c.num_global_key_value_heads));
    OPTIQ_RETURN_IF_ERROR(int_or(j, "global_head_dim", c.head_dim, &c.global_head_dim));
    c.rms_norm_eps = j.value("rms_norm_eps", c.rms_norm_eps);
    if (j.contains("final_logit_softcapping"))  // null: no soft-cap (HF semantics)
      c.final_logit_softcapping = j["final_logit_softcapping"].is_null() ? 0.f : j["final_logit_softcapping"].get<float>();
    OPTIQ_RETURN_IF_ERROR(int_or(j, "max_position_embeddings", int64_t{262144}, &c.max_position_embeddings));
    c.rope_theta = j.value("rope_theta", c.rope_theta);
    c.global_rope_theta = j.value("global_rope_theta", c.global_rope_theta);
    c.partial_rotary_factor = j.value("partial_rotary_factor", c.partial_rotary_factor);
    // rope_parameters (newer layout) wins over the flat keys.
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
      const nlohmann::json& rp = j["rope_parameters"];
      if (rp.contains("sliding_attention") && rp["sliding_attention"].is_object()) {
        const nlohmann::json& s = rp["sliding_attention"];
        if (s.value("rope_type", std::string("default")) != "default")
          return Status::Unsupported(file + ": rope_parameters.sliding_attention.rope_type " + s["rope_type"].dump());
        c.rope_theta = s.value("rope_theta", c.rope_theta);
      }
      if (rp.contains("full_attention") && rp["full_attention"].is_object()) {
        const nlohmann::json& f = rp["full_attention"];
        const std::string type = f.value("rope_type", std::string("proportional"));
        if (type != "proportional" && type != "default")
          return Status::Unsupported(file + ": rope_parameters.full_attention.rope_type \"" + type + "\"");
        c.global_rope_theta = f.value("rope_theta", c.global_rope_theta);
        c.partial_rotary_factor = type == "default" ? 1.0 : f.value("partial_rotary_factor", c.partial_rotary_factor);
      }
    }
    const std::string act = j.value("hidden_activation", std::string("gelu_pytorch_tanh"));
    if (act != "gelu_pytorch_tanh")
      return Status::Unsupported(file + ": text_config.hidden_activation \"" + act + "\" (only gelu_pytorch_tanh)");
    if (j.value("attention_bias", false)) return Status::Unsupported(file + ": text_config.attention_bias=true");
    // layer_types; the last layer is always full (HF __post_init__).
    c.full_attention.assign(static_cast<size_t>(c.num_hidden_layers), false);
    if (j.contains("layer_types") && j["layer_types"].is_array()) {
      const nlohmann::json& lt = j["layer_types"];
      if (static_cast<int64_t>(lt.size()) != c.num_hidden_layers)
        return Status::Corruption(file + ": text_config.layer_types has " + std::to_string(lt.size()) +
                                  " entries, num_hidden_layers is " + std::to_string(c.num_hidden_layers));
      for (size_t i = 0; i < lt.size(); ++i) {
        const std::string t = lt[i].is_string() ? lt[i].get<std::string>() : "";
        if (t == "full_attention") c.full_attention[i] = true;
        else if (t != "sliding_attention")
          return Status::Corruption(file + ": text_config.layer_types[" + std::to_string(i) + "] = " + lt[i].dump());
      }
    } else {
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.full_attention[i] = (i % 6) == 5;
    }
    c.full_attention.back() = true;
    if (c.num_attention_heads % c.num_key_value_heads != 0 || c.num_global_key_value_heads <= 0 ||
        c.num_attention_heads % c.num_global_key_value_heads != 0)
      return Status::Corruption(file + ": num_attention_heads " + std::to_string(c.num_attention_heads) +
                                " is not a multiple of the key/value head counts");
    if (c.head_dim % 2 || c.global_head_dim <= 0 || c.global_head_dim % 2)
      return Status::Corruption(file + ": head dims must be positive and even");
    if (c.top_k_experts > c.num_experts)
      return Status::Corruption(file + ": top_k_experts " + std::to_string(c.top_k_experts) + " > num_experts " +
                                std::to_string(c.num_experts));
    if (c.partial_rotary_factor <= 0 || c.partial_rotary_factor > 1)
      return Status::Corruption(file + ": partial_rotary_factor must be in (0, 1]");
    auto it = top.find("canvas_length");
    if (it == top.end() || !it->is_number_integer() || it->get<int64_t>() <= 0)
      return Status::Corruption(file + ": canvas_length must be a positive integer");
    c.canvas_length = it->get<int>();
    OPTIQ_RETURN_IF_ERROR(int_or(top, "boi_token_id", int32_t{-1}, &c.boi_token_id));
    OPTIQ_RETURN_IF_ERROR(int_or(top, "image_token_id", int32_t{-1}, &c.image_token_id));
    OPTIQ_RETURN_IF_ERROR(int_or(top, "eoi_token_id", int32_t{-1}, &c.eoi_token_id));
    OPTIQ_RETURN_IF_ERROR(int_or(top, "vision_soft_tokens_per_image", int64_t{0}, &c.vision_soft_tokens_per_image));
    return c;
  }
};

struct DgLayer {
  bool full = false;
  bool k_eq_v = false;       // V is the raw k_proj output (full layers without v_proj)
  int64_t n_kv = 0, D = 0;   // Hkv and head dim of this layer type
  int64_t rot_pairs = 0;     // RoPE pairs actually rotated (partial on full layers)
  std::vector<float> inv_freq;  // [D/2]
  Weight input_layernorm, post_attention_layernorm;                 // [C]
  Weight pre_feedforward_layernorm, post_feedforward_layernorm_1;   // [C] dense branch
  Weight pre_feedforward_layernorm_2, post_feedforward_layernorm_2; // [C] expert branch
  Weight post_feedforward_layernorm;                                // [C]
  Weight q_proj, k_proj, v_proj, o_proj;  // [H·D, C], [Hkv·D, C], [Hkv·D, C] (absent if k_eq_v), [C, H·D]
  Weight q_norm, k_norm;                  // [D]
  Weight gate_proj, up_proj, down_proj;   // [F, C] ×2, [C, F]
  Weight router_proj;                     // [E, C]
  std::vector<float> router_scale;        // [C]
  std::vector<float> per_expert_scale;    // [E]
  std::vector<ExpertFfn> experts;         // E × {[2Fe, C], [C, Fe]}
  float encoder_scalar = 1.f, decoder_scalar = 1.f;
};

// What the training code reads of a loaded model (views into DiffusionGemmaModel's members).
struct DiffusionGemmaWeightsView {
  const DiffusionGemmaConfig* cfg = nullptr;
  const Weight* embed_tokens = nullptr;  // [V, C]; also the tied head
  float embed_scale = 1.f;               // bf16(√C), the scale the inference forward applies
  const Weight* norm = nullptr;          // [C]
  const std::vector<DgLayer>* layers = nullptr;
};

// The training interface of a loaded DiffusionGemma model (models/diffusion_gemma_train.cpp); the
// view must outlive it.
std::unique_ptr<Trainable> make_diffusion_gemma_trainable(DiffusionGemmaWeightsView weights);

}  // namespace optiq
