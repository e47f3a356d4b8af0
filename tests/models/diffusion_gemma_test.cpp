// DiffusionGemma against the independent reference in shared/fixtures/dgemma-tiny (2e-3 absolute
// on logits and soft tokens), plus property tests of the cache and the two modes.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "decode/rng.h"
#include "io/model_dir.h"
#include "kernels/gelu.h"
#include "kernels/moe.h"
#include "kernels/ops.h"
#include "models/weight_loader.h"
#include "tests/models/dgemma_synth.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

constexpr double kTol = 2e-3;

struct Fixture {
  std::string dir;
  nlohmann::json j;
  std::unique_ptr<SafetensorsFile> st;
  std::unique_ptr<Model> model;
  std::vector<int32_t> ids(const char* key) const {
    std::vector<int32_t> v;
    for (auto& e : j[key]) v.push_back(e.get<int32_t>());
    return v;
  }
  std::vector<float> ref(const char* name) const {
    const TensorView& t = st->tensors().at(name);
    std::vector<float> r(static_cast<size_t>(t.numel()));
    convert_to_f32(t.dtype, t.data, r.data(), r.size());
    return r;
  }
};

Fixture load_fixture() {
  Fixture f;
  f.dir = test::fixture("dgemma-tiny");
  auto j = read_json_file(f.dir + "/golden.json");
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  f.j = *j;
  auto st = SafetensorsFile::open(f.dir + "/golden.safetensors");
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  f.st = std::move(st.value());
  auto m = load_model(f.dir);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (m.ok()) f.model = std::move(m.value());
  return f;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// Encoder prefill of `prompt` (optionally with soft-token rows), then one decoder step over `canvas`.
std::vector<float> decode_step(const Model& m, ThreadPool& pool, const std::vector<int32_t>& prompt,
                               const std::vector<int32_t>& canvas, std::span<const float> sc = {},
                               const std::vector<float>* embeds = nullptr, const std::vector<bool>* over = nullptr) {
  const int64_t V = m.info().vocab_size;
  auto cache = m.make_cache(256);
  std::vector<float> logits(canvas.size() * V);
  ForwardBatch enc;
  enc.tokens = prompt;
  enc.pos0 = 0;
  enc.mask = MaskMode::kCausal;
  enc.last_logits_only = true;
  if (embeds) {
    enc.input_embeds = *embeds;
    enc.embed_override = *over;
  }
  Status s = m.forward(enc, *cache, logits.data(), pool);
  EXPECT_TRUE(s.ok()) << s.ToString();
  ForwardBatch dec;
  dec.tokens = canvas;
  dec.pos0 = static_cast<int64_t>(prompt.size());
  dec.mask = MaskMode::kFull;
  dec.write_cache = false;
  dec.self_condition = sc;
  s = m.forward(dec, *cache, logits.data(), pool);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(cache->length(), static_cast<int64_t>(prompt.size()));
  return logits;
}

TEST(DiffusionGemmaGolden, InfoFromConfigAndGenerationConfig) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  const ModelInfo& info = f.model->info();
  EXPECT_EQ(info.model_type, "diffusion_gemma");
  EXPECT_EQ(info.canvas_length, 16);
  EXPECT_EQ(info.vocab_size, 1024);
  EXPECT_EQ(info.eos_ids, (std::vector<int32_t>{1, 50, 106}));  // config [1, 106] ∪ generation [1, 106, 50]
  EXPECT_EQ(info.image_token_id, 1022);
  EXPECT_EQ(info.boi_token_id, 1021);
  EXPECT_EQ(info.eoi_token_id, 1023);
  EXPECT_FALSE(info.supports_block);
}

TEST(DiffusionGemmaGolden, DecoderStepWithoutSelfConditioning) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  ThreadPool pool(2);
  auto logits = decode_step(*f.model, pool, f.ids("prompt_ids"), f.ids("canvas_ids"));
  const double d = max_abs_diff(logits, f.ref("decoder_no_sc"));
  std::printf("decoder_no_sc max |diff| = %.3g\n", d);
  EXPECT_LE(d, kTol);
}

