#include "serve/protocol.h"

#include <gtest/gtest.h>

namespace optiq::serve {
namespace {

ModelInfo tiny_info() {
  ModelInfo i;
  i.model_type = "dhara_ar";
  i.vocab_size = 260;
  i.max_position = 100;
  i.mask_token_id = 259;
  i.eos_ids = {258};
  i.block_len = 32;
  i.supports_block = true;
  return i;
}

TEST(ServeProtocol, ParsesChatWithContentPartsAndSampling) {
  auto r = parse_request(Api::kChat, R"({"model":"m","messages":[{"role":"developer","content":"sys"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
      "max_tokens":7,"max_completion_tokens":5,"temperature":0.5,"top_p":0.9,"top_k":40,"min_p":0.1,
      "repetition_penalty":1.1,"seed":3,"stop":"x","stream":true,"stream_options":{"include_usage":true},
      "decoding":"diffusion"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0]["role"], "system");
  EXPECT_EQ(r->messages[1]["content"], "ab");
  EXPECT_EQ(*r->max_tokens, 5);  // max_completion_tokens wins
  EXPECT_FLOAT_EQ(*r->sampling.temperature, 0.5f);
  EXPECT_EQ(*r->sampling.top_k, 40);
  EXPECT_EQ(*r->sampling.seed, 3u);
  EXPECT_EQ(r->stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(*r->mode, DecodeMode::kDiffusion);
}

TEST(ServeProtocol, RejectsMalformedChatNamingTheField) {
  struct Case {
    const char* body;
    const char* needle;
  } cases[] = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[]", "JSON object"},
      {R"({"messages":"hi"})", "messages"},
      {R"({"messages":[]})", "messages"},
      {R"({})", "messages: required"},
      {R"({"messages":[{"role":"user"}]})", "messages[0].content"},
      {R"({"messages":[{"role":"wizard","content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages[0].content[0].image_url"},
      {R"({"messages":[{"role":"user","content":[{"type":"audio"}]}]})", "messages[0].content[0].type"},
      {R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "temperature"},
      {R"({"messages":[{"role":"user","content":"x"}],"temperature":9})", "temperature"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})", "max_tokens"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1.5})", "max_tokens"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})", "stop[0]"},
      {R"({"messages":[{"role":"user","content":"x"}],"n":2})", "n"},
      {R"({"messages":[{"role":"user","content":"x"}],"decoding":"magic"})", "decoding"},
      {R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
  };
  for (const auto& c : cases) {
    auto r = parse_request(Api::kChat, c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << c.body << " → " << r.status().message();
  }
}

TEST(ServeProtocol, RejectsDeepNestingBeforeParsing) {
  std::string body = R"({"messages":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = parse_request(Api::kChat, body);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos);
  // Brackets inside strings do not count.
  auto ok = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":")" + std::string(1000, '[') + R"("}]})");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(ServeProtocol, CompletionPromptForms) {
  auto s = parse_request(Api::kCompletions, R"({"prompt":"hi","max_tokens":3})");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->chat);
  EXPECT_EQ(s->prompt, "hi");
  auto ids = parse_request(Api::kCompletions, R"({"prompt":[1,2,3]})");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  auto batch1 = parse_request(Api::kCompletions, R"({"prompt":[[4,5]]})");
  ASSERT_TRUE(batch1.ok());
  EXPECT_EQ(batch1->prompt_ids, (std::vector<int32_t>{4, 5}));
  EXPECT_FALSE(parse_request(Api::kCompletions, R"({"prompt":["a","b"]})").ok());
  EXPECT_FALSE(parse_request(Api::kCompletions, R"({"prompt":[-1]})").ok());
  EXPECT_FALSE(parse_request(Api::kCompletions, R"({"prompt":""})").ok());
  EXPECT_FALSE(parse_request(Api::kCompletions, R"({"max_tokens":3})").ok());
}

