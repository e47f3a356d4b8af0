// DiffusionGemma's LoRA training forward and backward (models/diffusion_gemma_train.cpp):
//  - the training loss equals the loss of the inference forward (encoder prefill, then one decoder
//    step without self-conditioning) on the same rows, the adapter applied through
//    ForwardBatch::adapter; the LoRA targets are the inference forward's adapter targets;
//  - directional derivatives of the loss along random directions in LoRA parameter space, by
//    central differences of the same fp32 loss, match the analytic gradient (dgemma-tiny, and random
//    checkpoints in bf16 and with 4-bit MLX-quantized linears and experts);
//  - gradient checkpointing does not change the gradients;
//  - a fresh adapter trained with the canvas objective (L.8) makes the canvas decoder
//    (confidence-threshold) reproduce the completions it was trained on, the adapter applied through
//    ForwardBatch::adapter (with_adapter).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "decode/canvas.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "tests/models/dgemma_synth.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

// A LoRA adapter on every target: a ~ U(±1/√in) (L.1's fresh init), b ~ N(0, b_sd) (b = 0 when
// b_sd = 0, a fresh adapter; non-zero to give the a-gradients and the encoder path something to act on).
LoraAdapter random_adapter(const Trainable& tr, int64_t rank, float scale, float b_sd, uint64_t seed) {
  std::mt19937_64 rng(seed);
  LoraAdapter ad;
  ad.scale = scale;
  for (const auto& [name, shape] : tr.lora_targets(-1)) {
    LoraModule m;
    m.in = shape.first;
    m.out = shape.second;
    m.rank = rank;
    const float lim = 1.0f / std::sqrt(static_cast<float>(m.in));
    std::uniform_real_distribution<float> ua(-lim, lim);
    std::normal_distribution<float> nb(0.0f, b_sd > 0 ? b_sd : 1.0f);
    for (int64_t i = 0; i < m.in * rank; ++i) m.a.push_back(ua(rng));
    for (int64_t i = 0; i < rank * m.out; ++i) m.b.push_back(b_sd > 0 ? nb(rng) : 0.0f);
    ad.modules[name] = std::move(m);
  }
  return ad;
}

// A canvas example (L.8): prompt tokens then a canvas of `canvas_len` at positions P …; targets on
// the canvas rows with `target_every`-th rows left without a target; weight 1 / targets.
TrainSequence canvas_sequence(std::mt19937_64& rng, int64_t V, int64_t P, int64_t canvas_len, int target_every = 4) {
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(V - 1));
  TrainSequence s;
  for (int64_t t = 0; t < P + canvas_len; ++t) s.tokens.push_back(tok(rng));
  s.targets.assign(s.tokens.size(), -1);
  int n = 0;
  for (int64_t t = P; t < P + canvas_len; ++t)
    if ((t - P) % target_every != target_every - 1) {
      s.targets[t] = tok(rng);
      ++n;
    }
  s.canvas_begin = P;
  s.weight = 1.0f / static_cast<float>(n);
  return s;
}

struct Grad {
  double loss = 0;
  LoraAdapter g;
};

Grad gradient(const Trainable& tr, std::span<const TrainSequence> seqs, const LoraAdapter& ad, ThreadPool& pool,
              bool checkpoint = true) {
  Grad out;
  out.g = ad.zeros_like();
  TrainOptions opts;
  opts.grad_checkpoint = checkpoint;
  auto st = tr.accumulate_lora_gradients(seqs, ad, out.g, opts, pool);
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  if (st.ok()) out.loss = st->loss;
  return out;
}

// θ + eps · u over every parameter of `ad` (u laid out as the modules' a then b, in map order).
LoraAdapter shifted(const LoraAdapter& ad, const std::vector<double>& u, double eps) {
  LoraAdapter out = ad;
  size_t i = 0;
  for (auto& [name, m] : out.modules) {
    for (float& v : m.a) v = static_cast<float>(v + eps * u[i++]);
    for (float& v : m.b) v = static_cast<float>(v + eps * u[i++]);
  }
  return out;
}

