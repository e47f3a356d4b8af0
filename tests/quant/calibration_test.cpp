// Calibration JSONL, chat rendering, chunking, and the byte-level vocabulary helper.
#include "quant/calibration.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "quant/byte_vocab.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

TEST(ByteVocab, EncodesBytesAndSpecialTokens) {
  auto v = ByteVocab::from_dir(test::fixture("dhara-tiny"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  // dhara-tiny: ids 0–255 are bytes, 257 <|im_start|>, 258 <|im_end|>.
  EXPECT_EQ(v->encode("Hi \n\xc3\xa9", false), (std::vector<int32_t>{72, 105, 32, 10, 0xc3, 0xa9}));
  EXPECT_EQ(v->encode("<|im_start|>a<|im_end|>", true), (std::vector<int32_t>{257, 97, 258}));
  // Without special parsing the marker is just bytes.
  EXPECT_EQ(v->encode("<|im_end|>", false).size(), 10u);
  EXPECT_NE(v->chat_template().find("<|im_start|>"), std::string::npos);
}

TEST(ByteVocab, RefusesTokenizersWithMerges) {
  auto v = ByteVocab::from_dir(test::fixture("tokenizers/qwen3"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(v.status().message().find("merges"), std::string::npos) << v.status().ToString();
}

TEST(Calibration, BundledDefaultParsesWithEveryDomain) {
  auto s = read_calibration_jsonl(default_calibration_path());
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
  EXPECT_EQ(render_calibration_sample(s, "{{ '<|im_start|>' + m }}"),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n");
  EXPECT_EQ(render_calibration_sample(s, ""), "user: hi\n\nassistant: yo\n\n");
  CalibrationSample p;
  p.text = "plain prose";
  EXPECT_EQ(render_calibration_sample(p, "x"), "plain prose");
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
  auto c = load_calibration(default_calibration_path(), test::fixture("dhara-tiny"), o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 3u);
  for (auto& ch : *c)
    for (int32_t t : ch) {
      EXPECT_GE(t, 0);
      EXPECT_LT(t, 260);
    }
}

}  // namespace
}  // namespace optiq
