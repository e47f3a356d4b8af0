// OpenAI Responses: request parsing and the response writer.
#include "serve/protocol.h"

#include <gtest/gtest.h>

#include "tests/serve/protocol_test_util.h"

namespace optiq::serve {
namespace {

using test::expect_rejected;
using test::frames;

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

TEST(ServeProtocol, ResponsesFunctionCallItemsAndFlatTools) {
  auto r = parse_request(Api::kResponses, R"({"input":[{"role":"user","content":"q"},
      {"type":"function_call","name":"f","arguments":"{\"a\":1}","call_id":"c1"},
      {"type":"function_call_output","call_id":"c1","output":"42"}],
      "tools":[{"type":"function","name":"f","description":"d","parameters":{"type":"object"}},{"type":"web_search"}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->api, Api::kResponses);
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[0]["role"], "user");
  EXPECT_EQ(r->messages[1]["role"], "assistant");
  EXPECT_EQ(r->messages[1]["tool_calls"][0]["id"], "c1");
  EXPECT_EQ(r->messages[1]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(r->messages[1]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
  EXPECT_EQ(r->messages[2]["role"], "tool");
  EXPECT_EQ(r->messages[2]["tool_call_id"], "c1");
  EXPECT_EQ(r->messages[2]["content"], "42");
  // Flat function tools nest as chat tools; other tool types are dropped.
  ASSERT_EQ(r->tools.size(), 1u);
  EXPECT_EQ(r->tools[0]["function"]["name"], "f");
  EXPECT_EQ(r->tools[0]["function"]["description"], "d");
  EXPECT_EQ(r->tools[0]["function"]["parameters"], Json::parse(R"({"type":"object"})"));
  auto s = parse_request(Api::kResponses, R"({"input":"just text"})");
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->messages.size(), 1u);
  EXPECT_EQ(s->messages[0]["content"], "just text");
  expect_rejected(Api::kResponses, {
      {R"({})", "input: required"},
      {R"({"input":3})", "input: expected a string or an array"},
      {R"({"input":[{"role":"tool","content":"x"}]})", "input[0].role"},
      {R"({"input":[{"type":"function_call","name":"f","arguments":"{}"}]})", "input[0]: function_call needs"},
      {R"({"input":[{"type":"function_call_output","call_id":"c"}]})", "input[0]: function_call_output needs"},
      {R"({"input":[{"role":"system","content":"only system"}]})", "input: must contain at least one user or assistant"},
      {R"({"input":"x","max_output_tokens":0})", "max_output_tokens"},
  });
}

TEST(ServeProtocol, ResponsesBodyAndInStreamError) {
  GenRequest r;
  r.api = Api::kResponses;
  r.model = "m";
  auto w = ResponseWriter::make(r, "ab", 5);
  auto done = w->complete(Outcome{"hi", Finish::kStop, "", 3, 2, "selfspec"});
  EXPECT_EQ(done["id"], "resp_ab");
  EXPECT_EQ(done["object"], "response");
  EXPECT_EQ(done["created_at"], 5);
  EXPECT_EQ(done["status"], "completed");
  EXPECT_TRUE(done["incomplete_details"].is_null());
  EXPECT_EQ(done["output"][0]["id"], "msg_ab");
  EXPECT_EQ(done["output"][0]["content"][0]["text"], "hi");
  EXPECT_EQ(done["usage"]["input_tokens"], 3);
  EXPECT_EQ(done["usage"]["output_tokens"], 2);
  EXPECT_EQ(done["usage"]["total_tokens"], 5);
  EXPECT_EQ(done["decoding"], "selfspec");
  auto cut = w->complete(Outcome{"h", Finish::kLength, "", 3, 1, "ar"});
  EXPECT_EQ(cut["status"], "incomplete");
  EXPECT_EQ(cut["incomplete_details"]["reason"], "max_output_tokens");
  auto f = frames(w->stream_error("boom"));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].first, "error");
  auto e = Json::parse(f[0].second);
  EXPECT_EQ(e["type"], "error");
  EXPECT_EQ(e["code"], "server_error");
  EXPECT_EQ(e["message"], "boom");
}

}  // namespace
}  // namespace optiq::serve
