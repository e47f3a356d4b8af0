// Gemma-4 vision tower (specs/diffusiongemma.md §3):
//   pixels/255 → patches [N, 3·p²] ([py][px][c] inside a patch, patches row-major)
//   x = input_proj(2·(pixels − 0.5)) + pos[0][px] + pos[1][py]
//   layers: x += post_attn_ln(attn(in_ln(x))); x += post_ffw_ln(mlp(pre_ffw_ln(x)))
//     attn: q/k learned RMSNorm, v RMSNorm without weight, 2-D RoPE, scale 1.0, bidirectional
//   pool k×k by patch position → (x·√Cv − std_bias)·std_scale → rmsnorm_noscale → projection to C.

#include "models/gemma4_vision.h"

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"

namespace optiq {

using json = nlohmann::json;

std::pair<int, int> vision_target_size(int height, int width, int patch, int pool, int max_soft_tokens) {
  // HF Gemma4ImageProcessor.get_aspect_ratio_preserving_size (§3.1 step 2).
  const int64_t max_patches = static_cast<int64_t>(max_soft_tokens) * pool * pool;
  const double target_px = static_cast<double>(max_patches) * patch * patch;
  const double f = std::sqrt(target_px / (static_cast<double>(height) * width));
  const int m = patch * pool;
  int th = static_cast<int>(std::floor(f * height / m)) * m;
  int tw = static_cast<int>(std::floor(f * width / m)) * m;
  const int max_side = static_cast<int>(max_patches / (pool * pool)) * m;
  if (th == 0) {
    th = m;
    tw = std::min(static_cast<int>(width / height) * m, max_side);
  }
  if (tw == 0) {
    tw = m;
    th = std::min(static_cast<int>(height / width) * m, max_side);
  }
  return {std::max(th, m), std::max(tw, m)};
}

Result<Gemma4VisionConfig> Gemma4VisionConfig::from_json(const json& j, const std::string& where) {
  try {
    return parse(j, where);
  } catch (const json::exception& e) {
    return Status::Corruption(where + ": " + e.what());
  }
}

Result<Gemma4VisionConfig> Gemma4VisionConfig::parse(const json& j, const std::string& where) {
  Gemma4VisionConfig c;
  auto need_int = [&](const char* key, int64_t* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() <= 0)
      return Status::Corruption(where + "." + key + " must be a positive integer");
    *out = it->get<int64_t>();
    return Status::Ok();
  };
  OPTIQ_RETURN_IF_ERROR(need_int("hidden_size", &c.hidden_size));
  OPTIQ_RETURN_IF_ERROR(need_int("intermediate_size", &c.intermediate_size));
  OPTIQ_RETURN_IF_ERROR(need_int("num_hidden_layers", &c.num_hidden_layers));
  OPTIQ_RETURN_IF_ERROR(need_int("num_attention_heads", &c.num_attention_heads));
  OPTIQ_RETURN_IF_ERROR(need_int("patch_size", &c.patch_size));
  OPTIQ_RETURN_IF_ERROR(need_int("position_embedding_size", &c.position_embedding_size));
  auto int_or = [&](const char* key, int64_t fallback, int64_t* out) {
    OPTIQ_ASSIGN_OR_RETURN(*out, read_int(j, key, fallback, where + "."));
    return Status::Ok();
  };
  OPTIQ_RETURN_IF_ERROR(int_or("num_key_value_heads", c.num_attention_heads, &c.num_key_value_heads));
  OPTIQ_RETURN_IF_ERROR(int_or("head_dim", c.hidden_size / c.num_attention_heads, &c.head_dim));
  OPTIQ_RETURN_IF_ERROR(int_or("pooling_kernel_size", c.pooling_kernel_size, &c.pooling_kernel_size));
  OPTIQ_RETURN_IF_ERROR(int_or("default_output_length", c.default_output_length, &c.default_output_length));
  c.rope_theta = j.value("rope_theta", c.rope_theta);
  c.rms_norm_eps = j.value("rms_norm_eps", c.rms_norm_eps);
  c.standardize = j.value("standardize", c.standardize);
  if (j.value("use_clipped_linears", false)) return Status::Unsupported(where + ".use_clipped_linears=true");
  const std::string act = j.value("hidden_activation", std::string("gelu_pytorch_tanh"));
  if (act != "gelu_pytorch_tanh") return Status::Unsupported(where + ".hidden_activation \"" + act + "\"");
  if (c.head_dim % 4 != 0) return Status::Corruption(where + ".head_dim must be a multiple of 4 (2-D RoPE)");
  if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0)
    return Status::Corruption(where + ": num_attention_heads not a multiple of num_key_value_heads");
  if (c.pooling_kernel_size <= 0) return Status::Corruption(where + ".pooling_kernel_size must be positive");
  return c;
}

