// The server in-process on a free loopback port with the bundled model, driven by cpp-httplib's client.
#include "serve/server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "tests/lora_test_util.h"
#include "tests/test_util.h"

namespace optiq::serve {
namespace {

std::string model_dir() { return test::repo_dir() + "/models/dhara-brown-tiny"; }

class ServeServer : public ::testing::Test {
 protected:
  void start(ServerOptions o) {
    o.host = "127.0.0.1";
    o.port = 0;
    o.defaults.sampling.repetition_penalty = 1.3f;  // dhara's generation_config.json
    server_ = std::make_unique<Server>(o);
    auto port = server_->bind();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    thread_ = std::thread([this] { EXPECT_TRUE(server_->serve().ok()); });
    auto model = load_model(model_dir());
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    auto tok = Tokenizer::from_dir(model_dir());
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    server_->set_model(std::move(model).value(), std::move(tok).value(), 1);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30);
    return c;
  }
  Json post(const std::string& path, const std::string& body, int want_status = 200) {
    auto c = client();
    auto r = c.Post(path, body, "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return Json();
    EXPECT_EQ(r->status, want_status) << r->body;
    return Json::parse(r->body);
  }
  // Expected greedy text: the engine called directly on the same prompt.
  std::string direct(const std::vector<int32_t>& prompt, DecodeMode mode, int max_tokens) {
    auto model = load_model(model_dir());
    auto tok = Tokenizer::from_dir(model_dir());
    ThreadPool pool(1);
    GenerateOptions o;
    o.mode = mode;
    o.max_new_tokens = max_tokens;
    o.sampling.repetition_penalty = 1.3f;
    auto r = generate(**model, pool, prompt, o);
    EXPECT_TRUE(r.ok());
    return (*tok)->decode(r->visible_tokens((*model)->info().eos_ids), true);
  }

  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

TEST_F(ServeServer, GreedyCompletionEqualsEngineInEveryMode) {
  start({});
  auto tok = Tokenizer::from_dir(model_dir());
  const std::vector<int32_t> prompt = (*tok)->encode("The jury said", true);
  for (DecodeMode m : {DecodeMode::kAR, DecodeMode::kDiffusion, DecodeMode::kSelfSpec}) {
    Json body{{"prompt", "The jury said"}, {"max_tokens", 40}, {"decoding", decode_mode_name(m)}};
    Json r = post("/v1/completions", body.dump());
    EXPECT_EQ(r["decoding"], decode_mode_name(m));
    EXPECT_EQ(r["choices"][0]["text"], direct(prompt, m, 40)) << decode_mode_name(m);
    EXPECT_EQ(r["usage"]["prompt_tokens"], prompt.size());
  }
}

TEST_F(ServeServer, StreamConcatenationEqualsNonStreaming) {
  start({});
  const std::string msgs = R"("messages":[{"role":"user","content":"Tell me about the city"}],"max_tokens":48)";
  Json full = post("/v1/chat/completions", "{" + msgs + "}");
  auto c = client();
  std::string sse;
  auto r = c.Post("/v1/chat/completions", "{" + msgs + R"(,"stream":true,"stream_options":{"include_usage":true}})",
                  "application/json");
  ASSERT_TRUE(r);
  sse = r->body;
  std::string text;
  Json usage;
  size_t pos = 0;
  bool done = false;
  while ((pos = sse.find("data: ", pos)) != std::string::npos) {
    size_t end = sse.find("\n\n", pos);
    std::string data = sse.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") {
      done = true;
      break;
    }
    Json j = Json::parse(data);
    if (!j["choices"].empty() && j["choices"][0]["delta"].contains("content"))
      text += j["choices"][0]["delta"]["content"].get<std::string>();
    if (j.contains("usage") && !j["usage"].is_null()) usage = j["usage"];
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(text, full["choices"][0]["message"]["content"].is_null() ? "" : full["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_EQ(usage, full["usage"]);
}

TEST_F(ServeServer, StopStringCutsOutputAndFinishesWithStop) {
  start({});
  Json base = post("/v1/completions", R"({"prompt":"The jury said","max_tokens":40})");
  const std::string text = base["choices"][0]["text"];
  ASSERT_GE(text.size(), 12u);
  const std::string stop = text.substr(6, 3);
  const std::string want = text.substr(0, text.find(stop));
  Json body{{"prompt", "The jury said"}, {"max_tokens", 40}, {"stop", {stop}}};
  Json r = post("/v1/completions", body.dump());
  EXPECT_EQ(r["choices"][0]["text"], want);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  body["stream"] = true;
  auto c = client();
  auto s = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(s);
  // Not even part of the stop string may appear in the stream.
  std::string streamed;
  size_t pos = 0;
  while ((pos = s->body.find("data: {", pos)) != std::string::npos) {
    size_t end = s->body.find("\n\n", pos);
    streamed += Json::parse(s->body.substr(pos + 6, end - pos - 6))["choices"][0]["text"].get<std::string>();
    pos = end;
  }
  EXPECT_EQ(streamed, want);
}

TEST_F(ServeServer, ErrorsInTheCallersDialectAndServerStaysUp) {
  ServerOptions o;
  o.max_body_bytes = 8192;
  start(o);
  Json oa = post("/v1/chat/completions", "{nope", 400);
  EXPECT_TRUE(oa["error"].contains("message"));
  Json an = post("/v1/messages", R"({"messages":[{"role":"user","content":"x"}]})", 400);
  EXPECT_EQ(an["type"], "error");
  EXPECT_EQ(an["error"]["type"], "invalid_request_error");
  Json big = post("/v1/messages", std::string(20000, ' '), 413);
  EXPECT_EQ(big["error"]["type"], "request_too_large");
  Json longp = post("/v1/completions", Json{{"prompt", std::string(5000, 'a')}}.dump(), 400);
  EXPECT_NE(longp["error"]["message"].get<std::string>().find("context"), std::string::npos);
  post("/v1/completions", R"({"prompt":[9999]})", 400);
  post("/v1/nothing", "{}", 404);
  auto c = client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  Json ok = post("/v1/completions", R"({"prompt":"a","max_tokens":3})");
  EXPECT_EQ(ok["usage"]["completion_tokens"], 3);
}

TEST_F(ServeServer, ImagesAndCanvasFieldsToDharaAre400) {
  start({});
  // A valid 1×1 PNG: the model, not the image, is what refuses.
  const std::string png =
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
  Json chat{{"messages", {{{"role", "user"},
                           {"content", {{{"type", "text"}, {"text", "x"}},
                                        {{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64," + png}}}}}}}}},
            {"max_tokens", 2}};
  Json e = post("/v1/chat/completions", chat.dump(), 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("messages[0].content[1].image_url.url: dhara_ar does not take images"),
            std::string::npos)
      << e;
  Json msg{{"max_tokens", 2},
           {"messages",
            {{{"role", "user"},
              {"content", {{{"type", "image"}, {"source", {{"type", "base64"}, {"media_type", "image/png"}, {"data", png}}}}}}}}}};
  Json a = post("/v1/messages", msg.dump(), 400);
  EXPECT_NE(a["error"]["message"].get<std::string>().find("messages[0].content[0].source.data"), std::string::npos) << a;
  for (const char* f : {R"("sampler":"entropy-bound")", R"("threshold":0.5)", R"("steps":4)"}) {
    Json s = post("/v1/completions", std::string(R"({"prompt":"a","max_tokens":2,)") + f + "}", 400);
    EXPECT_NE(s["error"]["message"].get<std::string>().find("canvas-diffusion models only"), std::string::npos) << s;
  }
  Json ok = post("/v1/completions", R"({"prompt":"a","max_tokens":2})");
  EXPECT_EQ(ok["usage"]["completion_tokens"], 2);
}

TEST_F(ServeServer, ApiKeyRequiredWhenConfigured) {
  ServerOptions o;
  o.api_key = "sk-test";
  start(o);
  post("/v1/completions", R"({"prompt":"a","max_tokens":1})", 401);
  auto c = client();
  auto r = c.Post("/v1/completions", httplib::Headers{{"x-api-key", "sk-test"}}, R"({"prompt":"a","max_tokens":1})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServeServer, ClientDisconnectCancelsGeneration) {
  start({});
  auto c = client();
  int chunks = 0;
  // The receiver returns false after three chunks: the client closes the connection mid-stream.
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = R"({"prompt":"The","max_tokens":4000,"stream":true})";
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  httplib::Response res;
  httplib::Error err;
  auto c2 = client();
  c2.send(req, res, err);
  EXPECT_GE(chunks, 3);
  // The server notices on its next write and cancels; poll /metrics (bounded) until it has.
  bool cancelled = false;
  for (int i = 0; i < 200 && !cancelled; ++i) {
    auto m = c.Get("/metrics");
    ASSERT_TRUE(m);
    cancelled = m->body.find("optiq_cancelled_total 0\n") == std::string::npos &&
                m->body.find("optiq_running_generations 0\n") != std::string::npos;
    if (!cancelled) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(cancelled);
  Json ok = post("/v1/completions", R"({"prompt":"a","max_tokens":2})");
  EXPECT_EQ(ok["usage"]["completion_tokens"], 2);
}

TEST_F(ServeServer, StopEndsActiveStreams) {
  start({});
  std::thread t([&] {
    auto c = client();
    auto r = c.Post("/v1/chat/completions",
                    R"({"messages":[{"role":"user","content":"x"}],"max_tokens":4000,"stream":true})", "application/json");
    // The stream ends (with an error event or a closed connection), rather than running 4000 tokens.
    if (r) {
      EXPECT_EQ(r->body.find("\"finish_reason\":\"length\""), std::string::npos);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server_->stop();
  t.join();
  thread_.join();
}

// CORS is off by default: no Access-Control-* or Vary headers, whatever the Origin; OPTIONS still
// answers 204 with Allow.
TEST_F(ServeServer, NoCorsHeadersUnlessOriginsAreAllowed) {
  start({});
  auto c = client();
  auto r = c.Post("/v1/completions", httplib::Headers{{"Origin", "http://evil.example"}},
                  R"({"prompt":"a","max_tokens":1})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
  EXPECT_FALSE(r->has_header("Vary"));
  auto p = c.Options("/v1/chat/completions",
                     httplib::Headers{{"Origin", "http://evil.example"}, {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 204);
  EXPECT_EQ(p->get_header_value("Allow"), "POST, OPTIONS");
  EXPECT_FALSE(p->has_header("Access-Control-Allow-Origin"));
  EXPECT_FALSE(p->has_header("Access-Control-Allow-Methods"));
}

// With --allowed-origins, an allowed Origin is echoed on every response (errors and streams too) with
// Vary: Origin; others get Vary only. Preflights answer 204 on every route, without auth.
TEST_F(ServeServer, CorsEchoesAllowedOriginsAndAnswersPreflights) {
  ServerOptions o;
  o.allowed_origins = {"http://app.example", "http://localhost:3000"};
  o.api_key = "sk-test";
  start(o);
  auto c = client();
  const httplib::Headers ok_origin{{"Origin", "http://localhost:3000"}, {"x-api-key", "sk-test"}};
  auto r = c.Post("/v1/completions", ok_origin, R"({"prompt":"a","max_tokens":1})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_EQ(r->get_header_value("Vary"), "Origin");
  EXPECT_NE(r->get_header_value("Access-Control-Expose-Headers").find("X-Optiq-Decoding"), std::string::npos);
  auto stream = c.Post("/v1/messages", ok_origin,
                       R"({"max_tokens":2,"stream":true,"messages":[{"role":"user","content":"x"}]})", "application/json");
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
  auto err = c.Post("/v1/completions", ok_origin, R"({"prompt":"a","temperature":-1})", "application/json");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 400);
  EXPECT_EQ(err->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
  auto unauth = c.Get("/v1/models", httplib::Headers{{"Origin", "http://app.example"}});
  ASSERT_TRUE(unauth);
  EXPECT_EQ(unauth->status, 401);
  EXPECT_EQ(unauth->get_header_value("Access-Control-Allow-Origin"), "http://app.example");
  auto other = c.Get("/health", httplib::Headers{{"Origin", "http://evil.example"}});
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->has_header("Access-Control-Allow-Origin"));
  EXPECT_EQ(other->get_header_value("Vary"), "Origin");
  // Preflights carry no credentials, so they pass without the API key, on POST and GET routes alike.
  for (const auto& [path, methods] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/chat/completions", "POST, OPTIONS"}, {"/chat/completions", "POST, OPTIONS"},
           {"/v1/completions", "POST, OPTIONS"},      {"/v1/messages", "POST, OPTIONS"},
           {"/v1/responses", "POST, OPTIONS"},        {"/v1/models", "GET, HEAD, OPTIONS"},
           {"/v1/models/optiq", "GET, HEAD, OPTIONS"}, {"/v1/adapters", "GET, HEAD, OPTIONS"},
           {"/health", "GET, HEAD, OPTIONS"},         {"/metrics", "GET, HEAD, OPTIONS"}}) {
    auto p = c.Options(path, httplib::Headers{{"Origin", "http://app.example"},
                                              {"Access-Control-Request-Method", "POST"},
                                              {"Access-Control-Request-Headers", "authorization,content-type"}});
    ASSERT_TRUE(p) << path;
    EXPECT_EQ(p->status, 204) << path;
    EXPECT_EQ(p->get_header_value("Access-Control-Allow-Origin"), "http://app.example") << path;
    EXPECT_EQ(p->get_header_value("Access-Control-Allow-Methods"), methods) << path;
    EXPECT_EQ(p->get_header_value("Allow"), methods) << path;
    const std::string h = p->get_header_value("Access-Control-Allow-Headers");
    for (const char* want : {"Authorization", "Content-Type", "anthropic-version", "x-api-key"})
      EXPECT_NE(h.find(want), std::string::npos) << path << " lacks " << want;
    EXPECT_EQ(p->get_header_value("Access-Control-Max-Age"), "600");
    EXPECT_EQ(p->get_header_value("Vary"), "Origin");
  }
  // "*" allows every origin, still echoed.
  TearDown();
  server_.reset();
  ServerOptions any;
  any.allowed_origins = {"*"};
  start(any);
  auto c2 = client();
  auto a = c2.Get("/health", httplib::Headers{{"Origin", "https://anything.example:8443"}});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->get_header_value("Access-Control-Allow-Origin"), "https://anything.example:8443");
}

// A wrong method on a known route is 405 with Allow and the dialect's error body, not 404; unknown
// routes stay 404; the server keeps serving.
TEST_F(ServeServer, WrongMethodOnAKnownRouteIs405) {
  start({});
  auto c = client();
  auto g = c.Get("/v1/chat/completions");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 405);
  EXPECT_EQ(g->get_header_value("Allow"), "POST, OPTIONS");
  Json oa = Json::parse(g->body);
  EXPECT_EQ(oa["error"]["type"], "invalid_request_error");
  EXPECT_NE(oa["error"]["message"].get<std::string>().find("method GET not allowed on /v1/chat/completions"),
            std::string::npos);
  auto m = c.Delete("/v1/messages");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 405);
  EXPECT_EQ(Json::parse(m->body)["type"], "error");  // Anthropic's shape
  auto p = c.Post("/v1/models", "{}", "application/json");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 405);
  EXPECT_EQ(p->get_header_value("Allow"), "GET, HEAD, OPTIONS");
  auto put = c.Put("/v1/models/optiq", "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  auto patch = c.Patch("/health", "{}", "application/json");
  ASSERT_TRUE(patch);
  EXPECT_EQ(patch->status, 405);
  post("/v1/nothing", "{}", 404);
  auto h = c.Get("/v1/nothing");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 404);
  Json ok = post("/v1/completions", R"({"prompt":"a","max_tokens":2})");
  EXPECT_EQ(ok["usage"]["completion_tokens"], 2);
}

// Every response names the served model id, whatever label the request sent: all four APIs, streamed
// (every chunk or event that carries a model) and not.
TEST_F(ServeServer, ResponsesReportTheServedModelId) {
  ServerOptions o;
  o.model_id = "dhara-served";
  start(o);
  const std::vector<std::pair<std::string, std::string>> reqs = {
      {"/v1/chat/completions", R"({"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"max_tokens":3)"},
      {"/v1/completions", R"({"model":"gpt-3.5-turbo-instruct","prompt":"x","max_tokens":3)"},
      {"/v1/messages", R"({"model":"claude-sonnet-4","messages":[{"role":"user","content":"x"}],"max_tokens":3)"},
      {"/v1/responses", R"({"model":"gpt-4.1","input":"x","max_output_tokens":3)"}};
  for (const auto& [path, body] : reqs) {
    Json j = post(path, body + "}");
    EXPECT_EQ(j["model"], "dhara-served") << path << " " << j;
    auto c = client();
    auto s = c.Post(path, body + R"(,"stream":true})", "application/json");
    ASSERT_TRUE(s);
    int with_model = 0;
    size_t pos = 0;
    // Each data frame's JSON: the model wherever it appears (top level, message_start's message,
    // response.* events' response).
    while ((pos = s->body.find("data: {", pos)) != std::string::npos) {
      const size_t end = s->body.find("\n\n", pos);
      Json f = Json::parse(s->body.substr(pos + 6, end - pos - 6));
      pos = end;
      for (const Json* holder : {&f, f.contains("message") ? &f["message"] : nullptr,
                                 f.contains("response") ? &f["response"] : nullptr}) {
        if (holder && holder->is_object() && holder->contains("model")) {
          EXPECT_EQ((*holder)["model"], "dhara-served") << path << " " << f;
          ++with_model;
        }
      }
    }
    EXPECT_GE(with_model, 1) << path << " " << s->body;
  }
  auto c = client();
  Json list = Json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(list["data"][0]["id"], "dhara-served");
}

// OpenAI 400s name the offending field in `param`, with a code saying what was wrong with it.
TEST_F(ServeServer, ValidationErrorsFillParam) {
  start({});
  struct Case {
    const char* path;
    const char* body;
    const char* param;
    const char* code;
  };
  const Case cases[] = {
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"temperature":3})", "temperature",
       "invalid_value"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"top_p":"high"})", "top_p",
       "invalid_type"},
      {"/v1/chat/completions", R"({"max_tokens":2})", "messages", "missing_required_parameter"},
      {"/v1/chat/completions", R"({"messages":[{"role":"robot","content":"x"}]})", "messages[0].role",
       "invalid_value"},
      {"/v1/completions", R"({"prompt":"x","max_tokens":100000})", "max_tokens", "invalid_value"},
      {"/v1/completions", R"({"prompt":[9999]})", "prompt[0]", "invalid_value"},
      {"/v1/completions", R"({"prompt":"x","stop":[1]})", "stop[0]", "invalid_type"},
      {"/v1/completions", R"({"prompt":"x","decoding":"fast"})", "decoding", "invalid_value"},
      {"/v1/completions", R"({"prompt":"x","adapter":"nope"})", "adapter", "invalid_value"},
      {"/v1/responses", R"({"input":"x","max_output_tokens":100000})", "max_output_tokens", "invalid_value"},
  };
  for (const Case& k : cases) {
    Json e = post(k.path, k.body, 400);
    EXPECT_EQ(e["error"]["param"], k.param) << k.body << " " << e;
    EXPECT_EQ(e["error"]["code"], k.code) << k.body << " " << e;
    EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  }
  // A body that is not JSON names no field.
  Json e = post("/v1/chat/completions", "{nope", 400);
  EXPECT_TRUE(e["error"]["param"].is_null()) << e;
}

// Adapters mounted on one base (dhara-tiny): each request picks one by name, the default applies when
// exactly one is mounted, "base" turns it off, an unknown name is a 400 and the server keeps serving.
class ServeAdapters : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = load_model(test::fixture("dhara-tiny"));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    base_ = std::move(m).value();
    // Two strong, different adapters, so that every choice decodes differently.
    for (uint64_t seed : {1, 2}) {
      auto ad = std::make_shared<LoraAdapter>(test::random_adapter(*base_, 4, 8.f, 0.1f, seed));
      ad->name = seed == 1 ? "alpha" : "beta";
      adapters_.push_back(ad);
    }
  }
  void start(std::vector<size_t> mounted) {
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    server_ = std::make_unique<Server>(o);
    auto port = server_->bind();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    thread_ = std::thread([this] { EXPECT_TRUE(server_->serve().ok()); });
    auto model = load_model(test::fixture("dhara-tiny"));
    auto tok = Tokenizer::from_dir(test::fixture("dhara-tiny"));
    ASSERT_TRUE(model.ok() && tok.ok());
    std::vector<MountedAdapter> m;
    for (size_t i : mounted) m.push_back({adapters_[i]->name, "/adapters/" + adapters_[i]->name, adapters_[i]});
    server_->set_model(std::move(model).value(), std::move(tok).value(), 1, std::move(m));
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  // POSTs a completion; returns (text, X-Optiq-Adapter) after checking the status.
  std::pair<std::string, std::string> complete(const Json& extra, int want_status = 200) {
    Json body{{"prompt", "The jury said"}, {"max_tokens", 24}};
    for (auto& [k, v] : extra.items()) body[k] = v;
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30);
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, want_status) << r->body;
    Json j = Json::parse(r->body);
    if (want_status != 200) return {j["error"]["message"].get<std::string>(), ""};
    return {j["choices"][0]["text"].get<std::string>(), r->get_header_value("X-Optiq-Adapter")};
  }
  // Greedy text of the engine on the base model with adapter i (or none).
  std::string direct(int i) {
    auto tok = Tokenizer::from_dir(test::fixture("dhara-tiny"));
    const std::vector<int32_t> prompt = (*tok)->encode("The jury said", true);
    ThreadPool pool(1);
    GenerateOptions o;
    o.max_new_tokens = 24;
    std::unique_ptr<Model> view;
    if (i >= 0) view = with_adapter(*base_, adapters_[static_cast<size_t>(i)]);
    auto r = generate(view ? *view : *base_, pool, prompt, o);
    EXPECT_TRUE(r.ok());
    return (*tok)->decode(r->visible_tokens(base_->info().eos_ids), true);
  }

  std::unique_ptr<Model> base_;
  std::vector<std::shared_ptr<LoraAdapter>> adapters_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

TEST_F(ServeAdapters, EachRequestRunsTheAdapterItNames) {
  start({0, 1});
  const std::string base = direct(-1), alpha = direct(0), beta = direct(1);
  EXPECT_NE(base, alpha);
  EXPECT_NE(alpha, beta);
  EXPECT_EQ(complete({{"adapter", "alpha"}}), std::make_pair(alpha, std::string("alpha")));
  EXPECT_EQ(complete({{"adapter", "beta"}}), std::make_pair(beta, std::string("beta")));
  EXPECT_EQ(complete({{"adapters", "beta"}}), std::make_pair(beta, std::string("beta")));   // OptIQ's field
  EXPECT_EQ(complete({{"adapters", {"alpha"}}}), std::make_pair(alpha, std::string("alpha")));
  EXPECT_EQ(complete({{"adapter", "base"}}), std::make_pair(base, std::string("base")));
  EXPECT_EQ(complete(Json::object()), std::make_pair(base, std::string("base")));  // two mounted: no default
  // Errors are 400s naming what is mounted; the server keeps serving.
  const std::string e = complete({{"adapter", "gamma"}}, 400).first;
  EXPECT_NE(e.find("no adapter \"gamma\" is mounted (mounted: \"alpha\", \"beta\";"), std::string::npos) << e;
  EXPECT_NE(complete({{"adapter", 3}}, 400).first.find("adapter: expected a string"), std::string::npos);
  EXPECT_NE(complete({{"adapters", {"alpha", "beta"}}}, 400).first.find("one adapter per request"), std::string::npos);
  EXPECT_NE(complete({{"adapter", "alpha"}, {"adapters", "beta"}}, 400).first.find("names adapter"), std::string::npos);
  EXPECT_EQ(complete({{"adapter", "alpha"}}).first, alpha);
  // Chat requests choose the same way.
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Post("/v1/chat/completions",
                  R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"adapter":"beta"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("X-Optiq-Adapter"), "beta");
}

TEST_F(ServeAdapters, OneMountedAdapterIsTheDefault) {
  start({1});
  EXPECT_EQ(complete(Json::object()), std::make_pair(direct(1), std::string("beta")));
  EXPECT_EQ(complete({{"adapter", "base"}}), std::make_pair(direct(-1), std::string("base")));
}

TEST_F(ServeAdapters, ListsMountedAdapters) {
  start({0, 1});
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Get("/v1/adapters");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  Json j = Json::parse(r->body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["default"], "base");
  ASSERT_EQ(j["data"].size(), 2u);
  const Json& a = j["data"][0];
  EXPECT_EQ(a["name"], "alpha");
  EXPECT_EQ(a["path"], "/adapters/alpha");
  EXPECT_EQ(a["rank"], 4);
  EXPECT_EQ(a["scale"], 8.0);
  EXPECT_EQ(a["modules"], 28);
  EXPECT_EQ(a["module_kinds"].size(), 7u);
  EXPECT_EQ(a["parameters"], adapters_[0]->parameter_count());
  EXPECT_EQ(j["data"][1]["name"], "beta");
}

// /v1/models lists each mounted adapter as a model (parent: the served model); a request whose "model"
// is an adapter's id runs it, and responses name what ran.
TEST_F(ServeAdapters, ModelsListsAdaptersAndModelSelectsThem) {
  start({0, 1});
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  Json list = Json::parse(r->body);
  ASSERT_EQ(list["data"].size(), 3u) << list;
  EXPECT_EQ(list["data"][0]["id"], "optiq");
  EXPECT_FALSE(list["data"][0].contains("parent"));
  EXPECT_EQ(list["data"][1]["id"], "alpha");
  EXPECT_EQ(list["data"][1]["parent"], "optiq");
  EXPECT_EQ(list["data"][1]["root"], "/adapters/alpha");
  EXPECT_EQ(list["data"][2]["id"], "beta");
  auto one = c.Get("/v1/models/beta");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  EXPECT_EQ(Json::parse(one->body)["parent"], "optiq");
  auto missing = c.Get("/v1/models/gamma");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("'optiq', 'alpha', 'beta'"), std::string::npos) << missing->body;

  const std::string alpha = direct(0), beta = direct(1), base = direct(-1);
  EXPECT_EQ(complete({{"model", "alpha"}}), std::make_pair(alpha, std::string("alpha")));
  EXPECT_EQ(complete({{"model", "beta"}}), std::make_pair(beta, std::string("beta")));
  EXPECT_EQ(complete({{"model", "optiq"}}), std::make_pair(base, std::string("base")));
  // An explicit "adapter" field wins over the model label.
  EXPECT_EQ(complete({{"model", "alpha"}, {"adapter", "beta"}}), std::make_pair(beta, std::string("beta")));
  // The response's model is what ran.
  auto a = c.Post("/v1/chat/completions", R"({"model":"alpha","messages":[{"role":"user","content":"hi"}],"max_tokens":2})",
                  "application/json");
  ASSERT_TRUE(a);
  EXPECT_EQ(Json::parse(a->body)["model"], "alpha");
  auto b = c.Post("/v1/messages",
                  R"({"model":"claude-x","adapter":"base","messages":[{"role":"user","content":"hi"}],"max_tokens":2})",
                  "application/json");
  ASSERT_TRUE(b);
  EXPECT_EQ(Json::parse(b->body)["model"], "optiq");
}

TEST_F(ServeAdapters, NoAdaptersMeansBaseAndAnEmptyList) {
  start({});
  EXPECT_EQ(complete(Json::object()), std::make_pair(direct(-1), std::string("base")));
  EXPECT_NE(complete({{"adapter", "alpha"}}, 400).first.find("no adapter \"alpha\" is mounted (none is mounted"),
            std::string::npos);
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Get("/v1/adapters");
  ASSERT_TRUE(r);
  EXPECT_EQ(Json::parse(r->body)["data"].size(), 0u);
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(Json::parse(m->body)["data"].size(), 1u);
}

}  // namespace
}  // namespace optiq::serve
