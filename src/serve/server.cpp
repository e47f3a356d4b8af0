#include "serve/server.h"

#include <httplib.h>

#include <algorithm>
#include <ctime>
#include <functional>

#include "serve/stop_filter.h"

namespace optiq::serve {

namespace {

constexpr const char* kJsonType = "application/json";

std::string dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

// Route label for metrics: known routes by path, everything else lumped so labels stay bounded.
std::string route_label(const std::string& path) {
  static constexpr const char* kRoutes[] = {"/v1/chat/completions", "/chat/completions", "/v1/completions",
                                            "/v1/messages",         "/v1/responses",     "/v1/models",
                                            "/v1/adapters",         "/health",           "/metrics"};
  for (const char* r : kRoutes)
    if (path == r) return r;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}

Dialect dialect_for_path(const std::string& path) {
  return path.rfind("/v1/messages", 0) == 0 ? Dialect::kAnthropic : Dialect::kOpenAI;
}

int http_status_for(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
    case Status::Code::kUnsupported: return 400;
    case Status::Code::kNotFound: return 404;
    default: return 500;
  }
}

// State of one generation response, shared by the handler and the content provider.
struct Session {
  GenRequest req;
  std::shared_ptr<Job> job;
  std::unique_ptr<ResponseWriter> writer;
  std::unique_ptr<StreamingDetokenizer> detok;
  std::unique_ptr<StopFilter> stop;
  std::vector<int32_t> stop_ids;
  Clock::time_point arrived;
  Clock::time_point last_chunk;
  bool first_token_seen = false;
  Outcome outcome;
  bool finished = false;  // EOS or stop string seen: later tokens are ignored
};

}  // namespace