TEST(ServeProtocol, AnthropicMessagesMapping) {
  auto r = parse_request(Api::kMessages, R"({"model":"claude-x","max_tokens":9,"system":[{"type":"text","text":"S"}],
      "messages":[{"role":"user","content":[{"type":"text","text":"q"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw=="}}]},
                  {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}]},
                  {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"42"}]}],
      "stop_sequences":["\n\n"],"top_k":5,"stream":true})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->messages.size(), 4u);
  EXPECT_EQ(r->messages[0]["role"], "system");
  // A message with images keeps its parts in order, as the chat template's item list.
  EXPECT_EQ(r->messages[1]["content"], Json::parse(R"([{"type":"text","text":"q"},{"type":"image"}])"));
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].field, "messages[0].content[1].source.data");
  EXPECT_EQ(r->images[0].media_type, "image/png");
  EXPECT_EQ(r->images[0].bytes, (std::vector<uint8_t>{0x89, 'P', 'N', 'G'}));
  EXPECT_EQ(r->messages[2]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(r->messages[3]["role"], "tool");
  EXPECT_EQ(r->messages[3]["content"], "42");
  EXPECT_EQ(r->stop, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(*r->max_tokens, 9);
  // max_tokens is required in the Anthropic API; temperature is at most 1 there.
  EXPECT_FALSE(parse_request(Api::kMessages, R"({"messages":[{"role":"user","content":"x"}]})").ok());
  EXPECT_FALSE(
      parse_request(Api::kMessages, R"({"max_tokens":1,"temperature":1.5,"messages":[{"role":"user","content":"x"}]})").ok());
  EXPECT_FALSE(parse_request(Api::kMessages, R"({"max_tokens":1,"messages":[{"role":"system","content":"x"}]})").ok());
}

TEST(ServeProtocol, ResponsesInputItems) {
  auto r = parse_request(Api::kResponses, R"({"instructions":"be brief","input":[
      {"role":"developer","content":"more"},{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}],
      "max_output_tokens":4})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0]["content"], "be brief\n\nmore");
  EXPECT_EQ(r->messages[1]["content"], "hi");
  EXPECT_EQ(*r->max_tokens, 4);
  EXPECT_FALSE(parse_request(Api::kResponses, R"({"input":[{"type":"web_search"}]})").ok());
}

TEST(ServeProtocol, ResolveOptionsPolicy) {
  const ModelInfo info = tiny_info();
  ServeDefaults d;
  d.sampling.repetition_penalty = 1.3f;
  d.max_tokens = 1000;
  GenRequest r;
  // Without max_tokens, the output gets the room the context leaves.
  auto o = resolve_options(r, d, info, 10);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->max_new_tokens, 90);
  EXPECT_FLOAT_EQ(o->sampling.repetition_penalty, 1.3f);
  // An explicit max_tokens that does not fit is an error, not a silent clamp.
  r.max_tokens = 91;
  EXPECT_FALSE(resolve_options(r, d, info, 10).ok());
  r.max_tokens = 90;
  EXPECT_TRUE(resolve_options(r, d, info, 10).ok());
  // Prompt filling the context.
  EXPECT_FALSE(resolve_options(GenRequest{}, d, info, 100).ok());
  // Diffusion needs a block of room past the output.
  r.mode = DecodeMode::kDiffusion;
  EXPECT_FALSE(resolve_options(r, d, info, 10).ok());
  r.max_tokens = 58;
  EXPECT_TRUE(resolve_options(r, d, info, 10).ok());
  // A named greedy-only mode with sampling is rejected...
  r.sampling.temperature = 0.7f;
  auto bad = resolve_options(r, d, info, 10);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("greedily"), std::string::npos);
  // ...while the server default (--mtp) falls back to AR for sampling requests.
  GenRequest s;
  s.sampling.temperature = 0.7f;
  ServeDefaults mtp = d;
  mtp.mode = DecodeMode::kSelfSpec;
  auto fb = resolve_options(s, mtp, info, 10);
  ASSERT_TRUE(fb.ok());
  EXPECT_EQ(fb->mode, DecodeMode::kAR);
  auto greedy = resolve_options(GenRequest{}, mtp, info, 10);
  ASSERT_TRUE(greedy.ok());
  EXPECT_EQ(greedy->mode, DecodeMode::kSelfSpec);
  // Models without block support cannot run diffusion.
  ModelInfo ar_only = info;
  ar_only.supports_block = false;
  GenRequest dr;
  dr.mode = DecodeMode::kDiffusion;
  EXPECT_FALSE(resolve_options(dr, d, ar_only, 10).ok());
}

