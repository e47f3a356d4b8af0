#include "serve/protocol.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "serve/data_url.h"

namespace optiq::serve {

namespace {

Status bad(const std::string& field, const std::string& what) { return Status::InvalidArgument(field + ": " + what); }

const char* type_name(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

Status wrong_type(const std::string& field, const char* want, const Json& got) {
  return bad(field, std::string("expected ") + want + ", got " + type_name(got));
}

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

// Sampling fields shared by the OpenAI APIs. Ranges follow the OpenAI reference where it has one.
Status parse_openai_sampling(const Json& j, GenRequest& r) {
  OPTIQ_RETURN_IF_ERROR(get_float(j, "temperature", r.sampling.temperature, 0.0, 2.0));
  OPTIQ_RETURN_IF_ERROR(get_float(j, "top_p", r.sampling.top_p, 0.0, 1.0));
  if (r.sampling.top_p && *r.sampling.top_p == 0.f) return bad("top_p", "must be > 0");
  OPTIQ_RETURN_IF_ERROR(get_float(j, "min_p", r.sampling.min_p, 0.0, 1.0));
  OPTIQ_RETURN_IF_ERROR(get_float(j, "repetition_penalty", r.sampling.repetition_penalty, 1e-3, 100.0));
  std::optional<int64_t> top_k, seed;
  // OpenAI-compatible servers use -1 as "top_k off".
  OPTIQ_RETURN_IF_ERROR(get_int(j, "top_k", top_k, -1, 1 << 20));
  if (top_k) r.sampling.top_k = static_cast<int>(std::max<int64_t>(*top_k, 0));
  OPTIQ_RETURN_IF_ERROR(get_int(j, "seed", seed, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  if (seed) r.sampling.seed = static_cast<uint64_t>(*seed);
  return Status::Ok();
}

// OpenAI's `stop` is a string or a list; Anthropic's `stop_sequences` only a list.
Status parse_stop(const Json& j, const char* key, std::vector<std::string>& out, bool allow_string = true) {
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

// An image given as a URL string at `name`: only data: URLs (never fetched).
Status add_image_url(const Json* url, const std::string& name, GenRequest& r) {
  if (!url || !url->is_string()) return bad(name, "missing or not a string");
  auto d = parse_data_url(url->get<std::string>());
  if (!d.ok()) return bad(name, d.status().message());
  r.images.push_back(ImageInput{name, std::move(d->media_type), std::move(d->bytes)});
  return Status::Ok();
}

// An OpenAI content value (a string, or an array of parts) → a message's content: text parts
// concatenated into a string, or, when there are image parts (image_url in chat, input_image in
// Responses), the template's item list with the images appended to r.images in order.
Status openai_content(const Json& content, const std::string& name, GenRequest& r, Json& out) {
  if (content.is_string()) {
    out = content.get<std::string>();
    return Status::Ok();
  }
  if (!content.is_array()) return wrong_type(name, "a string or an array of content parts", content);
  std::string text;
  Json items = Json::array();
  bool images = false;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& p = content[i];
    const std::string pn = name + "[" + std::to_string(i) + "]";
    if (!p.is_object()) return wrong_type(pn, "an object", p);
    const Json* type = field(p, "type");
    if (!type || !type->is_string()) return bad(pn + ".type", "missing or not a string");
    const std::string t = type->get<std::string>();
    if (t == "image_url") {
      // {"image_url": {"url": "data:..."}}; some clients send the URL string directly.
      const Json* iu = field(p, "image_url");
      if (iu && iu->is_object()) OPTIQ_RETURN_IF_ERROR(add_image_url(field(*iu, "url"), pn + ".image_url.url", r));
      else OPTIQ_RETURN_IF_ERROR(add_image_url(iu, pn + ".image_url", r));
      items.push_back(Json{{"type", "image"}});
      images = true;
      continue;
    }
    if (t == "input_image") {
      if (field(p, "file_id") && !field(p, "image_url"))
        return bad(pn + ".file_id", "file ids are not supported; send the image as a data: URL in image_url");
      OPTIQ_RETURN_IF_ERROR(add_image_url(field(p, "image_url"), pn + ".image_url", r));
      items.push_back(Json{{"type", "image"}});
      images = true;
      continue;
    }
    if (t != "text" && t != "input_text" && t != "output_text")
      return bad(pn + ".type", "unsupported content part \"" + t + "\" (this server accepts text and image parts)");
    const Json* tx = field(p, "text");
    if (!tx || !tx->is_string()) return bad(pn + ".text", "missing or not a string");
    text += tx->get<std::string>();
    items.push_back(Json{{"type", "text"}, {"text", *tx}});
  }
  if (images) out = std::move(items);
  else out = std::move(text);
  return Status::Ok();
}

const char* canvas_field(const CanvasOverrides& c) { return c.sampler ? "sampler" : c.threshold ? "threshold" : "steps"; }

// Images are accepted in user messages only (system text is merged, assistant turns are the model's).
Status user_only_images(const Json& content, const std::string& role, const std::string& name) {
  if (content.is_array() && role != "user") return bad(name, "image parts are accepted in user messages only");
  return Status::Ok();
}

Status parse_tools(const Json& j, GenRequest& r) {
  const Json* v = field(j, "tools");
  if (!v) return Status::Ok();
  if (!v->is_array()) return wrong_type("tools", "an array", *v);
  if (!v->empty()) r.tools = *v;
  return Status::Ok();
}

Status parse_template_kwargs(const Json& j, GenRequest& r) {
  const Json* v = field(j, "chat_template_kwargs");
  if (!v) return Status::Ok();
  if (!v->is_object()) return wrong_type("chat_template_kwargs", "an object", *v);
  r.template_kwargs = *v;
  return Status::Ok();
}

Status parse_openai_messages(const Json& j, GenRequest& r) {
  const Json* msgs = field(j, "messages");
  if (!msgs) return bad("messages", "required");
  if (!msgs->is_array()) return wrong_type("messages", "an array", *msgs);
  if (msgs->empty()) return bad("messages", "must not be empty");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const Json& m = (*msgs)[i];
    const std::string mn = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return wrong_type(mn, "an object", m);
    const Json* role = field(m, "role");
    if (!role || !role->is_string()) return bad(mn + ".role", "missing or not a string");
    std::string rs = role->get<std::string>();
    if (rs == "developer") rs = "system";
    if (rs != "system" && rs != "user" && rs != "assistant" && rs != "tool")
      return bad(mn + ".role", "must be system, developer, user, assistant or tool, got \"" + rs + "\"");
    Json out = Json::object();
    out["role"] = rs;
    Json body = "";
    const Json* content = field(m, "content");
    if (content) {
      OPTIQ_RETURN_IF_ERROR(openai_content(*content, mn + ".content", r, body));
      OPTIQ_RETURN_IF_ERROR(user_only_images(body, rs, mn + ".content"));
    } else if (!(rs == "assistant" && m.contains("tool_calls"))) {
      return bad(mn + ".content", "required");
    }
    out["content"] = std::move(body);
    if (const Json* tc = field(m, "tool_calls")) {
      if (!tc->is_array()) return wrong_type(mn + ".tool_calls", "an array", *tc);
      out["tool_calls"] = *tc;
    }
    if (const Json* id = field(m, "tool_call_id")) {
      if (!id->is_string()) return wrong_type(mn + ".tool_call_id", "a string", *id);
      out["tool_call_id"] = *id;
    }
    if (const Json* name = field(m, "name")) {
      if (!name->is_string()) return wrong_type(mn + ".name", "a string", *name);
      out["name"] = *name;
    }
    r.messages.push_back(std::move(out));
  }
  return Status::Ok();
}

Status parse_common_openai(const Json& j, GenRequest& r) {
  OPTIQ_RETURN_IF_ERROR(get_string(j, "model", r.model));
  OPTIQ_RETURN_IF_ERROR(parse_openai_sampling(j, r));
  OPTIQ_RETURN_IF_ERROR(get_bool(j, "stream", r.stream));
  OPTIQ_RETURN_IF_ERROR(parse_mode(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_canvas_fields(j, r));
  if (const Json* so = field(j, "stream_options")) {
    if (!so->is_object()) return wrong_type("stream_options", "an object", *so);
    OPTIQ_RETURN_IF_ERROR(get_bool(*so, "include_usage", r.include_usage));
  }
  std::optional<int64_t> n;
  OPTIQ_RETURN_IF_ERROR(get_int(j, "n", n, 1, 1));
  return Status::Ok();
}

Status parse_chat(const Json& j, GenRequest& r) {
  OPTIQ_RETURN_IF_ERROR(parse_common_openai(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_openai_messages(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_stop(j, "stop", r.stop));
  OPTIQ_RETURN_IF_ERROR(parse_tools(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_template_kwargs(j, r));
  // max_completion_tokens supersedes the deprecated max_tokens.
  OPTIQ_RETURN_IF_ERROR(get_int(j, "max_completion_tokens", r.max_tokens, 1, std::numeric_limits<int32_t>::max()));
  if (!r.max_tokens) OPTIQ_RETURN_IF_ERROR(get_int(j, "max_tokens", r.max_tokens, 1, std::numeric_limits<int32_t>::max()));
  return Status::Ok();
}

Status parse_completion(const Json& j, GenRequest& r) {
  r.chat = false;
  OPTIQ_RETURN_IF_ERROR(parse_common_openai(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_stop(j, "stop", r.stop));
  OPTIQ_RETURN_IF_ERROR(get_int(j, "max_tokens", r.max_tokens, 1, std::numeric_limits<int32_t>::max()));
  const Json* p = field(j, "prompt");
  if (!p) return bad("prompt", "required");
  auto ids_from = [&](const Json& a, const std::string& name) -> Status {
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_number_integer()) return wrong_type(name + "[" + std::to_string(i) + "]", "a token id", a[i]);
      const int64_t id = a[i].get<int64_t>();
      if (id < 0 || id > std::numeric_limits<int32_t>::max())
        return bad(name + "[" + std::to_string(i) + "]", "token id out of range: " + a[i].dump());
      r.prompt_ids.push_back(static_cast<int32_t>(id));
    }
    return Status::Ok();
  };
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
  } else if (p->is_array()) {
    // A string, a list of token ids, or a batch of one of either.
    if (p->empty()) return bad("prompt", "must not be empty");
    if (p->size() == 1 && (*p)[0].is_string()) {
      r.prompt = (*p)[0].get<std::string>();
    } else if (p->size() == 1 && (*p)[0].is_array()) {
      OPTIQ_RETURN_IF_ERROR(ids_from((*p)[0], "prompt[0]"));
    } else if ((*p)[0].is_number_integer()) {
      OPTIQ_RETURN_IF_ERROR(ids_from(*p, "prompt"));
    } else {
      return bad("prompt", "a batch of several prompts is not supported; send one prompt per request");
    }
  } else {
    return wrong_type("prompt", "a string or an array of token ids", *p);
  }
  if (r.prompt.empty() && r.prompt_ids.empty()) return bad("prompt", "must not be empty");
  return Status::Ok();
}

// An Anthropic image block: {"type":"image","source":{"type":"base64","media_type","data"}}. URL and
// file sources are refused (this server never fetches).
Status anthropic_image(const Json& b, const std::string& bn, GenRequest& r) {
  const Json* src = field(b, "source");
  if (!src || !src->is_object()) return bad(bn + ".source", "missing or not an object");
  const Json* type = field(*src, "type");
  if (!type || !type->is_string()) return bad(bn + ".source.type", "missing or not a string");
  if (*type != "base64")
    return bad(bn + ".source.type", "\"" + type->get<std::string>() +
                                        "\" image sources are not supported; send base64 data (this server never "
                                        "fetches URLs)");
  std::string media_type;
  if (const Json* mt = field(*src, "media_type")) {
    if (!mt->is_string()) return wrong_type(bn + ".source.media_type", "a string", *mt);
    media_type = mt->get<std::string>();
  }
  const Json* data = field(*src, "data");
  if (!data || !data->is_string()) return bad(bn + ".source.data", "missing or not a string");
  auto bytes = base64_decode(data->get<std::string>());
  if (!bytes.ok()) return bad(bn + ".source.data", bytes.status().message());
  r.images.push_back(ImageInput{bn + ".source.data", std::move(media_type), std::move(bytes).value()});
  return Status::Ok();
}

// Anthropic content (string or blocks) of one message → OpenAI-style messages appended to r.messages.
Status anthropic_message(const Json& m, const std::string& mn, GenRequest& r) {
  if (!m.is_object()) return wrong_type(mn, "an object", m);
  const Json* role = field(m, "role");
  if (!role || !role->is_string()) return bad(mn + ".role", "missing or not a string");
  const std::string rs = role->get<std::string>();
  if (rs != "user" && rs != "assistant") return bad(mn + ".role", "must be user or assistant, got \"" + rs + "\"");
  const Json* content = field(m, "content");
  if (!content) return bad(mn + ".content", "required");
  if (content->is_string()) {
    r.messages.push_back(Json{{"role", rs}, {"content", content->get<std::string>()}});
    return Status::Ok();
  }
  if (!content->is_array()) return wrong_type(mn + ".content", "a string or an array of content blocks", *content);
  std::string text;
  Json items = Json::array();  // the template's item list, used when the message has images
  Json tool_calls = Json::array();
  std::vector<Json> tool_results;
  for (size_t i = 0; i < content->size(); ++i) {
    const Json& b = (*content)[i];
    const std::string bn = mn + ".content[" + std::to_string(i) + "]";
    if (!b.is_object()) return wrong_type(bn, "an object", b);
    const Json* type = field(b, "type");
    if (!type || !type->is_string()) return bad(bn + ".type", "missing or not a string");
    const std::string t = type->get<std::string>();
    if (t == "text") {
      const Json* tx = field(b, "text");
      if (!tx || !tx->is_string()) return bad(bn + ".text", "missing or not a string");
      text += tx->get<std::string>();
      items.push_back(Json{{"type", "text"}, {"text", *tx}});
    } else if (t == "image") {
      if (rs != "user") return bad(bn, "image blocks are accepted in user messages only");
      OPTIQ_RETURN_IF_ERROR(anthropic_image(b, bn, r));
      items.push_back(Json{{"type", "image"}});
    } else if (t == "document") {
      text += "[document omitted]";
      items.push_back(Json{{"type", "text"}, {"text", "[document omitted]"}});
    } else if (t == "thinking" || t == "redacted_thinking") {
      // Earlier reasoning is not replayed to the model.
    } else if (t == "tool_use") {
      if (rs != "assistant") return bad(bn, "tool_use blocks belong to assistant messages");
      const Json* id = field(b, "id");
      const Json* name = field(b, "name");
      if (!id || !id->is_string() || !name || !name->is_string()) return bad(bn, "tool_use needs string id and name");
      const Json* input = field(b, "input");
      tool_calls.push_back(Json{{"id", *id},
                                {"type", "function"},
                                {"function", {{"name", *name}, {"arguments", input ? *input : Json::object()}}}});
    } else if (t == "tool_result") {
      const Json* id = field(b, "tool_use_id");
      if (!id || !id->is_string()) return bad(bn + ".tool_use_id", "missing or not a string");
      std::string rt;
      if (const Json* c = field(b, "content")) {
        if (c->is_string()) rt = c->get<std::string>();
        else if (c->is_array()) {
          for (size_t k = 0; k < c->size(); ++k) {
            const Json& cb = (*c)[k];
            if (!cb.is_object()) return wrong_type(bn + ".content[" + std::to_string(k) + "]", "an object", cb);
            const Json* tx = field(cb, "text");
            if (tx && tx->is_string()) rt += tx->get<std::string>();
          }
        } else {
          return wrong_type(bn + ".content", "a string or an array of blocks", *c);
        }
      }
      tool_results.push_back(Json{{"role", "tool"}, {"tool_call_id", *id}, {"content", rt}});
    } else {
      return bad(bn + ".type", "unsupported content block \"" + t + "\"");
    }
  }
  for (auto& tr : tool_results) r.messages.push_back(std::move(tr));
  const bool images = std::any_of(items.begin(), items.end(), [](const Json& it) { return it["type"] == "image"; });
  if (!text.empty() || images || !tool_calls.empty() || tool_results.empty()) {
    Json out{{"role", rs}, {"content", images ? std::move(items) : Json(text)}};
    if (!tool_calls.empty()) out["tool_calls"] = std::move(tool_calls);
    r.messages.push_back(std::move(out));
  }
  return Status::Ok();
}

Status parse_messages(const Json& j, GenRequest& r) {
  OPTIQ_RETURN_IF_ERROR(get_string(j, "model", r.model));
  std::optional<int64_t> max_tokens;
  OPTIQ_RETURN_IF_ERROR(get_int(j, "max_tokens", max_tokens, 1, std::numeric_limits<int32_t>::max()));
  if (!max_tokens) return bad("max_tokens", "required");
  r.max_tokens = max_tokens;
  OPTIQ_RETURN_IF_ERROR(get_float(j, "temperature", r.sampling.temperature, 0.0, 1.0));
  OPTIQ_RETURN_IF_ERROR(get_float(j, "top_p", r.sampling.top_p, 0.0, 1.0));
  if (r.sampling.top_p && *r.sampling.top_p == 0.f) return bad("top_p", "must be > 0");
  std::optional<int64_t> top_k;
  OPTIQ_RETURN_IF_ERROR(get_int(j, "top_k", top_k, 0, 1 << 20));
  if (top_k) r.sampling.top_k = static_cast<int>(*top_k);
  // Not in the Anthropic API: an optiq extension (as "decoding" and the canvas fields), for reproducible
  // sampling through either dialect.
  std::optional<int64_t> seed;
  OPTIQ_RETURN_IF_ERROR(get_int(j, "seed", seed, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  if (seed) r.sampling.seed = static_cast<uint64_t>(*seed);
  OPTIQ_RETURN_IF_ERROR(get_bool(j, "stream", r.stream));
  OPTIQ_RETURN_IF_ERROR(parse_stop(j, "stop_sequences", r.stop, /*allow_string=*/false));
  OPTIQ_RETURN_IF_ERROR(parse_mode(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_canvas_fields(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_template_kwargs(j, r));
  if (const Json* sys = field(j, "system")) {
    std::string text;
    if (sys->is_string()) {
      text = sys->get<std::string>();
    } else if (sys->is_array()) {
      for (size_t i = 0; i < sys->size(); ++i) {
        const Json& b = (*sys)[i];
        const std::string bn = "system[" + std::to_string(i) + "]";
        if (!b.is_object()) return wrong_type(bn, "an object", b);
        const Json* tx = field(b, "text");
        if (!tx || !tx->is_string()) return bad(bn + ".text", "missing or not a string");
        text += tx->get<std::string>();
      }
    } else {
      return wrong_type("system", "a string or an array of text blocks", *sys);
    }
    r.messages.push_back(Json{{"role", "system"}, {"content", text}});
  }
  const Json* msgs = field(j, "messages");
  if (!msgs) return bad("messages", "required");
  if (!msgs->is_array()) return wrong_type("messages", "an array", *msgs);
  if (msgs->empty()) return bad("messages", "must not be empty");
  for (size_t i = 0; i < msgs->size(); ++i)
    OPTIQ_RETURN_IF_ERROR(anthropic_message((*msgs)[i], "messages[" + std::to_string(i) + "]", r));
  // Custom tools become OpenAI function tools for the chat template; built-in server tools are dropped.
  if (const Json* tools = field(j, "tools")) {
    if (!tools->is_array()) return wrong_type("tools", "an array", *tools);
    Json out = Json::array();
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      if (!t.is_object()) return wrong_type("tools[" + std::to_string(i) + "]", "an object", t);
      const Json* name = field(t, "name");
      if (!name || !name->is_string()) return bad("tools[" + std::to_string(i) + "].name", "missing or not a string");
      if (!t.contains("input_schema")) continue;
      Json fn{{"name", *name}, {"parameters", t["input_schema"]}};
      if (const Json* d = field(t, "description")) fn["description"] = *d;
      out.push_back(Json{{"type", "function"}, {"function", std::move(fn)}});
    }
    if (!out.empty()) r.tools = std::move(out);
  }
  return Status::Ok();
}

Status parse_responses(const Json& j, GenRequest& r) {
  OPTIQ_RETURN_IF_ERROR(get_string(j, "model", r.model));
  OPTIQ_RETURN_IF_ERROR(parse_openai_sampling(j, r));
  OPTIQ_RETURN_IF_ERROR(get_bool(j, "stream", r.stream));
  OPTIQ_RETURN_IF_ERROR(parse_mode(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_canvas_fields(j, r));
  OPTIQ_RETURN_IF_ERROR(parse_template_kwargs(j, r));
  OPTIQ_RETURN_IF_ERROR(get_int(j, "max_output_tokens", r.max_tokens, 1, std::numeric_limits<int32_t>::max()));
  // instructions and system/developer items merge into one leading system message.
  std::string system;
  OPTIQ_RETURN_IF_ERROR(get_string(j, "instructions", system));
  Json rest = Json::array();
  const Json* input = field(j, "input");
  if (!input) return bad("input", "required");
  if (input->is_string()) {
    rest.push_back(Json{{"role", "user"}, {"content", input->get<std::string>()}});
  } else if (input->is_array()) {
    for (size_t i = 0; i < input->size(); ++i) {
      const Json& it = (*input)[i];
      const std::string in = "input[" + std::to_string(i) + "]";
      if (!it.is_object()) return wrong_type(in, "an object", it);
      std::string type = "message";
      OPTIQ_RETURN_IF_ERROR(get_string(it, "type", type));
      if (type == "message") {
        const Json* role = field(it, "role");
        if (!role || !role->is_string()) return bad(in + ".role", "missing or not a string");
        const std::string rs = role->get<std::string>();
        const Json* content = field(it, "content");
        if (!content) return bad(in + ".content", "required");
        Json body;
        OPTIQ_RETURN_IF_ERROR(openai_content(*content, in + ".content", r, body));
        OPTIQ_RETURN_IF_ERROR(user_only_images(body, rs, in + ".content"));
        if (rs == "system" || rs == "developer") {
          if (!system.empty()) system += "\n\n";
          system += body.get<std::string>();
        } else if (rs == "user" || rs == "assistant") {
          rest.push_back(Json{{"role", rs}, {"content", std::move(body)}});
        } else {
          return bad(in + ".role", "must be user, assistant, system or developer, got \"" + rs + "\"");
        }
      } else if (type == "function_call") {
        const Json* name = field(it, "name");
        const Json* args = field(it, "arguments");
        const Json* id = field(it, "call_id");
        if (!name || !name->is_string() || !args || !args->is_string() || !id || !id->is_string())
          return bad(in, "function_call needs string name, arguments and call_id");
        rest.push_back(Json{{"role", "assistant"},
                            {"content", ""},
                            {"tool_calls", Json::array({Json{{"id", *id},
                                                             {"type", "function"},
                                                             {"function", {{"name", *name}, {"arguments", *args}}}}})}});
      } else if (type == "function_call_output") {
        const Json* id = field(it, "call_id");
        const Json* out = field(it, "output");
        if (!id || !id->is_string() || !out || !out->is_string())
          return bad(in, "function_call_output needs string call_id and output");
        rest.push_back(Json{{"role", "tool"}, {"tool_call_id", *id}, {"content", *out}});
      } else {
        return bad(in + ".type", "unsupported input item \"" + type + "\"");
      }
    }
  } else {
    return wrong_type("input", "a string or an array of input items", *input);
  }
  if (rest.empty()) return bad("input", "must contain at least one user or assistant message");
  if (!system.empty()) r.messages.push_back(Json{{"role", "system"}, {"content", system}});
  for (auto& m : rest) r.messages.push_back(std::move(m));
  // Flat function tools ({type:function, name, parameters}) → nested OpenAI chat tools.
  if (const Json* tools = field(j, "tools")) {
    if (!tools->is_array()) return wrong_type("tools", "an array", *tools);
    Json out = Json::array();
    for (const auto& t : *tools) {
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("name")) continue;
      Json fn{{"name", t["name"]}};
      if (t.contains("description")) fn["description"] = t["description"];
      if (t.contains("parameters")) fn["parameters"] = t["parameters"];
      out.push_back(Json{{"type", "function"}, {"function", std::move(fn)}});
    }
    if (!out.empty()) r.tools = std::move(out);
  }
  return Status::Ok();
}

Json usage_openai(const Outcome& o) {
  return Json{{"prompt_tokens", o.prompt_tokens},
              {"completion_tokens", o.completion_tokens},
              {"total_tokens", o.prompt_tokens + o.completion_tokens}};
}

// ---- OpenAI chat completions and legacy completions ----
// What the two OpenAI dialects share: the envelope, the one-choice stream chunk, the closing chunk
// with the optional usage trailer and [DONE], and the in-stream error.
class OpenAIWriter : public ResponseWriter {
 public:
  std::string stream_end(const Outcome& o) override {
    Json c = chunk(empty_payload(), openai_finish_reason(o.finish));
    c["decoding"] = o.decoding;
    std::string out = sse_frame(c);
    if (include_usage_) {
      Json u = base(chunk_object_);
      u["choices"] = Json::array();
      u["usage"] = usage_openai(o);
      out += sse_frame(u);
    }
    return out + "data: [DONE]\n\n";
  }
  std::string stream_error(const std::string& message) override {
    return sse_frame(error_body(Dialect::kOpenAI, 500, message)) + "data: [DONE]\n\n";
  }

 protected:
  // `choice_key` names what a stream chunk's choice carries ("delta" or "text").
  OpenAIWriter(std::string id, const GenRequest& r, int64_t created, const char* chunk_object, const char* choice_key)
      : id_(std::move(id)), model_(r.model), created_(created), include_usage_(r.include_usage),
        chunk_object_(chunk_object), choice_key_(choice_key) {}

  Json base(const char* object) const {
    return Json{{"id", id_}, {"object", object}, {"created", created_}, {"model", model_},
                {"system_fingerprint", "optiq"}};
  }
  // The choice payload of the closing chunk: {} for a chat delta, "" for completion text.
  virtual Json empty_payload() const = 0;
  Json chunk(Json payload, const char* finish) const {
    Json c = base(chunk_object_);
    c["choices"] = Json::array({Json{{"index", 0},
                                     {choice_key_, std::move(payload)},
                                     {"logprobs", nullptr},
                                     {"finish_reason", finish ? Json(finish) : Json()}}});
    if (include_usage_) c["usage"] = nullptr;
    return c;
  }

 private:
  std::string id_, model_;
  int64_t created_;
  bool include_usage_;
  const char* chunk_object_;
  const char* choice_key_;
};

class ChatWriter final : public OpenAIWriter {
 public:
  ChatWriter(const GenRequest& r, const std::string& hex, int64_t created)
      : OpenAIWriter("chatcmpl-" + hex, r, created, "chat.completion.chunk", "delta") {}

  Json empty_payload() const override { return Json::object(); }

  std::string stream_begin(int64_t, const std::string& decoding) override {
    Json c = chunk(Json{{"role", "assistant"}, {"content", ""}}, nullptr);
    c["decoding"] = decoding;
    return sse_frame(c);
  }
  std::string stream_delta(std::string_view text) override {
    if (text.empty()) return {};
    return sse_frame(chunk(Json{{"content", std::string(text)}}, nullptr));
  }
  Json complete(const Outcome& o) override {
    Json j = base("chat.completion");
    Json msg{{"role", "assistant"}, {"content", o.text.empty() ? Json() : Json(o.text)}};
    j["choices"] = Json::array(
        {Json{{"index", 0}, {"message", msg}, {"finish_reason", openai_finish_reason(o.finish)}, {"logprobs", nullptr}}});
    j["usage"] = usage_openai(o);
    j["decoding"] = o.decoding;
    return j;
  }
};

class CompletionWriter final : public OpenAIWriter {
 public:
  CompletionWriter(const GenRequest& r, const std::string& hex, int64_t created)
      : OpenAIWriter("cmpl-" + hex, r, created, "text_completion", "text") {}

  Json empty_payload() const override { return ""; }

  std::string stream_begin(int64_t, const std::string&) override { return {}; }
  std::string stream_delta(std::string_view text) override {
    if (text.empty()) return {};
    return sse_frame(chunk(std::string(text), nullptr));
  }
  Json complete(const Outcome& o) override {
    Json j = base("text_completion");
    j["choices"] = Json::array({Json{
        {"index", 0}, {"text", o.text}, {"logprobs", nullptr}, {"finish_reason", openai_finish_reason(o.finish)}}});
    j["usage"] = usage_openai(o);
    j["decoding"] = o.decoding;
    return j;
  }
};

// ---- Anthropic messages ----
class MessagesWriter final : public ResponseWriter {
 public:
  MessagesWriter(const GenRequest& r, const std::string& hex, int64_t)
      : id_("msg_" + hex.substr(0, 24)), model_(r.model) {}

  std::string stream_begin(int64_t prompt_tokens, const std::string& decoding) override {
    Json msg{{"id", id_},
             {"type", "message"},
             {"role", "assistant"},
             {"model", model_},
             {"content", Json::array()},
             {"stop_reason", nullptr},
             {"stop_sequence", nullptr},
             {"usage", {{"input_tokens", prompt_tokens}, {"output_tokens", 0}}},
             {"decoding", decoding}};
    return sse_frame(Json{{"type", "message_start"}, {"message", msg}}, "message_start") +
           sse_frame(Json{{"type", "content_block_start"}, {"index", 0}, {"content_block", {{"type", "text"}, {"text", ""}}}},
                     "content_block_start");
  }
  std::string stream_delta(std::string_view text) override {
    if (text.empty()) return {};
    return sse_frame(Json{{"type", "content_block_delta"},
                          {"index", 0},
                          {"delta", {{"type", "text_delta"}, {"text", std::string(text)}}}},
                     "content_block_delta");
  }
  std::string stream_end(const Outcome& o) override {
    return sse_frame(Json{{"type", "content_block_stop"}, {"index", 0}}, "content_block_stop") +
           sse_frame(Json{{"type", "message_delta"},
                          {"delta", {{"stop_reason", anthropic_stop_reason(o.finish)}, {"stop_sequence", stop_seq(o)}}},
                          {"usage", {{"output_tokens", o.completion_tokens}}}},
                     "message_delta") +
           sse_frame(Json{{"type", "message_stop"}}, "message_stop");
  }
  std::string stream_error(const std::string& message) override {
    return sse_frame(error_body(Dialect::kAnthropic, 500, message), "error");
  }
  Json complete(const Outcome& o) override {
    return Json{{"id", id_},
                {"type", "message"},
                {"role", "assistant"},
                {"model", model_},
                {"content", Json::array({Json{{"type", "text"}, {"text", o.text}}})},
                {"stop_reason", anthropic_stop_reason(o.finish)},
                {"stop_sequence", stop_seq(o)},
                {"usage", {{"input_tokens", o.prompt_tokens}, {"output_tokens", o.completion_tokens}}},
                {"decoding", o.decoding}};
  }

 private:
  static Json stop_seq(const Outcome& o) { return o.finish == Finish::kStopSequence ? Json(o.stop_sequence) : Json(); }
  std::string id_, model_;
};

// ---- OpenAI Responses ----
class ResponsesWriter final : public ResponseWriter {
 public:
  ResponsesWriter(const GenRequest& r, const std::string& hex, int64_t created)
      : id_("resp_" + hex), item_id_("msg_" + hex), model_(r.model), created_(created) {}

  std::string stream_begin(int64_t, const std::string& decoding) override {
    decoding_ = decoding;
    Json resp = response("in_progress", Json::array(), nullptr);
    std::string out = event("response.created", Json{{"response", resp}});
    out += event("response.in_progress", Json{{"response", resp}});
    out += event("response.output_item.added", Json{{"output_index", 0}, {"item", item("in_progress", nullptr)}});
    out += event("response.content_part.added",
                 Json{{"item_id", item_id_}, {"output_index", 0}, {"content_index", 0}, {"part", part("")}});
    return out;
  }
  std::string stream_delta(std::string_view text) override {
    if (text.empty()) return {};
    text_.append(text);
    return event("response.output_text.delta", Json{{"item_id", item_id_},
                                                    {"output_index", 0},
                                                    {"content_index", 0},
                                                    {"delta", std::string(text)},
                                                    {"logprobs", Json::array()}});
  }
  std::string stream_end(const Outcome& o) override {
    decoding_ = o.decoding;
    std::string out = event("response.output_text.done", Json{{"item_id", item_id_},
                                                               {"output_index", 0},
                                                               {"content_index", 0},
                                                               {"text", text_},
                                                               {"logprobs", Json::array()}});
    out += event("response.content_part.done",
                 Json{{"item_id", item_id_}, {"output_index", 0}, {"content_index", 0}, {"part", part(text_)}});
    out += event("response.output_item.done", Json{{"output_index", 0}, {"item", item("completed", &text_)}});
    Outcome full = o;
    full.text = text_;
    out += event("response.completed", Json{{"response", complete(full)}});
    return out;
  }
  std::string stream_error(const std::string& message) override {
    return event("error", Json{{"code", "server_error"}, {"message", message}, {"param", nullptr}});
  }
  Json complete(const Outcome& o) override {
    decoding_ = o.decoding;
    const bool incomplete = o.finish == Finish::kLength;
    Json j = response(incomplete ? "incomplete" : "completed", Json::array({item("completed", &o.text)}),
                      incomplete ? Json{{"reason", "max_output_tokens"}} : Json());
    j["usage"] = Json{{"input_tokens", o.prompt_tokens},
                      {"input_tokens_details", {{"cached_tokens", 0}}},
                      {"output_tokens", o.completion_tokens},
                      {"output_tokens_details", {{"reasoning_tokens", 0}}},
                      {"total_tokens", o.prompt_tokens + o.completion_tokens}};
    return j;
  }

 private:
  std::string event(const char* type, Json body) {
    Json e{{"type", type}, {"sequence_number", seq_++}};
    for (auto& [k, v] : body.items()) e[k] = v;
    return sse_frame(e, type);
  }
  static Json part(const std::string& text) {
    return Json{{"type", "output_text"}, {"text", text}, {"annotations", Json::array()}};
  }
  Json item(const char* status, const std::string* text) const {
    return Json{{"type", "message"},
                {"id", item_id_},
                {"status", status},
                {"role", "assistant"},
                {"content", text ? Json::array({part(*text)}) : Json::array()}};
  }
  Json response(const char* status, Json output, Json incomplete) const {
    return Json{{"id", id_},
                {"object", "response"},
                {"created_at", created_},
                {"status", status},
                {"error", nullptr},
                {"incomplete_details", std::move(incomplete)},
                {"model", model_},
                {"output", std::move(output)},
                {"parallel_tool_calls", false},
                {"tools", Json::array()},
                {"usage", nullptr},
                {"decoding", decoding_}};
  }
  std::string id_, item_id_, model_;
  int64_t created_;
  std::string text_;
  int64_t seq_ = 0;
  std::string decoding_ = "ar";
};

}  // namespace

Result<GenRequest> parse_request(Api api, std::string_view body) {
  OPTIQ_ASSIGN_OR_RETURN(Json j, parse_body(body));
  GenRequest r;
  r.api = api;
  switch (api) {
    case Api::kChat: OPTIQ_RETURN_IF_ERROR(parse_chat(j, r)); break;
    case Api::kCompletions: OPTIQ_RETURN_IF_ERROR(parse_completion(j, r)); break;
    case Api::kMessages: OPTIQ_RETURN_IF_ERROR(parse_messages(j, r)); break;
    case Api::kResponses: OPTIQ_RETURN_IF_ERROR(parse_responses(j, r)); break;
  }
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
    case Api::kChat: return std::make_unique<ChatWriter>(req, id_hex, created);
    case Api::kCompletions: return std::make_unique<CompletionWriter>(req, id_hex, created);
    case Api::kMessages: return std::make_unique<MessagesWriter>(req, id_hex, created);
    case Api::kResponses: return std::make_unique<ResponsesWriter>(req, id_hex, created);
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
  return Json{{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
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
