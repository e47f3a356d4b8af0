#include "tests/fuzz/fuzz_targets.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "decode/canvas.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "io/image.h"
#include "models/gemma4_vision.h"  // vision_target_size, Gemma4VisionConfig
#include "models/registry.h"
#include "serve/protocol.h"
#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace optiq::fuzz {

namespace {

// Splits "first\0second" at the first NUL; `second` is absent without one (several targets take two
// documents in one input this way).
std::pair<std::string_view, std::optional<std::string_view>> split_at_nul(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  if (nul == std::string_view::npos) return {in, std::nullopt};
  return {in.substr(0, nul), in.substr(nul + 1)};
}

// As the server sends JSON: invalid UTF-8 from the request (quoted in error messages) replaced, not thrown.
std::string dump(const serve::Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

void tokenizer_json(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  nlohmann::json j = nlohmann::json::parse(in.begin(), in.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return;
  auto tok = Tokenizer::from_json(j, nlohmann::ordered_json::object(), "fuzz");
  if (!tok.ok()) return;
  const Tokenizer& t = **tok;
  for (std::string_view text : {std::string_view("Hello, world! 123 \xC3\xA9\xF0\x9F\xA4\x96  \n\t<|x|>"),
                                in.substr(0, 512), std::string_view("")}) {
    for (bool special : {false, true}) {
      std::vector<int32_t> ids = t.encode(text, special);
      (void)t.decode(ids, false);
      (void)t.decode(ids, true);
      StreamingDetokenizer sd(t);
      for (int32_t id : ids) (void)sd.push(id);
      (void)sd.flush();
    }
  }
  std::vector<int32_t> junk = {-1, 0, 1, 2, 255, 256, 100000, INT32_MAX};
  (void)t.decode(junk, false);
  (void)t.vocab_size();
  (void)t.token_to_id(in.substr(0, 16));
}

void jinja_template(const uint8_t* data, size_t size) {
  const auto [src, vars_or] = split_at_nul(data, size);
  const std::string_view vars = vars_or.value_or(std::string_view());
  jinja::Options opt;
  opt.strftime_now = [](const std::string& f) { return f; };
  auto tpl = jinja::Template::parse(src, opt);
  if (!tpl.ok()) return;
  nlohmann::ordered_json ctx = {
      {"messages", nlohmann::ordered_json::array({{{"role", "system"}, {"content", "Be brief."}},
                                                  {{"role", "user"}, {"content", "Hi <think>x</think> there"}},
                                                  {{"role", "assistant"}, {"content", "ok"},
                                                   {"tool_calls", {{{"function", {{"name", "f"}, {"arguments", {{"a", 1}}}}}}}}}})},
      {"tools", nlohmann::ordered_json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}}})},
      {"add_generation_prompt", true},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"},
      {"n", 3},
      {"x", 1.5},
      {"none", nullptr}};
  if (!vars.empty()) {
    auto extra = nlohmann::ordered_json::parse(vars.begin(), vars.end(), nullptr, false);
    if (!extra.is_discarded() && extra.is_object())
      for (auto& [k, v] : extra.items()) ctx[k] = v;
  }
  (void)(*tpl)->render(ctx);
}

void safetensors(const uint8_t* data, size_t size) {
  auto f = SafetensorsFile::parse(MappedFile::copy_of({data, size}, "fuzz.safetensors"), "fuzz.safetensors");
  if (!f.ok()) return;
  uint8_t acc = 0;
  for (const auto& [name, tv] : (*f)->tensors()) {
    uint64_t numel = 1;
    for (int64_t d : tv.shape) {
      OPTIQ_CHECK_MSG(d >= 0, name + ": shape " + tv.shape_str());
      numel *= static_cast<uint64_t>(d);
    }
    OPTIQ_CHECK_MSG(numel * dtype_size(tv.dtype) == tv.nbytes, name);
    const auto* p = static_cast<const uint8_t*>(tv.data);
    for (size_t i = 0; i < tv.nbytes; ++i) acc ^= p[i];
  }
  for (const auto& [k, v] : (*f)->metadata()) acc ^= static_cast<uint8_t>(k.size() + v.size());
  volatile uint8_t sink = acc;  // keeps the reads
  (void)sink;
}