Server::Server(ServerOptions opts) : opts_(std::move(opts)), http_(std::make_unique<httplib::Server>()) {
  std::random_device rd;
  rng_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
  httplib::Server& s = *http_;
  const int threads = std::max(opts_.http_threads, 2);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_payload_max_length(opts_.max_body_bytes);
  s.set_keep_alive_max_count(1000);
  s.set_keep_alive_timeout(2);
  s.set_read_timeout(10);
  s.set_write_timeout(5);

  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  auto generate = [this](Api api) -> Handler {
    return [this, api](const httplib::Request& q, httplib::Response& r) { handle_generate(api, q, r); };
  };
  auto models = [this](const httplib::Request& q, httplib::Response& r) { handle_models(q, r); };
  auto health = [this](const httplib::Request&, httplib::Response& r) {
    const bool up = loaded_.load(std::memory_order_acquire) && !stopping_.load();
    r.status = up ? 200 : 503;
    r.set_content(up ? R"({"status":"ok"})" : R"({"status":"loading"})", kJsonType);
  };
  auto metrics = [this](const httplib::Request&, httplib::Response& r) {
    int64_t queued = 0, running = 0;
    if (loaded_.load(std::memory_order_acquire)) {
      queued = engine_->stats().queued.load();
      running = engine_->stats().running.load();
    }
    r.set_content(metrics_.render(queued, running, loaded_.load()), "text/plain; version=0.0.4");
  };
  // Every route with its one method. The other methods get 405 naming the allowed ones (rather than
  // httplib's 404, which would tell a client the route does not exist), OPTIONS the CORS preflight.
  struct Route {
    std::string pattern;
    bool post;  // else GET (and HEAD, which httplib serves with the GET handler)
    Handler handler;
  };
  const Route routes[] = {
      {"/v1/chat/completions", true, generate(Api::kChat)},
      {"/chat/completions", true, generate(Api::kChat)},
      {"/v1/completions", true, generate(Api::kCompletions)},
      {"/v1/messages", true, generate(Api::kMessages)},
      {"/v1/responses", true, generate(Api::kResponses)},
      {"/v1/models", false, models},
      {R"(/v1/models/(.+))", false, models},
      {"/v1/adapters", false, [this](const httplib::Request& q, httplib::Response& r) { handle_adapters(q, r); }},
      {"/health", false, health},
      {"/metrics", false, metrics},
  };
  for (const Route& rt : routes) {
    const std::string allow = rt.post ? "POST, OPTIONS" : "GET, HEAD, OPTIONS";
    auto not_allowed = [this, allow](const httplib::Request& q, httplib::Response& r) {
      r.set_header("Allow", allow);
      send_error(dialect_for_path(q.path), 405,
                 "method " + q.method + " not allowed on " + q.path + "; allowed: " + allow, r);
    };
    s.Post(rt.pattern, rt.post ? rt.handler : Handler(not_allowed));
    s.Get(rt.pattern, rt.post ? Handler(not_allowed) : rt.handler);
    s.Put(rt.pattern, not_allowed);
    s.Patch(rt.pattern, not_allowed);
    s.Delete(rt.pattern, not_allowed);
    s.Options(rt.pattern, [this, allow](const httplib::Request& q, httplib::Response& r) {
      handle_preflight(allow, q, r);
    });
  }
  // CORS headers on every response (errors and streams included), so that a page of an allowed origin
  // can read what went wrong too. httplib runs this after the handler, before writing the headers.
  s.set_post_routing_handler([this](const httplib::Request& q, httplib::Response& r) {
    if (opts_.allowed_origins.empty()) return;
    r.set_header("Vary", "Origin");  // the answer depends on Origin, so shared caches must key on it
    const std::string origin = allowed_origin(q);
    if (origin.empty()) return;
    r.set_header("Access-Control-Allow-Origin", origin);
    r.set_header("Access-Control-Expose-Headers", "X-Optiq-Decoding, X-Optiq-Adapter, X-Optiq-Sampler, Retry-After");
  });
  // Errors httplib produces itself (404 route, 413 body, 400 malformed HTTP) get a dialect body.
  s.set_error_handler([this](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty() || r.is_chunked_content_provider_ || r.content_length_ > 0) return;
    std::string msg = r.status == 404   ? "no route " + q.method + " " + q.path
                      : r.status == 413 ? "request body larger than " + std::to_string(opts_.max_body_bytes) + " bytes"
                                        : "HTTP error " + std::to_string(r.status);
    r.set_content(dump(error_body(dialect_for_path(q.path), r.status, msg)), kJsonType);
  });
  s.set_exception_handler([this](const httplib::Request& q, httplib::Response& r, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = std::string("internal error: ") + e.what();
    } catch (...) {
    }
    r.status = 500;
    r.set_content(dump(error_body(dialect_for_path(q.path), 500, what)), kJsonType);
  });
  s.set_logger([this](const httplib::Request& q, const httplib::Response& r) {
    metrics_.count_request(route_label(q.path), r.status);
  });
}

Server::~Server() { stop(); }

Result<int> Server::bind() {
  if (opts_.port == 0) {
    const int port = http_->bind_to_any_port(opts_.host);
    if (port <= 0) return Status::IOError("cannot bind " + opts_.host + " on any port");
    opts_.port = port;
    return port;
  }
  if (!http_->bind_to_port(opts_.host, opts_.port))
    return Status::IOError("cannot bind " + opts_.host + ":" + std::to_string(opts_.port) + " (in use?)");
  return opts_.port;
}

Status Server::serve() {
  if (stopping_.load()) return Status::Ok();
  if (!http_->listen_after_bind()) {
    if (stopping_.load()) return Status::Ok();
    return Status::IOError("server on " + opts_.host + ":" + std::to_string(opts_.port) + " failed");
  }
  return Status::Ok();
}

void Server::set_model(std::unique_ptr<Model> model, std::unique_ptr<Tokenizer> tok, int threads,
                       std::vector<MountedAdapter> adapters) {
  model_ = std::move(model);
  adapters_ = std::move(adapters);
  for (const MountedAdapter& a : adapters_) adapter_views_.push_back(with_adapter(*model_, a.adapter));
  tok_ = std::move(tok);
  pool_ = std::make_unique<ThreadPool>(threads);
  engine_ = std::make_unique<Engine>(*model_, *pool_, opts_.queue_capacity);
  loaded_.store(true, std::memory_order_release);
}

void Server::stop() {
  if (stopping_.exchange(true)) return;
  // Cancel generations first so streaming handlers finish and the HTTP thread pool can join.
  if (loaded_.load(std::memory_order_acquire)) engine_->shutdown();
  http_->stop();
}

