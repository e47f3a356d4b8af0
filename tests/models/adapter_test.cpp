// Adapters at inference (models/adapter.cpp, ForwardBatch::adapter in dhara and DiffusionGemma):
// checks at load, the adapted view, and the forwards against merged weights.
//
// "Adapter = fused": a forward with the adapter applied unmerged must equal the forward of the
// checkpoint `optiq lora fuse` writes. Two comparisons:
//   - fused into an F32 copy of the base (exact bf16 → f32 widening, so the base computes the same):
//     W' differs from W + Δ only by fp32 rounding, and y = W x + s·(x a) b by the order of fp32
//     sums, so logits (|z| ≤ 30 under the soft-cap) agree to kExactTol = 1e-4, the conformance
//     suite's bound for re-chunked fp32 sums;
//   - fused into bf16, as the CLI writes for a bf16 base: each fused weight is W + Δ rounded to bf16
//     (up to 2^-9 relative; tests/quant/lora_fuse_test.cpp checks that tensor by tensor). What that
//     rounding does to logits depends on the model: measured here, 0.016 on dhara-tiny, 0.09 (encoder)
//     to 0.94 (decoder) on dgemma-tiny, whose random weights are scaled for peaked outputs and whose
//     decoder re-normalises its input. So the bound is the rounding's own effect, measured in the
//     same test as |logits(F32 fused) − logits(bf16 fused)|, plus kExactTol: the unmerged adapter may
//     differ from the bf16 checkpoint by exactly what bf16 rounding of the fused weights explains.
//     Each test also checks that the adapter moves logits by far more than that.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "models/model.h"
#include "quant/lora_fuse.h"
#include "tests/lora_test_util.h"
#include "tests/models/conformance.h"
#include "tests/test_util.h"

