// What every API shares: the request-body reader and typed field getters, the fields several APIs accept
// (stop strings, "decoding", canvas fields, chat_template_kwargs), the API dispatch of parse_request and
// ResponseWriter::make, option resolution, error bodies and SSE framing. The API-specific parts live in
// protocol_openai.cpp, protocol_anthropic.cpp and protocol_responses.cpp.
#include "serve/protocol.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "serve/protocol_internal.h"

namespace optiq::serve {

namespace detail {

namespace {

const char* type_name(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

}  // namespace

Status bad(const std::string& field, const std::string& what) { return Status::InvalidArgument(field + ": " + what); }

Status wrong_type(const std::string& field, const char* want, const Json& got) {
  return bad(field, std::string("expected ") + want + ", got " + type_name(got));
}

namespace {

// Nesting depth of a JSON text, counted outside strings. Bodies deeper than the limit are refused
// before nlohmann parses them.
Status check_depth(std::string_view body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth)
        return Status::InvalidArgument("request body: JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                                       " levels at byte " + std::to_string(i));
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return Status::Ok();
}

Result<Json> parse_body(std::string_view body) {
  OPTIQ_RETURN_IF_ERROR(check_depth(body));
  Json j;
  try {
    j = Json::parse(body.begin(), body.end());
  } catch (const nlohmann::json::exception& e) {
    // nlohmann's message already names the byte offset ("at line 1, column 7").
    return Status::InvalidArgument(std::string("request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) return wrong_type("request body", "a JSON object", j);
  return j;
}

}  // namespace

// A present, non-null field.
const Json* field(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Status get_bool(const Json& obj, const char* key, bool& out) {
  const Json* v = field(obj, key);
  if (!v) return Status::Ok();
  if (!v->is_boolean()) return wrong_type(key, "a boolean", *v);
  out = v->get<bool>();
  return Status::Ok();
}

Status get_string(const Json& obj, const char* key, std::string& out) {
  const Json* v = field(obj, key);
  if (!v) return Status::Ok();
  if (!v->is_string()) return wrong_type(key, "a string", *v);
  out = v->get<std::string>();
  return Status::Ok();
}

Status get_float(const Json& obj, const char* key, std::optional<float>& out, double lo, double hi) {
  const Json* v = field(obj, key);
  if (!v) return Status::Ok();
  if (!v->is_number()) return wrong_type(key, "a number", *v);
  const double d = v->get<double>();
  if (!(d >= lo && d <= hi))
    return bad(key, "must be in [" + nlohmann::json(lo).dump() + ", " + nlohmann::json(hi).dump() + "], got " + v->dump());
  out = static_cast<float>(d);
  return Status::Ok();
}

Status get_int(const Json& obj, const char* key, std::optional<int64_t>& out, int64_t lo, int64_t hi) {
  const Json* v = field(obj, key);
  if (!v) return Status::Ok();
  if (!v->is_number_integer()) return wrong_type(key, "an integer", *v);
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    return bad(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v->dump());
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi) return bad(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v->dump());
  out = i;
  return Status::Ok();
}

// OpenAI's `stop` is a string or a list; Anthropic's `stop_sequences` only a list.
Status parse_stop(const Json& j, const char* key, std::vector<std::string>& out, bool allow_string) {
  const Json* v = field(j, key);
  if (!v) return Status::Ok();
  auto add = [&](const Json& s, const std::string& name) -> Status {
    if (!s.is_string()) return wrong_type(name, "a string", s);
    std::string str = s.get<std::string>();
    if (str.size() > kMaxStopLength)
      return bad(name, "longer than " + std::to_string(kMaxStopLength) + " bytes (" + std::to_string(str.size()) + ")");
    if (!str.empty()) out.push_back(std::move(str));
    return Status::Ok();
  };
  if (v->is_string() && allow_string) return add(*v, key);
  if (!v->is_array()) return wrong_type(key, allow_string ? "a string or an array of strings" : "an array of strings", *v);
  if (v->size() > kMaxStopStrings)
    return bad(key, "at most " + std::to_string(kMaxStopStrings) + " entries, got " + std::to_string(v->size()));
  for (size_t i = 0; i < v->size(); ++i)
    OPTIQ_RETURN_IF_ERROR(add((*v)[i], std::string(key) + "[" + std::to_string(i) + "]"));
  return Status::Ok();
}

Status parse_mode(const Json& j, GenRequest& r) {
  const Json* v = field(j, "decoding");
  if (!v) return Status::Ok();
  if (!v->is_string()) return wrong_type("decoding", "a string", *v);
  DecodeMode m;
  if (!decode_mode_from_name(v->get<std::string>(), &m))
    return bad("decoding", "must be \"ar\", \"diffusion\" or \"selfspec\", got " + v->dump());
  r.mode = m;
  return Status::Ok();
}

// Canvas-diffusion fields; whether the model takes them is decided later (resolve_*_options).
Status parse_canvas_fields(const Json& j, GenRequest& r) {
  if (const Json* v = field(j, "sampler")) {
    if (!v->is_string()) return wrong_type("sampler", "a string", *v);
    auto s = parse_canvas_sampler(v->get<std::string>());
    if (!s.ok()) return bad("sampler", "must be \"entropy-bound\" or \"confidence-threshold\", got " + v->dump());
    r.canvas.sampler = *s;
  }
  std::optional<float> threshold;
  OPTIQ_RETURN_IF_ERROR(get_float(j, "threshold", threshold, 0.0, 1.0));
  if (threshold && *threshold <= 0.f) return bad("threshold", "must be > 0");
  // Read as double: the float above only range-checks.
  if (threshold) r.canvas.threshold = field(j, "threshold")->get<double>();
  OPTIQ_RETURN_IF_ERROR(get_int(j, "steps", r.canvas.steps, 1, 4096));
  return Status::Ok();
}

namespace {

const char* canvas_field(const CanvasOverrides& c) { return c.sampler ? "sampler" : c.threshold ? "threshold" : "steps"; }

}  // namespace

Status parse_template_kwargs(const Json& j, GenRequest& r) {
  const Json* v = field(j, "chat_template_kwargs");
  if (!v) return Status::Ok();
  if (!v->is_object()) return wrong_type("chat_template_kwargs", "an object", *v);
  r.template_kwargs = *v;
  return Status::Ok();
}

// "adapter": a name; OptIQ's "adapters": a name or a list of one. Which names exist is the server's
// business (Server::model_for).
Status parse_adapter(const Json& j, GenRequest& r) {
  for (const char* key : {"adapter", "adapters"}) {
    const Json* v = field(j, key);
    if (!v) continue;
    const Json* name = v;
    if (v->is_array()) {
      if (v->size() != 1) return bad(key, "one adapter per request, got a list of " + std::to_string(v->size()));
      name = &(*v)[0];
    }
    if (!name->is_string()) return wrong_type(key, "a string (an adapter name, or \"base\")", *name);
    const std::string n = name->get<std::string>();
    if (r.adapter && *r.adapter != n)
      return bad(key, "names adapter \"" + n + "\" but \"adapter\" names \"" + *r.adapter + "\"");
    r.adapter = n;
  }
  return Status::Ok();
}

}  // namespace detail

using detail::bad;
using detail::canvas_field;
using detail::parse_body;

Result<GenRequest> parse_request(Api api, std::string_view body) {
  OPTIQ_ASSIGN_OR_RETURN(Json j, parse_body(body));
  GenRequest r;
  r.api = api;
  switch (api) {
    case Api::kChat: OPTIQ_RETURN_IF_ERROR(detail::parse_chat(j, r)); break;
    case Api::kCompletions: OPTIQ_RETURN_IF_ERROR(detail::parse_completion(j, r)); break;
    case Api::kMessages: OPTIQ_RETURN_IF_ERROR(detail::parse_messages(j, r)); break;
    case Api::kResponses: OPTIQ_RETURN_IF_ERROR(detail::parse_responses(j, r)); break;
  }
  OPTIQ_RETURN_IF_ERROR(detail::parse_adapter(j, r));
  return r;
}

Result<GenerateOptions> resolve_options(const GenRequest& req, const ServeDefaults& d, const ModelInfo& info,
                                        int64_t prompt_len) {
  if (req.canvas.any())
    return bad(canvas_field(req.canvas), "applies to canvas-diffusion models only; " + info.model_type + " is not one");
  GenerateOptions o;
  o.sampling = d.sampling;
  const SamplingOverrides& s = req.sampling;
  if (s.temperature) o.sampling.temperature = *s.temperature;
  if (s.top_p) o.sampling.top_p = *s.top_p;
  if (s.top_k) o.sampling.top_k = *s.top_k;
  if (s.min_p) o.sampling.min_p = *s.min_p;
  if (s.repetition_penalty) o.sampling.repetition_penalty = *s.repetition_penalty;
  if (s.seed) o.sampling.seed = *s.seed;
  OPTIQ_RETURN_IF_ERROR(o.sampling.validate());
  o.block_len = d.block_len;
  o.threshold = d.threshold;
  o.draft_len = d.draft_len;
  o.mode = req.mode.value_or(d.mode);
  if (o.mode != DecodeMode::kAR) {
    if (!info.supports_block || info.mask_token_id < 0) {
      if (req.mode)
        return bad("decoding", std::string("mode ") + decode_mode_name(o.mode) + " needs a block-diffusion model; " +
                                   info.model_type + " supports only \"ar\"");
      o.mode = DecodeMode::kAR;
    } else if (!o.sampling.greedy()) {
      if (req.mode)
        return bad("decoding", std::string("mode ") + decode_mode_name(o.mode) +
                                   " decodes greedily; set temperature to 0 or use \"decoding\": \"ar\"");
      o.mode = DecodeMode::kAR;  // --mtp accelerates greedy requests; sampling ones run AR
    }
  }
  // Positions the mode needs past the output (generate() checks the same).
  const int64_t pad = o.mode == DecodeMode::kDiffusion ? o.block_len : o.mode == DecodeMode::kSelfSpec ? o.draft_len : 0;
  const int64_t room = info.max_position - prompt_len - pad;
  const char* max_field = req.api == Api::kMessages ? "max_tokens"
                          : req.api == Api::kResponses ? "max_output_tokens"
                                                       : "max_tokens";
  if (room < 1)
    return bad("messages", "the prompt is " + std::to_string(prompt_len) + " tokens; the model's context is " +
                               std::to_string(info.max_position) + " tokens, leaving no room for output");
  if (req.max_tokens) {
    if (*req.max_tokens > room)
      return bad(max_field, std::to_string(*req.max_tokens) + " tokens requested, but the prompt is " +
                                std::to_string(prompt_len) + " tokens and the context " +
                                std::to_string(info.max_position) + " leaves room for " + std::to_string(room));
    o.max_new_tokens = static_cast<int>(*req.max_tokens);
  } else {
    o.max_new_tokens = static_cast<int>(std::min<int64_t>(d.max_tokens, room));
  }
  return o;
}

Result<CanvasOptions> resolve_canvas_options(const GenRequest& req, const ServeDefaults& d, const ModelInfo& info,
                                             int64_t prompt_len) {
  const int64_t L = info.canvas_length;
  if (L <= 0) return Status::InvalidArgument(info.model_type + ": not a canvas-diffusion model");
  if (req.mode)
    return bad("decoding", std::string("mode ") + decode_mode_name(*req.mode) + " does not apply to " +
                               info.model_type + ", a canvas-diffusion model; use \"sampler\" instead");
  CanvasOptions o = d.canvas;
  if (req.canvas.sampler) o.sampler = *req.canvas.sampler;
  if (req.canvas.threshold) o.threshold = *req.canvas.threshold;
  if (req.canvas.steps) o.max_steps = static_cast<int>(*req.canvas.steps);
  o.seed = req.sampling.seed.value_or(d.sampling.seed);
  // Output comes in whole canvases, each needing L positions (canvas_generate checks the same).
  const int64_t canvases_left = (info.max_position - prompt_len) / L;
  const char* max_field = req.api == Api::kResponses ? "max_output_tokens" : "max_tokens";
  if (canvases_left < 1)
    return bad("messages", "the prompt is " + std::to_string(prompt_len) + " tokens; the model's context is " +
                               std::to_string(info.max_position) + " tokens, leaving no room for a canvas of " +
                               std::to_string(L));
  if (req.max_tokens) {
    const int64_t need = (*req.max_tokens + L - 1) / L;
    if (need > canvases_left)
      return bad(max_field, std::to_string(*req.max_tokens) + " tokens requested (" + std::to_string(need) +
                                " canvases of " + std::to_string(L) + "), but the prompt is " +
                                std::to_string(prompt_len) + " tokens and the context " +
                                std::to_string(info.max_position) + " leaves room for " +
                                std::to_string(canvases_left * L));
    o.max_new_tokens = *req.max_tokens;
  } else {
    o.max_new_tokens = std::min<int64_t>(d.max_tokens, canvases_left * L);
  }
  return o;
}

std::unique_ptr<ResponseWriter> ResponseWriter::make(const GenRequest& req, const std::string& id_hex, int64_t created) {
  switch (req.api) {
    case Api::kChat: return detail::make_chat_writer(req, id_hex, created);
    case Api::kCompletions: return detail::make_completion_writer(req, id_hex, created);
    case Api::kMessages: return detail::make_messages_writer(req, id_hex, created);
    case Api::kResponses: return detail::make_responses_writer(req, id_hex, created);
  }
  return nullptr;
}

Json error_body(Dialect d, int http_status, const std::string& message) {
  if (d == Dialect::kAnthropic) {
    const char* type = http_status == 401   ? "authentication_error"
                       : http_status == 403 ? "permission_error"
                       : http_status == 404 ? "not_found_error"
                       : http_status == 413 ? "request_too_large"
                       : http_status == 429 ? "rate_limit_error"
                       : http_status == 503 || http_status == 529 ? "overloaded_error"
                       : http_status >= 500 ? "api_error"
                                            : "invalid_request_error";
    return Json{{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
  }
  const char* type = http_status == 401   ? "authentication_error"
                     : http_status == 404 ? "not_found_error"
                     : http_status == 429 ? "rate_limit_error"
                     : http_status >= 500 ? "server_error"
                                          : "invalid_request_error";
  Json param = nullptr, code = nullptr;
  if (http_status == 400) {
    if (std::string p = error_param(message); !p.empty()) {
      // The words after "FIELD: " are those of detail::wrong_type and the "required" checks.
      const std::string_view what = std::string_view(message).substr(p.size() + 2);
      code = what.starts_with("expected ") ? "invalid_type"
             : what == "required"          ? "missing_required_parameter"
                                           : "invalid_value";
      param = std::move(p);
    }
  }
  return Json{{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}};
}

std::string error_param(std::string_view message) {
  // FIELD := NAME ( "." NAME | "[" DIGITS "]" )*, NAME := [A-Za-z_][A-Za-z0-9_]*
  auto name_char = [](char c, bool first) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
  };
  size_t i = 0;
  bool need_name = true;
  while (i < message.size()) {
    if (need_name) {
      if (!name_char(message[i], true)) return "";
      while (i < message.size() && name_char(message[i], false)) ++i;
      need_name = false;
    } else if (message[i] == '.') {
      ++i;
      need_name = true;
    } else if (message[i] == '[') {
      const size_t start = ++i;
      while (i < message.size() && message[i] >= '0' && message[i] <= '9') ++i;
      if (i == start || i == message.size() || message[i] != ']') return "";
      ++i;
    } else {
      break;
    }
  }
  if (need_name || !message.substr(i).starts_with(": ")) return "";
  return std::string(message.substr(0, i));
}

std::string sse_frame(const Json& data, const char* event) {
  std::string out;
  if (event) {
    out += "event: ";
    out += event;
    out += "\n";
  }
  // Invalid UTF-8 cannot reach here (the detokenizer emits complete characters), but replace rather
  // than throw if it ever does.
  out += "data: " + data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
  return out;
}

const char* openai_finish_reason(Finish f) { return f == Finish::kLength ? "length" : "stop"; }

const char* anthropic_stop_reason(Finish f) {
  switch (f) {
    case Finish::kStop: return "end_turn";
    case Finish::kLength: return "max_tokens";
    case Finish::kStopSequence: return "stop_sequence";
  }
  return "end_turn";
}

}  // namespace optiq::serve