TEST(ServeProtocol, CanvasFieldsAndImagePartsParse) {
  auto r = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},
      {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}},{"type":"text","text":"b"}]}],
      "sampler":"confidence-threshold","threshold":0.75,"steps":7})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->messages[0]["content"],
            Json::parse(R"([{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}])"));
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].field, "messages[0].content[1].image_url.url");
  EXPECT_EQ(r->images[0].media_type, "image/jpeg");
  EXPECT_EQ(r->images[0].bytes, (std::vector<uint8_t>{0xff, 0xd8, 0xff}));
  EXPECT_EQ(*r->canvas.sampler, CanvasSampler::kConfidenceThreshold);
  EXPECT_DOUBLE_EQ(*r->canvas.threshold, 0.75);
  EXPECT_EQ(*r->canvas.steps, 7);
  // Text-only part lists stay strings (templates written for strings keep working).
  auto t = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]})");
  EXPECT_EQ(t->messages[0]["content"], "a");
  struct Case {
    const char* body;
    const char* needle;
  } cases[] = {
      {R"({"messages":[{"role":"user","content":"x"}],"sampler":"greedy"})", "sampler"},
      {R"({"messages":[{"role":"user","content":"x"}],"threshold":0})", "threshold"},
      {R"({"messages":[{"role":"user","content":"x"}],"threshold":1.5})", "threshold"},
      {R"({"messages":[{"role":"user","content":"x"}],"steps":0})", "steps"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/a.png"}}]}]})",
       "messages[0].content[0].image_url.url: a http: URL"},
      {R"({"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},
          {"role":"user","content":"x"}]})", "messages[0].content: image parts are accepted in user messages only"},
  };
  for (const auto& c : cases) {
    auto e = parse_request(Api::kChat, c.body);
    ASSERT_FALSE(e.ok()) << c.body;
    EXPECT_NE(e.status().message().find(c.needle), std::string::npos) << c.body << " → " << e.status().message();
  }
  auto resp = parse_request(Api::kResponses, R"({"input":[{"role":"user","content":[
      {"type":"input_image","image_url":"data:image/png;base64,AAEC"}]}]})");
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->images[0].field, "input[0].content[0].image_url");
  EXPECT_EQ(resp->images[0].bytes, (std::vector<uint8_t>{0, 1, 2}));
  auto file = parse_request(Api::kResponses, R"({"input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]})");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("input[0].content[0].file_id"), std::string::npos);
}

TEST(ServeProtocol, CanvasOptionsFromRequestDefaultsAndContext) {
  ModelInfo info;
  info.model_type = "diffusion_gemma";
  info.vocab_size = 1024;
  info.max_position = 100;
  info.canvas_length = 16;
  ServeDefaults d;
  d.canvas.sampler = CanvasSampler::kEntropyBound;
  d.canvas.max_steps = 12;
  d.sampling.seed = 77;
  d.max_tokens = 1000;
  GenRequest r;
  auto o = resolve_canvas_options(r, d, info, 10);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->sampler, CanvasSampler::kEntropyBound);
  EXPECT_EQ(o->max_steps, 12);
  EXPECT_EQ(o->seed, 77u);
  EXPECT_EQ(o->max_new_tokens, 80);  // (100 − 10) / 16 = 5 whole canvases left
  r.canvas.sampler = CanvasSampler::kConfidenceThreshold;
  r.canvas.threshold = 0.6;
  r.canvas.steps = 3;
  r.sampling.seed = 5;
  r.sampling.temperature = 1.3f;  // not the canvas sampler's: ignored
  r.max_tokens = 80;
  o = resolve_canvas_options(r, d, info, 10);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->sampler, CanvasSampler::kConfidenceThreshold);
  EXPECT_DOUBLE_EQ(o->threshold, 0.6);
  EXPECT_EQ(o->max_steps, 3);
  EXPECT_EQ(o->seed, 5u);
  EXPECT_EQ(o->max_new_tokens, 80);
  // 81 tokens need a sixth canvas, which does not fit.
  r.max_tokens = 81;
  auto big = resolve_canvas_options(r, d, info, 10);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("max_tokens: 81 tokens requested (6 canvases of 16)"), std::string::npos)
      << big.status().message();
  EXPECT_FALSE(resolve_canvas_options(GenRequest{}, d, info, 90).ok());  // less than one canvas of room
  GenRequest mode;
  mode.mode = DecodeMode::kAR;
  EXPECT_FALSE(resolve_canvas_options(mode, d, info, 10).ok());
  // The canvas fields are refused on other models.
  GenRequest dhara;
  dhara.canvas.steps = 4;
  auto e = resolve_options(dhara, d, tiny_info(), 10);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("steps: applies to canvas-diffusion models only"), std::string::npos);
}

