// What every API shares: body checks, option resolution, error bodies, SSE framing.
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

TEST(ServeProtocol, RejectsDeepNestingBeforeParsing) {
  std::string body = R"({"messages":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = parse_request(Api::kChat, body);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos);
  // Brackets inside strings do not count.
  auto ok = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":")" + std::string(1000, '[') + R"("}]})");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
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

TEST(ServeProtocol, ErrorBodiesPerDialect) {
  auto oa = error_body(Dialect::kOpenAI, 400, "bad");
  EXPECT_EQ(oa["error"]["message"], "bad");
  EXPECT_EQ(oa["error"]["type"], "invalid_request_error");
  auto an = error_body(Dialect::kAnthropic, 503, "busy");
  EXPECT_EQ(an["type"], "error");
  EXPECT_EQ(an["error"]["type"], "overloaded_error");
  EXPECT_EQ(error_body(Dialect::kAnthropic, 401, "")["error"]["type"], "authentication_error");
}

TEST(ServeProtocol, ErrorParamIsTheLeadingFieldPath) {
  EXPECT_EQ(error_param("temperature: must be in [0, 2], got 3"), "temperature");
  EXPECT_EQ(error_param("messages[0].content[1].image_url.url: bad base64"), "messages[0].content[1].image_url.url");
  EXPECT_EQ(error_param("stop[12]: expected a string, got integer"), "stop[12]");
  EXPECT_EQ(error_param("request body: JSON nested deeper"), "");
  EXPECT_EQ(error_param("server busy: 64 requests"), "");
  EXPECT_EQ(error_param("temperature must be >= 0"), "");
  EXPECT_EQ(error_param("messages[x]: y"), "");
  EXPECT_EQ(error_param("messages.: y"), "");
  EXPECT_EQ(error_param("prompt[3"), "");
  EXPECT_EQ(error_param(""), "");
  auto oa = error_body(Dialect::kOpenAI, 400, "top_k: expected an integer, got string");
  EXPECT_EQ(oa["error"]["param"], "top_k");
  EXPECT_EQ(oa["error"]["code"], "invalid_type");
  EXPECT_EQ(error_body(Dialect::kOpenAI, 400, "messages: required")["error"]["code"], "missing_required_parameter");
  // Only 400s name a field; Anthropic's shape has no param.
  EXPECT_TRUE(error_body(Dialect::kOpenAI, 500, "top_k: x")["error"]["param"].is_null());
  EXPECT_FALSE(error_body(Dialect::kAnthropic, 400, "top_k: x")["error"].contains("param"));
}

