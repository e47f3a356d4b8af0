// Property tests for dhara and the decoders on random small configs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "decode/generate.h"
#include "io/model_dir.h"
#include "kernels/x86/matmul_q_vnni.h"  // vnni_available(): whether the loader packs
#include "kernels/weight.h"
#include "models/dhara.h"
#include "models/model.h"
#include "models/weight_loader.h"
#include "quant/writer.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

nlohmann::json small_config(int64_t C, int64_t layers, int64_t F, int64_t H, int64_t Hkv, int64_t D, int64_t V) {
  return {{"model_type", "dhara_ar"}, {"hidden_size", C}, {"num_hidden_layers", layers}, {"intermediate_size", F},
          {"num_attention_heads", H}, {"num_key_value_heads", Hkv}, {"head_dim", D}, {"vocab_size", V},
          {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"max_position_embeddings", 512},
          {"tie_word_embeddings", true}, {"use_qk_norm", true}, {"use_logit_softcap", true}, {"logit_softcap", 30.0},
          {"canon_set", "ABCD"}, {"canon_kernel", 4}, {"canon_residual", true}, {"mask_token_id", V - 1},
          {"eos_token_id", V - 2}};
}

struct RandomModel {
  test::TempDir dir;
  std::unique_ptr<Model> model;
  explicit RandomModel(const nlohmann::json& cfg, uint64_t seed = 1, DType dt = DType::kF32) {
    Status s = write_random_dhara(cfg, dir.str(), dt, seed);
    EXPECT_TRUE(s.ok()) << s.ToString();
    auto m = load_model(dir.str());
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    model = std::move(m.value());
  }
};

std::vector<int32_t> random_ids(int n, int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(V - 2));  // no mask/eos
  return v;
}

