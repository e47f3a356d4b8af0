// optiq serve with a canvas-diffusion model: dgemma-tiny's weights and vision tower plus a synthetic
// tokenizer (the fixture has none) whose 1024 ids each decode to a distinct string. Responses of every
// API, streamed or not, must equal canvas_generate called directly with the same options; images sent
// inline must give what embed_image → expand_image_prompt → canvas_generate gives; malformed images
// are 400s naming the field, and the server stays healthy.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "io/model_dir.h"
#include "serve/data_url.h"
#include "serve/server.h"
#include "tests/image_write.h"
#include "tests/test_util.h"

namespace optiq::serve {
namespace {

namespace fs = std::filesystem;

constexpr int kVocab = 1024;

// dgemma-tiny's config, generation_config and weights, plus the synthetic tokenizer of
// tests/serve/data/dgemma-tiny-tokenizer (see its README).
void write_model_dir(const fs::path& dir) {
  const fs::path src = test::fixture("dgemma-tiny");
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"})
    fs::copy_file(src / f, dir / f);
  const fs::path tok = fs::path(test::repo_dir()) / "tests/serve/data/dgemma-tiny-tokenizer";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(tok / f, dir / f);
}

// The fixture image (24×24 RGB) and the same pixels as a PNG data URL.
RgbImage fixture_image() {
  std::ifstream in(test::fixture("dgemma-tiny/image_24x24_rgb8.bin"), std::ios::binary);
  RgbImage im;
  im.width = im.height = 24;
  im.rgb.assign(std::istreambuf_iterator<char>(in), {});
  return im;
}

std::string png_data_url(const RgbImage& im) {
  std::vector<uint8_t> png;
  EXPECT_TRUE(stbi_write_png_to_func(test::append_bytes, &png, im.width, im.height, 3, im.rgb.data(), im.width * 3));
  return "data:image/png;base64," + base64_encode(png);
}

// What a response must hold: canvas_generate's tokens, decoded; EOS counted when it ended the text.
struct Expected {
  std::string text;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  bool stopped = false;  // EOS within max_tokens: finish_reason "stop"
};

struct SseStream {
  std::vector<Json> frames;  // data frames, [DONE] excluded
  std::vector<std::string> events;
  bool done = false;  // "data: [DONE]" seen, and last
};

SseStream parse_sse(const std::string& body) {
  SseStream s;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated SSE frame: " << body.substr(pos);
    if (end == std::string::npos) break;
    const std::string frame = body.substr(pos, end - pos);
    pos = end + 2;
    if (frame.rfind(":", 0) == 0) continue;  // keepalive comment
    EXPECT_FALSE(s.done) << "frame after [DONE]";
    std::string event;
    if (frame.rfind("event: ", 0) == 0) {
      const size_t nl = frame.find('\n');
      event = frame.substr(7, nl - 7);
      s.events.push_back(event);
    }
    const size_t d = frame.find("data: ");
    EXPECT_NE(d, std::string::npos) << frame;
    if (d == std::string::npos) continue;
    const std::string data = frame.substr(d + 6);
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    s.frames.push_back(Json::parse(data));
  }
  return s;
}

class CanvasServe : public ::testing::Test {
 protected:
  void SetUp() override {
    write_model_dir(dir_.path);
    auto tok = Tokenizer::from_dir(dir_.str());
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tok_ = std::move(tok).value();
    auto model = load_model(dir_.str());
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = std::move(model).value();
    auto gen = read_json_file(dir_.str() + "/generation_config.json");
    ASSERT_TRUE(gen.ok());
    auto canvas = canvas_options_from_generation_config(*gen);
    ASSERT_TRUE(canvas.ok());
    defaults_ = *canvas;

    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.defaults.canvas = defaults_;  // as optiq serve sets them
    server_ = std::make_unique<Server>(o);
    auto port = server_->bind();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    thread_ = std::thread([this] { EXPECT_TRUE(server_->serve().ok()); });
    auto m = load_model(dir_.str());
    auto t = Tokenizer::from_dir(dir_.str());
    ASSERT_TRUE(m.ok() && t.ok());
    server_->set_model(std::move(m).value(), std::move(t).value(), 1);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60);
    return c;
  }
  httplib::Result raw_post(const std::string& path, const Json& body) {
    return client().Post(path, body.dump(), "application/json");
  }
  Json post(const std::string& path, const Json& body, int want_status = 200) {
    auto r = raw_post(path, body);
    EXPECT_TRUE(r) << path;
    if (!r) return Json();
    EXPECT_EQ(r->status, want_status) << r->body;
    return Json::parse(r->body);
  }
  SseStream post_stream(const std::string& path, Json body) {
    body["stream"] = true;
    auto r = raw_post(path, body);
    EXPECT_TRUE(r) << path;
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
    return parse_sse(r->body);
  }

