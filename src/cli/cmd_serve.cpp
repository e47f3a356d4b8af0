// optiq serve: OpenAI- and Anthropic-compatible HTTP server over the engine (src/serve).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/errors.h"
#include "cli/flags.h"
#include "io/model_dir.h"
#include "serve/server.h"

namespace optiq::cli {

namespace {

const char* kServeHelp = R"(usage: optiq serve [--model DIR] [options]

  --model DIR|ORG/NAME[@REV]  model directory or Hugging Face id (docs/models.md; default: the bundled
                         models/dhara-brown-small)
  --offline              Hugging Face ids from the cache only, no network (as HF_HUB_OFFLINE=1)
  --adapter [NAME=]DIR   mount a LoRA adapter (repeatable; NAME defaults to the directory's name).
                         A request picks one with "adapter": NAME (or "adapters"); with one adapter
                         mounted it is the default and "base" turns it off. GET /v1/adapters lists them.
  --host ADDR            address to listen on (default 127.0.0.1, loopback only)
  --port N               port (default 8080; 0 picks a free one, printed on stdout)
  --mtp                  decode greedy requests with self-speculation (dhara); a request's
                         "decoding": "ar" | "diffusion" | "selfspec" overrides
  --max-concurrent N     HTTP connections served at once (default 64)
  --queue N              generation requests that may wait for the engine (default 64); more → 503
  --api-key KEY          require "Authorization: Bearer KEY" or "x-api-key: KEY"
  --allowed-origins LIST browser origins allowed to call the server (CORS), comma-separated, e.g.
                         "http://localhost:3000,https://app.example"; "*" allows any. Default: none
                         (no CORS headers, so browsers refuse cross-origin pages)
  --max-tokens N         output tokens when a request gives none (default 32768, capped by the context)
  --temp T --top-p P --top-k K --min-p M --repetition-penalty R --seed S
                         sampling defaults (default: generation_config.json, else greedy)
  --max-body-bytes N     largest request body (default 4194304); larger → 413
  --model-id ID          id reported by /v1/models and in every response's "model" (default: the
                         Hugging Face id, else the model directory's name); mounted adapters are
                         listed as models too
  --threads N            compute threads (default: all cores)

The model loads before the port opens: "listening on" is printed once requests can be served, and a
model that does not load exits 1 with the loader's message. --mtp on a model without self-speculation
(DiffusionGemma) is a usage error (exit 2).

Canvas-diffusion models (DiffusionGemma) decode with the sampler settings of generation_config.json;
a request may set "sampler" (entropy-bound | confidence-threshold), "threshold", "steps" and "seed",
and send images inline (OpenAI image_url data: URLs, Anthropic base64 image blocks).
)";

int usage(const std::string& message) { return usage_error("serve", message); }
int fail(const Status& s) { return runtime_error("serve", s); }

// Sampler defaults from generation_config.json (as `optiq generate` and mlx-optiq do).
SamplingParams sampling_defaults(const std::string& dir) {
  SamplingParams p;
  auto md = read_json_file(dir + "/generation_config.json");
  if (!md.ok() || !md->is_object()) return p;
  const auto& g = *md;
  auto num = [&](const char* k, double def) {
    return g.contains(k) && g[k].is_number() ? g[k].get<double>() : def;
  };
  p.temperature = static_cast<float>(num("temperature", 0));
  p.top_p = static_cast<float>(num("top_p", 1));
  p.top_k = static_cast<int>(num("top_k", 0));
  p.min_p = static_cast<float>(num("min_p", 0));
  p.repetition_penalty = static_cast<float>(num("repetition_penalty", 1));
  // HF: do_sample=false means greedy whatever the temperature says.
  if (g.contains("do_sample") && g["do_sample"].is_boolean() && !g["do_sample"].get<bool>()) p.temperature = 0;
  return p;
}

// --allowed-origins "A,B": trimmed entries, each "*" or a scheme://host[:port] origin as browsers send it.
Result<std::vector<std::string>> parse_allowed_origins(const std::string& flag) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= flag.size() && !flag.empty()) {
    size_t comma = flag.find(',', start);
    if (comma == std::string::npos) comma = flag.size();
    std::string o = flag.substr(start, comma - start);
    o.erase(0, o.find_first_not_of(" \t"));
    o.erase(o.find_last_not_of(" \t") + 1);
    start = comma + 1;
    if (o.empty()) continue;
    // An origin has no path: "http://x/" would never equal the Origin header a browser sends.
    const size_t scheme = o.find("://");
    if (o != "*" && (scheme == std::string::npos || scheme == 0 || o.find('/', scheme + 3) != std::string::npos))
      return Status::InvalidArgument("--allowed-origins: \"" + o +
                                     "\" is not an origin; expected \"*\" or scheme://host[:port], e.g. "
                                     "http://localhost:3000");
    out.push_back(std::move(o));
  }
  return out;
}

