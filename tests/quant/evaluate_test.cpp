// `optiq eval`'s pieces: held-out text windows, KL summaries and perplexity, the last on the scripted
// fake model (tests/decode/fake_model.h), whose logits make the expected NLL a closed form.
#include "quant/evaluate.h"

#include <gtest/gtest.h>

#include <cmath>

#include "io/safetensors.h"
#include "tests/decode/fake_model.h"
#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"

namespace optiq {
namespace {

std::vector<int32_t> iota_tokens(int n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[i] = i;
  return t;
}

TEST(EvalWindows, EvenlySpacedFullWindows) {
  const auto t = iota_tokens(100);
  auto w = eval_windows(t, 3, 10);  // 10 full windows: take the first, middle (4) and last (9)
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].front(), 0);
  EXPECT_EQ(w[1].front(), 40);
  EXPECT_EQ(w[2].front(), 90);
  for (auto& x : w) EXPECT_EQ(x.size(), 10u);
  EXPECT_EQ(eval_windows(t, 50, 10).size(), 10u);  // no more than the text holds
  EXPECT_EQ(eval_windows(t, 1, 10).front().front(), 0);
  EXPECT_TRUE(eval_windows(t, 3, 101).empty());
  EXPECT_TRUE(eval_windows(t, 0, 10).empty());
  EXPECT_TRUE(eval_windows(t, 3, 0).empty());
}

TEST(SummarizeKl, MeansQuantilesAndCounts) {
  KlValues v;
  v.causal = {0.f, 1.f, 2.f, 3.f, 4.f};
  v.block = {10.f};
  const KlSummary s = summarize_kl(v);
  EXPECT_DOUBLE_EQ(s.causal_mean, 2.0);
  EXPECT_NEAR(s.causal_p95, 3.8, 1e-9);  // linear interpolation between 3 and 4
  EXPECT_DOUBLE_EQ(s.block_mean, 10.0);
  EXPECT_EQ(s.n_causal, 5u);
  EXPECT_EQ(s.n_block, 1u);
}

// Each row puts margin m on the true next token (the row's token + 1) in a vocabulary of V:
// NLL = log(e^m + V − 1) − m per predicted token.
TEST(Perplexity, MatchesTheClosedFormOnAScriptedModel) {
  const int V = 16;
  const float m = 2.f;
  ModelInfo info;
  info.vocab_size = V;
  test::FakeModel model(info, [&](const test::FakeRow& r, std::span<float> z) { test::peak(z, (r.token + 1) % V, m); });
  std::vector<int32_t> toks;
  for (int i = 0; i < 50; ++i) toks.push_back(i % V);
  ThreadPool pool(1);
  auto r = evaluate_perplexity(model, toks, 8, 0, pool);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const double nll = std::log(std::exp(double(m)) + V - 1) - m;
  EXPECT_NEAR(r->mean_nll, nll, 1e-6);
  EXPECT_NEAR(r->perplexity, std::exp(nll), 1e-5);
  EXPECT_EQ(r->n_windows, 6);         // 50 / 8 full windows
  EXPECT_EQ(r->n_tokens, 6 * 7);      // each predicts its tokens 1..7
  // Windows are independent causal forwards of seq_len tokens on fresh caches.
  ASSERT_EQ(model.calls.size(), 6u);
  for (size_t w = 0; w < 6; ++w) {
    EXPECT_TRUE(model.calls[w].cache_before.empty());
    EXPECT_EQ(model.calls[w].tokens.size(), 8u);
    EXPECT_EQ(model.calls[w].tokens[0], toks[w * 8]);
  }
  r = evaluate_perplexity(model, toks, 8, 2, pool);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->n_windows, 2);
}

TEST(Perplexity, RejectsShortWindowsAndShortText) {
  ModelInfo info;
  info.vocab_size = 4;
  test::FakeModel model(info, [](const test::FakeRow&, std::span<float> z) { test::peak(z, 0, 1.f); });
  ThreadPool pool(1);
  EXPECT_EQ(evaluate_perplexity(model, iota_tokens(4), 1, 0, pool).status().code(), Status::Code::kInvalidArgument);
  auto r = evaluate_perplexity(model, std::vector<int32_t>{0, 1, 2}, 8, 0, pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fewer than one window"), std::string::npos);
}

TEST(HeldoutTokens, TailOfTheFileTokenizedWithoutSpecialTokens) {
  test::TempDir t;
  const std::string path = t.str() + "/text.txt";
  ASSERT_TRUE(write_file_atomic(path, "HEAD that is cut off. The tail stays.").ok());
  const std::string model = test::fixture("dhara-tiny");
  auto ids = read_heldout_tokens(path, 15, model);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  auto tok = Tokenizer::from_dir(model);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(*ids, (*tok)->encode("The tail stays.", false));
  auto all = read_heldout_tokens(path, 0, model);  // 0: the whole file
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (*tok)->encode("HEAD that is cut off. The tail stays.", false));
  auto missing = read_heldout_tokens(t.str() + "/none.txt", 0, model);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_NE(missing.status().message().find("none.txt"), std::string::npos);
}

}  // namespace
}  // namespace optiq