Result<std::unique_ptr<Gemma4Vision>> Gemma4Vision::load(const WeightLoader& wl, const Gemma4VisionConfig& cfg,
                                                          const std::string& prefix, int64_t text_hidden) {
  auto v = std::unique_ptr<Gemma4Vision>(new Gemma4Vision());
  v->cfg_ = cfg;
  v->text_hidden_ = text_hidden;
  const int64_t Cv = cfg.hidden_size, Fv = cfg.intermediate_size, D = cfg.head_dim;
  const int64_t H = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads, p = cfg.patch_size;
  const std::string t = prefix + "vision_tower.";
  OPTIQ_ASSIGN_OR_RETURN(v->input_proj_, wl.linear(t + "patch_embedder.input_proj", Cv, 3 * p * p));
  OPTIQ_ASSIGN_OR_RETURN(v->pos_table_,
                         wl.f32(t + "patch_embedder.position_embedding_table", {2, cfg.position_embedding_size, Cv}));
  if (cfg.standardize) {
    OPTIQ_ASSIGN_OR_RETURN(v->std_bias_, wl.f32(t + "std_bias", {Cv}));
    OPTIQ_ASSIGN_OR_RETURN(v->std_scale_, wl.f32(t + "std_scale", {Cv}));
  }
  OPTIQ_ASSIGN_OR_RETURN(v->embedding_projection_, wl.linear(prefix + "embed_vision.embedding_projection", text_hidden, Cv));
  v->layers_.resize(static_cast<size_t>(cfg.num_hidden_layers));
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    Layer& L = v->layers_[i];
    const std::string q = t + "encoder.layers." + std::to_string(i) + ".";
    OPTIQ_ASSIGN_OR_RETURN(L.input_layernorm, wl.dense(q + "input_layernorm.weight", {Cv}));
    OPTIQ_ASSIGN_OR_RETURN(L.post_attention_layernorm, wl.dense(q + "post_attention_layernorm.weight", {Cv}));
    OPTIQ_ASSIGN_OR_RETURN(L.pre_feedforward_layernorm, wl.dense(q + "pre_feedforward_layernorm.weight", {Cv}));
    OPTIQ_ASSIGN_OR_RETURN(L.post_feedforward_layernorm, wl.dense(q + "post_feedforward_layernorm.weight", {Cv}));
    OPTIQ_ASSIGN_OR_RETURN(L.q_proj, wl.linear(q + "self_attn.q_proj.linear", H * D, Cv));
    OPTIQ_ASSIGN_OR_RETURN(L.k_proj, wl.linear(q + "self_attn.k_proj.linear", Hkv * D, Cv));
    OPTIQ_ASSIGN_OR_RETURN(L.v_proj, wl.linear(q + "self_attn.v_proj.linear", Hkv * D, Cv));
    OPTIQ_ASSIGN_OR_RETURN(L.o_proj, wl.linear(q + "self_attn.o_proj.linear", Cv, H * D));
    OPTIQ_ASSIGN_OR_RETURN(L.q_norm, wl.dense(q + "self_attn.q_norm.weight", {D}));
    OPTIQ_ASSIGN_OR_RETURN(L.k_norm, wl.dense(q + "self_attn.k_norm.weight", {D}));
    OPTIQ_ASSIGN_OR_RETURN(L.gate_proj, wl.linear(q + "mlp.gate_proj.linear", Fv, Cv));
    OPTIQ_ASSIGN_OR_RETURN(L.up_proj, wl.linear(q + "mlp.up_proj.linear", Fv, Cv));
    OPTIQ_ASSIGN_OR_RETURN(L.down_proj, wl.linear(q + "mlp.down_proj.linear", Cv, Fv));
  }
  return v;
}