std::vector<double> flatten(const LoraAdapter& ad) {
  std::vector<double> v;
  for (const auto& [name, m] : ad.modules) {
    v.insert(v.end(), m.a.begin(), m.a.end());
    v.insert(v.end(), m.b.begin(), m.b.end());
  }
  return v;
}

// A unit direction: Gaussian on the parameters of the modules whose name contains `filter` (all
// when empty), zero elsewhere.
std::vector<double> direction(const LoraAdapter& ad, const std::string& filter, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0, 1);
  std::vector<double> u;
  for (const auto& [name, m] : ad.modules) {
    const bool on = filter.empty() || name.find(filter) != std::string::npos;
    for (size_t i = 0; i < m.a.size() + m.b.size(); ++i) u.push_back(on ? n(rng) : 0.0);
  }
  double s = 0;
  for (double x : u) s += x * x;
  for (double& x : u) x /= std::sqrt(s);
  return u;
}

// The loss change from θ − h·u to θ + h·u, and the analytic prediction g · δ for the step δ the
// fp32 parameters actually take (θ ± h·u rounded to float; at small h the rounding is a large part of
// h·u). Returns the relative error of the prediction.
struct FdStep {
  double h = 0, analytic = 0, fd = 0;
  double err() const { return std::abs(fd - analytic) / std::max(std::abs(analytic), 1e-300); }
};

FdStep fd_step(const Trainable& tr, std::span<const TrainSequence> seqs, const LoraAdapter& ad,
               const std::vector<double>& g, const std::vector<double>& u, double h, ThreadPool& pool) {
  const LoraAdapter plus = shifted(ad, u, h), minus = shifted(ad, u, -h);
  const std::vector<double> p = flatten(plus), m = flatten(minus);
  FdStep r;
  r.h = h;
  for (size_t i = 0; i < g.size(); ++i) r.analytic += g[i] * (p[i] - m[i]);
  r.fd = gradient(tr, seqs, plus, pool).loss - gradient(tr, seqs, minus, pool).loss;
  return r;
}

// Checks the directional derivative along u by central differences of the same fp32 loss.
//
// Noise floor: the fp32 loss moves by ~1e-7 of its value between neighbouring parameter vectors
// (measured on dgemma-tiny: ±5e-6 on a loss of 53 for steps of 1e-7), so a relative error of 1e-3
// needs the step to change the loss by well over 5e-3; h is chosen so that the predicted change is
// ~2e-2 (a relative noise of ~2.5e-4). Top-k routing makes the loss only piecewise smooth: where
// θ ± h·u crosses a point at which a router logit passes the k-th largest one, the loss jumps. That
// shows as disagreement between the estimates at h and h/2, which does not involve the analytic
// gradient; then h/4 is tried, and if that segment also crosses a switch the caller draws another
// direction. Returns the relative error at the accepted step, or −1 when both steps crossed a switch.
double directional_error(const Trainable& tr, std::span<const TrainSequence> seqs, const LoraAdapter& ad,
                         const std::vector<double>& g, const std::vector<double>& u, ThreadPool& pool,
                         const std::string& what, double tolerance) {
  double gu = 0;
  for (size_t i = 0; i < u.size(); ++i) gu += g[i] * u[i];
  double h = std::min(1e-2, 1e-2 / std::max(std::abs(gu), 1e-12));
  for (int attempt = 0; attempt < 2; ++attempt, h /= 4) {
    const FdStep a = fd_step(tr, seqs, ad, g, u, h, pool), b = fd_step(tr, seqs, ad, g, u, h / 2, pool);
    if (std::abs(a.fd / a.analytic - b.fd / b.analytic) > 2 * tolerance) {
      std::printf("  %-34s h %.1e: estimates at h and h/2 disagree (%+.4e vs %+.4e): a routing switch\n",
                  what.c_str(), h, a.fd / (2 * h), b.fd / h);
      continue;
    }
    std::printf("  %-34s h %.1e  grad·u %+.9e  fd %+.9e  rel err %.2e (at h/2 %.2e)\n", what.c_str(), a.h,
                a.analytic / (2 * a.h), a.fd / (2 * a.h), a.err(), b.err());
    return a.err();
  }
  return -1;
}