TEST(DiffusionGemmaGolden, DecoderStepWithSelfConditioning) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  ThreadPool pool(1);
  std::vector<float> sc = f.ref("decoder_no_sc");
  for (auto& v : sc) v /= 0.75f;  // golden.json: sc_logits = decoder_no_sc / 0.75
  auto logits = decode_step(*f.model, pool, f.ids("prompt_ids"), f.ids("canvas_ids"), sc);
  const double d = max_abs_diff(logits, f.ref("decoder_with_sc"));
  std::printf("decoder_with_sc max |diff| = %.3g\n", d);
  EXPECT_LE(d, kTol);
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

TEST(DiffusionGemmaGolden, ImageSoftTokens) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  ThreadPool pool(1);
  auto rgb = read_bytes(f.dir + "/image_24x24_rgb8.bin");
  ASSERT_EQ(rgb.size(), 24u * 24u * 3u);
  auto img = f.model->embed_image(rgb, 24, 24, pool);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->n_tokens, 4);
  const double d = max_abs_diff(img->embeds, f.ref("image_soft_tokens"));
  std::printf("image_soft_tokens max |diff| = %.3g\n", d);
  EXPECT_LE(d, kTol);
}

TEST(DiffusionGemmaGolden, DecoderStepAfterImagePrompt) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  ThreadPool pool(1);
  auto rgb = read_bytes(f.dir + "/image_24x24_rgb8.bin");
  auto img = f.model->embed_image(rgb, 24, 24, pool);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  const auto prompt = f.ids("mm_prompt_ids");
  const int64_t C = f.model->info().hidden_size;
  std::vector<float> embeds(prompt.size() * C, 0.f);
  std::vector<bool> over(prompt.size(), false);
  int64_t k = 0;
  for (size_t t = 0; t < prompt.size(); ++t)
    if (prompt[t] == f.model->info().image_token_id) {
      ASSERT_LT(k, img->n_tokens);
      std::copy(img->embeds.begin() + k * C, img->embeds.begin() + (k + 1) * C, embeds.begin() + t * C);
      over[t] = true;
      ++k;
    }
  EXPECT_EQ(k, img->n_tokens);
  auto logits = decode_step(*f.model, pool, prompt, f.ids("canvas_ids"), {}, &embeds, &over);
  const double d = max_abs_diff(logits, f.ref("decoder_after_image_prompt"));
  std::printf("decoder_after_image_prompt max |diff| = %.3g\n", d);
  EXPECT_LE(d, kTol);
}


// ---------------------------------------------------------------------------------------------
// Property tests.

ForwardBatch encoder_batch(const std::vector<int32_t>& toks, int64_t pos0) {
  ForwardBatch b;
  b.tokens = toks;
  b.pos0 = pos0;
  b.mask = MaskMode::kCausal;
  b.write_cache = true;
  return b;
}

ForwardBatch decoder_batch(const std::vector<int32_t>& toks, int64_t pos0) {
  ForwardBatch b;
  b.tokens = toks;
  b.pos0 = pos0;
  b.mask = MaskMode::kFull;
  b.write_cache = false;
  return b;
}

TEST(DiffusionGemmaCache, DecoderStepsNeverWriteTheCache) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  const Model& m = *f.model;
  ThreadPool pool(1);
  const int64_t V = m.info().vocab_size, L = m.info().canvas_length;
  const auto prompt = f.ids("prompt_ids"), canvas = f.ids("canvas_ids");
  std::vector<int32_t> other(canvas.rbegin(), canvas.rend()), commit(L);
  for (int64_t i = 0; i < L; ++i) commit[i] = static_cast<int32_t>((37 * i + 11) % V);
  std::vector<float> a(L * V), b(L * V), c(L * V), scratch(L * V);

  auto c1 = m.make_cache(128);
  ASSERT_TRUE(m.forward(encoder_batch(prompt, 0), *c1, scratch.data(), pool).ok());
  const int64_t P = c1->length();
  ASSERT_TRUE(m.forward(decoder_batch(canvas, P), *c1, a.data(), pool).ok());
  EXPECT_EQ(c1->length(), P);
  // A different canvas with self-conditioning, then the first canvas again: bit-identical.
  ForwardBatch sc = decoder_batch(other, P);
  sc.self_condition = a;
  ASSERT_TRUE(m.forward(sc, *c1, b.data(), pool).ok());
  EXPECT_EQ(c1->length(), P);
  ASSERT_TRUE(m.forward(decoder_batch(canvas, P), *c1, c.data(), pool).ok());
  EXPECT_EQ(a, c);
  // Commit after decoder steps == commit on a cache that never saw a decoder step.
  ASSERT_TRUE(m.forward(encoder_batch(commit, P), *c1, scratch.data(), pool).ok());
  EXPECT_EQ(c1->length(), P + L);
  ASSERT_TRUE(m.forward(decoder_batch(canvas, P + L), *c1, a.data(), pool).ok());
  auto c2 = m.make_cache(128);
  ASSERT_TRUE(m.forward(encoder_batch(prompt, 0), *c2, scratch.data(), pool).ok());
  ASSERT_TRUE(m.forward(encoder_batch(commit, P), *c2, scratch.data(), pool).ok());
  ASSERT_TRUE(m.forward(decoder_batch(canvas, P + L), *c2, b.data(), pool).ok());
  EXPECT_EQ(a, b);
  // The decoder refuses to write, and rejects malformed self-conditioning.
  ForwardBatch bad = decoder_batch(canvas, P + L);
  bad.write_cache = true;
  EXPECT_FALSE(m.forward(bad, *c2, a.data(), pool).ok());
  ForwardBatch bad_sc = decoder_batch(canvas, P + L);
  std::vector<float> short_sc(V);
  bad_sc.self_condition = short_sc;
  EXPECT_FALSE(m.forward(bad_sc, *c2, a.data(), pool).ok());
  EXPECT_EQ(c2->length(), P + L);
}