size_t Gemma4Vision::weight_bytes() const {
  size_t n = input_proj_.bytes() + embedding_projection_.bytes() + pos_table_.size() * 4;
  for (auto& L : layers_)
    n += L.q_proj.bytes() + L.k_proj.bytes() + L.v_proj.bytes() + L.o_proj.bytes() + L.gate_proj.bytes() +
         L.up_proj.bytes() + L.down_proj.bytes();
  return n;
}

Result<ImageEmbedding> Gemma4Vision::embed(std::span<const uint8_t> rgb, int width, int height, ThreadPool& pool,
                                           int max_soft_tokens) const {
  if (width <= 0 || height <= 0 || rgb.size() != static_cast<size_t>(width) * height * 3)
    return Status::InvalidArgument("image: " + std::to_string(rgb.size()) + " bytes for " + std::to_string(width) +
                                   "x" + std::to_string(height) + " RGB");
  if (max_soft_tokens <= 0) max_soft_tokens = static_cast<int>(cfg_.default_output_length);
  RgbImage img;
  img.width = width;
  img.height = height;
  img.rgb.assign(rgb.begin(), rgb.end());
  const auto [th, tw] = vision_target_size(height, width, static_cast<int>(cfg_.patch_size),
                                           static_cast<int>(cfg_.pooling_kernel_size), max_soft_tokens);
  return embed_resized(resize_bicubic_aa(img, th, tw), pool);
}

