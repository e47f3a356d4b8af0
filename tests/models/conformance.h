// The model-conformance suite (STYLE.md §2.10): properties every architecture's Model and Cache
// must have, checked through the Model interface only (load_model, make_cache, forward) so that an
// architecture joins with one line in tests/models/conformance_test.cpp.
//
// A subject is a way to get a small model directory (a fixture, or a checkpoint a writer makes in a
// scratch directory) and the tolerance on logits where two computations differ only in how the same
// rows were split into chunks (see ModelSubject::tol).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <ostream>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "models/registry.h"
#include "models/model.h"
#include "quant/writer.h"
#include "tests/test_util.h"

namespace optiq::test {

struct ModelSubject {
  std::string name;  // gtest parameter name: [A-Za-z0-9_]
  // Produces the model directory in *dir; `scratch` is an empty directory it may write into.
  std::function<Status(const std::string& scratch, std::string* dir)> make;
  // Largest |Δ logit| allowed between the same tokens forwarded in different chunkings (cached vs
  // uncached, chunked vs whole, truncated vs never forwarded). Chunking changes only the order of
  // fp32 sums (matmul blocking, attention over cache + chunk), not the math, so float models agree
  // to ~1e-5 on logits of magnitude ≤ 30 (softcap); quantized ones may also take other int8 kernels
  // per chunk size, see the subjects. Properties that compare identical computations on identical
  // cache contents (snapshot round trips, read-only forwards, errors) are asserted bit for bit.
  double tol = 1e-4;
};
inline void PrintTo(const ModelSubject& s, std::ostream* os) { *os << s.name; }

inline nlohmann::json dhara_small_config(int64_t C, int64_t layers, int64_t F, int64_t H, int64_t Hkv, int64_t D,
                                         int64_t V) {
  return {{"model_type", "dhara_ar"}, {"hidden_size", C}, {"num_hidden_layers", layers}, {"intermediate_size", F},
          {"num_attention_heads", H}, {"num_key_value_heads", Hkv}, {"head_dim", D}, {"vocab_size", V},
          {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"max_position_embeddings", 512},
          {"tie_word_embeddings", true}, {"use_qk_norm", true}, {"use_logit_softcap", true}, {"logit_softcap", 30.0},
          {"canon_set", "ABCD"}, {"canon_kernel", 4}, {"canon_residual", true}, {"mask_token_id", V - 1},
          {"eos_token_id", V - 2}};
}

// A random bf16 dhara for `cfg` in `src_dir`, then every linear and the (tied) embedding at 4 bits,
// group 64, in `out_dir`: the checkpoint layout `optiq convert` writes for a uniform recipe.
inline Status write_random_dhara_4bit(const nlohmann::json& cfg, const std::string& src_dir, const std::string& out_dir,
                                      uint64_t seed) {
  OPTIQ_RETURN_IF_ERROR(write_random_dhara(cfg, src_dir, DType::kBF16, seed));
  QuantizedModelSpec spec;
  spec.per_module_entries = false;
  spec.modules["model.embed_tokens"] = {};
  for (int64_t l = 0; l < cfg["num_hidden_layers"].get<int64_t>(); ++l)
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      spec.modules["model.layers." + std::to_string(l) + "." + m] = {};
  return write_quantized_model(src_dir, out_dir, spec);
}

// `n` ids in [lo, V − 8): clear of the special ids (mask, EOS, image tokens) the small configs put at
// the top of the vocabulary, which some models give meaning beyond a plain token.
inline std::vector<int32_t> random_ids(int n, int64_t V, uint64_t seed, int32_t lo = 3) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = lo + static_cast<int32_t>(rng() % static_cast<uint64_t>(V - 8 - lo));
  return v;
}

inline double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

class ModelConformance : public ::testing::TestWithParam<ModelSubject> {
 protected:
  // The subject's model, loaded once per test binary run and shared by the suite's tests (each test
  // makes its own caches).
  const Model& model();
  int64_t V() { return model().info().vocab_size; }

  // Forwards `toks` at the cache's end; `rows` [T, V] logits (or [1, V] with last_only).
  std::vector<float> forward(Cache& c, std::span<const int32_t> toks, bool write = true,
                             MaskMode mask = MaskMode::kCausal, bool last_only = false);
  // The logits of `y` after forwarding each of `prefix` as a causal chunk into a fresh cache.
  std::vector<float> logits_after(std::initializer_list<std::span<const int32_t>> prefix, std::span<const int32_t> y);
  // The model's read-only step, as its decoders use it: a canvas (kFull, canvas_length tokens) for
  // canvas models, a block-mask chunk for block-diffusion models, else a causal chunk; write_cache false.
  std::vector<float> read_only_step(Cache& c, uint64_t seed);

  ThreadPool pool_{2};
};

}  // namespace optiq::test