void model_config(const uint8_t* data, size_t size) {
  const auto [config, generation] = split_at_nul(data, size);
  auto md = std::make_shared<ModelDir>();
  md->path = "fuzz";
  auto cfg = parse_json(config, "fuzz/config.json");
  if (!cfg.ok() || !cfg->is_object()) return;
  md->config = std::move(*cfg);
  md->generation_config = nlohmann::json::object();
  if (generation) {
    auto gen = parse_json(*generation, "fuzz/generation_config.json");
    if (!gen.ok()) return;
    md->generation_config = std::move(*gen);
  }
  auto empty = TensorStore::open_files({});
  OPTIQ_CHECK(empty.ok());
  md->tensors = std::move(*empty);
  (void)md->eos_ids();
  (void)canvas_options_from_generation_config(md->generation_config);
  // Loaders read vision_config only once the vision weights are found; it is parsed here directly.
  if (auto v = md->config.find("vision_config"); v != md->config.end() && v->is_object())
    (void)Gemma4VisionConfig::from_json(*v, "fuzz/config.json: vision_config");
  auto model = load_model(md);
  OPTIQ_CHECK_MSG(!model.ok(), "a model loaded without weights");
}

void request_body(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  serve::ServeDefaults defaults;
  ModelInfo block;
  block.model_type = "dhara_ar";
  block.vocab_size = 1000;
  block.max_position = 4096;
  block.mask_token_id = 3;
  block.eos_ids = {1};
  block.block_len = 32;
  block.supports_block = true;
  ModelInfo canvas = block;
  canvas.model_type = "diffusion_gemma";
  canvas.block_len = 0;
  canvas.canvas_length = 256;
  canvas.image_token_id = 7;
  canvas.boi_token_id = 8;
  canvas.eoi_token_id = 9;
  for (serve::Api api : {serve::Api::kChat, serve::Api::kCompletions, serve::Api::kMessages, serve::Api::kResponses}) {
    auto req = serve::parse_request(api, body);
    if (!req.ok()) {
      (void)dump(serve::error_body(serve::dialect_of(api), 400, req.status().ToString()));
      continue;
    }
    for (int64_t prompt_len : {int64_t{0}, int64_t{10}, int64_t{4090}}) {
      (void)serve::resolve_options(*req, defaults, block, prompt_len);
      (void)serve::resolve_canvas_options(*req, defaults, canvas, prompt_len);
    }
    serve::Outcome o;
    o.text = "ok \xF0\x9F\xA4\x96";
    o.finish = serve::Finish::kStopSequence;
    o.stop_sequence = req->stop.empty() ? std::string() : req->stop.front();
    o.prompt_tokens = 10;
    o.completion_tokens = 2;
    auto w = serve::ResponseWriter::make(*req, "0123abcd", 1700000000);
    (void)w->stream_begin(10, "ar");
    (void)w->stream_delta("ok ");
    (void)w->stream_delta("\xF0\x9F\xA4\x96");
    (void)w->stream_end(o);
    (void)w->stream_error("boom");
    (void)dump(w->complete(o));
  }
}

void image_decode(const uint8_t* data, size_t size) {
  auto img = decode_image(std::span<const uint8_t>(data, size), kImageMaxPixels);
  if (!img.ok()) return;
  OPTIQ_CHECK(img->width > 0 && img->height > 0);
  OPTIQ_CHECK(static_cast<int64_t>(img->width) * img->height <= kImageMaxPixels);
  OPTIQ_CHECK(img->rgb.size() == static_cast<size_t>(img->width) * img->height * 3);
  const auto [th, tw] = vision_target_size(img->height, img->width, 4, 3, 4);
  const RgbImage r = resize_bicubic_aa(*img, th, tw);
  OPTIQ_CHECK(r.rgb.size() == static_cast<size_t>(th) * tw * 3);
}

}  // namespace optiq::fuzz
