// DiffusionGemma against the independent reference in shared/fixtures/dgemma-tiny (2e-3 absolute
// on logits and soft tokens), plus property tests of the cache and the two modes.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "tests/test_util.h"

namespace optiq {
namespace {

constexpr double kTol = 2e-3;

struct Fixture {
  std::string dir;
  nlohmann::json j;
  std::unique_ptr<SafetensorsFile> st;
  std::unique_ptr<Model> model;
  std::vector<int32_t> ids(const char* key) const {
    std::vector<int32_t> v;
    for (auto& e : j[key]) v.push_back(e.get<int32_t>());
    return v;
  }
  std::vector<float> ref(const char* name) const {
    const TensorView& t = st->tensors().at(name);
    std::vector<float> r(static_cast<size_t>(t.numel()));
    convert_to_f32(t.dtype, t.data, r.data(), r.size());
    return r;
  }
};

Fixture load_fixture() {
  Fixture f;
  f.dir = test::fixture("dgemma-tiny");
  auto j = read_json_file(f.dir + "/golden.json");
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  f.j = *j;
  auto st = SafetensorsFile::open(f.dir + "/golden.safetensors");
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  f.st = std::move(st.value());
  auto m = load_model(f.dir);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (m.ok()) f.model = std::move(m.value());
  return f;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// Encoder prefill of `prompt` (optionally with soft-token rows), then one decoder step over `canvas`.
std::vector<float> decode_step(const Model& m, ThreadPool& pool, const std::vector<int32_t>& prompt,
                               const std::vector<int32_t>& canvas, std::span<const float> sc = {},
                               const std::vector<float>* embeds = nullptr, const std::vector<bool>* over = nullptr) {
  const int64_t V = m.info().vocab_size;
  auto cache = m.make_cache(256);
  std::vector<float> logits(canvas.size() * V);
  ForwardBatch enc;
  enc.tokens = prompt;
  enc.pos0 = 0;
  enc.mask = MaskMode::kCausal;
  enc.last_logits_only = true;
  if (embeds) {
    enc.input_embeds = *embeds;
    enc.embed_override = *over;
  }
  Status s = m.forward(enc, *cache, logits.data(), pool);
  EXPECT_TRUE(s.ok()) << s.ToString();
  ForwardBatch dec;
  dec.tokens = canvas;
  dec.pos0 = static_cast<int64_t>(prompt.size());
  dec.mask = MaskMode::kFull;
  dec.write_cache = false;
  dec.self_condition = sc;
  s = m.forward(dec, *cache, logits.data(), pool);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(cache->length(), static_cast<int64_t>(prompt.size()));
  return logits;
}

TEST(DiffusionGemmaGolden, DecoderStepWithoutSelfConditioning) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  ThreadPool pool(2);
  auto logits = decode_step(*f.model, pool, f.ids("prompt_ids"), f.ids("canvas_ids"));
  const double d = max_abs_diff(logits, f.ref("decoder_no_sc"));
  std::printf("decoder_no_sc max |diff| = %.3g\n", d);
  EXPECT_LE(d, kTol);
}

TEST(DiffusionGemmaGolden, DecoderStepWithSelfConditioning) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  ThreadPool pool(2);
  std::vector<float> sc = f.ref("decoder_no_sc");
  for (auto& v : sc) v /= 0.75f;  // golden.json: sc_logits = decoder_no_sc / 0.75
  auto logits = decode_step(*f.model, pool, f.ids("prompt_ids"), f.ids("canvas_ids"), sc);
  const double d = max_abs_diff(logits, f.ref("decoder_with_sc"));
  std::printf("decoder_with_sc max |diff| = %.3g\n", d);
  EXPECT_LE(d, kTol);
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

TEST(DiffusionGemmaGolden, ImageSoftTokens) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  ThreadPool pool(2);
  auto rgb = read_bytes(f.dir + "/image_24x24_rgb8.bin");
  ASSERT_EQ(rgb.size(), 24u * 24u * 3u);
  auto img = f.model->embed_image(rgb, 24, 24, pool);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->n_tokens, 4);
  const double d = max_abs_diff(img->embeds, f.ref("image_soft_tokens"));
  std::printf("image_soft_tokens max |diff| = %.3g\n", d);
  EXPECT_LE(d, kTol);
}

TEST(DiffusionGemmaGolden, DecoderStepAfterImagePrompt) {
  Fixture f = load_fixture();
  ASSERT_TRUE(f.model);
  ThreadPool pool(2);
  auto rgb = read_bytes(f.dir + "/image_24x24_rgb8.bin");
  auto img = f.model->embed_image(rgb, 24, 24, pool);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  const auto prompt = f.ids("mm_prompt_ids");
  const int64_t C = f.model->info().hidden_size;
  std::vector<float> embeds(prompt.size() * C, 0.f);
  std::vector<bool> over(prompt.size(), false);
  int64_t k = 0;
  for (size_t t = 0; t < prompt.size(); ++t)
    if (prompt[t] == f.model->info().image_token_id) {
      ASSERT_LT(k, img->n_tokens);
      std::copy(img->embeds.begin() + k * C, img->embeds.begin() + (k + 1) * C, embeds.begin() + t * C);
      over[t] = true;
      ++k;
    }
  EXPECT_EQ(k, img->n_tokens);
  auto logits = decode_step(*f.model, pool, prompt, f.ids("canvas_ids"), {}, &embeds, &over);
  const double d = max_abs_diff(logits, f.ref("decoder_after_image_prompt"));
  std::printf("decoder_after_image_prompt max |diff| = %.3g\n", d);
  EXPECT_LE(d, kTol);
}

}  // namespace
}  // namespace optiq
