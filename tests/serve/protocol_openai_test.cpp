// OpenAI chat completions and legacy completions: request parsing and response writers.
#include "serve/protocol.h"

#include <gtest/gtest.h>

#include "tests/serve/protocol_test_util.h"

namespace optiq::serve {
namespace {

using test::expect_rejected;
using test::frames;

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
  expect_rejected(Api::kChat, {
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
  });
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
  expect_rejected(Api::kChat, {
      {R"({"messages":[{"role":"user","content":"x"}],"sampler":"greedy"})", "sampler"},
      {R"({"messages":[{"role":"user","content":"x"}],"threshold":0})", "threshold"},
      {R"({"messages":[{"role":"user","content":"x"}],"threshold":1.5})", "threshold"},
      {R"({"messages":[{"role":"user","content":"x"}],"steps":0})", "steps"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/a.png"}}]}]})",
       "messages[0].content[0].image_url.url: a http: URL"},
      {R"({"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},
          {"role":"user","content":"x"}]})", "messages[0].content: image parts are accepted in user messages only"},
  });
  auto resp = parse_request(Api::kResponses, R"({"input":[{"role":"user","content":[
      {"type":"input_image","image_url":"data:image/png;base64,AAEC"}]}]})");
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->images[0].field, "input[0].content[0].image_url");
  EXPECT_EQ(resp->images[0].bytes, (std::vector<uint8_t>{0, 1, 2}));
  auto file = parse_request(Api::kResponses, R"({"input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]})");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("input[0].content[0].file_id"), std::string::npos);
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

TEST(ServeProtocol, ChatToolCallsToolResultsAndTemplateKwargs) {
  auto r = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":"q"},
      {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c1","name":"f","content":"42"}],
      "tools":[{"type":"function","function":{"name":"f","parameters":{}}}],
      "chat_template_kwargs":{"enable_thinking":false}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->messages.size(), 3u);
  // An assistant turn that only calls tools may omit content; the template still sees a string.
  EXPECT_EQ(r->messages[1]["content"], "");
  EXPECT_EQ(r->messages[1]["tool_calls"][0]["id"], "c1");
  EXPECT_EQ(r->messages[2]["role"], "tool");
  EXPECT_EQ(r->messages[2]["tool_call_id"], "c1");
  EXPECT_EQ(r->messages[2]["name"], "f");
  ASSERT_TRUE(r->tools.is_array());
  ASSERT_EQ(r->tools.size(), 1u);
  EXPECT_EQ(r->tools[0]["function"]["name"], "f");
  EXPECT_EQ(r->template_kwargs["enable_thinking"], false);
  // An empty tool list means no tools (templates branch on its presence).
  auto none = parse_request(Api::kChat, R"({"messages":[{"role":"user","content":"q"}],"tools":[]})");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->tools.is_null());
  expect_rejected(Api::kChat, {
      {R"({"messages":[{"role":"user","content":"q"}],"tools":{}})", "tools: expected an array"},
      {R"({"messages":[{"role":"user","content":"q"}],"chat_template_kwargs":[]})", "chat_template_kwargs: expected an object"},
      {R"({"messages":[{"role":"assistant","content":"a","tool_calls":{}}]})", "messages[0].tool_calls: expected an array"},
      {R"({"messages":[{"role":"tool","content":"a","tool_call_id":3}]})", "messages[0].tool_call_id: expected a string"},
      {R"({"messages":[{"role":"user","content":"a","name":1}]})", "messages[0].name: expected a string"},
      {R"({"messages":[{"role":"user"}]})", "messages[0].content: required"},
  });
}

TEST(ServeProtocol, CompletionStreamAndBody) {
  GenRequest r;
  r.api = Api::kCompletions;
  r.chat = false;
  r.model = "m";
  auto w = ResponseWriter::make(r, "xyz", 7);
  Outcome o{"ok", Finish::kStopSequence, "\n", 3, 2, "diffusion"};
  EXPECT_EQ(w->stream_begin(3, "ar"), "");  // the legacy API has no role frame
  std::string s = w->stream_delta("o");
  s += w->stream_delta("k");
  s += w->stream_end(o);
  auto f = frames(s);
  ASSERT_EQ(f.size(), 4u);  // two text chunks, the closing chunk, [DONE]; no usage chunk (not asked for)
  auto c0 = Json::parse(f[0].second);
  EXPECT_EQ(c0["object"], "text_completion");
  EXPECT_EQ(c0["id"], "cmpl-xyz");
  EXPECT_EQ(c0["choices"][0]["text"], "o");
  EXPECT_TRUE(c0["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(c0.contains("usage"));
  auto last = Json::parse(f[2].second);
  EXPECT_EQ(last["choices"][0]["text"], "");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");  // OpenAI spells a matched stop sequence "stop"
  EXPECT_EQ(last["decoding"], "diffusion");
  EXPECT_EQ(f[3].second, "[DONE]");
  auto full = w->complete(o);
  EXPECT_EQ(full["choices"][0]["text"], "ok");
  EXPECT_EQ(full["usage"]["total_tokens"], 5);
  EXPECT_EQ(full["created"], 7);
  EXPECT_EQ(full["model"], "m");
}

TEST(ServeProtocol, ChatEmptyTextAndInStreamError) {
  GenRequest r;
  auto w = ResponseWriter::make(r, "abc", 1);
  // No text at all is content null, as OpenAI sends for a turn without text.
  auto full = w->complete(Outcome{"", Finish::kStop, "", 1, 0, "ar"});
  EXPECT_TRUE(full["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(full["choices"][0]["finish_reason"], "stop");
  auto f = frames(w->stream_error("boom"));
  ASSERT_EQ(f.size(), 2u);
  auto e = Json::parse(f[0].second);
  EXPECT_EQ(e["error"]["message"], "boom");
  EXPECT_EQ(e["error"]["type"], "server_error");
  EXPECT_EQ(f[1].second, "[DONE]");
}

}  // namespace
}  // namespace optiq::serve