bool Server::authorized(const httplib::Request& req) const {
  if (opts_.api_key.empty()) return true;
  if (req.get_header_value("Authorization") == "Bearer " + opts_.api_key) return true;
  return req.get_header_value("x-api-key") == opts_.api_key;
}

void Server::send_error(Dialect d, int status, const std::string& message, httplib::Response& res) const {
  res.status = status;
  res.set_content(dump(error_body(d, status, message)), kJsonType);
}

std::string Server::random_hex(size_t n_chars) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n_chars, '0');
  std::lock_guard<std::mutex> lk(rng_mu_);
  for (auto& c : out) c = kHex[rng_() & 15];
  return out;
}

Result<std::vector<int32_t>> Server::tokenize(const GenRequest& r) const {
  const int64_t vocab = model_->info().vocab_size;
  if (!r.chat) {
    if (!r.prompt_ids.empty()) {
      for (size_t i = 0; i < r.prompt_ids.size(); ++i)
        if (r.prompt_ids[i] >= vocab)
          return Status::InvalidArgument("prompt[" + std::to_string(i) + "]: token id " +
                                         std::to_string(r.prompt_ids[i]) + " outside the vocabulary [0, " +
                                         std::to_string(vocab) + ")");
      return r.prompt_ids;
    }
    auto ids = tok_->encode(r.prompt, /*add_special_tokens=*/true);
    if (ids.empty()) return Status::InvalidArgument("prompt: tokenizes to no tokens");
    return ids;
  }
  if (!tok_->has_chat_template())
    return Status::InvalidArgument("messages: the model has no chat template; use /v1/completions");
  auto text = tok_->apply_chat_template(r.messages, r.tools, /*add_generation_prompt=*/true, r.template_kwargs);
  if (!text.ok()) return Status::InvalidArgument("messages: the chat template failed: " + text.status().message());
  // The template already wrote any BOS; the post-processor must not add another.
  auto ids = tok_->encode(*text, /*add_special_tokens=*/false);
  if (ids.empty()) return Status::InvalidArgument("messages: the chat template rendered an empty prompt");
  return ids;
}

Result<std::vector<RgbImage>> Server::decode_images(const GenRequest& r, const std::vector<int32_t>& prompt) const {
  const int32_t image_id = model_->info().image_token_id;
  const auto placeholders = std::count(prompt.begin(), prompt.end(), image_id);
  if (placeholders != static_cast<int64_t>(r.images.size()))
    return Status::InvalidArgument("messages: the chat template rendered " + std::to_string(placeholders) +
                                   " image placeholders for " + std::to_string(r.images.size()) + " images");
  std::vector<RgbImage> out;
  for (const ImageInput& in : r.images) {
    auto img = decode_image(in.bytes);
    if (!img.ok()) return img.status().WithContext(in.field);
    out.push_back(std::move(img).value());
  }
  return out;
}

std::string Server::allowed_origin(const httplib::Request& req) const {
  const std::string origin = req.get_header_value("Origin");
  if (origin.empty()) return "";
  for (const std::string& o : opts_.allowed_origins)
    if (o == "*" || o == origin) return origin;  // echoed even for "*": one answer per Origin, with Vary
  return "";
}

void Server::handle_preflight(const std::string& methods, const httplib::Request& req, httplib::Response& res) const {
  // No auth here: browsers send preflights without credentials. Origin and Vary come from the
  // post-routing handler, as on every response.
  res.status = 204;
  res.set_header("Allow", methods);
  if (allowed_origin(req).empty()) return;
  res.set_header("Access-Control-Allow-Methods", methods);
  // What the OpenAI and Anthropic SDKs send from a browser (their x-stainless-* telemetry included).
  res.set_header("Access-Control-Allow-Headers",
                 "Authorization, Content-Type, Accept, x-api-key, anthropic-version, anthropic-beta, "
                 "anthropic-dangerous-direct-browser-access, OpenAI-Organization, OpenAI-Project, OpenAI-Beta, "
                 "x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
                 "x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout, "
                 "x-stainless-helper, x-stainless-helper-method");
  res.set_header("Access-Control-Max-Age", "600");  // 10 minutes (Chromium caps at 2 hours)
}

