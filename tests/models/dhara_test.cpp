// dhara-specific properties on random small configs (block-mask chunks, the Canon conv ring, self-
// speculation on real weights, the quantized fast paths). What every model must do is in the
// conformance suite (tests/models/conformance_test.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "decode/generate.h"
#include "io/model_dir.h"
#include "kernels/x86/matmul_q_vnni.h"  // vnni_available(): whether the loader packs
#include "kernels/weight.h"
#include "models/model.h"
#include "models/registry.h"
#include "models/weight_loader.h"
#include "tests/models/conformance.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

using test::dhara_small_config;

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

class DharaProperty : public ::testing::TestWithParam<int> {
 protected:
  nlohmann::json config() const {
    switch (GetParam()) {
      case 0: return dhara_small_config(64, 2, 96, 4, 2, 16, 67);
      case 1: return dhara_small_config(48, 3, 80, 6, 3, 8, 101);
      default: return dhara_small_config(32, 1, 40, 2, 1, 16, 40);
    }
  }
};

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
  EXPECT_LE(test::max_abs_diff(full, chunked), 1e-4);
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
    EXPECT_LE(test::max_abs_diff(expect, forward_rows(*rm.model, *c, y, MaskMode::kCausal, true, pool)), 1e-4) << "k=" << k;
    // Steps x[0, k] and undo the last one; then y.
    auto u = rm.model->make_cache(64);
    forward_rows(*rm.model, *u, a, MaskMode::kCausal, true, pool);
    for (int i = 0; i <= k && i < 7; ++i) step(*u, x[i]);
    if (k < 7) {
      ASSERT_TRUE(u->truncate(10 + k).ok());
      EXPECT_FALSE(u->truncate(9 + k).ok()) << "only the last step can be undone";
    }
    EXPECT_LE(test::max_abs_diff(expect, forward_rows(*rm.model, *u, y, MaskMode::kCausal, true, pool)), 1e-4) << "k=" << k;
  }
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

INSTANTIATE_TEST_SUITE_P(Configs, DharaProperty, ::testing::Values(0, 1, 2));

// A 4-bit model whose matrices are large enough for the int8-activation kernels (AMX tiles for
// chunks of 8+ rows where the CPU has them; for decode and row-invariant chunks the packed copies
// (LoadOptions::repack) or, without them, the VNNI rows): the paths AR decode and
// self-speculation's verify really take on dhara-250m, which the tiny fixtures never reach.
class DharaQuantizedFastPath : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    // q/o 384×384, gate/up/down 1024×384, head 1024×384: above the exact path's 2^17 weights.
    const nlohmann::json cfg = dhara_small_config(384, 2, 1024, 6, 2, 64, 1024);
    Status s = test::write_random_dhara_4bit(cfg, src.str(), dst.str(), 77);
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
    nlohmann::json cfg = dhara_small_config(C, L, F, H, Hkv, D, V);
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