  // The chat template applied to `messages` (items as the server builds them), then canvas_generate
  // with the server's defaults and the given overrides; images through the vision tower first.
  Expected direct_chat(const Json& messages, CanvasOptions o, const std::vector<RgbImage>& images = {}) {
    auto text = tok_->apply_chat_template(messages, Json(), true, Json::object());
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    return direct_ids(tok_->encode(*text, false), o, images);
  }
  Expected direct_ids(std::vector<int32_t> ids, const CanvasOptions& o, const std::vector<RgbImage>& images = {}) {
    ThreadPool pool(1);
    PromptEmbeds embeds;
    if (!images.empty()) {
      std::vector<ImageEmbedding> soft;
      for (const auto& im : images) {
        auto e = model_->embed_image(im.rgb, im.width, im.height, pool);
        EXPECT_TRUE(e.ok()) << e.status().ToString();
        soft.push_back(*e);
      }
      auto x = expand_image_prompt(ids, model_->info(), soft, &embeds);
      EXPECT_TRUE(x.ok()) << x.status().ToString();
      ids = *x;
    }
    auto r = canvas_generate(*model_, pool, ids, o, images.empty() ? nullptr : &embeds);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Expected e;
    e.text = tok_->decode(r->tokens, true);
    e.prompt_tokens = static_cast<int64_t>(ids.size());
    e.stopped = r->canvases.back().eos_at >= 0 && static_cast<int64_t>(r->tokens.size()) < o.max_new_tokens;
    e.completion_tokens = static_cast<int64_t>(r->tokens.size()) + (e.stopped ? 1 : 0);
    return e;
  }
  CanvasOptions options(CanvasSampler s, uint64_t seed, int64_t max_tokens) const {
    CanvasOptions o = defaults_;
    o.sampler = s;
    o.seed = seed;
    o.max_new_tokens = max_tokens;
    return o;
  }
  std::vector<int32_t> ids_of(const std::string& text) const { return tok_->encode(text, false); }