void Server::handle_models(const httplib::Request& req, httplib::Response& res) {
  if (!authorized(req)) return send_error(Dialect::kOpenAI, 401, "invalid API key", res);
  Json base{{"id", opts_.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "optiq"}};
  const bool loaded = loaded_.load(std::memory_order_acquire);
  if (loaded) base["max_model_len"] = model_->info().max_position;
  Json list = Json::array({base});
  // Mounted adapters are models too (as vLLM lists LoRA modules): a request whose "model" is an
  // adapter's id runs that adapter (model_for). They exist only once set_model() ran.
  if (loaded) {
    for (const MountedAdapter& a : adapters_) {
      Json m{{"id", a.name}, {"object", "model"}, {"created", 0}, {"owned_by", "optiq"}, {"parent", opts_.model_id},
             {"root", a.path}, {"max_model_len", model_->info().max_position}};
      list.push_back(std::move(m));
    }
  }
  if (req.matches.size() > 1) {
    const std::string id = req.matches[1].str();
    std::string known;
    for (const Json& m : list) {
      if (m["id"] == id) return res.set_content(dump(m), kJsonType);
      known += (known.empty() ? "'" : ", '") + m["id"].get<std::string>() + "'";
    }
    return send_error(Dialect::kOpenAI, 404, "model '" + id + "' not found; this server serves " + known, res);
  }
  res.set_content(dump(Json{{"object", "list"}, {"data", list}}), kJsonType);
}

void Server::handle_adapters(const httplib::Request& req, httplib::Response& res) {
  if (!authorized(req)) return send_error(Dialect::kOpenAI, 401, "invalid API key", res);
  if (!loaded_.load(std::memory_order_acquire)) {
    res.set_header("Retry-After", "1");
    return send_error(Dialect::kOpenAI, 503, "model is loading", res);
  }
  Json data = Json::array();
  for (const MountedAdapter& a : adapters_) {
    const nlohmann::json sum = lora_adapter_summary(*a.adapter);
    data.push_back(Json{{"name", a.name},
                        {"object", "adapter"},
                        {"path", a.path},
                        {"rank", Json::parse(sum["rank"].dump())},
                        {"rank_distribution", Json::parse(sum["rank_distribution"].dump())},
                        {"scale", a.adapter->scale},
                        {"modules", a.adapter->modules.size()},
                        {"module_kinds", Json::parse(sum["module_kinds"].dump())},
                        {"parameters", a.adapter->parameter_count()},
                        {"default", adapters_.size() == 1}});
  }
  res.set_content(dump(Json{{"object", "list"},
                            {"default", adapters_.size() == 1 ? Json(adapters_[0].name) : Json("base")},
                            {"data", data}}),
                  kJsonType);
}

Result<const Model*> Server::model_for(const GenRequest& r, std::string* name) const {
  if (!r.adapter) {
    for (size_t i = 0; i < adapters_.size(); ++i) {
      if (adapters_[i].name == r.model) {
        *name = adapters_[i].name;
        return adapter_views_[i].get();
      }
    }
    if (adapters_.size() == 1) {
      *name = adapters_[0].name;
      return adapter_views_[0].get();
    }
    *name = "base";
    return model_.get();
  }
  if (*r.adapter == "base") {
    *name = "base";
    return model_.get();
  }
  std::string known;
  for (size_t i = 0; i < adapters_.size(); ++i) {
    if (adapters_[i].name == *r.adapter) {
      *name = adapters_[i].name;
      return adapter_views_[i].get();
    }
    known += (known.empty() ? "\"" : ", \"") + adapters_[i].name + "\"";
  }
  return Status::InvalidArgument("adapter: no adapter \"" + *r.adapter + "\" is mounted (" +
                                 (known.empty() ? std::string("none is mounted;") : "mounted: " + known + ";") +
                                 " \"base\" runs the base model; GET /v1/adapters lists them)");
}