TEST(DiffusionGemmaCacheDeathTest, RestoringASnapshotWhoseRowsWereRewrittenAborts) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  const Model& m = *f.model;
  ThreadPool pool(1);
  const int64_t V = m.info().vocab_size, L = m.info().canvas_length;
  const auto prompt = f.ids("prompt_ids"), canvas = f.ids("canvas_ids");
  std::vector<int32_t> head(prompt.begin(), prompt.begin() + 10), tail(prompt.begin() + 10, prompt.end());
  std::vector<float> a(L * V), b(L * V), s(L * V);
  auto cache = m.make_cache(128);
  ASSERT_TRUE(m.forward(encoder_batch(head, 0), *cache, s.data(), pool).ok());
  auto short_snap = cache->snapshot();
  ASSERT_TRUE(m.forward(encoder_batch(tail, 10), *cache, s.data(), pool).ok());
  auto long_snap = cache->snapshot();
  ASSERT_TRUE(m.forward(decoder_batch(canvas, cache->length()), *cache, a.data(), pool).ok());
  // Back and forth without writes in between is fine.
  cache->restore(*short_snap);
  cache->restore(*long_snap);
  ASSERT_TRUE(m.forward(decoder_batch(canvas, cache->length()), *cache, b.data(), pool).ok());
  EXPECT_EQ(a, b);
  // A read-only step at the short length overwrites the long snapshot's rows (as scratch).
  cache->restore(*short_snap);
  ASSERT_TRUE(m.forward(decoder_batch(canvas, 10), *cache, b.data(), pool).ok());
  EXPECT_DEATH(cache->restore(*long_snap), "rewritten");
}

// An uncached reference over the whole sequence [prompt | committed canvas | decoded canvas]:
// every row is computed from scratch with the spec's visibility rules written as a predicate
// (specs/diffusiongemma.md §2.3 mask table), its own RoPE tables (§2.4) and routing (§2.5).
class WholeSequenceReference {
 public:
  explicit WholeSequenceReference(const std::string& dir) {
    md_ = *ModelDir::open(dir);
    const auto& t = md_->config["text_config"];
    C = t["hidden_size"];
    V = t["vocab_size"];
    H = t["num_attention_heads"];
    W = t["sliding_window"];
    E = t["num_experts"];
    K = t["top_k_experts"];
    for (auto& lt : t["layer_types"]) full.push_back(lt == "full_attention");
    Hkv_s = t["num_key_value_heads"];
    Hkv_f = t["num_global_key_value_heads"];
    D_s = t["head_dim"];
    D_f = t["global_head_dim"];
    F = t["intermediate_size"];
    Fe = t["moe_intermediate_size"];
    partial = t["rope_parameters"]["full_attention"]["partial_rotary_factor"];
    theta_s = t["rope_parameters"]["sliding_attention"]["rope_theta"];
    theta_f = t["rope_parameters"]["full_attention"]["rope_theta"];
  }