namespace optiq::test {
namespace {

constexpr double kExactTol = 1e-4;

std::unique_ptr<Model> load(const std::string& dir) {
  auto m = load_model(dir);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

// Logits of `tokens` forwarded in one causal chunk (or `mask`) into a fresh cache.
std::vector<float> logits_of(const Model& m, std::span<const int32_t> tokens, const LoraAdapter* ad,
                             ThreadPool& pool, MaskMode mask = MaskMode::kCausal) {
  auto c = m.make_cache(256);
  std::vector<float> out(tokens.size() * static_cast<size_t>(m.info().vocab_size));
  ForwardBatch b;
  b.tokens = tokens;
  b.mask = mask;
  b.adapter = ad;
  EXPECT_TRUE(m.forward(b, *c, out.data(), pool).ok());
  return out;
}

// Prefill `prompt` causally, then one read-only step over `step` under `mask` (a diffusion block, or a
// DiffusionGemma canvas with kFull), with optional self-conditioning logits.
std::vector<float> step_after_prefill(const Model& m, std::span<const int32_t> prompt, std::span<const int32_t> step,
                                      MaskMode mask, const LoraAdapter* ad, ThreadPool& pool,
                                      std::span<const float> sc = {}) {
  auto c = m.make_cache(256);
  const int64_t V = m.info().vocab_size;
  std::vector<float> pre(prompt.size() * static_cast<size_t>(V)), out(step.size() * static_cast<size_t>(V));
  ForwardBatch b;
  b.tokens = prompt;
  b.adapter = ad;
  EXPECT_TRUE(m.forward(b, *c, pre.data(), pool).ok());
  ForwardBatch s;
  s.tokens = step;
  s.pos0 = c->length();
  s.mask = mask;
  s.write_cache = false;
  s.self_condition = sc;
  s.adapter = ad;
  EXPECT_TRUE(m.forward(s, *c, out.data(), pool).ok());
  return out;
}

// The adapter fused into an F32 copy of `base_dir` (scratch/f32 → scratch/fused32) and into the bf16
// base itself (scratch/fused16).
void fuse_both(const std::string& base_dir, const LoraAdapter& ad, const TempDir& scratch) {
  write_f32_copy(base_dir, scratch.str() + "/f32");
  auto a = fuse_lora(scratch.str() + "/f32", ad, scratch.str() + "/fused32");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = fuse_lora(base_dir, ad, scratch.str() + "/fused16");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->dense_modules, static_cast<int64_t>(ad.modules.size()));
}

// `adapted` (unmerged) against the F32 and bf16 fused checkpoints' logits for the same forward (see
// the file comment); `effect` (how far the adapter moves the base's logits, < 0: not checked) must
// dwarf the bf16 rounding for the comparison to mean anything.
void expect_equals_fused(const std::string& what, const std::vector<float>& adapted, const std::vector<float>& fused32,
                         const std::vector<float>& fused16, double effect) {
  const double exact = max_abs_diff(adapted, fused32);
  const double rounding = max_abs_diff(fused32, fused16);
  const double bf16 = max_abs_diff(adapted, fused16);
  std::printf("%s: unmerged vs fused f32 %.2e; vs fused bf16 %.2e (bf16 rounding alone %.2e)", what.c_str(), exact,
              bf16, rounding);
  if (effect >= 0) std::printf("; the adapter moves logits by %.3f", effect);
  std::printf("\n");
  EXPECT_LE(exact, kExactTol) << what;
  EXPECT_LE(bf16, rounding + kExactTol) << what;
  if (effect >= 0) EXPECT_GT(effect, 2 * rounding) << what;
}

// Causal forwards of `prompt`: base + adapter (unmerged) against the F32 and bf16 fused checkpoints,
// and the adapter's own effect, which must dwarf the bf16 tolerance for the comparison to mean anything.
void expect_causal_equals_fused(const char* what, const Model& m, const Model& f32, const Model& f16,
                                std::span<const int32_t> prompt, const LoraAdapter& ad, ThreadPool& pool) {
  const auto adapted = logits_of(m, prompt, &ad, pool);
  const auto fused32 = logits_of(f32, prompt, nullptr, pool), fused16 = logits_of(f16, prompt, nullptr, pool);
  expect_equals_fused(what, adapted, fused32, fused16, max_abs_diff(adapted, logits_of(m, prompt, nullptr, pool)));
}

TEST(Adapter, DharaTargetsAreTheSevenLinearsOfEveryLayer) {
  auto m = load(fixture("dhara-tiny"));
  const auto t = m->adapter_targets();
  ASSERT_EQ(t.size(), static_cast<size_t>(7 * m->info().n_layers));
  EXPECT_EQ(t[0].module, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(t[6].module, "model.layers.0.mlp.down_proj");
  EXPECT_EQ(t[6].in, 352);
  EXPECT_EQ(t[6].out, m->info().hidden_size);
  // The training fixtures' adapters name exactly these modules.
  auto ad = load_lora_adapter(fixture("lora/dhara-tiny-text/init"));
  ASSERT_TRUE(ad.ok()) << ad.status().ToString();
  EXPECT_TRUE(validate_adapter(*m, *ad).ok());
  EXPECT_EQ(ad->modules.size(), t.size());
}

TEST(Adapter, ValidationNamesTheModuleAndSizes) {
  auto m = load(fixture("dhara-tiny"));
  LoraAdapter ad = random_adapter(*m, 2, 1.f, 0.1f, 1, "layers.1.");
  ad.name = "mine";
  EXPECT_TRUE(validate_adapter(*m, ad).ok());
  LoraAdapter unknown = ad;
  unknown.modules["model.layers.9.self_attn.q_proj"] = ad.modules.begin()->second;
  Status s = validate_adapter(*m, unknown);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("adapter mine: module model.layers.9.self_attn.q_proj is not a linear this model adapts"),
            std::string::npos)
      << s.message();
  LoraAdapter wrong = ad;
  LoraModule& q = wrong.modules.at("model.layers.1.self_attn.q_proj");
  q.out = 64;
  q.b.resize(static_cast<size_t>(q.rank * 64));
  s = validate_adapter(*m, wrong);
  EXPECT_NE(s.message().find("model.layers.1.self_attn.q_proj: lora_a/lora_b are [in 128, out 64], the model's linear "
                             "is [in 128, out 128]"),
            std::string::npos)
      << s.message();
  // A forward refuses the same adapter and leaves the cache as it was.
  ThreadPool pool(1);
  auto c = m->make_cache(64);
  const std::vector<int32_t> toks{5, 6, 7};
  std::vector<float> logits(3 * static_cast<size_t>(m->info().vocab_size));
  ForwardBatch b;
  b.tokens = toks;
  b.adapter = &unknown;
  EXPECT_EQ(m->forward(b, *c, logits.data(), pool).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(c->length(), 0);
}

TEST(Adapter, DiffusionGemmaHasNoVProjOnKEqualsVLayers) {
  auto m = load(fixture("dgemma-tiny"));
  const auto t = m->adapter_targets();
  bool saw_decoder_q = false;
  for (const LoraTarget& x : t) {
    saw_decoder_q = saw_decoder_q || x.module == "model.decoder.layers.0.self_attn.q_proj";
    EXPECT_NE(x.module, "model.decoder.layers.3.self_attn.v_proj");  // the full (K = V) layer
  }
  EXPECT_TRUE(saw_decoder_q);
  LoraAdapter ad = random_adapter(*m, 2, 1.f, 0.1f, 2, "layers.0.self_attn.v_proj");
  ASSERT_EQ(ad.modules.size(), 1u);
  LoraModule v = ad.modules.begin()->second;
  ad.modules["model.decoder.layers.3.self_attn.v_proj"] = v;
  EXPECT_NE(validate_adapter(*m, ad).message().find("model.decoder.layers.3.self_attn.v_proj is not a linear"),
            std::string::npos);
}

TEST(Adapter, ViewAppliesItsAdapterUnlessTheBatchNamesOne) {
  auto m = load(fixture("dhara-tiny"));
  ThreadPool pool(2);
  auto a = std::make_shared<const LoraAdapter>(random_adapter(*m, 4, 2.f, 0.05f, 3));
  const LoraAdapter other = random_adapter(*m, 4, 2.f, 0.05f, 4);
  auto view = with_adapter(*m, a);
  EXPECT_EQ(view->info().model_type, "dhara_ar");
  const std::vector<int32_t> toks = random_ids(12, m->info().vocab_size, 5);
  EXPECT_EQ(logits_of(*view, toks, nullptr, pool), logits_of(*m, toks, a.get(), pool));
  EXPECT_EQ(logits_of(*view, toks, &other, pool), logits_of(*m, toks, &other, pool));
  EXPECT_NE(logits_of(*view, toks, nullptr, pool), logits_of(*m, toks, nullptr, pool));
}

TEST(Adapter, DharaForwardEqualsFusedWeights) {
  const std::string base_dir = fixture("dhara-tiny");
  auto m = load(base_dir);
  ThreadPool pool(2);
  // The training fixture's adapter (rank 4, scale 2, b ~ N(0, 0.02)) scaled up so that it matters.
  auto fixture_ad = load_lora_adapter(fixture("lora/dhara-tiny-text/init"));
  ASSERT_TRUE(fixture_ad.ok());
  LoraAdapter ad = *fixture_ad;
  ad.scale = 8.f;
  TempDir tmp;
  fuse_both(base_dir, ad, tmp);
  auto f32 = load(tmp.str() + "/fused32");
  auto f16 = load(tmp.str() + "/fused16");
  const int64_t V = m->info().vocab_size;
  const std::vector<int32_t> prompt = random_ids(41, V, 6);
  const std::vector<int32_t> block(32, m->info().mask_token_id);
  expect_causal_equals_fused("dhara-tiny causal", *m, *f32, *f16, prompt, ad, pool);
  // A diffusion block step on the cached prompt (block mask, read-only).
  expect_equals_fused("dhara-tiny block step", step_after_prefill(*m, prompt, block, MaskMode::kBlock, &ad, pool),
                      step_after_prefill(*f32, prompt, block, MaskMode::kBlock, nullptr, pool),
                      step_after_prefill(*f16, prompt, block, MaskMode::kBlock, nullptr, pool), -1);
}

// Decode steps (one row, cache written: dhara's per-KV-group attention_step path) with an adapter
// equal the uncached forward of the whole sequence, for bf16 and MLX-quantized bases.
TEST(Adapter, DharaCachedDecodeEqualsUncached) {
  for (const char* dir : {"dhara-tiny", "dhara-tiny-mlx"}) {
    SCOPED_TRACE(dir);
    auto m = load(fixture(dir));
    ThreadPool pool(3);
    const LoraAdapter ad = random_adapter(*m, 4, 4.f, 0.05f, 7);
    const int64_t V = m->info().vocab_size;
    const std::vector<int32_t> seq = random_ids(24, V, 8);
    const auto whole = logits_of(*m, seq, &ad, pool);
    auto c = m->make_cache(64);
    const size_t P = 9;
    std::vector<float> rows(P * static_cast<size_t>(V));
    ForwardBatch pre;
    pre.tokens = std::span<const int32_t>(seq.data(), P);
    pre.adapter = &ad;
    ASSERT_TRUE(m->forward(pre, *c, rows.data(), pool).ok());
    for (size_t t = P; t < seq.size(); ++t) {
      std::vector<float> one(static_cast<size_t>(V));
      ForwardBatch b;
      b.tokens = std::span<const int32_t>(seq.data() + t, 1);
      b.pos0 = static_cast<int64_t>(t);
      b.adapter = &ad;
      ASSERT_TRUE(m->forward(b, *c, one.data(), pool).ok());
      rows.insert(rows.end(), one.begin(), one.end());
    }
    // The quantized base takes other int8 kernels per chunk size: the conformance suite's 4-bit bound.
    const double tol = std::string(dir) == "dhara-tiny" ? kExactTol : 5e-2;
    EXPECT_LE(max_abs_diff(rows, whole), tol);
    EXPECT_GT(max_abs_diff(whole, logits_of(*m, seq, nullptr, pool)), 10 * tol);
  }
}

// b = 0 makes every LoRA term exactly 0: logits bit for bit the base's, on every path (prefill,
// decode steps through the grouped attention, block steps; DiffusionGemma encoder and decoder).
TEST(Adapter, ZeroBIsTheBaseExactly) {
  ThreadPool pool(2);
  for (const char* dir : {"dhara-tiny", "dhara-tiny-mlx"}) {
    SCOPED_TRACE(dir);
    auto m = load(fixture(dir));
    LoraAdapter ad = random_adapter(*m, 4, 20.f, 0.f, 9);
    const std::vector<int32_t> seq = random_ids(20, m->info().vocab_size, 10);
    EXPECT_EQ(logits_of(*m, seq, &ad, pool), logits_of(*m, seq, nullptr, pool));
    auto decode = [&](const LoraAdapter* a) {
      auto c = m->make_cache(64);
      std::vector<float> all, one(static_cast<size_t>(m->info().vocab_size));
      for (size_t t = 0; t < seq.size(); ++t) {
        ForwardBatch b;
        b.tokens = std::span<const int32_t>(seq.data() + t, 1);
        b.pos0 = static_cast<int64_t>(t);
        b.adapter = a;
        EXPECT_TRUE(m->forward(b, *c, one.data(), pool).ok());
        all.insert(all.end(), one.begin(), one.end());
      }
      return all;
    };
    EXPECT_EQ(decode(&ad), decode(nullptr));
    const std::vector<int32_t> block(32, m->info().mask_token_id);
    EXPECT_EQ(step_after_prefill(*m, seq, block, MaskMode::kBlock, &ad, pool),
              step_after_prefill(*m, seq, block, MaskMode::kBlock, nullptr, pool));
  }
  auto g = load(fixture("dgemma-tiny"));
  LoraAdapter ad = random_adapter(*g, 4, 20.f, 0.f, 11);
  const std::vector<int32_t> prompt = random_ids(10, g->info().vocab_size, 12);
  const std::vector<int32_t> canvas = random_ids(16, g->info().vocab_size, 13);
  EXPECT_EQ(step_after_prefill(*g, prompt, canvas, MaskMode::kFull, &ad, pool),
            step_after_prefill(*g, prompt, canvas, MaskMode::kFull, nullptr, pool));
}

TEST(Adapter, DiffusionGemmaForwardEqualsFusedWeights) {
  const std::string base_dir = fixture("dgemma-tiny");
  auto m = load(base_dir);
  ThreadPool pool(2);
  const LoraAdapter ad = random_adapter(*m, 4, 4.f, 0.1f, 14);
  TempDir tmp;
  fuse_both(base_dir, ad, tmp);
  auto f32 = load(tmp.str() + "/fused32");
  auto f16 = load(tmp.str() + "/fused16");
  const int64_t V = m->info().vocab_size;
  const std::vector<int32_t> prompt = random_ids(11, V, 15);
  const std::vector<int32_t> canvas = random_ids(16, V, 16);
  // Encoder (causal prefill) logits, then a decoder canvas step on the encoded prompt, with and
  // without self-conditioning: the same LoRA acts in both modes.
  expect_causal_equals_fused("dgemma-tiny encoder", *m, *f32, *f16, prompt, ad, pool);
  std::vector<float> sc = step_after_prefill(*m, prompt, canvas, MaskMode::kFull, nullptr, pool);
  for (float& z : sc) z /= 0.75f;
  for (std::span<const float> self_cond : {std::span<const float>(), std::span<const float>(sc)}) {
    const auto dec = step_after_prefill(*m, prompt, canvas, MaskMode::kFull, &ad, pool, self_cond);
    expect_equals_fused(std::string("dgemma-tiny decoder") + (self_cond.empty() ? "" : " (self-conditioned)"), dec,
                        step_after_prefill(*f32, prompt, canvas, MaskMode::kFull, nullptr, pool, self_cond),
                        step_after_prefill(*f16, prompt, canvas, MaskMode::kFull, nullptr, pool, self_cond),
                        max_abs_diff(dec, step_after_prefill(*m, prompt, canvas, MaskMode::kFull, nullptr, pool,
                                                             self_cond)));
  }
}

}  // namespace
}  // namespace optiq::test
