// Runs the fuzz entry points over the seed corpus and deterministic mutations of it, so every build (gcc,
// no libFuzzer) exercises them; the long randomized runs use the libFuzzer targets (tests/fuzz/*_fuzz.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/fuzz/fuzz_targets.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

std::vector<std::string> corpus(const std::string& sub) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator(test::repo_dir() + "/tests/fuzz/corpus/" + sub)) {
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    out.push_back(ss.str());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string mutate(std::string s, std::mt19937& rng) {
  static const char* kTokens[] = {"{{", "}}", "{%", "%}", "[", "]", "{", "}", "\"", "'", ",", ":", "\\", "-", "\xF0\x9F", "\xFF"};
  int n = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < n && !s.empty(); ++k) {
    size_t pos = rng() % s.size();
    switch (rng() % 4) {
      case 0: s[pos] = static_cast<char>(rng()); break;
      case 1: s.erase(pos, 1 + rng() % 8); break;
      case 2: s.insert(pos, kTokens[rng() % (sizeof(kTokens) / sizeof(kTokens[0]))]); break;
      case 3: s = s.substr(0, pos); break;
    }
  }
  return s;
}

TEST(FuzzReplay, TokenizerJsonSeedsLoadAndMutationsDoNotCrash) {
  auto seeds = corpus("tokenizer_json");
  ASSERT_GE(seeds.size(), 5u);
  for (auto& s : seeds) {
    auto tok = Tokenizer::from_json(nlohmann::json::parse(s), nlohmann::ordered_json::object());
    EXPECT_TRUE(tok.ok()) << tok.status().ToString();  // seeds must reach the encoder
  }
  std::mt19937 rng(1234);
  for (int round = 0; round < 40; ++round)
    for (auto& s : seeds) {
      std::string m = mutate(s, rng);
      fuzz::tokenizer_json(reinterpret_cast<const uint8_t*>(m.data()), m.size());
    }
}

TEST(FuzzReplay, JinjaSeedsRenderAndMutationsDoNotCrash) {
  auto seeds = corpus("jinja");
  ASSERT_GE(seeds.size(), 5u);
  int parsed = 0;
  for (auto& s : seeds) parsed += jinja::Template::parse(s).ok();
  EXPECT_EQ(parsed, static_cast<int>(seeds.size()));
  std::mt19937 rng(99);
  for (int round = 0; round < 300; ++round)
    for (auto& s : seeds) {
      std::string m = mutate(s, rng);
      fuzz::jinja_template(reinterpret_cast<const uint8_t*>(m.data()), m.size());
    }
}

}  // namespace
}  // namespace optiq