std::vector<float> forward_rows(const Model& m, Cache& c, std::span<const int32_t> toks, MaskMode mode, bool write,
                                ThreadPool& pool, int block_len = 32, bool row_invariant = false) {
  std::vector<float> out(toks.size() * static_cast<size_t>(m.info().vocab_size));
  ForwardBatch b;
  b.tokens = toks;
  b.pos0 = c.length();
  b.mask = mode;
  b.block_len = block_len;
  b.write_cache = write;
  b.row_invariant = row_invariant;
  Status s = m.forward(b, c, out.data(), pool);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// The logits of `y` in a fresh cache that first forwarded `prefix` and then `middle`, as causal chunks:
// the reference for caches that reached the same tokens another way.
std::vector<float> logits_after(const Model& m, std::span<const int32_t> prefix, std::span<const int32_t> middle,
                                std::span<const int32_t> y, ThreadPool& pool) {
  auto c = m.make_cache(128);
  forward_rows(m, *c, prefix, MaskMode::kCausal, true, pool);
  if (!middle.empty()) forward_rows(m, *c, middle, MaskMode::kCausal, true, pool);
  return forward_rows(m, *c, y, MaskMode::kCausal, true, pool);
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

class DharaProperty : public ::testing::TestWithParam<int> {
 protected:
  nlohmann::json config() const {
    switch (GetParam()) {
      case 0: return small_config(64, 2, 96, 4, 2, 16, 67);
      case 1: return small_config(48, 3, 80, 6, 3, 8, 101);
      default: return small_config(32, 1, 40, 2, 1, 16, 40);
    }
  }
};

TEST_P(DharaProperty, ChunkedCachedForwardEqualsFullForward) {
  RandomModel rm(config(), 7 + GetParam());
  ThreadPool pool(2);
  const int64_t V = rm.model->info().vocab_size;
  auto ids = random_ids(45, V, 3);
  auto full_cache = rm.model->make_cache(128);
  auto full = forward_rows(*rm.model, *full_cache, ids, MaskMode::kCausal, true, pool);
  auto cache = rm.model->make_cache(128);
  std::vector<float> chunked;
  const int sizes[] = {5, 1, 7, 1, 1, 13, 17};
  size_t at = 0;
  for (int n : sizes) {
    auto part = forward_rows(*rm.model, *cache, std::span<const int32_t>(ids).subspan(at, n), MaskMode::kCausal, true, pool);
    chunked.insert(chunked.end(), part.begin(), part.end());
    at += n;
  }
  ASSERT_EQ(at, ids.size());
  EXPECT_LE(max_diff(full, chunked), 1e-4);
}

TEST_P(DharaProperty, BlockMaskChunksAlignedToBlocksEqualFullForward) {
  RandomModel rm(config(), 11 + GetParam());
  ThreadPool pool(2);
  auto ids = random_ids(40, rm.model->info().vocab_size, 5);
  auto c1 = rm.model->make_cache(128);
  auto full = forward_rows(*rm.model, *c1, ids, MaskMode::kBlock, true, pool, 8);
  auto c2 = rm.model->make_cache(128);
  std::vector<float> chunked;
  for (size_t at = 0; at < ids.size(); at += 8) {
    auto part = forward_rows(*rm.model, *c2, std::span<const int32_t>(ids).subspan(at, 8), MaskMode::kBlock, true, pool, 8);
    chunked.insert(chunked.end(), part.begin(), part.end());
  }
  EXPECT_LE(max_diff(full, chunked), 1e-4);
}

TEST_P(DharaProperty, RestoreThenReforwardEqualsNeverForwarded) {
  RandomModel rm(config(), 13 + GetParam());
  ThreadPool pool(2);
  const int64_t V = rm.model->info().vocab_size;
  auto a = random_ids(19, V, 1), x = random_ids(9, V, 2), y = random_ids(6, V, 3);
  // Fresh: a then y.
  const auto expect = logits_after(*rm.model, a, {}, y, pool);
  // a, snapshot, x (written), restore, y.
  auto c = rm.model->make_cache(128);
  forward_rows(*rm.model, *c, a, MaskMode::kCausal, true, pool);
  auto snap = c->snapshot();
  forward_rows(*rm.model, *c, x, MaskMode::kBlock, true, pool);
  c->restore(*snap);
  EXPECT_EQ(c->length(), 19);
  auto got = forward_rows(*rm.model, *c, y, MaskMode::kCausal, true, pool);
  EXPECT_LE(max_diff(expect, got), 1e-5);
}

TEST_P(DharaProperty, TruncateInsideLastChunkEqualsForwardingThePrefix) {
  RandomModel rm(config(), 17 + GetParam());
  ThreadPool pool(2);
  const int64_t V = rm.model->info().vocab_size;
  auto a = random_ids(21, V, 4), x = random_ids(8, V, 5), y = random_ids(5, V, 6);
  for (int m = 0; m <= 8; ++m) {
    const auto expect = logits_after(*rm.model, a, std::span<const int32_t>(x).first(m), y, pool);
    auto c = rm.model->make_cache(128);
    forward_rows(*rm.model, *c, a, MaskMode::kCausal, true, pool);
    forward_rows(*rm.model, *c, x, MaskMode::kCausal, true, pool);
    ASSERT_TRUE(c->truncate(21 + m).ok());
    auto got = forward_rows(*rm.model, *c, y, MaskMode::kCausal, true, pool);
    EXPECT_LE(max_diff(expect, got), 1e-4) << "m=" << m;
  }
}

// Decode steps keep the conv state in a ring (models/dhara.cpp): steps, a snapshot taken at some ring
// position and restored at another, and undoing the last step must all equal a cache that only ever
// forwarded the same tokens in one chunk.
TEST_P(DharaProperty, OneTokenStepsSnapshotAndUndoEqualChunkedForward) {
  RandomModel rm(config(), 29 + GetParam());
  ThreadPool pool(2);
  const int64_t V = rm.model->info().vocab_size;
  auto a = random_ids(10, V, 7), x = random_ids(7, V, 8), y = random_ids(4, V, 9);
  auto step = [&](Cache& c, int32_t tok) {
    return forward_rows(*rm.model, c, std::span<const int32_t>(&tok, 1), MaskMode::kCausal, true, pool);
  };
  for (int k = 0; k <= 7; ++k) {
    // Reference: a ‖ x[0, k) as chunks, then y.
    const auto expect = logits_after(*rm.model, a, std::span<const int32_t>(x).first(k), y, pool);
    // Steps x[0, k), snapshot, three more steps, restore; then y.
    auto c = rm.model->make_cache(64);
    forward_rows(*rm.model, *c, a, MaskMode::kCausal, true, pool);
    for (int i = 0; i < k; ++i) step(*c, x[i]);
    auto snap = c->snapshot();
    for (int i = 0; i < 3; ++i) step(*c, y[i]);
    c->restore(*snap);
    EXPECT_LE(max_diff(expect, forward_rows(*rm.model, *c, y, MaskMode::kCausal, true, pool)), 1e-4) << "k=" << k;
    // Steps x[0, k] and undo the last one; then y.
    auto u = rm.model->make_cache(64);
    forward_rows(*rm.model, *u, a, MaskMode::kCausal, true, pool);
    for (int i = 0; i <= k && i < 7; ++i) step(*u, x[i]);
    if (k < 7) {
      ASSERT_TRUE(u->truncate(10 + k).ok());
      EXPECT_FALSE(u->truncate(9 + k).ok()) << "only the last step can be undone";
    }
    EXPECT_LE(max_diff(expect, forward_rows(*rm.model, *u, y, MaskMode::kCausal, true, pool)), 1e-4) << "k=" << k;
  }
}

TEST_P(DharaProperty, ReadOnlyForwardLeavesCacheUnchanged) {
  RandomModel rm(config(), 19 + GetParam());
  ThreadPool pool(2);
  const int64_t V = rm.model->info().vocab_size;
  auto a = random_ids(10, V, 7), x = random_ids(8, V, 8), y = random_ids(4, V, 9);
  auto c1 = rm.model->make_cache(64);
  forward_rows(*rm.model, *c1, a, MaskMode::kCausal, true, pool);
  auto expect = forward_rows(*rm.model, *c1, y, MaskMode::kCausal, true, pool);
  auto c2 = rm.model->make_cache(64);
  forward_rows(*rm.model, *c2, a, MaskMode::kCausal, true, pool);
  forward_rows(*rm.model, *c2, x, MaskMode::kBlock, false, pool);
  EXPECT_EQ(c2->length(), 10);
  auto got = forward_rows(*rm.model, *c2, y, MaskMode::kCausal, true, pool);
  EXPECT_LE(max_diff(expect, got), 1e-6);
}

TEST_P(DharaProperty, SelfSpeculationEqualsGreedyAR) {
  RandomModel rm(config(), 23 + GetParam(), DType::kBF16);
  ThreadPool pool(2);
  const int64_t V = rm.model->info().vocab_size;
  for (uint64_t p = 0; p < 3; ++p) {
    auto prompt = random_ids(5 + 7 * static_cast<int>(p), V, 100 + p);
    for (float penalty : {1.0f, 1.3f}) {
      GenerateOptions ar;
      ar.max_new_tokens = 40;
      ar.sampling.repetition_penalty = penalty;
      auto ref = generate(*rm.model, pool, prompt, ar);
      ASSERT_TRUE(ref.ok()) << ref.status().ToString();
      for (int k = 2; k <= 16; ++k) {
        GenerateOptions ss = ar;
        ss.mode = DecodeMode::kSelfSpec;
        ss.draft_len = k;
        auto got = generate(*rm.model, pool, prompt, ss);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        // Equal unless EOS ended self-speculation as the next anchor (then a prefix).
        const auto& a = ref->tokens;
        const auto& b = got->tokens;
        ASSERT_LE(b.size(), a.size());
        EXPECT_TRUE(std::equal(b.begin(), b.end(), a.begin())) << "prompt " << p << " k=" << k;
        if (!got->stopped) {
          EXPECT_EQ(a, b) << "prompt " << p << " k=" << k;
        }
        int sum = 0;
        for (int m : got->accepted_per_round) {
          EXPECT_GE(m, 1);
          EXPECT_LE(m, k);
          sum += m;
        }
        EXPECT_GE(sum, static_cast<int>(b.size()));
        // Exactly two forwards per round plus the prefill.
        EXPECT_EQ(got->forwards, 1 + 2 * static_cast<int64_t>(got->accepted_per_round.size()));
      }
    }
  }
}

// Wraps a model and records the rows of every forward, to check what decoders ask for.
class CountingModel final : public Model {
 public:
  explicit CountingModel(const Model& m) : inner_(m) {}
  const ModelInfo& info() const override { return inner_.info(); }
  std::unique_ptr<Cache> make_cache(int64_t n) const override { return inner_.make_cache(n); }
  Status forward(const ForwardBatch& b, Cache& c, float* logits, ThreadPool& pool) const override {
    calls.push_back({static_cast<int64_t>(b.tokens.size()), b.write_cache, b.mask});
    return inner_.forward(b, c, logits, pool);
  }
  struct Call {
    int64_t rows;
    bool write;
    MaskMode mask;
  };
  mutable std::vector<Call> calls;

 private:
  const Model& inner_;
};

TEST_P(DharaProperty, DiffusionStepForwardsOnlyTheBlock) {
  RandomModel rm(config(), 29 + GetParam());
  CountingModel counting(*rm.model);
  ThreadPool pool(2);
  auto prompt = random_ids(37, rm.model->info().vocab_size, 11);
  GenerateOptions o;
  o.mode = DecodeMode::kDiffusion;
  o.max_new_tokens = 64;
  o.sampling.repetition_penalty = 1.3f;
  auto r = generate(counting, pool, prompt, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_GE(counting.calls.size(), 2u);
  EXPECT_EQ(counting.calls[0].rows, 37);  // block-causal prefill
  EXPECT_EQ(counting.calls[0].mask, MaskMode::kBlock);
  size_t steps = 0;
  for (size_t i = 1; i < counting.calls.size(); ++i) {
    EXPECT_EQ(counting.calls[i].rows, 32) << "forward " << i;
    EXPECT_EQ(counting.calls[i].mask, MaskMode::kBlock);
    steps += counting.calls[i].write ? 0 : 1;
  }
  size_t recorded = 0;
  for (auto& b : r->committed_per_step) recorded += b.size();
  EXPECT_EQ(steps, recorded);  // one refinement forward per recorded step, plus one commit per block
  EXPECT_EQ(counting.calls.size() - 1 - steps, r->committed_per_step.size());
}

TEST_P(DharaProperty, TwoCachesOnOneModelDoNotInteract) {
  RandomModel rm(config(), 31 + GetParam());
  ThreadPool pool(2);
  const int64_t V = rm.model->info().vocab_size;
  auto a = random_ids(12, V, 1), b = random_ids(9, V, 2);
  auto ca = rm.model->make_cache(64), cb = rm.model->make_cache(64);
  auto ra1 = forward_rows(*rm.model, *ca, a, MaskMode::kCausal, true, pool);
  forward_rows(*rm.model, *cb, b, MaskMode::kCausal, true, pool);
  auto ra2 = forward_rows(*rm.model, *ca, b, MaskMode::kCausal, true, pool);
  const auto expect = logits_after(*rm.model, a, {}, b, pool);
  EXPECT_LE(max_diff(expect, ra2), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Configs, DharaProperty, ::testing::Values(0, 1, 2));

TEST(DharaForward, RejectsBadInputsWithoutChangingTheCache) {
  RandomModel rm(small_config(32, 1, 40, 2, 1, 16, 40));
  ThreadPool pool(1);
  auto c = rm.model->make_cache(16);
  std::vector<float> logits(40 * 40);
  std::vector<int32_t> bad{1, 2, 40};
  ForwardBatch b;
  b.tokens = bad;
  Status s = rm.model->forward(b, *c, logits.data(), pool);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("token id 40"), std::string::npos) << s.message();
  std::vector<int32_t> too_long(17, 1);
  b.tokens = too_long;
  EXPECT_FALSE(rm.model->forward(b, *c, logits.data(), pool).ok());
  std::vector<int32_t> ok{1, 2};
  b.tokens = ok;
  b.pos0 = 5;
  EXPECT_FALSE(rm.model->forward(b, *c, logits.data(), pool).ok());
  EXPECT_EQ(c->length(), 0);
  EXPECT_FALSE(c->truncate(3).ok());
}

// A 4-bit model whose matrices are large enough for the int8-activation kernels (AMX tiles for
// chunks of 8+ rows where the CPU has them; for decode and row-invariant chunks the packed copies
// (LoadOptions::repack) or, without them, the VNNI rows): the paths AR decode and
// self-speculation's verify really take on dhara-250m, which the tiny fixtures never reach.
class DharaQuantizedFastPath : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    // q/o 384×384, gate/up/down 1024×384, head 1024×384: above the exact path's 2^17 weights.
    const nlohmann::json cfg = small_config(384, 2, 1024, 6, 2, 64, 1024);
    ASSERT_TRUE(write_random_dhara(cfg, src.str(), DType::kBF16, 77).ok());
    QuantizedModelSpec spec;
    spec.per_module_entries = false;
    spec.modules["model.embed_tokens"] = {};
    for (int l = 0; l < 2; ++l)
      for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
        spec.modules["model.layers." + std::to_string(l) + "." + m] = {};
    Status s = write_quantized_model(src.str(), dst.str(), spec);
    ASSERT_TRUE(s.ok()) << s.ToString();
    LoadOptions lo;
    lo.repack = GetParam();
    auto m = load_model(dst.str(), lo);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model = std::move(m.value());
  }
  test::TempDir src, dst;
  std::unique_ptr<Model> model;
};

// Under row-invariant numerics a causal chunk computes, bit for bit, what one-row forwards compute.
TEST_P(DharaQuantizedFastPath, RowInvariantChunkEqualsOneRowForwards) {
  ThreadPool pool(2);
  const int64_t V = model->info().vocab_size;
  const auto prompt = random_ids(12, V, 5), more = random_ids(24, V, 6);
  auto a = model->make_cache(128), b = model->make_cache(128);
  forward_rows(*model, *a, prompt, MaskMode::kCausal, true, pool);
  forward_rows(*model, *b, prompt, MaskMode::kCausal, true, pool);
  const std::vector<float> chunk = forward_rows(*model, *a, more, MaskMode::kCausal, true, pool, 32,
                                               /*row_invariant=*/true);
  for (size_t t = 0; t < more.size(); ++t) {
    const auto row = forward_rows(*model, *b, std::span<const int32_t>(&more[t], 1), MaskMode::kCausal, true, pool);
    ASSERT_TRUE(std::equal(row.begin(), row.end(), chunk.begin() + static_cast<int64_t>(t) * V)) << "row " << t;
  }
}

TEST_P(DharaQuantizedFastPath, SelfSpeculationEqualsGreedyAR) {
  ThreadPool pool(2);
  const int64_t V = model->info().vocab_size;
  for (uint64_t p = 0; p < 2; ++p) {
    const auto prompt = random_ids(9 + 11 * static_cast<int>(p), V, 200 + p);
    GenerateOptions ar;
    ar.max_new_tokens = 48;
    ar.stop_ids = {-1};
    auto ref = generate(*model, pool, prompt, ar);
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    for (int k : {8, 16, 32}) {
      GenerateOptions ss = ar;
      ss.mode = DecodeMode::kSelfSpec;
      ss.draft_len = k;
      auto got = generate(*model, pool, prompt, ss);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(ref->tokens, got->tokens) << "prompt " << p << " k=" << k;
    }
  }
}

// The loader makes packed copies exactly when asked and the CPU runs the packed kernel; matrices on
// the exact path (<= 2^17 weights) get none.
TEST_P(DharaQuantizedFastPath, LoaderPacksLargeMatricesWhenAsked) {
  auto md = ModelDir::open(dst.str());
  ASSERT_TRUE(md.ok()) << md.status().ToString();
  (*md)->repack = GetParam();
  WeightLoader wl(**md);
  auto gate = wl.linear("model.layers.0.mlp.gate_proj", 1024, 384);
  ASSERT_TRUE(gate.ok()) << gate.status().ToString();
  EXPECT_EQ(gate->packed != nullptr, GetParam() && vnni_available());
  auto k = wl.linear("model.layers.0.self_attn.k_proj", 128, 384);  // 49152 weights: exact path
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->packed, nullptr);
}

INSTANTIATE_TEST_SUITE_P(Repack, DharaQuantizedFastPath, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Packed" : "FileLayout"; });

// The bytes a decode step reads besides the weights, for the bench's roofline: fp32 K and V per
// attended position in every layer, and the kernel − 1 state rows of each Canon conv the config has.
TEST(DharaInfo, CacheBytesFollowTheConfig) {
  const int64_t C = 48, L = 3, F = 80, H = 6, Hkv = 3, D = 8, V = 101, P = 3;  // canon_kernel 4
  for (const char* set : {"ABCD", "AC"}) {
    nlohmann::json cfg = small_config(C, L, F, H, Hkv, D, V);
    cfg["canon_set"] = set;
    RandomModel rm(cfg);
    ASSERT_NE(rm.model, nullptr);
    const ModelInfo& info = rm.model->info();
    EXPECT_EQ(info.kv_bytes_per_position, sizeof(float) * 2 * L * Hkv * D) << set;
    const int64_t widths = std::string(set) == "ABCD" ? C + H * D + 2 * Hkv * D + C + F : 2 * C;
    EXPECT_EQ(info.state_bytes_per_token, sizeof(float) * P * widths * L) << set;
  }
}

}  // namespace
}  // namespace optiq