Result<ImageEmbedding> Gemma4Vision::embed_resized(const RgbImage& img, ThreadPool& pool) const {
  const int64_t p = cfg_.patch_size, k = cfg_.pooling_kernel_size, Cv = cfg_.hidden_size;
  const int64_t H = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, D = cfg_.head_dim;
  const int64_t Fv = cfg_.intermediate_size, P = cfg_.position_embedding_size;
  const float eps = cfg_.rms_norm_eps;
  if (img.width % (p * k) != 0 || img.height % (p * k) != 0 || img.width == 0 || img.height == 0)
    return Status::InvalidArgument("image: size " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                                   " is not a positive multiple of patch·pool = " + std::to_string(p * k));
  const int64_t pw = img.width / p, ph = img.height / p, N = pw * ph;
  if (pw > P || ph > P)
    return Status::InvalidArgument("image: patch grid " + std::to_string(pw) + "x" + std::to_string(ph) +
                                   " exceeds the position table (" + std::to_string(P) + ")");
  const int64_t PD = 3 * p * p;
  std::vector<float> patches(static_cast<size_t>(N * PD));
  std::vector<int64_t> px(static_cast<size_t>(N)), py(static_cast<size_t>(N));
  for (int64_t y = 0; y < ph; ++y)
    for (int64_t x = 0; x < pw; ++x) {
      const int64_t n = y * pw + x;
      px[n] = x;
      py[n] = y;
      float* dst = patches.data() + n * PD;
      for (int64_t iy = 0; iy < p; ++iy)
        for (int64_t ix = 0; ix < p; ++ix)
          for (int64_t c = 0; c < 3; ++c) {
            const float v = img.rgb[((y * p + iy) * img.width + x * p + ix) * 3 + c] / 255.0f;
            dst[(iy * p + ix) * 3 + c] = 2.0f * (v - 0.5f);  // the embedder's own normalisation
          }
    }
  std::vector<float> x(static_cast<size_t>(N * Cv)), h(static_cast<size_t>(N * Cv)), tmp(static_cast<size_t>(N * Cv));
  std::vector<float> q(static_cast<size_t>(N * H * D)), kk(static_cast<size_t>(N * Hkv * D)),
      vv(static_cast<size_t>(N * Hkv * D)), att(static_cast<size_t>(N * H * D));
  std::vector<float> g(static_cast<size_t>(N * Fv)), u(static_cast<size_t>(N * Fv));
  std::vector<int64_t> kb(static_cast<size_t>(N), 0), ke(static_cast<size_t>(N), N);
  KernelScratch scratch;  // one image: the buffers live for this call
  const KernelContext ctx(pool, scratch);
  matmul(x.data(), patches.data(), N, input_proj_, ctx);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < Cv; ++c)
      x[n * Cv + c] += pos_table_[px[n] * Cv + c] + pos_table_[(P + py[n]) * Cv + c];
  const Weight no_weight{};
  for (const Layer& L : layers_) {
    rms_norm(h.data(), x.data(), N, Cv, L.input_layernorm, eps, ctx);
    matmul(q.data(), h.data(), N, L.q_proj, ctx);
    matmul(kk.data(), h.data(), N, L.k_proj, ctx);
    matmul(vv.data(), h.data(), N, L.v_proj, ctx);
    rms_norm(q.data(), q.data(), N * H, D, L.q_norm, eps, ctx);
    rms_norm(kk.data(), kk.data(), N * Hkv, D, L.k_norm, eps, ctx);
    rms_norm(vv.data(), vv.data(), N * Hkv, D, no_weight, eps, ctx);
    rope_2d(q.data(), N, H, D, px.data(), py.data(), cfg_.rope_theta, ctx);
    rope_2d(kk.data(), N, Hkv, D, px.data(), py.data(), cfg_.rope_theta, ctx);
    attention(att.data(), q.data(), kk.data(), vv.data(), N, H, Hkv, D, kb.data(), ke.data(), 1.0f, ctx);
    matmul(tmp.data(), att.data(), N, L.o_proj, ctx);
    rms_norm(tmp.data(), tmp.data(), N, Cv, L.post_attention_layernorm, eps, ctx);
    add_inplace(x.data(), tmp.data(), N * Cv, ctx);
    rms_norm(h.data(), x.data(), N, Cv, L.pre_feedforward_layernorm, eps, ctx);
    matmul(g.data(), h.data(), N, L.gate_proj, ctx);
    matmul(u.data(), h.data(), N, L.up_proj, ctx);
    gelu_tanh_mul(g.data(), g.data(), u.data(), N * Fv, ctx);
    matmul(tmp.data(), g.data(), N, L.down_proj, ctx);
    rms_norm(tmp.data(), tmp.data(), N, Cv, L.post_feedforward_layernorm, eps, ctx);
    add_inplace(x.data(), tmp.data(), N * Cv, ctx);
  }
  // k×k average pooling by patch position: cell = x/k + (pw/k)·(y/k), row-major over the pooled grid.
  const int64_t gw = pw / k, n_out = (pw / k) * (ph / k);
  std::vector<float> pooled(static_cast<size_t>(n_out * Cv), 0.f);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t cell = px[n] / k + gw * (py[n] / k);
    for (int64_t c = 0; c < Cv; ++c) pooled[cell * Cv + c] += x[n * Cv + c];
  }
  const float inv_area = 1.0f / static_cast<float>(k * k);
  const float root = std::sqrt(static_cast<float>(Cv));
  for (int64_t i = 0; i < n_out; ++i)
    for (int64_t c = 0; c < Cv; ++c) {
      float v = pooled[i * Cv + c] * inv_area * root;
      if (cfg_.standardize) v = (v - std_bias_[c]) * std_scale_[c];
      pooled[i * Cv + c] = v;
    }
  rms_norm(pooled.data(), pooled.data(), n_out, Cv, no_weight, eps, ctx);
  ImageEmbedding out;
  out.n_tokens = n_out;
  out.embeds.resize(static_cast<size_t>(n_out * text_hidden_));
  matmul(out.embeds.data(), pooled.data(), n_out, embedding_projection_, ctx);
  return out;
}

}  // namespace optiq