  // rows: token ids (image rows use `embeds`); mode per row: 0 encoder, 1 decoder. Rows of mode 1
  // must be last and contiguous. Returns logits of the decoder rows.
  std::vector<float> forward(const std::vector<int32_t>& ids, const std::vector<int>& mode,
                             const std::vector<float>& embeds, const std::vector<bool>& over) {
    WeightLoader wl(*md_);
    const int64_t N = static_cast<int64_t>(ids.size());
    int64_t S0 = 0;  // cached rows seen by decoder rows
    while (S0 < N && mode[S0] == 0) ++S0;
    auto lin = [&](const std::string& m, int64_t n, int64_t k) { return *wl.linear(m, n, k); };
    auto vec = [&](const std::string& m, int64_t n) { return *wl.f32(m, {n}); };
    const Weight embed = lin("model.decoder.embed_tokens", V, C);
    const float scale = round_bf16(std::sqrt(float(C)));
    std::vector<float> x(N * C);
    for (int64_t r = 0; r < N; ++r) {
      if (!over.empty() && over[r]) {
        std::copy(embeds.begin() + r * C, embeds.begin() + (r + 1) * C, x.begin() + r * C);
        continue;
      }
      weight_row(embed, ids[r], x.data() + r * C);
      for (int64_t c = 0; c < C; ++c) x[r * C + c] *= scale;
      if (mode[r] == 1) rms_norm_reference(x.data() + r * C, x.data() + r * C, 1, C, Weight{}, 1e-6f);
    }
    auto run_of = [&](int64_t r) -> std::pair<int64_t, int64_t> {  // image run containing r
      if (over.empty() || !over[r]) return {-1, -1};
      int64_t b = r, e = r;
      while (b > 0 && over[b - 1]) --b;
      while (e < N && over[e]) ++e;
      return {b, e};
    };
    for (size_t l = 0; l < full.size(); ++l) {
      const std::string p = "model.decoder.layers." + std::to_string(l) + ".";
      const bool fl = full[l];
      const int64_t D = fl ? D_f : D_s, Hkv = fl ? Hkv_f : Hkv_s;
      auto visible = [&](int64_t q, int64_t k) {
        if (mode[q] == 0) {  // encoder row
          if (mode[k] == 1) return false;
          auto [rb, re] = run_of(q);
          if (rb >= 0 && k >= rb && k < re) return true;
          return k <= q && (fl || q - k < W);
        }
        if (mode[k] == 1) return true;   // whole canvas
        return fl || k >= S0 - (W - 1);  // cache: all, or its last W−1 rows on sliding layers
      };
      std::vector<float> h(N * C), q(N * H * D), kk(N * Hkv * D), vv(N * Hkv * D), att(N * H * D, 0.f), o(N * C);
      rms_norm_reference(h.data(), x.data(), N, C, *wl.dense(p + "input_layernorm.weight", {C}), 1e-6f);
      matmul_reference(q.data(), h.data(), N, lin(p + "self_attn.q_proj", H * D, C));
      matmul_reference(kk.data(), h.data(), N, lin(p + "self_attn.k_proj", Hkv * D, C));
      if (fl) vv = kk;
      else matmul_reference(vv.data(), h.data(), N, lin(p + "self_attn.v_proj", Hkv * D, C));
      rms_norm_reference(q.data(), q.data(), N * H, D, *wl.dense(p + "self_attn.q_norm.weight", {D}), 1e-6f);
      rms_norm_reference(kk.data(), kk.data(), N * Hkv, D, *wl.dense(p + "self_attn.k_norm.weight", {D}), 1e-6f);
      rms_norm_reference(vv.data(), vv.data(), N * Hkv, D, Weight{}, 1e-6f);
      const int64_t pairs = fl ? static_cast<int64_t>(partial * D / 2) : D / 2;
      const double theta = fl ? theta_f : theta_s;
      auto rot = [&](float* v, int64_t heads, int64_t r) {
        for (int64_t hh = 0; hh < heads; ++hh)
          for (int64_t i = 0; i < pairs; ++i) {
            const double ang = double(r) * std::pow(theta, -2.0 * i / D);
            float* a = v + (r * heads + hh) * D;
            const double x0 = a[i], x1 = a[i + D / 2];
            a[i] = float(x0 * std::cos(ang) - x1 * std::sin(ang));
            a[i + D / 2] = float(x1 * std::cos(ang) + x0 * std::sin(ang));
          }
      };
      for (int64_t r = 0; r < N; ++r) {
        rot(q.data(), H, r);
        rot(kk.data(), Hkv, r);
      }
      for (int64_t r = 0; r < N; ++r)
        for (int64_t hh = 0; hh < H; ++hh) {
          const int64_t hk = hh / (H / Hkv);
          std::vector<double> s(N, -INFINITY);
          double mx = -INFINITY;
          for (int64_t k = 0; k < N; ++k) {
            if (!visible(r, k)) continue;
            double d = 0;
            for (int64_t i = 0; i < D; ++i) d += double(q[(r * H + hh) * D + i]) * kk[(k * Hkv + hk) * D + i];
            s[k] = d;
            mx = std::max(mx, d);
          }
          double z = 0;
          for (auto& v : s) z += (v = std::isinf(v) ? 0.0 : std::exp(v - mx));
          for (int64_t i = 0; i < D; ++i) {
            double acc = 0;
            for (int64_t k = 0; k < N; ++k) acc += s[k] * vv[(k * Hkv + hk) * D + i];
            att[(r * H + hh) * D + i] = float(acc / z);
          }
        }
      matmul_reference(o.data(), att.data(), N, lin(p + "self_attn.o_proj", C, H * D));
      rms_norm_reference(o.data(), o.data(), N, C, *wl.dense(p + "post_attention_layernorm.weight", {C}), 1e-6f);
      for (int64_t i = 0; i < N * C; ++i) x[i] += o[i];
      // Dense MLP.
      std::vector<float> g(N * F), u(N * F), dn(N * C);
      rms_norm_reference(h.data(), x.data(), N, C, *wl.dense(p + "pre_feedforward_layernorm.weight", {C}), 1e-6f);
      matmul_reference(g.data(), h.data(), N, lin(p + "mlp.gate_proj", F, C));
      matmul_reference(u.data(), h.data(), N, lin(p + "mlp.up_proj", F, C));
      for (int64_t i = 0; i < N * F; ++i) g[i] = gelu_tanh(g[i]) * u[i];
      matmul_reference(dn.data(), g.data(), N, lin(p + "mlp.down_proj", C, F));
      rms_norm_reference(dn.data(), dn.data(), N, C, *wl.dense(p + "post_feedforward_layernorm_1.weight", {C}), 1e-6f);
      // Router: double-precision softmax over all experts, top-k, renormalise, per-expert scale.
      const auto rs = vec(p + "router.scale", C), pes = vec(p + "router.per_expert_scale", E);
      std::vector<float> rl(N * E);
      rms_norm_reference(h.data(), x.data(), N, C, Weight{}, 1e-6f);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < C; ++c) h[r * C + c] *= rs[c] / std::sqrt(float(C));
      matmul_reference(rl.data(), h.data(), N, lin(p + "router.proj", E, C));
      std::vector<int32_t> sel(N * K);
      std::vector<float> w(N * K);
      for (int64_t r = 0; r < N; ++r) {
        std::vector<int32_t> idx(E);
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return rl[r * E + a] > rl[r * E + b]; });
        double mx = rl[r * E + idx[0]], z = 0;
        for (int64_t k = 0; k < K; ++k) z += std::exp(rl[r * E + idx[k]] - mx);
        for (int64_t k = 0; k < K; ++k) {
          sel[r * K + k] = idx[k];
          w[r * K + k] = float(std::exp(rl[r * E + idx[k]] - mx) / z) * pes[idx[k]];
        }
      }
      WeightLoader wl2(*md_);
      std::vector<ExpertFfn> ex(E);
      const TensorView* gu = md_->tensors->find(p + "experts.gate_up_proj");
      const TensorView* dw = md_->tensors->find(p + "experts.down_proj");
      for (int64_t e = 0; e < E; ++e) {
        ex[e].gate_up = Weight{DType::kBF16, 2 * Fe, C, static_cast<const uint16_t*>(gu->data) + e * 2 * Fe * C, {}, {}, {}};
        ex[e].down = Weight{DType::kBF16, C, Fe, static_cast<const uint16_t*>(dw->data) + e * C * Fe, {}, {}, {}};
      }
      std::vector<float> eo(N * C);
      rms_norm_reference(h.data(), x.data(), N, C, *wl.dense(p + "pre_feedforward_layernorm_2.weight", {C}), 1e-6f);
      moe_experts_reference(eo.data(), h.data(), N, C, sel.data(), w.data(), K, ex);
      rms_norm_reference(eo.data(), eo.data(), N, C, *wl.dense(p + "post_feedforward_layernorm_2.weight", {C}), 1e-6f);
      for (int64_t i = 0; i < N * C; ++i) dn[i] += eo[i];
      rms_norm_reference(dn.data(), dn.data(), N, C, *wl.dense(p + "post_feedforward_layernorm.weight", {C}), 1e-6f);
      const float enc_s = vec("model.encoder.language_model.layers." + std::to_string(l) + ".layer_scalar", 1)[0];
      const float dec_s = vec(p + "layer_scalar", 1)[0];
      for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < C; ++c) x[r * C + c] = (x[r * C + c] + dn[r * C + c]) * (mode[r] ? dec_s : enc_s);
    }
    const int64_t rows = N - S0;
    std::vector<float> h(rows * C), out(rows * V);
    rms_norm_reference(h.data(), x.data() + S0 * C, rows, C, *wl.dense("model.decoder.norm.weight", {C}), 1e-6f);
    matmul_reference(out.data(), h.data(), rows, embed);
    for (auto& v : out) v = 30.f * std::tanh(v / 30.f);
    return out;
  }

  int64_t C, V, H, W, E, K, Hkv_s, Hkv_f, D_s, D_f, F, Fe;
  double partial, theta_s, theta_f;
  std::vector<bool> full;

 private:
  std::shared_ptr<ModelDir> md_;
};

