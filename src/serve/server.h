// The HTTP server: OpenAI- and Anthropic-compatible routes over one Engine.
//
// Routes: POST /v1/chat/completions (/chat/completions), /v1/completions, /v1/messages,
// /v1/responses; GET /v1/models[/ID], /v1/adapters, /health, /metrics. Each also answers OPTIONS (CORS
// preflight; CORS headers only for ServerOptions::allowed_origins) and 405 + Allow to other methods. Requests parse into GenRequest
// (serve/protocol.h), are tokenized on the handler thread, and run on the engine's single worker;
// the handler thread streams the tokens back, holding back text that could begin a stop string.
// Errors are answered in the caller's dialect; no request can stop the server.
//
// LoRA adapters (specs/optiq-surface.md §5.6) are mounted on the one base model, unmerged: a request
// picks one by name in its "adapter" field (or OptIQ's "adapters"); with exactly one mounted it is
// the default, and "base" runs the base model. Switching costs nothing: each job carries the
// adapted view of the model it runs.
//
// Thread safety: bind(), serve() and set_model() are called once each by the owner (set_model may
// run on another thread while serve() is running); stop() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "models/model.h"
#include "serve/engine.h"
#include "serve/metrics.h"
#include "serve/protocol.h"
#include "tokenizer/tokenizer.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace optiq::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see bind())
  // The id /v1/models reports and every response's "model" names (when no adapter ran). A request's
  // "model" is only a label, unless it names a mounted adapter.
  std::string model_id = "optiq";
  size_t max_body_bytes = 4u << 20; // larger bodies → 413
  size_t queue_capacity = 64;       // generation requests waiting for the engine; more → 503
  int http_threads = 64;            // connections served at once (--max-concurrent)
  std::string api_key;              // non-empty: required as "Bearer KEY" or x-api-key
  // CORS: origins whose browser pages may call the server ("https://app.example", or "*" for any).
  // Empty (the default): no CORS headers at all, so browsers keep pages of other origins out.
  std::vector<std::string> allowed_origins;
  ServeDefaults defaults;
  // How often a handler waiting for tokens probes its client (SSE comment, or JSON whitespace
  // before a non-streaming body), so a disconnected client is noticed and its job cancelled.
  std::chrono::milliseconds probe_interval{250};
};

// An adapter mounted on the server's model.
struct MountedAdapter {
  std::string name;  // what requests name; unique, not "base"
  std::string path;  // the directory it was loaded from (listed by GET /v1/adapters)
  std::shared_ptr<const LoraAdapter> adapter;  // checked against the model (validate_adapter)
};

class Server {
 public:
  explicit Server(ServerOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port (the chosen one when options.port is 0).
  Result<int> bind();
  // Serves until stop(). Requests before set_model() get 503 (/health too).
  Status serve();
  // Hands over the loaded model, tokenizer and mounted adapters and starts the engine with `threads`
  // compute threads (0: all cores). Generation routes and /health work from then on. The adapters
  // must be valid for the model (validate_adapter) with unique names other than "base".
  void set_model(std::unique_ptr<Model> model, std::unique_ptr<Tokenizer> tok, int threads,
                 std::vector<MountedAdapter> adapters = {});
  // Cancels queued and running generations and stops serving; serve() then returns.
  void stop();

 private:
  void handle_generate(Api api, const httplib::Request& req, httplib::Response& res);
  void handle_models(const httplib::Request& req, httplib::Response& res);
  void handle_adapters(const httplib::Request& req, httplib::Response& res);
  // OPTIONS on a known route (CORS preflight): 204 with Allow, and the Access-Control-* headers when
  // the Origin is allowed.
  void handle_preflight(const std::string& methods, const httplib::Request& req, httplib::Response& res) const;
  // The Origin header if it is one of opts_.allowed_origins (or they hold "*"); "" otherwise.
  std::string allowed_origin(const httplib::Request& req) const;
  // The model a request runs: the view of the adapter its "adapter" field names, else the adapter its
  // "model" names (/v1/models lists adapters as models), else the default (the only adapter when exactly
  // one is mounted), else the base. InvalidArgument naming the mounted adapters for an unknown name.
  // `name` gets what ran ("base").
  Result<const Model*> model_for(const GenRequest& r, std::string* name) const;
  bool authorized(const httplib::Request& req) const;
  void send_error(Dialect d, int status, const std::string& message, httplib::Response& res) const;
  Result<std::vector<int32_t>> tokenize(const GenRequest& r) const;
  // Decodes a request's images (stb), after checking that the rendered prompt has one image token per
  // image. InvalidArgument naming the image's field.
  Result<std::vector<RgbImage>> decode_images(const GenRequest& r, const std::vector<int32_t>& prompt) const;
  std::string random_hex(size_t n_chars);

  ServerOptions opts_;
  std::unique_ptr<httplib::Server> http_;
  Metrics metrics_;
  // Set once by set_model() before loaded_ turns true; read-only afterwards.
  std::unique_ptr<Model> model_;
  std::vector<MountedAdapter> adapters_;
  std::vector<std::unique_ptr<Model>> adapter_views_;  // [adapters_]: model_ with each adapter applied
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Engine> engine_;
  std::atomic<bool> loaded_{false};
  std::atomic<bool> stopping_{false};
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

}  // namespace optiq::serve
