// Runs the fuzz entry points over the seed corpus and deterministic mutations of it, so every build (gcc,
// no libFuzzer) exercises them; the long randomized runs use the libFuzzer targets (tests/fuzz/*_fuzz.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "io/model_dir.h"
#include "io/safetensors.h"
#include "models/gemma4_vision.h"
#include "models/registry.h"
#include "serve/protocol.h"
#include "tests/fuzz/fuzz_targets.h"
#include "tests/test_util.h"
#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace optiq {
namespace {

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

// File name → bytes of tests/fuzz/corpus/<sub>/. Seeds named reject_* are edge cases the parser
// must refuse; the others are valid inputs it must accept (so the fuzzer starts deep in the code).
std::map<std::string, std::string> corpus_files(const std::string& sub) {
  std::map<std::string, std::string> out;
  for (auto& e : std::filesystem::directory_iterator(test::repo_dir() + "/tests/fuzz/corpus/" + sub)) {
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    out[e.path().filename().string()] = ss.str();
  }
  return out;
}

std::vector<std::string> corpus(const std::string& sub) {
  std::vector<std::string> out;
  for (auto& [name, bytes] : corpus_files(sub)) out.push_back(bytes);
  std::sort(out.begin(), out.end());
  return out;
}

bool is_reject(const std::string& name) { return name.rfind("reject_", 0) == 0; }

const uint8_t* bytes_of(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Runs `target` over every seed and `rounds` deterministic mutations of each.
template <typename Fn>
void replay(const std::map<std::string, std::string>& seeds, int rounds, uint32_t seed, Fn target) {
  for (auto& [name, s] : seeds) target(bytes_of(s), s.size());
  std::mt19937 rng(seed);
  for (int round = 0; round < rounds; ++round)
    for (auto& [name, s] : seeds) {
      std::string m = mutate(s, rng);
      target(bytes_of(m), m.size());
    }
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

TEST(FuzzReplay, SafetensorsSeedsParseAsNamedAndMutationsDoNotCrash) {
  auto seeds = corpus_files("safetensors");
  ASSERT_GE(seeds.size(), 10u);
  for (auto& [name, s] : seeds) {
    auto f = SafetensorsFile::parse(MappedFile::copy_of({bytes_of(s), s.size()}, name), name);
    EXPECT_EQ(f.ok(), !is_reject(name)) << name << ": " << (f.ok() ? "accepted" : f.status().ToString());
  }
  replay(seeds, 200, 7, fuzz::safetensors);
}

TEST(FuzzReplay, ModelConfigSeedsReachTheWeightsAndMutationsDoNotCrash) {
  auto seeds = corpus_files("model_config");
  ASSERT_GE(seeds.size(), 8u);
  for (auto& [name, s] : seeds) {
    const std::string config = s.substr(0, s.find('\0'));
    auto j = parse_json(config, name);
    if (!j.ok() || !j->is_object()) {
      EXPECT_TRUE(is_reject(name)) << name << ": " << j.status().ToString();
      continue;
    }
    auto md = std::make_shared<ModelDir>();
    md->path = name;
    md->config = *j;
    md->tensors = std::move(*TensorStore::open_files({}));
    // A valid config passes its architecture's checks and fails only at the first weight.
    auto m = load_model(md);
    ASSERT_FALSE(m.ok()) << name;
    EXPECT_EQ(m.status().message().find("missing tensor") != std::string::npos, !is_reject(name))
        << name << ": " << m.status().ToString();
  }
  replay(seeds, 150, 11, fuzz::model_config);
}

TEST(FuzzReplay, RequestBodySeedsParseAsNamedAndMutationsDoNotCrash) {
  auto seeds = corpus_files("request_body");
  ASSERT_GE(seeds.size(), 10u);
  for (auto& [name, s] : seeds) {
    int parsed = 0;
    for (serve::Api api : {serve::Api::kChat, serve::Api::kCompletions, serve::Api::kMessages, serve::Api::kResponses})
      parsed += serve::parse_request(api, s).ok();
    EXPECT_EQ(parsed > 0, !is_reject(name)) << name;
  }
  replay(seeds, 60, 5, fuzz::request_body);
}

TEST(FuzzReplay, ImageSeedsDecodeAsNamedAndMutationsDoNotCrash) {
  auto seeds = corpus_files("image_decode");
  ASSERT_GE(seeds.size(), 10u);
  for (auto& [name, s] : seeds) {
    auto img = decode_image({bytes_of(s), s.size()}, fuzz::kImageMaxPixels);
    EXPECT_EQ(img.ok(), !is_reject(name)) << name << ": " << (img.ok() ? "decoded" : img.status().ToString());
  }
  replay(seeds, 60, 3, fuzz::image_decode);
}

}  // namespace
}  // namespace optiq