TEST(DiffusionGemmaProperty, CommitThenDecodeEqualsUncachedWholeSequence) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  const Model& m = *f.model;
  ThreadPool pool(1);
  const int64_t V = m.info().vocab_size, L = m.info().canvas_length, C = m.info().hidden_size;
  // Prompt with a 4-row image run (random soft tokens), a committed canvas, then a decoded canvas:
  // the prompt outgrows the sliding window, so both sliding masks matter.
  const auto prompt = f.ids("mm_prompt_ids"), canvas2 = f.ids("canvas_ids");
  std::vector<int32_t> canvas1(L);
  SplitMix64 rng(99);
  for (auto& t : canvas1) t = rng.token(V);
  std::vector<float> embeds(prompt.size() * C, 0.f);
  std::vector<bool> over(prompt.size(), false);
  for (size_t t = 0; t < prompt.size(); ++t)
    if (prompt[t] == m.info().image_token_id) {
      over[t] = true;
      for (int64_t c = 0; c < C; ++c) embeds[t * C + c] = static_cast<float>(rng.uniform() * 2 - 1);
    }
  auto cache = m.make_cache(128);
  std::vector<float> scratch(L * V), got(L * V);
  ForwardBatch pre = encoder_batch(prompt, 0);
  pre.input_embeds = embeds;
  pre.embed_override = over;
  pre.last_logits_only = true;
  ASSERT_TRUE(m.forward(pre, *cache, scratch.data(), pool).ok());
  ASSERT_TRUE(m.forward(encoder_batch(canvas1, prompt.size()), *cache, scratch.data(), pool).ok());
  ASSERT_TRUE(m.forward(decoder_batch(canvas2, prompt.size() + L), *cache, got.data(), pool).ok());

  std::vector<int32_t> all(prompt);
  all.insert(all.end(), canvas1.begin(), canvas1.end());
  all.insert(all.end(), canvas2.begin(), canvas2.end());
  std::vector<int> mode(all.size(), 0);
  std::fill(mode.end() - L, mode.end(), 1);
  std::vector<float> all_embeds(all.size() * C, 0.f);
  std::copy(embeds.begin(), embeds.end(), all_embeds.begin());
  std::vector<bool> all_over(all.size(), false);
  std::copy(over.begin(), over.end(), all_over.begin());
  WholeSequenceReference ref(f.dir);
  const auto want = ref.forward(all, mode, all_embeds, all_over);
  const double d = max_abs_diff(got, want);
  std::printf("cached vs uncached whole-sequence max |diff| = %.3g\n", d);
  EXPECT_LE(d, 5e-4);
}