// Every field a parser validates comes back as the error's param: each request here is wrong in one
// field, and parse_request's message leads with that field's path.
TEST(ServeProtocol, EveryFieldValidationNamesItsParam) {
  struct Case {
    Api api;
    std::string body;
    const char* param;
  };
  const std::string m = R"("messages":[{"role":"user","content":"x"}])";
  const std::string am = R"("max_tokens":4,"messages":[{"role":"user","content":"x"}])";
  const std::vector<Case> cases = {
      {Api::kChat, "{" + m + R"(,"temperature":-1})", "temperature"},
      {Api::kChat, "{" + m + R"(,"top_p":0})", "top_p"},
      {Api::kChat, "{" + m + R"(,"top_k":-2})", "top_k"},
      {Api::kChat, "{" + m + R"(,"min_p":2})", "min_p"},
      {Api::kChat, "{" + m + R"(,"repetition_penalty":"x"})", "repetition_penalty"},
      {Api::kChat, "{" + m + R"(,"seed":"x"})", "seed"},
      {Api::kChat, "{" + m + R"(,"max_tokens":0})", "max_tokens"},
      {Api::kChat, "{" + m + R"(,"max_completion_tokens":0})", "max_completion_tokens"},
      {Api::kChat, "{" + m + R"(,"stream":"yes"})", "stream"},
      {Api::kChat, "{" + m + R"(,"stream_options":1})", "stream_options"},
      {Api::kChat, "{" + m + R"(,"stream_options":{"include_usage":1}})", "stream_options.include_usage"},
      {Api::kChat, "{" + m + R"(,"stop":5})", "stop"},
      {Api::kChat, "{" + m + R"(,"n":2})", "n"},
      {Api::kChat, "{" + m + R"(,"tools":{}})", "tools"},
      {Api::kChat, "{" + m + R"(,"chat_template_kwargs":[]})", "chat_template_kwargs"},
      {Api::kChat, "{" + m + R"(,"decoding":"x"})", "decoding"},
      {Api::kChat, "{" + m + R"(,"sampler":"x"})", "sampler"},
      {Api::kChat, "{" + m + R"(,"threshold":2})", "threshold"},
      {Api::kChat, "{" + m + R"(,"steps":0})", "steps"},
      {Api::kChat, "{" + m + R"(,"adapter":1})", "adapter"},
      {Api::kChat, "{" + m + R"(,"model":1})", "model"},
      {Api::kChat, R"({"messages":[{"role":"user"}]})", "messages[0].content"},
      {Api::kChat, R"({"messages":[{"role":"user","content":[{"type":"video"}]}]})", "messages[0].content[0].type"},
      {Api::kCompletions, R"({"prompt":{}})", "prompt"},
      {Api::kCompletions, R"({"prompt":[1,"x"]})", "prompt[1]"},
      {Api::kCompletions, R"({"prompt":"x","stop":["x",2]})", "stop[1]"},
      {Api::kMessages, R"({"messages":[{"role":"user","content":"x"}]})", "max_tokens"},
      {Api::kMessages, "{" + am + R"(,"temperature":5})", "temperature"},
      {Api::kMessages, "{" + am + R"(,"stop_sequences":"x"})", "stop_sequences"},
      {Api::kMessages, "{" + am + R"(,"system":3})", "system"},
      {Api::kMessages, R"({"max_tokens":4,"messages":[{"role":"system","content":"x"}]})", "messages[0].role"},
      {Api::kResponses, R"({"input":"x","max_output_tokens":0})", "max_output_tokens"},
      {Api::kResponses, R"({"input":5})", "input"},
      {Api::kResponses, R"({"input":"x","instructions":5})", "instructions"},
  };
  for (const Case& k : cases) {
    auto r = parse_request(k.api, k.body);
    ASSERT_FALSE(r.ok()) << k.body;
    const Json e = error_body(Dialect::kOpenAI, 400, r.status().message());
    EXPECT_EQ(e["error"]["param"], k.param) << k.body << " -> " << r.status().message();
  }
}

TEST(ServeProtocol, ErrorBodyTypesFollowHttpStatus) {
  auto oa = [](int status) { return error_body(Dialect::kOpenAI, status, "m")["error"]["type"].get<std::string>(); };
  EXPECT_EQ(oa(401), "authentication_error");
  EXPECT_EQ(oa(404), "not_found_error");
  EXPECT_EQ(oa(429), "rate_limit_error");
  EXPECT_EQ(oa(500), "server_error");
  EXPECT_EQ(oa(413), "invalid_request_error");
  auto an = [](int status) { return error_body(Dialect::kAnthropic, status, "m")["error"]["type"].get<std::string>(); };
  EXPECT_EQ(an(403), "permission_error");
  EXPECT_EQ(an(404), "not_found_error");
  EXPECT_EQ(an(413), "request_too_large");
  EXPECT_EQ(an(429), "rate_limit_error");
  EXPECT_EQ(an(529), "overloaded_error");
  EXPECT_EQ(an(500), "api_error");
  EXPECT_EQ(an(400), "invalid_request_error");
  EXPECT_EQ(dialect_of(Api::kMessages), Dialect::kAnthropic);
  EXPECT_EQ(dialect_of(Api::kResponses), Dialect::kOpenAI);
}

// "adapter" (or OptIQ's "adapters", a name or a list of one) in every API; null means unset.
TEST(ServeProtocol, AdapterFieldInEveryApi) {
  const std::pair<Api, std::string> apis[] = {
      {Api::kChat, R"("messages":[{"role":"user","content":"x"}])"},
      {Api::kCompletions, R"("prompt":"x")"},
      {Api::kMessages, R"("messages":[{"role":"user","content":"x"}],"max_tokens":4)"},
      {Api::kResponses, R"("input":"x")"}};
  for (const auto& [api, base] : apis) {
    auto r = parse_request(api, "{" + base + R"(,"adapter":"alpha"})");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->adapter, "alpha");
    r = parse_request(api, "{" + base + R"(,"adapters":["beta"]})");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->adapter, "beta");
    r = parse_request(api, "{" + base + R"(,"adapter":null})");
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->adapter.has_value());
  }
  for (const char* bad : {R"("adapter":1)", R"("adapters":[])", R"("adapters":["a","b"])", R"("adapters":[2])",
                          R"("adapter":"a","adapters":"b")"}) {
    auto r = parse_request(Api::kCompletions, std::string(R"({"prompt":"x",)") + bad + "}");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message().rfind("adapter", 0), 0u) << r.status().message();
  }
}

