// The OpenAI chat completions and legacy completions APIs: request parsing and response writers. The
// sampling fields and content parts parsed here are shared with the Responses API (protocol_responses.cpp).
#include "serve/protocol_internal.h"

#include <algorithm>
#include <limits>

#include "serve/data_url.h"

namespace optiq::serve::detail {

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

namespace {

// An image given as a URL string at `name`: only data: URLs (never fetched).
Status add_image_url(const Json* url, const std::string& name, GenRequest& r) {
  if (!url || !url->is_string()) return bad(name, "missing or not a string");
  auto d = parse_data_url(url->get<std::string>());
  if (!d.ok()) return bad(name, d.status().message());
  r.images.push_back(ImageInput{name, std::move(d->media_type), std::move(d->bytes)});
  return Status::Ok();
}

}  // namespace

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

// Images are accepted in user messages only (system text is merged, assistant turns are the model's).
Status user_only_images(const Json& content, const std::string& role, const std::string& name) {
  if (content.is_array() && role != "user") return bad(name, "image parts are accepted in user messages only");
  return Status::Ok();
}

namespace {

Status parse_tools(const Json& j, GenRequest& r) {
  const Json* v = field(j, "tools");
  if (!v) return Status::Ok();
  if (!v->is_array()) return wrong_type("tools", "an array", *v);
  if (!v->empty()) r.tools = *v;
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
    // Named by its full path, so that the error's param points at it.
    if (const Json* iu = field(*so, "include_usage")) {
      if (!iu->is_boolean()) return wrong_type("stream_options.include_usage", "a boolean", *iu);
      r.include_usage = iu->get<bool>();
    }
  }
  std::optional<int64_t> n;
  OPTIQ_RETURN_IF_ERROR(get_int(j, "n", n, 1, 1));
  return Status::Ok();
}

}  // namespace

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

namespace {

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

}  // namespace

std::unique_ptr<ResponseWriter> make_chat_writer(const GenRequest& req, const std::string& id_hex, int64_t created) {
  return std::make_unique<ChatWriter>(req, id_hex, created);
}

std::unique_ptr<ResponseWriter> make_completion_writer(const GenRequest& req, const std::string& id_hex, int64_t created) {
  return std::make_unique<CompletionWriter>(req, id_hex, created);
}

}  // namespace optiq::serve::detail