// MLX-quantized checkpoints (3-D quantized experts, quantized linears, `false` entries) load and
// compute what the same model with the dequantized weights stored in F32 computes. matmul_q
// quantizes activations to int8 per (row, group) (kernels/matmul_q.h), so the two agree to that
// rounding where a matrix is large enough for the int8 kernels (these tiny ones take the exact path:
// ~4e-5 on ±30 logits), not bitwise; a loading error
// (wrong expert slice, bits, scales) moves logits by O(1), which the control model below shows.
class DiffusionGemmaQuantized : public ::testing::TestWithParam<int64_t> {};

std::vector<float> synth_decoder_logits(const std::string& dir, ThreadPool& pool) {
  auto m = load_model(dir);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return {};
  const int64_t V = (*m)->info().vocab_size, L = (*m)->info().canvas_length;
  std::vector<int32_t> prompt{2, 17, 33, 45, 9, 80, 120, 7, 99, 3, 14};
  std::vector<int32_t> canvas(L);
  for (int64_t i = 0; i < L; ++i) canvas[i] = static_cast<int32_t>((13 * i + 5) % V);
  std::vector<float> out(L * V), s(L * V);
  auto cache = (*m)->make_cache(64);
  EXPECT_TRUE((*m)->forward(encoder_batch(prompt, 0), *cache, s.data(), pool).ok());
  EXPECT_TRUE((*m)->forward(decoder_batch(canvas, prompt.size()), *cache, out.data(), pool).ok());
  return out;
}

