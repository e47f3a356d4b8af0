// Calibration JSONL, chat rendering, chunking, and the byte-level vocabulary helper.
#include "quant/calibration.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "tests/test_util.h"

namespace optiq {
namespace {

TEST(Calibration, BundledDefaultParsesWithEveryDomain) {
  auto s = read_calibration_jsonl(test::default_calibration_mix());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::set<std::string> domains;
  for (auto& x : *s) domains.insert(x.domain);
  for (const char* d : {"prose", "thought", "code", "agent", "tool", "instruction"}) EXPECT_TRUE(domains.count(d)) << d;
}

TEST(Calibration, MalformedLinesNameFileAndLine) {
  test::TempDir tmp;
  const std::string p = tmp.str() + "/c.jsonl";
  std::ofstream(p) << "{\"domain\": \"prose\", \"text\": \"ok\"}\n\n{\"domain\": \"x\", \"messages\": 3}\n";
  auto r = read_calibration_jsonl(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("c.jsonl:3"), std::string::npos) << r.status().ToString();
  std::ofstream(p) << "not json\n";
  EXPECT_FALSE(read_calibration_jsonl(p).ok());
  EXPECT_FALSE(read_calibration_jsonl(tmp.str() + "/missing.jsonl").ok());
}

TEST(Calibration, ChatRendering) {
  CalibrationSample s;
  s.messages = nlohmann::json::parse(R"([{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}])");
  // dhara-tiny's template is ChatML.
  auto tok = Tokenizer::from_dir(test::fixture("dhara-tiny"));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ(render_calibration_sample(s, tok->get()),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n");
  // No tokenizer (or no template): role-prefixed concatenation, tools in a leading system turn.
  EXPECT_EQ(render_calibration_sample(s, nullptr), "user: hi\n\nassistant: yo\n\n");
  s.tools = nlohmann::json::parse(R"([{"name":"f"}])");
  EXPECT_EQ(render_calibration_sample(s, nullptr),
            "system: You can call these tools:\n[{\"name\":\"f\"}]\n\nuser: hi\n\nassistant: yo\n\n");
  CalibrationSample p;
  p.text = "plain prose";
  EXPECT_EQ(render_calibration_sample(p, tok->get()), "plain prose");
}

TEST(Calibration, ChunksAreDeterministicShuffledWindows) {
  std::vector<int32_t> toks(100 * 8);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i);
  CalibrationOptions o;
  o.n_samples = 5;
  o.seq_len = 8;
  auto a = make_calibration_chunks(toks, o), b = make_calibration_chunks(toks, o);
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a, b);
  // Each chunk is a contiguous aligned window from the first max(2n, 16) = 16 windows.
  bool any_out_of_order = false;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), 8u);
    EXPECT_EQ(a[i][0] % 8, 0);
    EXPECT_LT(a[i][0], 16 * 8);
    for (int k = 1; k < 8; ++k) EXPECT_EQ(a[i][k], a[i][0] + k);
    any_out_of_order |= a[i][0] != static_cast<int32_t>(i * 8);
  }
  EXPECT_TRUE(any_out_of_order);
  o.seed = 43;
  EXPECT_NE(make_calibration_chunks(toks, o), a);
  // Too little text: fewer chunks, never a partial one.
  std::vector<int32_t> few(20);
  EXPECT_EQ(make_calibration_chunks(few, o).size(), 2u);
}

TEST(Calibration, LoadForDharaTiny) {
  CalibrationOptions o;
  o.n_samples = 3;
  o.seq_len = 64;
  auto c = load_calibration(test::default_calibration_mix(), test::fixture("dhara-tiny"), o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 3u);
  // The chat samples' ChatML markers become dhara-tiny's special ids somewhere in the full mix.
  o.n_samples = 1000;
  auto all = load_calibration(test::default_calibration_mix(), test::fixture("dhara-tiny"), o);
  ASSERT_TRUE(all.ok());
  int n_im_start = 0;
  for (auto& ch : *all)
    for (int32_t t : ch) n_im_start += t == 257;
  EXPECT_GT(n_im_start, 20);
  for (auto& ch : *c)
    for (int32_t t : ch) {
      EXPECT_GE(t, 0);
      EXPECT_LT(t, 260);
    }
}

}  // namespace
}  // namespace optiq
