// dhara's config and weights, shared by the inference forward (models/dhara.cpp) and the training
// forward and backward (models/dhara_train.cpp). specs/dhara.md §1–§3.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "kernels/kernels.h"
#include "models/model.h"

namespace optiq {

// Config, fields spelled as the config.json keys.
struct DharaConfig {
  int64_t hidden_size = 0, num_hidden_layers = 0, intermediate_size = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0, vocab_size = 0;
  int64_t max_position_embeddings = 32768;
  float rms_norm_eps = 1e-6f;
  bool use_qk_norm = true;
  bool use_logit_softcap = true;
  float logit_softcap = 30.f;
  std::string canon_set = "ABCD";
  int64_t canon_kernel = 4;
  bool canon_residual = true;
  int32_t mask_token_id = -1;

  // Mistyped fields (a string where a number belongs, ...) become Corruption, never exceptions.
  static Result<DharaConfig> from_json(const nlohmann::json& j, const std::string& file) {
    try {
      return parse(j, file);
    } catch (const nlohmann::json::exception& e) {
      return Status::Corruption(file + ": " + e.what());
    }
  }
  static Result<DharaConfig> parse(const nlohmann::json& j, const std::string& file) {
    DharaConfig c;
    auto need_int = [&](const char* key, int64_t* out) { return read_positive_int(j, key, file + ": ", out); };
    OPTIQ_RETURN_IF_ERROR(need_int("hidden_size", &c.hidden_size));
    OPTIQ_RETURN_IF_ERROR(need_int("num_hidden_layers", &c.num_hidden_layers));
    OPTIQ_RETURN_IF_ERROR(need_int("intermediate_size", &c.intermediate_size));
    OPTIQ_RETURN_IF_ERROR(need_int("num_attention_heads", &c.num_attention_heads));
    auto int_or = [&](const char* key, auto fallback, auto* out) {
      OPTIQ_ASSIGN_OR_RETURN(*out, read_int(j, key, fallback, file + ": "));
      return Status::Ok();
    };
    OPTIQ_RETURN_IF_ERROR(int_or("num_key_value_heads", c.num_attention_heads, &c.num_key_value_heads));
    c.head_dim = j.contains("head_dim") && j["head_dim"].is_number_integer() ? j["head_dim"].get<int64_t>()
                                                                            : c.hidden_size / c.num_attention_heads;
    OPTIQ_RETURN_IF_ERROR(int_or("vocab_size", int64_t{0}, &c.vocab_size));
    OPTIQ_RETURN_IF_ERROR(int_or("max_position_embeddings", c.max_position_embeddings, &c.max_position_embeddings));
    c.rms_norm_eps = j.value("rms_norm_eps", c.rms_norm_eps);
    c.use_qk_norm = j.value("use_qk_norm", c.use_qk_norm);
    c.use_logit_softcap = j.value("use_logit_softcap", c.use_logit_softcap);
    if (j.contains("logit_softcap") && j["logit_softcap"].is_number()) c.logit_softcap = j["logit_softcap"].get<float>();
    c.canon_set = j.value("canon_set", c.canon_set);
    OPTIQ_RETURN_IF_ERROR(int_or("canon_kernel", c.canon_kernel, &c.canon_kernel));
    c.canon_residual = j.value("canon_residual", c.canon_residual);
    OPTIQ_RETURN_IF_ERROR(int_or("mask_token_id", c.mask_token_id, &c.mask_token_id));
    if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0)
      return Status::Corruption(file + ": num_attention_heads " + std::to_string(c.num_attention_heads) +
                                " is not a multiple of num_key_value_heads " + std::to_string(c.num_key_value_heads));
    if (c.head_dim <= 0 || c.head_dim % 2 != 0) return Status::Corruption(file + ": head_dim must be positive and even");
    if (j.value("canon_activation", false)) return Status::Unsupported(file + ": canon_activation=true");
    if (j.value("canon_bias", false)) return Status::Unsupported(file + ": canon_bias=true");
    if (!c.canon_residual) return Status::Unsupported(file + ": canon_residual=false");
    if (c.canon_kernel < 1 || c.canon_kernel > kMaxConvKernel) return Status::Corruption(file + ": canon_kernel out of range");
    if (c.logit_softcap <= 0) c.use_logit_softcap = false;
    return c;
  }
  bool canon(char which) const { return canon_set.find(which) != std::string::npos; }
};

// The six Canon convs of a layer, in a fixed order.
enum ConvSlot { kConvA = 0, kConvBq, kConvBk, kConvBv, kConvC, kConvD, kNumConv };

struct DharaLayer {
  Weight input_layernorm, post_attention_layernorm, q_norm, k_norm;  // [C], [C], [D], [D]
  Weight q_proj, k_proj, v_proj, o_proj;                             // [H·D, C], [Hkv·D, C] ×2, [C, H·D]
  Weight gate_proj, up_proj, down_proj;                              // [F, C] ×2, [C, F]
  ConvTaps conv[kNumConv];                                           // [Kw, width] taps; data null if absent
  std::vector<float> inv_freq;                                       // [D/2], from the checkpoint
};

// What the training code reads of a loaded model (views into DharaModel's members).
struct DharaWeightsView {
  const DharaConfig* cfg = nullptr;
  const Weight* embed_tokens = nullptr;  // [V, C]; also the tied head
  const Weight* norm = nullptr;          // [C]
  const std::vector<DharaLayer>* layers = nullptr;
  const int64_t* widths = nullptr;       // [kNumConv] channels of each Canon conv slot
  const nlohmann::json* config = nullptr;  // config.json as read (full training writes it back)
};

// The training interface of a loaded dhara model (models/dhara_train.cpp); the view must outlive it.
std::unique_ptr<Trainable> make_dhara_trainable(DharaWeightsView weights);

}  // namespace optiq
