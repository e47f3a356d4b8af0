// Wire formats of the OpenAI (chat, completions, responses) and Anthropic (messages) APIs, as plain
// structs and pure functions: request bodies parse into a GenRequest, results format into response
// bodies and SSE frames. No I/O and no engine here, so every format is unit-testable.
// specs/optiq-surface.md §2.2–2.5 describe the formats mirrored.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "decode/canvas.h"
#include "decode/generate.h"
#include "models/model.h"

namespace optiq::serve {

using Json = nlohmann::ordered_json;

enum class Api { kChat, kCompletions, kMessages, kResponses };
enum class Dialect { kOpenAI, kAnthropic };
inline Dialect dialect_of(Api a) { return a == Api::kMessages ? Dialect::kAnthropic : Dialect::kOpenAI; }

// Sampling fields a request may set; unset ones take the server defaults.
struct SamplingOverrides {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;
  std::optional<uint64_t> seed;
};

// An image sent inline (OpenAI image_url / input_image data URL, Anthropic base64 source), still encoded.
struct ImageInput {
  std::string field;           // where it came from, for errors: "messages[0].content[1].image_url.url"
  std::string media_type;      // as declared ("image/png"); the decoder sniffs the real format
  std::vector<uint8_t> bytes;  // PNG, JPEG, ... bytes
};

// Canvas-diffusion fields (DiffusionGemma): "sampler", "threshold", "steps". Unset ones take the
// checkpoint's generation_config.json values.
struct CanvasOverrides {
  std::optional<CanvasSampler> sampler;
  std::optional<double> threshold;
  std::optional<int64_t> steps;
  bool any() const { return sampler || threshold || steps; }
};

// One generation request, whatever API it came through.
struct GenRequest {
  Api api = Api::kChat;
  // The client's label; any value serves this server's model. The server replaces it with the id of what
  // ran (the served model id, or the adapter's) before formatting, so every response reports the same id.
  std::string model;
  bool chat = true;         // messages rendered with the chat template; else a raw prompt
  // OpenAI-style [{role, content, ...}]; content is a string, or, in a message with images, the chat
  // template's item list [{"type":"text","text"} | {"type":"image"}] in the order the parts came.
  Json messages = Json::array();
  Json tools;                     // null or an array of OpenAI function tools (passed to the template)
  Json template_kwargs = Json::object();
  std::string prompt;             // !chat: prompt text
  std::vector<int32_t> prompt_ids;  // !chat: prompt as token ids (used when non-empty)
  std::optional<int64_t> max_tokens;
  SamplingOverrides sampling;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  std::optional<DecodeMode> mode;  // "decoding": "ar" | "diffusion" | "selfspec"
  CanvasOverrides canvas;
  std::vector<ImageInput> images;  // in prompt order, one per {"type":"image"} item in `messages`
  // "adapter" (or OptIQ's "adapters"): the name of a mounted LoRA adapter, or "base" for none; unset:
  // the server's default (its only adapter when exactly one is mounted).
  std::optional<std::string> adapter;
};

// Limits on what a request may ask for.
inline constexpr size_t kMaxStopStrings = 16;
inline constexpr size_t kMaxStopLength = 256;
inline constexpr int kMaxJsonDepth = 64;

// Parses a request body. Errors are InvalidArgument naming the field ("messages[2].content: ...").
// Rejects JSON nested deeper than kMaxJsonDepth before parsing, so hostile bodies cannot exhaust
// the stack.
Result<GenRequest> parse_request(Api api, std::string_view body);

// Server-side defaults (flags, generation_config.json).
struct ServeDefaults {
  SamplingParams sampling;
  int64_t max_tokens = 32768;
  DecodeMode mode = DecodeMode::kAR;  // --mtp: kSelfSpec
  int block_len = 32;
  float threshold = 0.5f;
  int draft_len = 8;
  CanvasOptions canvas;  // canvas-diffusion models: generation_config.json's sampler settings
};

// Combines request, defaults and model limits into engine options for a prompt of `prompt_len`
// tokens. Policy: diffusion and self-speculation decode greedily. A request that names such a mode
// and samples (temperature > 0) is rejected; when the mode is only the server default (--mtp), a
// sampling request runs AR instead, and the response reports the mode that ran. An explicit
// max_tokens that does not fit the context is rejected; without one, the output gets
// min(default, room left). InvalidArgument on any violation, naming the field.
Result<GenerateOptions> resolve_options(const GenRequest& req, const ServeDefaults& defaults, const ModelInfo& info,
                                        int64_t prompt_len);

// The same for canvas-diffusion models (info.canvas_length > 0): sampler, threshold and steps from the
// request or the defaults, seed from the request or the server's default seed. Output runs in whole
// canvases, so an explicit max_tokens must fit the context in canvases: prompt + ceil(max_tokens / L)·L
// <= max_position; without one, the output gets min(default, the whole canvases left). The sampling
// fields temperature, top_p, top_k, min_p and repetition_penalty do not apply (the canvas sampler's
// temperature schedule is the checkpoint's) and are ignored; "decoding" is a 400. `prompt_len` excludes
// image soft tokens, which are known only once the vision tower ran (canvas_generate checks again).
Result<CanvasOptions> resolve_canvas_options(const GenRequest& req, const ServeDefaults& defaults,
                                             const ModelInfo& info, int64_t prompt_len);

enum class Finish { kStop, kLength, kStopSequence };

struct Outcome {
  std::string text;
  Finish finish = Finish::kStop;
  std::string stop_sequence;  // the stop string matched (kStopSequence)
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string decoding = "ar";  // what ran: decode_mode_name(), or "canvas" for canvas diffusion
};

// Formats one response of one API, streaming or not. Not thread-safe; one per response.
class ResponseWriter {
 public:
  // `id_hex` is random hex used to build the API's ids; `created` is Unix seconds.
  static std::unique_ptr<ResponseWriter> make(const GenRequest& req, const std::string& id_hex, int64_t created);
  virtual ~ResponseWriter() = default;
  // SSE frames sent before any text (role delta, message_start, response.created ...).
  virtual std::string stream_begin(int64_t prompt_tokens, const std::string& decoding) = 0;
  // Frames carrying newly visible text (empty text gives no frame).
  virtual std::string stream_delta(std::string_view text) = 0;
  // Closing frames (finish reason, usage, [DONE] / message_stop ...).
  virtual std::string stream_end(const Outcome& o) = 0;
  // An error after the stream began, in the API's in-stream error shape.
  virtual std::string stream_error(const std::string& message) = 0;
  // The non-streaming response body.
  virtual Json complete(const Outcome& o) = 0;
};

// The request field a validation message names, or "" if none. Every parser and resolver here reports
// InvalidArgument as "FIELD: what" with FIELD a path such as "temperature", "stop[1]" or
// "messages[0].content[1].image_url.url" (protocol_internal.h); a message that does not begin with such
// a path followed by ": " ("request body: ...", "server busy: ...") names no field.
std::string error_param(std::string_view message);

// An error body in the caller's dialect: OpenAI {"error":{message,type,param,code}}, Anthropic
// {"type":"error","error":{type,message}}; the type follows the HTTP status. OpenAI 400s whose message
// names a field (error_param) carry it as `param`, with `code` "invalid_type" (wrong JSON type),
// "missing_required_parameter" or "invalid_value", as OpenAI's own validation errors do; otherwise
// both are null.
Json error_body(Dialect d, int http_status, const std::string& message);

// One SSE frame: optional "event:" line, then "data: <json>".
std::string sse_frame(const Json& data, const char* event = nullptr);

// Finish reasons as each API spells them.
const char* openai_finish_reason(Finish f);     // stop | length
const char* anthropic_stop_reason(Finish f);    // end_turn | max_tokens | stop_sequence

}  // namespace optiq::serve