// A unit direction over the modules matching `filter`: half random, half the gradient's own
// direction within that support (a purely random direction in ~10⁴ dimensions sees ~1/100 of the
// gradient, too little to stand above the noise floor on the peaked fixture; the random half still
// probes every component).
std::vector<double> mixed_direction(const LoraAdapter& ad, const std::vector<double>& g, const std::string& filter,
                                    uint64_t seed) {
  const std::vector<double> r = direction(ad, filter, seed);
  double gn = 0, un = 0;
  for (size_t j = 0; j < r.size(); ++j) gn += r[j] != 0 ? g[j] * g[j] : 0.0;
  std::vector<double> u(r.size());
  for (size_t j = 0; j < r.size(); ++j) {
    u[j] = r[j] != 0 ? r[j] + g[j] / std::sqrt(gn) : 0.0;
    un += u[j] * u[j];
  }
  for (double& x : u) x /= std::sqrt(un);
  return u;
}

// Directions over all parameters and over single modules of the first, a sliding and the last
// (full) layer; a direction whose segments cross a routing switch is replaced (at most 3 times).
void check_directional_derivatives(const Model& model, std::span<const TrainSequence> seqs, double tolerance) {
  ThreadPool pool(2);
  const Trainable* tr = model.trainable();
  ASSERT_NE(tr, nullptr);
  const LoraAdapter ad = random_adapter(*tr, 4, 2.0f, 0.05f, 5);
  const Grad grad = gradient(*tr, seqs, ad, pool);
  const std::vector<double> g = flatten(grad.g);
  std::printf("loss %.9f\n", grad.loss);
  const int64_t last = model.info().n_layers - 1;
  const std::string L0 = "layers.0.", Ll = "layers." + std::to_string(last) + ".";
  const std::vector<std::string> filters = {"",
                                            L0 + "self_attn.q_proj",
                                            L0 + "self_attn.k_proj",
                                            L0 + "self_attn.v_proj",
                                            L0 + "self_attn.o_proj",
                                            L0 + "mlp.gate_proj",
                                            L0 + "mlp.up_proj",
                                            L0 + "mlp.down_proj",
                                            "layers.1.self_attn.k_proj",
                                            Ll + "self_attn.q_proj",
                                            Ll + "self_attn.k_proj",
                                            Ll + "self_attn.o_proj",
                                            Ll + "mlp.down_proj"};
  double worst = 0;
  int replaced = 0;
  for (size_t i = 0; i < filters.size(); ++i) {
    const std::string what = filters[i].empty() ? "all modules" : filters[i];
    double err = -1;
    for (int draw = 0; draw < 4 && err < 0; ++draw) {
      err = directional_error(*tr, seqs, ad, g, mixed_direction(ad, g, filters[i], 100 + i + 1000 * draw), pool, what,
                              tolerance);
      replaced += err < 0;
    }
    EXPECT_GE(err, 0) << what << ": every direction tried crossed a routing switch";
    EXPECT_LE(err, tolerance) << what;
    worst = std::max(worst, err);
  }
  std::printf("worst relative error %.2e over %zu directions (%d replaced: routing switch)\n", worst, filters.size(),
              replaced);
}

std::vector<TrainSequence> mixed_sequences(int64_t V, int64_t canvas, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TrainSequence> seqs;
  seqs.push_back(canvas_sequence(rng, V, 5, canvas));       // prompt shorter than the window
  seqs.push_back(canvas_sequence(rng, V, 13, canvas, 3));   // longer: sliding windows cut the prompt
  return seqs;
}