TEST(ServeProtocol, SseFrameLayout) {
  EXPECT_EQ(sse_frame(Json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_frame(Json{{"a", 1}}, "ping"), "event: ping\ndata: {\"a\":1}\n\n");
  // Invalid UTF-8 is replaced, not thrown.
  std::string s = sse_frame(Json{{"t", std::string("a\xff")}});
  EXPECT_NE(s.find("a\xEF\xBF\xBD"), std::string::npos) << s;
}

TEST(ServeProtocol, FinishReasonsPerApi) {
  EXPECT_STREQ(openai_finish_reason(Finish::kStop), "stop");
  EXPECT_STREQ(openai_finish_reason(Finish::kLength), "length");
  EXPECT_STREQ(openai_finish_reason(Finish::kStopSequence), "stop");
  EXPECT_STREQ(anthropic_stop_reason(Finish::kStop), "end_turn");
  EXPECT_STREQ(anthropic_stop_reason(Finish::kLength), "max_tokens");
  EXPECT_STREQ(anthropic_stop_reason(Finish::kStopSequence), "stop_sequence");
}

TEST(ServeProtocol, SharedFieldsParseAlikeInEveryApi) {
  // Stop strings: empty ones dropped, at most kMaxStopStrings, each at most kMaxStopLength bytes.
  auto ok = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":"x"}],"stop":["","a"]})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->stop, std::vector<std::string>{"a"});
  std::string many = "[";
  for (size_t i = 0; i <= kMaxStopStrings; ++i) many += std::string(i ? "," : "") + "\"s\"";
  many += "]";
  auto too_many = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":"x"}],"stop":)" + many + "}");
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("stop: at most 16 entries, got 17"), std::string::npos);
  auto too_long = parse_request(Api::kMessages, R"({"max_tokens":1,"messages":[{"role":"user","content":"x"}],
      "stop_sequences":[")" + std::string(kMaxStopLength + 1, 'z') + R"("]})");
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("stop_sequences[0]: longer than 256 bytes (257)"), std::string::npos);
  // "decoding", the canvas fields and chat_template_kwargs read the same through each API.
  auto chat = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":"x"}],"decoding":"selfspec","steps":3})");
  auto msgs = parse_request(Api::kMessages,
                            R"({"max_tokens":1,"messages":[{"role":"user","content":"x"}],"decoding":"ar","steps":3,
                                "chat_template_kwargs":{"k":1}})");
  auto resp = parse_request(Api::kResponses, R"({"input":"x","decoding":"diffusion","steps":3})");
  ASSERT_TRUE(chat.ok() && msgs.ok() && resp.ok());
  EXPECT_EQ(*chat->mode, DecodeMode::kSelfSpec);
  EXPECT_EQ(*msgs->mode, DecodeMode::kAR);
  EXPECT_EQ(*resp->mode, DecodeMode::kDiffusion);
  EXPECT_EQ(*chat->canvas.steps, 3);
  EXPECT_EQ(*msgs->canvas.steps, 3);
  EXPECT_EQ(*resp->canvas.steps, 3);
  EXPECT_EQ(msgs->template_kwargs["k"], 1);
  auto bad_mode = parse_request(Api::kResponses, R"({"input":"x","decoding":3})");
  ASSERT_FALSE(bad_mode.ok());
  EXPECT_NE(bad_mode.status().message().find("decoding: expected a string, got integer"), std::string::npos);
}

TEST(ServeProtocol, ResolveOptionsAppliesOverridesAndNamesEachApisLimitField) {
  const ModelInfo info = tiny_info();
  ServeDefaults d;
  GenRequest r;
  r.sampling.top_k = 7;
  r.sampling.min_p = 0.2f;
  r.sampling.seed = 99;
  auto o = resolve_options(r, d, info, 10);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->sampling.top_k, 7);
  EXPECT_FLOAT_EQ(o->sampling.min_p, 0.2f);
  EXPECT_EQ(o->sampling.seed, 99u);
  for (auto [api, name] : {std::pair{Api::kChat, "max_tokens: 500"}, {Api::kMessages, "max_tokens: 500"},
                           {Api::kResponses, "max_output_tokens: 500"}}) {
    GenRequest big;
    big.api = api;
    big.max_tokens = 500;
    auto e = resolve_options(big, d, info, 10);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.status().message().rfind(name, 0), 0u) << e.status().message();
  }
}

}  // namespace
}  // namespace optiq::serve