  test::TempDir dir_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<Model> model_;
  CanvasOptions defaults_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

const Json kUser = Json::array({Json{{"role", "user"}, {"content", "Tell me a story"}}});

TEST_F(CanvasServe, SyntheticTokenizerCoversTheVocabulary) {
  EXPECT_EQ(tok_->vocab_size(), kVocab);
  // Every non-special id decodes to its own string, so equal text means equal tokens.
  std::set<std::string> seen;
  for (int32_t id = 0; id < kVocab; ++id)
    if (!tok_->is_special(id)) {
      EXPECT_TRUE(seen.insert(tok_->decode(std::vector<int32_t>{id}, true)).second) << id;
    }
  EXPECT_EQ(tok_->decode(ids_of("Hi there\n"), true), "Hi there\n");
}

TEST_F(CanvasServe, ChatEqualsCanvasGenerateForBothSamplers) {
  for (CanvasSampler s : {CanvasSampler::kEntropyBound, CanvasSampler::kConfidenceThreshold}) {
    SCOPED_TRACE(canvas_sampler_name(s));
    // 40 tokens: three canvases of 16 unless an EOS comes first.
    const Expected want = direct_chat(kUser, options(s, 16, 40));
    ASSERT_FALSE(want.text.empty());
    Json body{{"messages", kUser}, {"max_tokens", 40}, {"seed", 16}, {"sampler", canvas_sampler_name(s)}};
    auto r = raw_post("/v1/chat/completions", body);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("X-Optiq-Decoding"), "canvas");
    EXPECT_EQ(r->get_header_value("X-Optiq-Sampler"), canvas_sampler_name(s));
    Json j = Json::parse(r->body);
    EXPECT_EQ(j["choices"][0]["message"]["content"], want.text);
    EXPECT_EQ(j["choices"][0]["finish_reason"], want.stopped ? "stop" : "length");
    EXPECT_EQ(j["usage"]["prompt_tokens"], want.prompt_tokens);
    EXPECT_EQ(j["usage"]["completion_tokens"], want.completion_tokens);
    EXPECT_EQ(j["decoding"], "canvas");

    body["stream_options"] = {{"include_usage", true}};
    SseStream st = post_stream("/v1/chat/completions", body);
    EXPECT_TRUE(st.done);
    std::string text;
    Json finish, usage;
    for (size_t i = 0; i < st.frames.size(); ++i) {
      const Json& f = st.frames[i];
      if (f.contains("usage") && !f["usage"].is_null()) usage = f["usage"];
      if (f["choices"].empty()) continue;
      if (i == 0) {
        EXPECT_EQ(f["choices"][0]["delta"]["role"], "assistant");
      }
      EXPECT_TRUE(finish.is_null()) << "a choice chunk after the finish_reason";
      text += f["choices"][0]["delta"].value("content", "");
      if (!f["choices"][0]["finish_reason"].is_null()) finish = f["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(text, want.text);
    EXPECT_EQ(finish, j["choices"][0]["finish_reason"]);
    EXPECT_EQ(usage, j["usage"]);
  }
}

TEST_F(CanvasServe, DefaultsComeFromGenerationConfigAndSeedReproduces) {
  // No sampler, seed or steps in the request: generation_config.json's sampler, the server's seed 0.
  const Expected want = direct_chat(kUser, options(defaults_.sampler, 0, 20));
  auto r = raw_post("/v1/chat/completions", Json{{"messages", kUser}, {"max_tokens", 20}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("X-Optiq-Sampler"), canvas_sampler_name(defaults_.sampler));
  EXPECT_EQ(Json::parse(r->body)["choices"][0]["message"]["content"], want.text);
  // steps and threshold reach the sampler.
  CanvasOptions o = options(CanvasSampler::kConfidenceThreshold, 5, 20);
  o.max_steps = 3;
  o.threshold = 0.5;
  const Expected few = direct_chat(kUser, o);
  Json j = post("/v1/chat/completions", Json{{"messages", kUser}, {"max_tokens", 20}, {"seed", 5}, {"steps", 3},
                                             {"threshold", 0.5}, {"sampler", "confidence-threshold"}});
  EXPECT_EQ(j["choices"][0]["message"]["content"], few.text);
  EXPECT_EQ(j["usage"]["completion_tokens"], few.completion_tokens);
}

TEST_F(CanvasServe, CompletionsMessagesAndResponsesEqualCanvasGenerate) {
  const std::vector<int32_t> prompt = {2, 626, 280, 345, 741, 540, 334, 552, 978, 604, 21, 733, 622, 393};
  const Expected ids_want = direct_ids(prompt, options(CanvasSampler::kEntropyBound, 16, 32));
  Json c = post("/v1/completions", Json{{"prompt", prompt}, {"max_tokens", 32}, {"seed", 16}});
  EXPECT_EQ(c["choices"][0]["text"], ids_want.text);
  EXPECT_EQ(c["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(c["usage"]["completion_tokens"], ids_want.completion_tokens);
  SseStream cs = post_stream("/v1/completions", Json{{"prompt", prompt}, {"max_tokens", 32}, {"seed", 16}});
  std::string streamed;
  for (const Json& f : cs.frames) streamed += f["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(streamed, ids_want.text);
  EXPECT_TRUE(cs.done);

  const Expected want = direct_chat(kUser, options(CanvasSampler::kConfidenceThreshold, 9, 24));
  Json m = post("/v1/messages", Json{{"messages", kUser}, {"max_tokens", 24}, {"seed", 9},
                                     {"sampler", "confidence-threshold"}});
  EXPECT_EQ(m["content"][0]["text"], want.text);
  EXPECT_EQ(m["stop_reason"], want.stopped ? "end_turn" : "max_tokens");
  EXPECT_EQ(m["usage"]["input_tokens"], want.prompt_tokens);
  EXPECT_EQ(m["usage"]["output_tokens"], want.completion_tokens);
  SseStream ms = post_stream("/v1/messages", Json{{"messages", kUser}, {"max_tokens", 24}, {"seed", 9},
                                                  {"sampler", "confidence-threshold"}});
  ASSERT_FALSE(ms.events.empty());
  EXPECT_EQ(ms.events.front(), "message_start");
  EXPECT_EQ(ms.events.back(), "message_stop");
  std::string mtext;
  for (const Json& f : ms.frames)
    if (f["type"] == "content_block_delta") mtext += f["delta"]["text"].get<std::string>();
  EXPECT_EQ(mtext, want.text);

  Json resp = post("/v1/responses", Json{{"input", "Tell me a story"}, {"max_output_tokens", 24}, {"seed", 9},
                                         {"sampler", "confidence-threshold"}});
  EXPECT_EQ(resp["output"][0]["content"][0]["text"], want.text);
  EXPECT_EQ(resp["usage"]["output_tokens"], want.completion_tokens);
}

TEST_F(CanvasServe, StopStringsAndLengthFinishRight) {
  const Expected base = direct_chat(kUser, options(CanvasSampler::kEntropyBound, 16, 40));
  ASSERT_GE(base.text.size(), 12u);
  // A stop string from the middle of the second canvas's text cuts there, in both dialects.
  const std::string stop = base.text.substr(base.text.size() / 2, 4);
  const std::string cut = base.text.substr(0, base.text.find(stop));
  Json body{{"messages", kUser}, {"max_tokens", 40}, {"seed", 16}, {"stop", {stop}}};
  Json j = post("/v1/chat/completions", body);
  EXPECT_EQ(j["choices"][0]["message"]["content"].is_null() ? "" : j["choices"][0]["message"]["content"].get<std::string>(),
            cut);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  SseStream st = post_stream("/v1/chat/completions", body);
  std::string streamed;
  for (const Json& f : st.frames)
    if (!f["choices"].empty()) streamed += f["choices"][0]["delta"].value("content", "");
  EXPECT_EQ(streamed, cut);  // not even part of the stop string leaks
  Json m = post("/v1/messages", Json{{"messages", kUser}, {"max_tokens", 40}, {"seed", 16}, {"stop_sequences", {stop}}});
  EXPECT_EQ(m["stop_reason"], "stop_sequence");
  EXPECT_EQ(m["stop_sequence"], stop);

  // max_tokens inside the first canvas: "length", exactly that many tokens.
  const Expected five = direct_chat(kUser, options(CanvasSampler::kEntropyBound, 16, 5));
  Json l = post("/v1/chat/completions", Json{{"messages", kUser}, {"max_tokens", 5}, {"seed", 16}});
  EXPECT_EQ(l["choices"][0]["message"]["content"], five.text);
  EXPECT_EQ(l["choices"][0]["finish_reason"], five.stopped ? "stop" : "length");
  EXPECT_EQ(l["usage"]["completion_tokens"], five.completion_tokens);
}

TEST_F(CanvasServe, EosFinishesWithStopAndEmptyRepliesRetry) {
  struct Case {
    std::vector<int32_t> prompt;
    uint64_t seed;
    int64_t max_tokens;
  } cases[] = {
      {{2, 626, 280, 345}, 11, 48},  // EOS in the second canvas: "stop", the EOS counted
      {{2, 626, 280, 345}, 11, 28},  // the same run cut just before its EOS: "length"
      {{2, 17}, 70, 16},             // the first canvases start with EOS: retried with seeds 71, 72
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("seed " + std::to_string(c.seed) + " max_tokens " + std::to_string(c.max_tokens));
    CanvasOptions o = options(CanvasSampler::kEntropyBound, c.seed, c.max_tokens);
    ThreadPool pool(1);
    auto r = canvas_generate(*model_, pool, c.prompt, o);
    ASSERT_TRUE(r.ok());
    const Expected want = direct_ids(c.prompt, o);
    Json body{{"prompt", c.prompt}, {"max_tokens", c.max_tokens}, {"seed", c.seed}, {"sampler", "entropy-bound"}};
    Json j = post("/v1/completions", body);
    EXPECT_EQ(j["choices"][0]["text"], want.text);
    EXPECT_EQ(j["choices"][0]["finish_reason"], want.stopped ? "stop" : "length");
    EXPECT_EQ(j["usage"]["completion_tokens"], want.completion_tokens);
    SseStream st = post_stream("/v1/completions", body);
    std::string streamed;
    Json finish;
    for (const Json& f : st.frames) {
      streamed += f["choices"][0]["text"].get<std::string>();
      if (!f["choices"][0]["finish_reason"].is_null()) finish = f["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(streamed, want.text);
    EXPECT_EQ(finish, j["choices"][0]["finish_reason"]);
    // The cases cover what they claim (so the assertions above test EOS and retries).
    if (c.max_tokens == 48) {
      EXPECT_TRUE(want.stopped);
      EXPECT_EQ(j["usage"]["completion_tokens"], 29);
    }
    if (c.max_tokens == 28) {
      EXPECT_FALSE(want.stopped);
      EXPECT_EQ(j["usage"]["completion_tokens"], 28);
    }
    if (c.seed == 70) {
      EXPECT_GT(r->retries, 0);
    }
  }
}

TEST_F(CanvasServe, ImageRequestsEqualTheDirectImagePath) {
  const RgbImage im = fixture_image();
  const std::string url = png_data_url(im);
  const Json items = Json::parse(R"([{"type":"text","text":"What is in "},{"type":"image"},{"type":"text","text":"?"}])");
  const Json direct_msgs = Json::array({Json{{"role", "user"}, {"content", items}}});
  const Expected want = direct_chat(direct_msgs, options(CanvasSampler::kConfidenceThreshold, 4, 24), {im});
  // boi + 4 soft tokens + eoi replace the one image token.
  EXPECT_EQ(want.prompt_tokens, static_cast<int64_t>(
                                    tok_->encode(*tok_->apply_chat_template(direct_msgs, Json(), true, Json::object()),
                                                 false).size()) + 5);
  // The same question without the image answers differently: the soft tokens reach the model.
  const Expected text_only = direct_chat(kUser, options(CanvasSampler::kConfidenceThreshold, 4, 24));
  EXPECT_NE(want.text, text_only.text);

  const Json openai_msgs = Json::array(
      {Json{{"role", "user"},
            {"content", Json::array({Json{{"type", "text"}, {"text", "What is in "}},
                                     Json{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                     Json{{"type", "text"}, {"text", "?"}}})}}});
  Json body{{"messages", openai_msgs}, {"max_tokens", 24}, {"seed", 4}, {"sampler", "confidence-threshold"}};
  Json j = post("/v1/chat/completions", body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], want.text);
  EXPECT_EQ(j["usage"]["prompt_tokens"], want.prompt_tokens);
  EXPECT_EQ(j["usage"]["completion_tokens"], want.completion_tokens);

  const std::string b64 = url.substr(url.find(',') + 1);
  const Json anthropic_msgs = Json::array(
      {Json{{"role", "user"},
            {"content", Json::array({Json{{"type", "text"}, {"text", "What is in "}},
                                     Json{{"type", "image"},
                                          {"source", {{"type", "base64"}, {"media_type", "image/png"}, {"data", b64}}}},
                                     Json{{"type", "text"}, {"text", "?"}}})}}});
  Json abody{{"messages", anthropic_msgs}, {"max_tokens", 24}, {"seed", 4}, {"sampler", "confidence-threshold"}};
  Json m = post("/v1/messages", abody);
  EXPECT_EQ(m["content"][0]["text"], want.text);
  EXPECT_EQ(m["usage"]["input_tokens"], want.prompt_tokens);
  // Streamed: message_start waits for the vision tower, so it reports the expanded prompt.
  SseStream ms = post_stream("/v1/messages", abody);
  ASSERT_FALSE(ms.frames.empty());
  EXPECT_EQ(ms.frames[0]["type"], "message_start");
  EXPECT_EQ(ms.frames[0]["message"]["usage"]["input_tokens"], want.prompt_tokens);
  std::string mtext;
  for (const Json& f : ms.frames)
    if (f["type"] == "content_block_delta") mtext += f["delta"]["text"].get<std::string>();
  EXPECT_EQ(mtext, want.text);

  // The Responses API's input_image part.
  Json resp = post("/v1/responses",
                   Json{{"input", Json::array({Json{{"role", "user"},
                                                    {"content", Json::array({Json{{"type", "input_text"}, {"text", "What is in "}},
                                                                             Json{{"type", "input_image"}, {"image_url", url}},
                                                                             Json{{"type", "input_text"}, {"text", "?"}}})}}})},
                        {"max_output_tokens", 24}, {"seed", 4}, {"sampler", "confidence-threshold"}});
  EXPECT_EQ(resp["output"][0]["content"][0]["text"], want.text);
  EXPECT_EQ(resp["usage"]["input_tokens"], want.prompt_tokens);
}

TEST_F(CanvasServe, MalformedImagesAre400NamingTheFieldAndServerStaysHealthy) {
  auto chat_with = [](const Json& part) {
    return Json{{"messages", Json::array({Json{{"role", "user"},
                                               {"content", Json::array({Json{{"type", "text"}, {"text", "x"}}, part})}}})},
                {"max_tokens", 4}};
  };
  auto image_url = [](const std::string& url) { return Json{{"type", "image_url"}, {"image_url", {{"url", url}}}}; };
  const std::string junk_png = "data:image/png;base64," + base64_encode(std::vector<uint8_t>{'n', 'o', 't', 'p', 'n', 'g'});
  struct Case {
    Json body;
    const char* needle;
  } cases[] = {
      {chat_with(image_url("https://example.com/cat.png")), "messages[0].content[1].image_url.url: a https: URL"},
      {chat_with(image_url("data:image/png;base64,iVBOR$$$")), "messages[0].content[1].image_url.url: data: URL payload"},
      {chat_with(image_url(junk_png)), "messages[0].content[1].image_url.url: image: cannot decode"},
      {chat_with(image_url("data:image/png;base64,")), "messages[0].content[1].image_url.url: image: empty data"},
      {chat_with(Json{{"type", "image_url"}}), "messages[0].content[1].image_url"},
  };
  for (const auto& c : cases) {
    Json e = post("/v1/chat/completions", c.body, 400);
    EXPECT_NE(e["error"]["message"].get<std::string>().find(c.needle), std::string::npos)
        << c.needle << " → " << e["error"]["message"];
  }
  auto anthropic_with = [](const Json& source) {
    return Json{{"messages", Json::array({Json{{"role", "user"},
                                               {"content", Json::array({Json{{"type", "image"}, {"source", source}}})}}})},
                {"max_tokens", 4}};
  };
  struct ACase {
    Json source;
    const char* needle;
  } acases[] = {
      {Json{{"type", "url"}, {"url", "https://example.com/cat.png"}}, "messages[0].content[0].source.type"},
      {Json{{"type", "base64"}, {"media_type", "image/png"}, {"data", "!!"}}, "messages[0].content[0].source.data"},
      {Json{{"type", "base64"}, {"media_type", "image/png"}, {"data", "bm90cG5n"}},
       "messages[0].content[0].source.data: image: cannot decode"},
  };
  for (const auto& c : acases) {
    Json e = post("/v1/messages", anthropic_with(c.source), 400);
    EXPECT_EQ(e["type"], "error");
    EXPECT_NE(e["error"]["message"].get<std::string>().find(c.needle), std::string::npos)
        << c.needle << " → " << e["error"]["message"];
  }
  // Images belong to user turns; the model's turns cannot carry them.
  Json assistant_img{{"messages", Json::array({Json{{"role", "user"}, {"content", "x"}},
                                               Json{{"role", "assistant"},
                                                    {"content", Json::array({image_url(png_data_url(fixture_image()))})}}})},
                     {"max_tokens", 4}};
  post("/v1/chat/completions", assistant_img, 400);
  // Canvas models take no "decoding" mode.
  post("/v1/chat/completions", Json{{"messages", kUser}, {"decoding", "diffusion"}}, 400);
  // A max_tokens beyond the context in whole canvases.
  Json big = post("/v1/chat/completions", Json{{"messages", kUser}, {"max_tokens", 5000}}, 400);
  EXPECT_NE(big["error"]["message"].get<std::string>().find("canvases of 16"), std::string::npos) << big;

  auto h = client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  Json ok = post("/v1/chat/completions", Json{{"messages", kUser}, {"max_tokens", 3}});
  EXPECT_EQ(ok["choices"][0]["finish_reason"].is_string(), true);
}

TEST_F(CanvasServe, ClientDisconnectCancelsTheCanvasJob) {
  // A long stream (up to 250 canvases); the client leaves after its first chunks.
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = Json{{"prompt", std::vector<int32_t>{2, 626, 280}}, {"max_tokens", 4000}, {"stream", true}}.dump();
  req.set_header("Content-Type", "application/json");
  int chunks = 0;
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };
  httplib::Response res;
  httplib::Error err;
  client().send(req, res, err);
  EXPECT_GE(chunks, 2);
  bool cancelled = false;
  for (int i = 0; i < 200 && !cancelled; ++i) {
    auto m = client().Get("/metrics");
    ASSERT_TRUE(m);
    cancelled = m->body.find("optiq_cancelled_total 0\n") == std::string::npos &&
                m->body.find("optiq_running_generations 0\n") != std::string::npos;
    if (!cancelled) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(cancelled);
  Json ok = post("/v1/completions", Json{{"prompt", std::vector<int32_t>{2, 626}}, {"max_tokens", 2}, {"seed", 1}});
  EXPECT_EQ(ok["choices"][0]["finish_reason"].is_string(), true);
}

}  // namespace
}  // namespace optiq::serve