TEST(DiffusionGemmaTrain, DirectionalDerivativesMatchFiniteDifferencesOnFixture) {
  auto model = load_model(test::fixture("dgemma-tiny"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const auto seqs = mixed_sequences((*model)->info().vocab_size, (*model)->info().canvas_length, 1);
  check_directional_derivatives(**model, seqs, 1e-3);
}

// Random checkpoints from the registry's writer: bf16, and with every linear, the embedding and the
// experts MLX-quantized to 4 bits (group 32; the FFN widths are multiples of it so every input size
// divides), 3 layers (2 sliding with window 4, the last full), 16 experts top-4.
class DiffusionGemmaTrainRandom : public ::testing::TestWithParam<bool> {};

TEST_P(DiffusionGemmaTrainRandom, DirectionalDerivativesMatchFiniteDifferences) {
  test::TempDir t;
  test::DgSynthSpec spec;
  spec.layers = 3;
  spec.window = 4;
  spec.experts = 16;
  spec.top_k = 4;
  spec.canvas = 8;
  spec.ffn = 64;
  spec.moe_ffn = 32;
  spec.seed = 11;
  if (GetParam()) {
    spec.linear_bits = 4;
    spec.expert_bits = 4;
    spec.group_size = 32;
  }
  ASSERT_TRUE(test::write_dgemma_synth(t.str(), spec).ok());
  auto model = load_model(t.str());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  std::printf("%s random checkpoint\n", GetParam() ? "4-bit" : "bf16");
  const auto seqs = mixed_sequences((*model)->info().vocab_size, (*model)->info().canvas_length, 7);
  check_directional_derivatives(**model, seqs, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Base, DiffusionGemmaTrainRandom, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? std::string("Quantized4Bit") : std::string("Bf16"); });

// ---- The training forward is the inference forward ----

// Σ weight · CE over the sequence's targets from the inference path: encoder prefill of the prompt
// (its logits serve prompt-row targets), then one decoder step over the canvas without self-conditioning.
double inference_loss(const Model& m, const TrainSequence& s, ThreadPool& pool) {
  const int64_t V = m.info().vocab_size, T = static_cast<int64_t>(s.tokens.size());
  const int64_t P = s.canvas_begin < 0 ? T : s.canvas_begin;
  std::vector<float> logits(static_cast<size_t>(T * V));
  auto cache = m.make_cache(T);
  if (P > 0) {
    ForwardBatch enc;
    enc.tokens = std::span<const int32_t>(s.tokens.data(), P);
    enc.mask = MaskMode::kCausal;
    EXPECT_TRUE(m.forward(enc, *cache, logits.data(), pool).ok());
  }
  if (P < T) {
    ForwardBatch dec;
    dec.tokens = std::span<const int32_t>(s.tokens.data() + P, T - P);
    dec.pos0 = P;
    dec.mask = MaskMode::kFull;
    dec.write_cache = false;
    EXPECT_TRUE(m.forward(dec, *cache, logits.data() + P * V, pool).ok());
  }
  double loss = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (s.targets[t] < 0) continue;
    const float* z = logits.data() + t * V;
    const double mx = *std::max_element(z, z + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(z[v] - mx);
    loss += s.weight * (mx + std::log(sum) - z[s.targets[t]]);
  }
  return loss;
}

TEST(DiffusionGemmaTrain, LossEqualsInferenceForwardWithTheAdapter) {
  const std::string dir = test::fixture("dgemma-tiny");
  auto base = load_model(dir);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  const Trainable* tr = (*base)->trainable();
  ASSERT_NE(tr, nullptr);
  const int64_t V = (*base)->info().vocab_size, Lc = (*base)->info().canvas_length;
  auto shared = std::make_shared<LoraAdapter>(random_adapter(*tr, 4, 2.0f, 0.05f, 9));
  const LoraAdapter& ad = *shared;
  ASSERT_TRUE(validate_adapter(**base, ad).ok());
  const std::unique_ptr<Model> with = with_adapter(**base, shared);
  std::mt19937_64 rng(3);
  std::vector<TrainSequence> seqs = mixed_sequences(V, Lc, 2);
  seqs.push_back(canvas_sequence(rng, V, 0, Lc));  // a canvas over an empty cache
  TrainSequence enc = canvas_sequence(rng, V, 11, 0);  // encoder rows only, AR-style targets
  enc.canvas_begin = -1;
  for (size_t t = 0; t + 1 < enc.tokens.size(); ++t) enc.targets[t] = enc.tokens[t + 1];
  enc.weight = 0.1f;
  seqs.push_back(enc);
  seqs[1].targets[3] = 7;  // a prompt-row target next to canvas rows
  ThreadPool pool(2);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const double train = gradient(*tr, std::span(&seqs[i], 1), ad, pool).loss;
    const double inf = inference_loss(*with, seqs[i], pool);
    const double base_inf = inference_loss(**base, seqs[i], pool);
    std::printf("sequence %zu: training loss %.9f, inference loss %.9f (base %.9f)\n", i, train, inf, base_inf);
    EXPECT_NEAR(train, inf, 2e-5 * std::abs(inf)) << "sequence " << i;
    EXPECT_GT(std::abs(inf - base_inf), 1e-3 * std::abs(inf)) << "the adapter should change the loss";
  }
}

TEST(DiffusionGemmaTrain, LoraTargetsAreTheDecoderBlocksLinears) {
  auto model = load_model(test::fixture("dgemma-tiny"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const auto targets = (*model)->trainable()->lora_targets(-1);
  ASSERT_EQ(targets.size(), 3u * 7 + 6);  // layer 3 is full attention: no v_proj
  EXPECT_EQ(targets[0].first, "model.decoder.layers.0.self_attn.q_proj");
  EXPECT_EQ(targets[0].second, (std::pair<int64_t, int64_t>{64, 64}));
  EXPECT_EQ(targets[2].first, "model.decoder.layers.0.self_attn.v_proj");
  EXPECT_EQ(targets[21].first, "model.decoder.layers.3.self_attn.q_proj");
  EXPECT_EQ(targets[21].second, (std::pair<int64_t, int64_t>{64, 128}));
  EXPECT_EQ(targets[22].first, "model.decoder.layers.3.self_attn.k_proj");
  EXPECT_EQ(targets[23].first, "model.decoder.layers.3.self_attn.o_proj");
  EXPECT_EQ(targets[23].second, (std::pair<int64_t, int64_t>{128, 64}));
  EXPECT_EQ((*model)->trainable()->lora_targets(1).size(), 6u);
  // The same modules and sizes as the inference forward applies adapters to.
  const std::vector<LoraTarget> inference = (*model)->adapter_targets();
  ASSERT_EQ(inference.size(), targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    EXPECT_EQ(inference[i].module, targets[i].first);
    EXPECT_EQ(inference[i].in, targets[i].second.first);
    EXPECT_EQ(inference[i].out, targets[i].second.second);
  }
}

TEST(DiffusionGemmaTrain, RejectsBadSequencesAndForeignModules) {
  auto model = load_model(test::fixture("dgemma-tiny"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const Trainable* tr = (*model)->trainable();
  ThreadPool pool(1);
  LoraAdapter ad = random_adapter(*tr, 2, 1.0f, 0.0f, 1);
  std::mt19937_64 rng(1);
  auto expect_invalid = [&](std::vector<TrainSequence> seqs, const LoraAdapter& a, const std::string& needle) {
    LoraAdapter g = a.zeros_like();
    auto st = tr->accumulate_lora_gradients(seqs, a, g, {}, pool);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(st.status().ToString().find(needle), std::string::npos) << st.status().ToString();
  };
  TrainSequence s = canvas_sequence(rng, 1024, 4, 16);
  s.key_end.assign(s.tokens.size(), 1);
  expect_invalid({s}, ad, "key_end");
  s = canvas_sequence(rng, 1024, 4, 16);
  s.canvas_begin = 40;
  expect_invalid({s}, ad, "canvas_begin");
  s = canvas_sequence(rng, 1024, 4, 16);
  s.tokens[2] = 1024;
  expect_invalid({s}, ad, "outside the vocabulary");
  LoraAdapter foreign = ad;
  foreign.modules["model.decoder.layers.3.self_attn.v_proj"] = ad.modules.at("model.decoder.layers.0.self_attn.k_proj");
  expect_invalid({canvas_sequence(rng, 1024, 4, 16)}, foreign, "not a LoRA target");
  LoraAdapter wrong = ad;
  wrong.modules["model.decoder.layers.3.self_attn.q_proj"] = ad.modules.at("model.decoder.layers.0.self_attn.q_proj");
  expect_invalid({canvas_sequence(rng, 1024, 4, 16)}, wrong, "shape");
}

TEST(DiffusionGemmaTrain, GradientCheckpointingGivesTheSameGradients) {
  auto model = load_model(test::fixture("dgemma-tiny"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const Trainable* tr = (*model)->trainable();
  ThreadPool pool(2);
  const LoraAdapter ad = random_adapter(*tr, 4, 2.0f, 0.05f, 5);
  const auto seqs = mixed_sequences((*model)->info().vocab_size, (*model)->info().canvas_length, 4);
  const Grad on = gradient(*tr, seqs, ad, pool, true), off = gradient(*tr, seqs, ad, pool, false);
  EXPECT_EQ(on.loss, off.loss);  // the same forward
  // The recomputed activations are bit-identical; sums split across the pool's workers (the head's
  // input gradient) may round differently from run to run, hence a tolerance, not equality.
  const std::vector<double> a = flatten(on.g), b = flatten(off.g);
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  std::printf("checkpointing on vs off: relative L2 difference %.2e over %zu parameters\n", std::sqrt(num / den), a.size());
  EXPECT_LE(std::sqrt(num / den), 1e-6);
}

// ---- Learning ----

// Adam as MLX runs it (L.6: no bias correction).
struct Adam {
  double lr, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  LoraAdapter m, v;
  Adam(const LoraAdapter& p, double lr_) : lr(lr_), m(p.zeros_like()), v(p.zeros_like()) {}
  void step(LoraAdapter& p, const LoraAdapter& g) {
    for (auto& [name, pm] : p.modules) {
      auto upd = [&](std::vector<float>& w, const std::vector<float>& gr, std::vector<float>& mm, std::vector<float>& vv) {
        for (size_t i = 0; i < w.size(); ++i) {
          mm[i] = static_cast<float>(b1 * mm[i] + (1 - b1) * gr[i]);
          vv[i] = static_cast<float>(b2 * vv[i] + (1 - b2) * gr[i] * gr[i]);
          w[i] = static_cast<float>(w[i] - lr * mm[i] / (std::sqrt(vv[i]) + eps));
        }
      };
      upd(pm.a, g.modules.at(name).a, m.modules.at(name).a, v.modules.at(name).a);
      upd(pm.b, g.modules.at(name).b, m.modules.at(name).b, v.modules.at(name).b);
    }
  }
};

// One canvas example per pair (L.8, completions shorter than a canvas): the prompt, then the
// completion padded with pad 0 to the canvas length, each canvas position replaced by a uniform id
// with probability t ~ U(t_min, t_max); targets at the replaced positions.
std::vector<TrainSequence> canvas_batch(const std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>>& pairs,
                                        int64_t V, int64_t Lc, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u01(0, 1), noise(0.4, 0.8);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(V - 1));
  std::vector<TrainSequence> batch;
  int64_t corrupted = 0;
  for (const auto& [prompt, completion] : pairs) {
    TrainSequence s;
    s.tokens = prompt;
    s.targets.assign(prompt.size(), -1);
    s.canvas_begin = static_cast<int64_t>(prompt.size());
    const double t = noise(rng);
    for (int64_t i = 0; i < Lc; ++i) {
      const int32_t y = i < static_cast<int64_t>(completion.size()) ? completion[i] : 0;
      const bool c = u01(rng) < t;
      s.tokens.push_back(c ? tok(rng) : y);
      s.targets.push_back(c ? y : -1);
      corrupted += c;
    }
    batch.push_back(std::move(s));
  }
  for (TrainSequence& s : batch) s.weight = 1.0f / static_cast<float>(std::max<int64_t>(corrupted, 1));
  return batch;
}

// How many of `pairs` the canvas decoder reproduces on `model` (seed 1; confidence-threshold with τ 0.9,
// or the checkpoint's entropy-bound sampler).
int count_recalled(const Model& model, ThreadPool& pool,
                   const std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>>& pairs, bool show_misses,
                   CanvasSampler sampler = CanvasSampler::kConfidenceThreshold) {
  auto md = ModelDir::open(test::fixture("dgemma-tiny"));
  auto copts = canvas_options_from_generation_config((*md)->generation_config);
  EXPECT_TRUE(copts.ok());
  copts->sampler = sampler;
  copts->threshold = 0.9;
  copts->seed = 1;
  copts->max_new_tokens = model.info().canvas_length;
  int recalled = 0;
  for (const auto& [prompt, completion] : pairs) {
    const std::vector<int32_t> want(completion.begin(), completion.end() - 1);  // output stops before EOS
    auto r = canvas_generate(model, pool, prompt, *copts);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) continue;
    recalled += r->tokens == want;
    if (show_misses && r->tokens != want) {
      std::printf("  not recalled: want");
      for (int32_t x : want) std::printf(" %d", x);
      std::printf(", got");
      for (int32_t x : r->tokens) std::printf(" %d", x);
      std::printf("\n");
    }
  }
  return recalled;
}

// Trains a fresh adapter on four random pairs (seeded) for `steps` Adam steps and returns how many
// the confidence-threshold canvas decoder recalls with it (ForwardBatch::adapter); `base_recalled`
// receives the count without it, `entropy_bound_recalled` the entropy-bound sampler's.
int learn_and_recall(uint64_t seed, int steps, int* base_recalled, int* entropy_bound_recalled) {
  const std::string dir = test::fixture("dgemma-tiny");
  auto model = load_model(dir);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return -1;
  const Trainable* tr = (*model)->trainable();
  const int64_t V = (*model)->info().vocab_size, Lc = (*model)->info().canvas_length;
  // Four pre-tokenized prompt → completion pairs; completions end with EOS (1), ids avoid the EOS set.
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(200, 1000);
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> pairs;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> p = {2}, c;
    for (int j = 0; j < 4 + i; ++j) p.push_back(tok(rng));
    for (int j = 0; j < 6 + 2 * i; ++j) c.push_back(tok(rng));
    c.push_back(1);
    pairs.emplace_back(p, c);
  }
  LoraAdapter ad = random_adapter(*tr, 8, 2.0f, 0.0f, 17);  // fresh: b = 0
  Adam adam(ad, 2e-3);
  ThreadPool pool(1);  // tiny matrices: one thread is faster than handing them to a pool
  TrainOptions opts;
  opts.grad_checkpoint = false;  // the same gradients (tested above), a third less work
  double first = 0, last = 0;
  for (int step = 0; step < steps; ++step) {
    const auto batch = canvas_batch(pairs, V, Lc, rng);
    LoraAdapter g = ad.zeros_like();
    auto st = tr->accumulate_lora_gradients(batch, ad, g, opts, pool);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    if (!st.ok()) return -1;
    adam.step(ad, g);
    if (step == 0) first = st->loss;
    last = st->loss;
  }
  std::printf("canvas loss: step 1 %.4f, step %d %.4f\n", first, steps, last);
  EXPECT_LT(last, 0.1 * first);
  const auto tuned = with_adapter(**model, std::make_shared<LoraAdapter>(ad));
  const int recalled = count_recalled(*tuned, pool, pairs, true);
  *base_recalled = count_recalled(**model, pool, pairs, false);
  *entropy_bound_recalled = count_recalled(*tuned, pool, pairs, true, CanvasSampler::kEntropyBound);
  std::printf("recalled %d/4 with the adapter (entropy-bound sampler: %d/4), %d/4 without\n", recalled,
              *entropy_bound_recalled, *base_recalled);
  return recalled;
}

TEST(DiffusionGemmaTrain, CanvasAdapterMakesTheCanvasDecoderReproduceCompletions) {
  int base = -1, entropy_bound = -1;
  EXPECT_EQ(learn_and_recall(2026, 800, &base, &entropy_bound), 4);
  EXPECT_EQ(entropy_bound, 4);
  EXPECT_EQ(base, 0);
}

}  // namespace
}  // namespace optiq