TEST_P(DiffusionGemmaQuantized, MlxQuantizedExpertsMatchDequantizedModel) {
  test::TempDir tq, td, tc;
  test::DgSynthSpec spec;
  spec.expert_bits = 4;
  spec.linear_bits = 8;
  // 32: down_proj inputs divisible by the group, quantized too; 16: down_proj stays bf16 with a
  // `false` entry in the quantization block.
  spec.moe_ffn = GetParam();
  ASSERT_TRUE(test::write_dgemma_synth(tq.str(), spec).ok());
  spec.dequantized = true;
  ASSERT_TRUE(test::write_dgemma_synth(td.str(), spec).ok());
  spec.seed += 1;  // control: same shapes, other weights
  ASSERT_TRUE(test::write_dgemma_synth(tc.str(), spec).ok());
  ThreadPool pool(1);
  const auto a = synth_decoder_logits(tq.str(), pool);
  const auto b = synth_decoder_logits(td.str(), pool);
  const auto c = synth_decoder_logits(tc.str(), pool);
  ASSERT_FALSE(a.empty() || b.empty() || c.empty());
  const double d = max_abs_diff(a, b), dc = max_abs_diff(b, c);
  std::printf("quantized vs dequantized max |diff| = %.3g (control model: %.3g)\n", d, dc);
  EXPECT_LE(d, 0.05);
  EXPECT_GT(dc, 1.0);  // the comparison is not vacuous
}

INSTANTIATE_TEST_SUITE_P(ExpertWidth, DiffusionGemmaQuantized, ::testing::Values(32, 16));

TEST(DiffusionGemmaLoad, RejectsInconsistentCheckpoints) {
  test::TempDir t;
  test::DgSynthSpec spec;
  ASSERT_TRUE(test::write_dgemma_synth(t.str(), spec).ok());
  ASSERT_TRUE(load_model(t.str()).ok());
  // Config disagreeing with tensor shapes fails at load with the tensor's name.
  auto cfg = *read_json_file(t.str() + "/config.json");
  cfg["text_config"]["moe_intermediate_size"] = 24;
  ASSERT_TRUE(write_file_atomic(t.str() + "/config.json", cfg.dump()).ok());
  auto m = load_model(t.str());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("experts.gate_up_proj"), std::string::npos) << m.status().ToString();
  cfg["text_config"]["moe_intermediate_size"] = spec.moe_ffn;
  cfg.erase("canvas_length");
  ASSERT_TRUE(write_file_atomic(t.str() + "/config.json", cfg.dump()).ok());
  m = load_model(t.str());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("canvas_length"), std::string::npos);
  // Mistyped optional fields are errors, not exceptions.
  cfg["canvas_length"] = spec.canvas;
  cfg["text_config"]["num_global_key_value_heads"] = "one";
  ASSERT_TRUE(write_file_atomic(t.str() + "/config.json", cfg.dump()).ok());
  m = load_model(t.str());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Status::Code::kCorruption) << m.status().ToString();
}

}  // namespace
}  // namespace optiq