// --adapter [NAME=]DIR flags: each loaded and checked against the model; names unique, not "base", not
// the model's id (/v1/models lists both, and a request's "model" picks an adapter by name).
Result<std::vector<serve::MountedAdapter>> mount_adapters(const Model& model, const std::vector<std::string>& flags,
                                                          const std::string& model_id) {
  std::vector<serve::MountedAdapter> out;
  for (const std::string& flag : flags) {
    serve::MountedAdapter m;
    const size_t eq = flag.find('=');
    m.path = flag;
    if (eq != std::string::npos && eq > 0 && flag.find('/') > eq) {
      m.name = flag.substr(0, eq);
      m.path = flag.substr(eq + 1);
    }
    auto ad = load_lora_adapter(m.path);
    if (!ad.ok()) return ad.status().WithContext("--adapter " + flag);
    OPTIQ_RETURN_IF_ERROR(validate_adapter(model, *ad).WithContext("--adapter " + flag));
    if (m.name.empty()) m.name = ad->name;
    if (m.name == "base")
      return Status::InvalidArgument("--adapter " + flag + ": \"base\" is reserved (it names the base model); "
                                     "give another name as NAME=DIR");
    if (m.name == model_id)
      return Status::InvalidArgument("--adapter " + flag + ": \"" + m.name +
                                     "\" is the served model's id; give the adapter another name as NAME=DIR");
    for (const serve::MountedAdapter& o : out)
      if (o.name == m.name)
        return Status::InvalidArgument("--adapter " + flag + ": another adapter is already named \"" + m.name +
                                       "\"; give distinct names as NAME=DIR");
    ad->name = m.name;
    m.adapter = std::make_shared<const LoraAdapter>(std::move(ad).value());
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  auto flags = Flags::parse(argc, argv,
                            {"--model", "--host", "--port", "--max-concurrent", "--queue", "--api-key", "--max-tokens",
                             "--temp", "--top-p", "--top-k", "--min-p", "--repetition-penalty", "--seed",
                             "--max-body-bytes", "--model-id", "--threads", "--adapter", "--allowed-origins"},
                            {"--mtp", "--help", "--offline"});
  if (!flags.ok()) return usage(flags.status().message());
  const Flags& f = *flags;
  if (f.has("--help")) {
    std::fputs(kServeHelp, stdout);
    return 0;
  }
  if (!f.positional().empty()) return usage("unexpected argument '" + f.positional()[0] + "'");
  auto model_dir = model_dir_flag(f);
  if (!model_dir.ok()) return fail(model_dir.status());
  const std::string dir = *model_dir;
  serve::ServerOptions o;
  o.host = f.str("--host", "127.0.0.1");
  // An id the cache resolved (ORG/NAME) names the model better than its snapshot directory (a sha).
  const bool hub_id = f.has("--model") && f.str("--model") != dir;
  o.model_id = f.str("--model-id", hub_id ? f.str("--model") : std::filesystem::path(dir).filename().string());
  if (o.model_id.empty()) o.model_id = std::filesystem::path(dir).parent_path().filename().string();
  o.api_key = f.str("--api-key");
  auto origins = parse_allowed_origins(f.str("--allowed-origins"));
  if (!origins.ok()) return usage(origins.status().message());
  o.allowed_origins = *origins;
  o.defaults.sampling = sampling_defaults(dir);
  // Canvas-diffusion models (DiffusionGemma): the sampler settings `optiq generate` uses.
  if (auto gen = read_json_file(dir + "/generation_config.json"); gen.ok()) {
    auto canvas = canvas_options_from_generation_config(*gen);
    if (!canvas.ok()) return fail(canvas.status().WithContext(dir + "/generation_config.json"));
    o.defaults.canvas = *canvas;
  }
  if (f.has("--mtp")) o.defaults.mode = DecodeMode::kSelfSpec;

  struct IntFlag {
    const char* name;
    long long def, lo, hi;
    long long* out;
  };
  long long port, max_concurrent, queue, max_tokens, max_body, threads, top_k, seed;
  IntFlag ints[] = {{"--port", 8080, 0, 65535, &port},
                    {"--max-concurrent", 64, 1, 4096, &max_concurrent},
                    {"--queue", 64, 1, 1 << 20, &queue},
                    {"--max-tokens", 32768, 1, 1 << 30, &max_tokens},
                    {"--max-body-bytes", 4 << 20, 1024, 1ll << 32, &max_body},
                    {"--threads", 0, 0, 1024, &threads},
                    {"--top-k", o.defaults.sampling.top_k, 0, 1 << 30, &top_k},
                    {"--seed", 0, 0, INT64_MAX, &seed}};
  for (auto& i : ints) {
    auto v = f.integer(i.name, i.def);
    if (!v.ok()) return usage(v.status().message());
    if (*v < i.lo || *v > i.hi)
      return usage(std::string(i.name) + " must be in [" + std::to_string(i.lo) + ", " + std::to_string(i.hi) +
                   "], got " + std::to_string(*v));
    *i.out = *v;
  }
  o.port = static_cast<int>(port);
  o.http_threads = static_cast<int>(max_concurrent);
  o.queue_capacity = static_cast<size_t>(queue);
  o.defaults.max_tokens = max_tokens;
  o.max_body_bytes = static_cast<size_t>(max_body);
  o.defaults.sampling.top_k = static_cast<int>(top_k);
  o.defaults.sampling.seed = static_cast<uint64_t>(seed);
  struct FloatFlag {
    const char* name;
    float* out;
  };
  FloatFlag floats[] = {{"--temp", &o.defaults.sampling.temperature},
                        {"--top-p", &o.defaults.sampling.top_p},
                        {"--min-p", &o.defaults.sampling.min_p},
                        {"--repetition-penalty", &o.defaults.sampling.repetition_penalty}};
  for (auto& fl : floats) {
    auto v = f.num(fl.name, *fl.out);
    if (!v.ok()) return usage(v.status().message());
    *fl.out = static_cast<float>(*v);
  }
  if (Status st = o.defaults.sampling.validate(); !st.ok()) return usage(st.message());

  // Signals are handled by one thread via sigwait; every other thread (HTTP, engine, compute) starts
  // with them blocked, so the handler never runs inside library code.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGUSR1);  // internal: wakes the waiter at exit
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  serve::Server server(o);
  std::atomic<bool> serving{false}, exiting{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (exiting.load()) return;
    if (!serving.load()) {  // still loading: nothing is served or half-written yet
      std::fprintf(stderr, "optiq serve: signal %d while loading, exiting\n", sig);
      std::_Exit(128 + sig);
    }
    std::fprintf(stderr, "optiq serve: signal %d, shutting down\n", sig);
    server.stop();
  });
  auto finish = [&](int rc) {
    exiting.store(true);
    pthread_kill(waiter.native_handle(), SIGUSR1);
    waiter.join();
    return rc;
  };

  // The model, tokenizer and adapters load before the port is bound: "listening" means the server
  // answers generation requests, and a bad model exits 1 with the loader's message, never listening.
  std::printf("optiq serve: loading model %s\n", dir.c_str());
  std::fflush(stdout);
  auto model = load_model(dir);
  if (!model.ok()) return finish(fail(model.status()));
  const ModelInfo info = (*model)->info();
  if (f.has("--mtp") && (info.canvas_length > 0 || !info.supports_block || info.mask_token_id < 0))
    return finish(usage("--mtp (self-speculation) needs a block-diffusion model such as dhara; " + info.model_type +
                        (info.canvas_length > 0 ? " decodes by canvas diffusion" : " supports only ar")));
  auto tok = Tokenizer::from_dir(dir);
  if (!tok.ok()) return finish(fail(tok.status()));
  auto adapters = mount_adapters(**model, f.all("--adapter"), o.model_id);
  if (!adapters.ok()) return finish(fail(adapters.status()));
  const std::vector<serve::MountedAdapter> mounted = *adapters;
  auto bound = server.bind();
  if (!bound.ok()) return finish(fail(bound.status()));
  server.set_model(std::move(model).value(), std::move(tok).value(), static_cast<int>(threads),
                   std::move(adapters).value());

  Status serve_status;
  serving.store(true);
  std::thread http([&] { serve_status = server.serve(); });
  const char* decoding = info.canvas_length > 0 ? "canvas" : decode_mode_name(o.defaults.mode);
  for (const serve::MountedAdapter& a : mounted)
    std::printf("optiq serve: adapter %s mounted (%s, %zu modules, scale %g)%s\n", a.name.c_str(), a.path.c_str(),
                a.adapter->modules.size(), a.adapter->scale, mounted.size() == 1 ? ", the default" : "");
  std::printf("optiq serve: model %s loaded (%s, context %lld, default decoding %s)\n", o.model_id.c_str(),
              info.model_type.c_str(), static_cast<long long>(info.max_position), decoding);
  std::printf("optiq serve: listening on http://%s:%d\n", o.host.c_str(), *bound);
  std::fflush(stdout);
  http.join();
  const int rc = finish(serve_status.ok() ? 0 : fail(serve_status));
  if (rc == 0) std::printf("optiq serve: stopped\n");
  return rc;
}

}  // namespace optiq::cli
