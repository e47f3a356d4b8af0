#include "decode/generate.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/decode/fake_model.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

// Token-by-token decoders refuse canvas-diffusion models instead of running their encoder as an AR model.
TEST(Generate, RejectsCanvasDiffusionModels) {
  auto m = load_model(test::fixture("dgemma-tiny"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_GT((*m)->info().canvas_length, 0);
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2, 10, 20};
  auto r = generate(**m, pool, prompt, GenerateOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(r.status().message().find("canvas"), std::string::npos);
}

TEST(Generate, RejectsBadOptionsNamingTheProblem) {
  auto m = load_model(test::fixture("dhara-tiny"));
  ASSERT_TRUE(m.ok());
  ThreadPool pool(1);
  std::vector<int32_t> prompt{84, 104};
  GenerateOptions o;
  o.mode = DecodeMode::kDiffusion;
  o.sampling.temperature = 0.7f;
  EXPECT_NE(generate(**m, pool, prompt, o).status().message().find("greedily"), std::string::npos);
  o = {};
  std::vector<int32_t> bad{84, 999};
  EXPECT_NE(generate(**m, pool, bad, o).status().message().find("outside the vocabulary"), std::string::npos);
  EXPECT_FALSE(generate(**m, pool, std::vector<int32_t>{}, o).ok());
  o.max_new_tokens = 100000;
  EXPECT_NE(generate(**m, pool, prompt, o).status().message().find("context"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Decoder behaviour on a scripted fake model (tests/decode/fake_model.h): no weights needed.

using test::FakeCall;
using test::FakeModel;
using test::FakeRow;
using test::peak;

constexpr int32_t kV = 32, kEos = 30, kMask = 31;

ModelInfo fake_info(int32_t V = kV, int32_t eos = kEos, int32_t mask = kMask) {
  ModelInfo info;
  info.vocab_size = V;
  info.eos_ids = {eos};
  info.mask_token_id = mask;
  info.supports_block = true;
  info.block_len = 4;
  return info;
}

// The scripted language: the token after a context, never EOS or the mask id (1..28).
int32_t next_token(std::span<const int32_t> ctx) {
  return static_cast<int32_t>((ctx.back() * 5 + ctx.size()) % 28 + 1);
}

std::vector<int32_t> rollout(std::vector<int32_t> ctx, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(next_token(ctx));
    ctx.push_back(out.back());
  }
  return out;
}

enum class Drafts { kRight, kPartlyRight, kWrong };

// Causal rows predict the next token (margin 5). Mask rows under the block mask predict their own
// position by rolling the language forward from the tokens before the first mask they see; `drafts`
// decides whether those guesses are right (kPartlyRight: the first two masked positions only).
FakeModel::RowScript language_script(Drafts drafts = Drafts::kRight) {
  return [drafts](const FakeRow& r, std::span<float> z) {
    if (r.mask == MaskMode::kCausal || r.token != kMask) {
      peak(z, next_token(r.visible), 5.f);
      return;
    }
    const auto first_mask = std::find(r.visible.begin(), r.visible.end(), kMask) - r.visible.begin();
    const int64_t d = r.pos - first_mask;  // 0 for the first masked position
    std::vector<int32_t> ctx(r.visible.begin(), r.visible.begin() + first_mask);
    int32_t tok = rollout(ctx, static_cast<int>(d) + 1).back();
    const bool right = drafts == Drafts::kRight || (drafts == Drafts::kPartlyRight && d < 2);
    if (!right) tok = tok % 28 + 1;
    peak(z, tok, 5.f);
  };
}

TEST(GenerateAR, GreedyFollowsTheScriptWithOnePrefillThenOneTokenPerForward) {
  FakeModel m(fake_info(), language_script());
  ThreadPool pool(1);
  const std::vector<int32_t> prompt{3, 7, 11};
  GenerateOptions o;
  o.max_new_tokens = 6;
  auto r = generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tokens, rollout(prompt, 6));
  EXPECT_FALSE(r->stopped);
  EXPECT_EQ(r->prompt_tokens, 3);
  // max_new_tokens ends generation without a forward for the last token.
  EXPECT_EQ(r->forwards, 6);
  EXPECT_EQ(r->rows_forwarded, 3 + 5);
  ASSERT_EQ(m.calls.size(), 6u);
  EXPECT_EQ(m.calls[0].tokens, prompt);
  EXPECT_TRUE(m.calls[0].last_logits_only);
  for (size_t i = 0; i < m.calls.size(); ++i) {
    EXPECT_EQ(m.calls[i].mask, MaskMode::kCausal);
    EXPECT_TRUE(m.calls[i].write_cache);
    if (i > 0) {
      EXPECT_EQ(m.calls[i].tokens, std::vector<int32_t>{r->tokens[i - 1]});
      EXPECT_EQ(m.calls[i].pos0, static_cast<int64_t>(2 + i));
    }
  }
}

TEST(GenerateAR, StopIdsEndGenerationAndDefaultToTheModelsEos) {
  // EOS once three tokens follow the prompt.
  auto script = [](const FakeRow& r, std::span<float> z) {
    peak(z, r.visible.size() >= 5 ? kEos : next_token(r.visible), 5.f);
  };
  FakeModel m(fake_info(), script);
  ThreadPool pool(1);
  const std::vector<int32_t> prompt{4, 9};
  GenerateOptions o;
  o.max_new_tokens = 20;
  auto r = generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<int32_t> want = rollout(prompt, 3);
  want.push_back(kEos);
  EXPECT_EQ(r->tokens, want);  // the EOS is emitted
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->visible_tokens({kEos}), rollout(prompt, 3));
  EXPECT_EQ(r->forwards, 4);  // nothing is forwarded after the stop id
  // An explicit stop list replaces the model's: the third generated token (the first 21) stops it.
  ASSERT_EQ(want[2], 21);
  o.stop_ids = {21};
  r = generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens, std::vector<int32_t>(want.begin(), want.begin() + 3));
  EXPECT_TRUE(r->stopped);
}

// HF repetition penalty: a seen token's positive logit is divided by the penalty, a negative one
// multiplied, so it can lose the argmax to an unseen runner-up.
TEST(GenerateAR, RepetitionPenaltyChangesThePickAsTheFormulaSays) {
  auto script_with = [](float a, float b, float rest) {
    return [=](const FakeRow&, std::span<float> z) {
      std::fill(z.begin(), z.end(), rest);
      z[7] = a;
      z[9] = b;
    };
  };
  ThreadPool pool(1);
  const std::vector<int32_t> prompt{7, 2};
  GenerateOptions o;
  o.max_new_tokens = 3;
  o.stop_ids = {-1};
  struct Case {
    float a, b, rest, penalty;
    std::vector<int32_t> want;
  };
  const Case cases[] = {
      {2.0f, 1.8f, 0.f, 1.0f, {7, 7, 7}},     // off
      {2.0f, 1.8f, 0.f, 1.05f, {7, 7, 7}},    // 2.0 / 1.05 = 1.905 > 1.8
      {2.0f, 1.8f, 0.f, 1.2f, {9, 7, 7}},     // 2.0 / 1.2 = 1.667 < 1.8; then both seen: 1.667 > 1.5
      {-0.5f, -0.55f, -1.f, 1.2f, {9, 7, 7}}, // −0.5 · 1.2 = −0.6 < −0.55; then −0.6 > −0.66
  };
  for (const Case& c : cases) {
    FakeModel m(fake_info(), script_with(c.a, c.b, c.rest));
    o.sampling.repetition_penalty = c.penalty;
    auto r = generate(m, pool, prompt, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->tokens, c.want) << "logits " << c.a << ", " << c.b << " penalty " << c.penalty;
  }
}

TEST(GenerateAR, CallbackSeesTokensInOrderAndCanCancel) {
  FakeModel m(fake_info(), language_script());
  ThreadPool pool(1);
  const std::vector<int32_t> prompt{5};
  GenerateOptions o;
  o.max_new_tokens = 10;
  std::vector<std::vector<int32_t>> chunks;
  auto r = generate(m, pool, prompt, o, [&](std::span<const int32_t> t) {
    chunks.emplace_back(t.begin(), t.end());
    return true;
  });
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(chunks.size(), 10u);
  for (size_t i = 0; i < chunks.size(); ++i) EXPECT_EQ(chunks[i], std::vector<int32_t>{r->tokens[i]});
  // Returning false after the third token stops there, with no forward for it.
  m.calls.clear();
  int seen = 0;
  r = generate(m, pool, prompt, o, [&](std::span<const int32_t>) { return ++seen < 3; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens, rollout(prompt, 3));
  EXPECT_FALSE(r->stopped);
  EXPECT_EQ(r->forwards, 3);
  EXPECT_EQ(m.calls.size(), 3u);
}

// Block diffusion: per-offset margins decide the commit order (threshold 0.5 in a 16-token vocabulary:
// only margin ≥ ln 15 ≈ 2.71 is confident; otherwise the single most confident position commits).
constexpr int32_t kDV = 16, kDEos = 14, kDMask = 15;
constexpr int kDB = 4;

FakeModel diffusion_model(int64_t P, std::vector<float> margins, int eos_at_offset = -1) {
  return FakeModel(fake_info(kDV, kDEos, kDMask), [=](const FakeRow& r, std::span<float> z) {
    if (r.token != kDMask) {
      peak(z, 0, 1.f);  // prefill rows: unused by the decoder
      return;
    }
    const int64_t k = (r.pos - P) / kDB, off = (r.pos - P) % kDB;
    const int32_t tok = off == eos_at_offset ? kDEos : static_cast<int32_t>(2 + (4 * k + off) % 10);
    peak(z, tok, margins[static_cast<size_t>(off)]);
  });
}

std::vector<int32_t> diffusion_block(int64_t k) {
  std::vector<int32_t> b;
  for (int off = 0; off < kDB; ++off) b.push_back(static_cast<int32_t>(2 + (4 * k + off) % 10));
  return b;
}

GenerateOptions diffusion_opts(int max_new_tokens) {
  GenerateOptions o;
  o.mode = DecodeMode::kDiffusion;
  o.block_len = kDB;
  o.max_new_tokens = max_new_tokens;
  return o;
}

TEST(GenerateDiffusion, CommitsByConfidenceAndWritesThePrefixOncePerBlock) {
  const std::vector<int32_t> prompt{3, 4, 5};
  FakeModel m = diffusion_model(3, {1.0f, 3.5f, 0.5f, 2.0f});
  ThreadPool pool(1);
  GenerateOptions o = diffusion_opts(8);
  auto r = generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<int32_t> want = diffusion_block(0);
  for (int32_t t : diffusion_block(1)) want.push_back(t);
  EXPECT_EQ(r->tokens, want);
  // Offset 1 is confident; then the most confident of the rest, one per step: 3 (2.0), 0 (1.0), 2.
  const std::vector<std::vector<int>> order{{1}, {3}, {0}, {2}};
  ASSERT_EQ(r->committed_per_step.size(), 2u);
  EXPECT_EQ(r->committed_per_step[0], order);
  EXPECT_EQ(r->committed_per_step[1], order);
  // Prefill (block mask), then per block 4 read-only refinements and one commit that writes it.
  EXPECT_EQ(r->forwards, 1 + 2 * (4 + 1));
  EXPECT_EQ(r->rows_forwarded, 3 + 2 * 5 * kDB);
  EXPECT_EQ(m.count_calls(true), 1 + 2);
  ASSERT_EQ(m.calls.size(), 11u);
  EXPECT_EQ(m.calls[0].mask, MaskMode::kBlock);
  EXPECT_EQ(m.calls[0].tokens, prompt);
  for (size_t i = 1; i < m.calls.size(); ++i) {
    const FakeCall& c = m.calls[i];
    const int64_t block = static_cast<int64_t>(i - 1) / 5;
    EXPECT_EQ(c.mask, MaskMode::kBlock) << i;
    EXPECT_EQ(c.block_len, kDB);
    EXPECT_EQ(c.pos0, 3 + kDB * block) << i;
    EXPECT_EQ(c.write_cache, (i - 1) % 5 == 4) << i;
  }
  // The first refinement of a block sees only mask ids; committed positions stay in later ones.
  EXPECT_EQ(m.calls[1].tokens, std::vector<int32_t>(kDB, kDMask));
  EXPECT_EQ(m.calls[2].tokens, (std::vector<int32_t>{kDMask, want[1], kDMask, kDMask}));
  EXPECT_EQ(m.calls[4].tokens, (std::vector<int32_t>{want[0], want[1], kDMask, want[3]}));
  // The commit writes the finished block; the next block starts from a cache holding it.
  EXPECT_EQ(m.calls[5].tokens, diffusion_block(0));
  std::vector<int32_t> cached = prompt;
  cached.insert(cached.end(), want.begin(), want.begin() + kDB);
  EXPECT_EQ(m.calls[6].cache_before, cached);
}

TEST(GenerateDiffusion, ThresholdCommitsEveryConfidentPositionAndStopIdEnds) {
  const std::vector<int32_t> prompt{3, 4};
  // Margins 3.5 and 2.0 have probability 0.69 and 0.33: a threshold of 0.3 commits both at once.
  FakeModel m = diffusion_model(2, {1.0f, 3.5f, 0.5f, 2.0f}, /*eos_at_offset=*/2);
  ThreadPool pool(1);
  GenerateOptions o = diffusion_opts(6);
  o.threshold = 0.3f;
  auto r = generate(m, pool, prompt, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->committed_per_step.size(), 1u);  // EOS in the first block ends generation
  EXPECT_EQ(r->committed_per_step[0], (std::vector<std::vector<int>>{{1, 3}, {0}, {2}}));
  EXPECT_TRUE(r->stopped);
  std::vector<int32_t> want = diffusion_block(0);
  want[2] = kDEos;
  EXPECT_EQ(r->tokens, want);  // the whole block is emitted, EOS included
  EXPECT_EQ(r->visible_tokens({kDEos}), std::vector<int32_t>(want.begin(), want.begin() + 2));
  EXPECT_EQ(r->forwards, 1 + 3 + 1);
}

TEST(GenerateDiffusion, OutputIsCutToMaxTokensAndCallbackGetsBlocks) {
  FakeModel m = diffusion_model(1, {3.5f, 3.5f, 3.5f, 3.5f});
  ThreadPool pool(1);
  GenerateOptions o = diffusion_opts(6);
  std::vector<size_t> sizes;
  auto r = generate(m, pool, std::vector<int32_t>{3}, o, [&](std::span<const int32_t> t) {
    sizes.push_back(t.size());
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tokens.size(), 6u);
  EXPECT_EQ(sizes, (std::vector<size_t>{4, 2}));
  // All positions confident: one refinement per block.
  EXPECT_EQ(r->forwards, 1 + 2 * 2);
}

// Self-speculation emits exactly what greedy AR emits, whatever the drafts' quality; only the
// number of rounds changes.
TEST(GenerateSelfSpec, EqualsGreedyARForRightPartlyRightAndWrongDrafts) {
  ThreadPool pool(1);
  const std::vector<int32_t> prompt{6, 1, 8};
  const int k = 4, n = 20;
  const std::vector<int32_t> ar = rollout(prompt, n);
  struct Case {
    Drafts drafts;
    int accepted;  // per round
  };
  for (const Case c : {Case{Drafts::kRight, k}, Case{Drafts::kPartlyRight, 3}, Case{Drafts::kWrong, 1}}) {
    FakeModel m(fake_info(), language_script(c.drafts));
    GenerateOptions o;
    o.mode = DecodeMode::kSelfSpec;
    o.draft_len = k;
    o.block_len = 8;
    o.max_new_tokens = n;
    std::vector<int32_t> streamed;
    auto r = generate(m, pool, prompt, o, [&](std::span<const int32_t> t) {
      streamed.insert(streamed.end(), t.begin(), t.end());
      return true;
    });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->tokens, ar) << "drafts " << static_cast<int>(c.drafts);
    EXPECT_EQ(streamed, ar);
    const size_t rounds = (n + c.accepted - 1) / c.accepted;
    EXPECT_EQ(r->accepted_per_round.size(), rounds);
    for (size_t i = 0; i + 1 < r->accepted_per_round.size(); ++i) EXPECT_EQ(r->accepted_per_round[i], c.accepted);
    // Per round: one read-only draft forward (block mask) and one causal verify forward that writes.
    EXPECT_EQ(r->forwards, 1 + 2 * static_cast<int64_t>(rounds));
    ASSERT_EQ(m.calls.size(), 1 + 2 * rounds);
    std::vector<int32_t> full = prompt;
    full.insert(full.end(), ar.begin(), ar.end());
    for (size_t i = 1; i < m.calls.size(); ++i) {
      const FakeCall& call = m.calls[i];
      const bool draft = i % 2 == 1;
      EXPECT_EQ(call.mask, draft ? MaskMode::kBlock : MaskMode::kCausal) << i;
      EXPECT_EQ(call.write_cache, !draft) << i;
      // The verify forward asks for row-invariant numerics: its rows must be greedy AR's steps.
      EXPECT_EQ(call.row_invariant, !draft) << i;
      ASSERT_EQ(call.tokens.size(), static_cast<size_t>(k));
      // The anchor is the next AR token, and the cache holds exactly the accepted output so far:
      // the rejected tail of every earlier verify was rolled back as if never forwarded.
      const size_t S = call.cache_before.size();
      ASSERT_LT(S, full.size());
      EXPECT_EQ(call.cache_before, std::vector<int32_t>(full.begin(), full.begin() + S)) << i;
      EXPECT_EQ(call.tokens[0], full[S]) << i;
      if (draft) {
        EXPECT_EQ(std::count(call.tokens.begin(), call.tokens.end(), kMask), k - 1) << i;
      }
    }
  }
}

}  // namespace
}  // namespace optiq
