// Anthropic messages: request parsing and the response writer.
#include "serve/protocol.h"

#include <gtest/gtest.h>

#include "tests/serve/protocol_test_util.h"

namespace optiq::serve {
namespace {

using test::expect_rejected;
using test::frames;

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

TEST(ServeProtocol, AnthropicToolsThinkingAndDocuments) {
  auto r = parse_request(Api::kMessages, R"({"max_tokens":5,"messages":[
      {"role":"user","content":[{"type":"document","source":{}},{"type":"text","text":"q"}]},
      {"role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"a"}]}],
      "tools":[{"name":"get","description":"d","input_schema":{"type":"object"}},
               {"type":"web_search_20250305","name":"web_search"}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0]["content"], "[document omitted]q");
  EXPECT_EQ(r->messages[1]["content"], "a");  // earlier thinking is not replayed
  // Custom tools become OpenAI function tools; the server tool (no input_schema) is dropped.
  ASSERT_EQ(r->tools.size(), 1u);
  EXPECT_EQ(r->tools[0]["type"], "function");
  EXPECT_EQ(r->tools[0]["function"]["name"], "get");
  EXPECT_EQ(r->tools[0]["function"]["description"], "d");
  EXPECT_EQ(r->tools[0]["function"]["parameters"], Json::parse(R"({"type":"object"})"));
}

TEST(ServeProtocol, AnthropicRejectsMalformedNamingTheField) {
  expect_rejected(Api::kMessages, {
      {R"({"max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"image","source":{"type":"base64","data":"AA=="}}]}]})",
       "messages[0].content[0]: image blocks are accepted in user messages only"},
      {R"({"max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"http://x"}}]}]})",
       "messages[0].content[0].source.type: \"url\" image sources are not supported"},
      {R"({"max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"%%"}}]}]})",
       "messages[0].content[0].source.data"},
      {R"({"max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f"}]}]})",
       "messages[0].content[0]: tool_use blocks belong to assistant messages"},
      {R"({"max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]})",
       "messages[0].content[0].tool_use_id"},
      {R"({"max_tokens":1,"messages":[{"role":"user","content":[{"type":"audio"}]}]})", "messages[0].content[0].type"},
      {R"({"max_tokens":1,"stop_sequences":"x","messages":[{"role":"user","content":"x"}]})",
       "stop_sequences: expected an array of strings"},
      {R"({"max_tokens":1,"system":3,"messages":[{"role":"user","content":"x"}]})", "system: expected a string or an array"},
      {R"({"max_tokens":1,"top_k":-1,"messages":[{"role":"user","content":"x"}]})", "top_k"},
      {R"({"max_tokens":1,"tools":[{"description":"no name"}],"messages":[{"role":"user","content":"x"}]})", "tools[0].name"},
  });
}

TEST(ServeProtocol, AnthropicBodyAndInStreamError) {
  GenRequest r;
  r.api = Api::kMessages;
  r.model = "claude-x";
  auto w = ResponseWriter::make(r, std::string(32, 'a'), 1);
  auto full = w->complete(Outcome{"t", Finish::kLength, "", 2, 9, "ar"});
  EXPECT_EQ(full["type"], "message");
  EXPECT_EQ(full["model"], "claude-x");
  EXPECT_EQ(full["content"][0]["text"], "t");
  EXPECT_EQ(full["stop_reason"], "max_tokens");
  EXPECT_TRUE(full["stop_sequence"].is_null());  // only set when a stop sequence ended the turn
  EXPECT_EQ(full["usage"]["output_tokens"], 9);
  auto f = frames(w->stream_error("boom"));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].first, "error");
  auto e = Json::parse(f[0].second);
  EXPECT_EQ(e["type"], "error");
  EXPECT_EQ(e["error"]["type"], "api_error");
  EXPECT_EQ(e["error"]["message"], "boom");
}

}  // namespace
}  // namespace optiq::serve
