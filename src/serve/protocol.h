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

// One generation request, whatever API it came through.
struct GenRequest {
  Api api = Api::kChat;
  std::string model;        // a label, echoed back
  bool chat = true;         // messages rendered with the chat template; else a raw prompt
  Json messages = Json::array();  // OpenAI-style [{role, content: string, ...}]
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
};

// Combines request, defaults and model limits into engine options for a prompt of `prompt_len`
// tokens. Policy: diffusion and self-speculation decode greedily. A request that names such a mode
// and samples (temperature > 0) is rejected; when the mode is only the server default (--mtp), a
// sampling request runs AR instead, and the response reports the mode that ran. An explicit
// max_tokens that does not fit the context is rejected; without one, the output gets
// min(default, room left). InvalidArgument on any violation, naming the field.
Result<GenerateOptions> resolve_options(const GenRequest& req, const ServeDefaults& defaults, const ModelInfo& info,
                                        int64_t prompt_len);

enum class Finish { kStop, kLength, kStopSequence };

struct Outcome {
  std::string text;
  Finish finish = Finish::kStop;
  std::string stop_sequence;  // the stop string matched (kStopSequence)
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  DecodeMode mode = DecodeMode::kAR;
};

// Formats one response of one API, streaming or not. Not thread-safe; one per response.
class ResponseWriter {
 public:
  // `id_hex` is random hex used to build the API's ids; `created` is Unix seconds.
  static std::unique_ptr<ResponseWriter> make(const GenRequest& req, const std::string& id_hex, int64_t created);
  virtual ~ResponseWriter() = default;
  // SSE frames sent before any text (role delta, message_start, response.created ...).
  virtual std::string stream_begin(int64_t prompt_tokens, DecodeMode mode) = 0;
  // Frames carrying newly visible text (empty text gives no frame).
  virtual std::string stream_delta(std::string_view text) = 0;
  // Closing frames (finish reason, usage, [DONE] / message_stop ...).
  virtual std::string stream_end(const Outcome& o) = 0;
  // An error after the stream began, in the API's in-stream error shape.
  virtual std::string stream_error(const std::string& message) = 0;
  // The non-streaming response body.
  virtual Json complete(const Outcome& o) = 0;
};

// An error body in the caller's dialect: OpenAI {"error":{message,type,param,code}}, Anthropic
// {"type":"error","error":{type,message}}; the type follows the HTTP status.
Json error_body(Dialect d, int http_status, const std::string& message);

// One SSE frame: optional "event:" line, then "data: <json>".
std::string sse_frame(const Json& data, const char* event = nullptr);

// Finish reasons as each API spells them.
const char* openai_finish_reason(Finish f);     // stop | length
const char* anthropic_stop_reason(Finish f);    // end_turn | max_tokens | stop_sequence

}  // namespace optiq::serve