// Parses the SSE frames of a stream into (event, data) pairs.
std::vector<std::pair<std::string, std::string>> frames(const std::string& s) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated frame";
    if (end == std::string::npos) break;
    std::string block = s.substr(pos, end - pos), event, data;
    size_t lp = 0;
    while (lp <= block.size()) {
      size_t le = block.find('\n', lp);
      if (le == std::string::npos) le = block.size();
      std::string line = block.substr(lp, le - lp);
      if (line.rfind("event: ", 0) == 0) event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) data = line.substr(6);
      lp = le + 1;
    }
    out.emplace_back(event, data);
    pos = end + 2;
  }
  return out;
}

TEST(ServeProtocol, ChatStreamFramesAndUsage) {
  GenRequest r;
  r.model = "m";
  r.include_usage = true;
  auto w = ResponseWriter::make(r, "abc", 1);
  Outcome o{"hi", Finish::kLength, "", 4, 2, "ar"};
  // One call per statement: the writers are stateful, and operands of + are unsequenced.
  std::string s = w->stream_begin(4, "ar");
  s += w->stream_delta("h");
  s += w->stream_delta("");
  s += w->stream_delta("i");
  s += w->stream_end(o);
  auto f = frames(s);
  ASSERT_EQ(f.size(), 6u);
  auto first = Json::parse(f[0].second);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(Json::parse(f[1].second)["choices"][0]["delta"]["content"], "h");
  EXPECT_EQ(Json::parse(f[3].second)["choices"][0]["finish_reason"], "length");
  auto usage = Json::parse(f[4].second);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 6);
  EXPECT_EQ(f[5].second, "[DONE]");
  auto full = w->complete(o);
  EXPECT_EQ(full["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(full["id"], "chatcmpl-abc");
}

TEST(ServeProtocol, AnthropicStreamEventOrder) {
  GenRequest r;
  r.api = Api::kMessages;
  auto w = ResponseWriter::make(r, std::string(32, 'f'), 1);
  Outcome o{"x", Finish::kStopSequence, "END", 3, 5, "ar"};
  std::string s = w->stream_begin(3, "ar");
  s += w->stream_delta("x");
  s += w->stream_end(o);
  auto f = frames(s);
  std::vector<std::string> events;
  for (auto& [e, d] : f) {
    events.push_back(e);
    EXPECT_EQ(Json::parse(d)["type"], e);
  }
  EXPECT_EQ(events, (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                              "content_block_stop", "message_delta", "message_stop"}));
  auto md = Json::parse(f[4].second);
  EXPECT_EQ(md["delta"]["stop_reason"], "stop_sequence");
  EXPECT_EQ(md["delta"]["stop_sequence"], "END");
  EXPECT_EQ(md["usage"]["output_tokens"], 5);
  auto full = w->complete(o);
  EXPECT_EQ(full["id"].get<std::string>().size(), 4u + 24u);
  EXPECT_EQ(full["usage"]["input_tokens"], 3);
}

TEST(ServeProtocol, ResponsesStreamEndsWithCompletedResponse) {
  GenRequest r;
  r.api = Api::kResponses;
  auto w = ResponseWriter::make(r, "ab", 1);
  Outcome o{"", Finish::kLength, "", 2, 1, "ar"};
  std::string s = w->stream_begin(2, "ar");
  s += w->stream_delta("yo");
  s += w->stream_end(o);
  auto f = frames(s);
  ASSERT_GE(f.size(), 9u);
  EXPECT_EQ(f.front().first, "response.created");
  EXPECT_EQ(f.back().first, "response.completed");
  auto done = Json::parse(f.back().second)["response"];
  EXPECT_EQ(done["status"], "incomplete");
  EXPECT_EQ(done["output"][0]["content"][0]["text"], "yo");
  for (size_t i = 0; i < f.size(); ++i) EXPECT_EQ(Json::parse(f[i].second)["sequence_number"], i);
}

TEST(ServeProtocol, ErrorBodiesPerDialect) {
  auto oa = error_body(Dialect::kOpenAI, 400, "bad");
  EXPECT_EQ(oa["error"]["message"], "bad");
  EXPECT_EQ(oa["error"]["type"], "invalid_request_error");
  auto an = error_body(Dialect::kAnthropic, 503, "busy");
  EXPECT_EQ(an["type"], "error");
  EXPECT_EQ(an["error"]["type"], "overloaded_error");
  EXPECT_EQ(error_body(Dialect::kAnthropic, 401, "")["error"]["type"], "authentication_error");
}

}  // namespace
}  // namespace optiq::serve