void Server::handle_generate(Api api, const httplib::Request& req, httplib::Response& res) {
  const Dialect dialect = dialect_of(api);
  const auto arrived = Clock::now();
  if (!authorized(req)) return send_error(dialect, 401, "invalid API key", res);
  if (stopping_.load()) return send_error(dialect, 503, "server shutting down", res);
  if (!loaded_.load(std::memory_order_acquire)) {
    res.set_header("Retry-After", "1");
    return send_error(dialect, 503, "model is loading", res);
  }
  auto parsed = parse_request(api, req.body);
  if (!parsed.ok()) return send_error(dialect, http_status_for(parsed.status()), parsed.status().message(), res);
  std::string adapter_name;
  auto model = model_for(*parsed, &adapter_name);
  if (!model.ok()) return send_error(dialect, http_status_for(model.status()), model.status().message(), res);
  const ModelInfo& info = model_->info();
  if (!parsed->images.empty() && (info.image_token_id < 0 || info.canvas_length <= 0))
    return send_error(dialect, 400,
                      parsed->images[0].field + ": " + info.model_type + " does not take images (no vision tower)", res);
  auto prompt = tokenize(*parsed);
  if (!prompt.ok()) return send_error(dialect, http_status_for(prompt.status()), prompt.status().message(), res);

  auto s = std::make_shared<Session>();
  s->arrived = arrived;
  s->outcome.prompt_tokens = static_cast<int64_t>(prompt->size());
  if (info.canvas_length > 0) {
    auto images = decode_images(*parsed, *prompt);
    if (!images.ok()) return send_error(dialect, http_status_for(images.status()), images.status().message(), res);
    auto co = resolve_canvas_options(*parsed, opts_.defaults, info, static_cast<int64_t>(prompt->size()));
    if (!co.ok()) return send_error(dialect, http_status_for(co.status()), co.status().message(), res);
    s->outcome.decoding = "canvas";
    s->stop_ids = co->eos_ids.empty() ? info.eos_ids : co->eos_ids;
    res.set_header("X-Optiq-Sampler", canvas_sampler_name(co->sampler));
    s->job = std::make_shared<Job>(std::move(prompt).value(),
                                   CanvasWork{std::move(co).value(), std::move(images).value()}, *model);
  } else {
    auto gen = resolve_options(*parsed, opts_.defaults, info, static_cast<int64_t>(prompt->size()));
    if (!gen.ok()) return send_error(dialect, http_status_for(gen.status()), gen.status().message(), res);
    s->outcome.decoding = decode_mode_name(gen->mode);
    s->stop_ids = gen->stop_ids.empty() ? info.eos_ids : gen->stop_ids;
    s->job = std::make_shared<Job>(std::move(prompt).value(), std::move(gen).value(), *model);
  }
  s->req = std::move(parsed).value();
  s->req.images = {};  // decoded into the job; the encoded bytes are not needed any more
  // Responses name what served them, whatever label the client sent (clients route on this field).
  s->req.model = adapter_name == "base" ? opts_.model_id : adapter_name;
  switch (engine_->submit(s->job)) {
    case Engine::Submit::kOk: break;
    case Engine::Submit::kQueueFull:
      res.set_header("Retry-After", "1");
      return send_error(dialect, 503,
                        "server busy: " + std::to_string(opts_.queue_capacity) + " requests already waiting", res);
    case Engine::Submit::kShuttingDown: return send_error(dialect, 503, "server shutting down", res);
  }
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  s->writer = ResponseWriter::make(s->req, random_hex(32), created);
  s->detok = std::make_unique<StreamingDetokenizer>(*tok_, /*skip_special_tokens=*/true);
  s->stop = std::make_unique<StopFilter>(s->req.stop);
  res.set_header("X-Optiq-Decoding", s->outcome.decoding);
  res.set_header("X-Optiq-Adapter", adapter_name);

  // Runs the whole response inside one provider call; returning false drops the connection.
  auto provider = [this, s](size_t, httplib::DataSink& sink) -> bool {
    const bool stream = s->req.stream;
    auto write = [&](const std::string& data) {
      if (data.empty()) return true;
      if (!sink.write(data.data(), data.size())) {
        s->job->cancel();
        metrics_.count_cancelled();
        return false;
      }
      return true;
    };
    // A job with images learns its prompt length (soft tokens included) only once the vision tower ran;
    // the stream's first frames, which report it, wait until then.
    bool begun = !stream;
    auto begin = [&](int64_t prompt_tokens) {
      if (prompt_tokens >= 0) s->outcome.prompt_tokens = prompt_tokens;
      if (begun) return true;
      begun = true;
      return write(s->writer->stream_begin(s->outcome.prompt_tokens, s->outcome.decoding));
    };
    const bool prompt_known = !s->job->canvas() || s->job->canvas()->images.empty();
    if (prompt_known && !begin(-1)) return false;
    for (;;) {
      // Streams take every token as it lands; a non-streaming body only needs tokens often enough to
      // notice stop strings early, so its handler is woken per 16 tokens rather than per token.
      Job::Update u = s->job->wait(opts_.probe_interval, stream ? 1 : 16);
      if ((u.prompt_tokens >= 0 || u.done) && !begin(u.prompt_tokens)) return false;
      std::string delta;
      if (!u.tokens.empty() && !s->finished) {
        const auto now = Clock::now();
        if (!s->first_token_seen) {
          s->first_token_seen = true;
          metrics_.observe_ttft(std::chrono::duration<double>(s->job->first_token_at() - s->arrived).count());
          if (u.tokens.size() > 1)
            metrics_.observe_inter_token(std::chrono::duration<double>(now - s->job->first_token_at()).count(),
                                         static_cast<int64_t>(u.tokens.size()) - 1);
        } else {
          metrics_.observe_inter_token(std::chrono::duration<double>(now - s->last_chunk).count(),
                                       static_cast<int64_t>(u.tokens.size()));
        }
        s->last_chunk = now;
        for (int32_t t : u.tokens) {
          ++s->outcome.completion_tokens;
          if (std::find(s->stop_ids.begin(), s->stop_ids.end(), t) != s->stop_ids.end()) {
            s->finished = true;
            s->outcome.finish = Finish::kStop;
            break;
          }
          delta += s->stop->push(s->detok->push(t));
          if (s->stop->stopped()) {
            s->finished = true;
            s->outcome.finish = Finish::kStopSequence;
            s->outcome.stop_sequence = s->stop->matched();
            break;
          }
        }
        // Nothing more is needed from the engine: free it for the next request.
        if (s->finished) s->job->cancel();
      }
      if (u.done && !s->finished) {
        // A job cancelled by someone else than this handler was cut short by shutdown.
        if (u.status.ok() && s->job->cancelled()) u.status = Status::Unsupported("server shutting down");
        if (!u.status.ok()) {
          metrics_.add_tokens(s->outcome.prompt_tokens, s->outcome.completion_tokens);
          if (stream) return write(s->writer->stream_error(u.status.message())) && (sink.done(), true);
          // Headers (200) are already out; the body still says what went wrong.
          return write(dump(error_body(dialect_of(s->req.api), 500, u.status.message()))) && (sink.done(), true);
        }
        delta += s->stop->push(s->detok->flush());
        if (s->stop->stopped()) {
          s->outcome.finish = Finish::kStopSequence;
          s->outcome.stop_sequence = s->stop->matched();
        } else {
          delta += s->stop->finish();
          s->outcome.finish = Finish::kLength;
        }
        s->finished = true;
      }
      if (stream) {
        if (!write(s->writer->stream_delta(delta))) return false;
      } else {
        s->outcome.text += delta;
      }
      if (s->finished) break;
      // No news within the probe interval: probe the client so a vanished one cancels its job.
      if (u.tokens.empty() && !write(stream ? ": keepalive\n\n" : " ")) return false;
    }
    metrics_.add_tokens(s->outcome.prompt_tokens, s->outcome.completion_tokens);
    const std::string tail = stream ? s->writer->stream_end(s->outcome) : dump(s->writer->complete(s->outcome));
    if (!write(tail)) return false;
    sink.done();
    return true;
  };
  res.set_chunked_content_provider(s->req.stream ? "text/event-stream" : kJsonType, provider);
  if (s->req.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
  }
}

}  // namespace optiq::serve
