// The Anthropic messages API: request parsing (content blocks, images, tool use and results, system
// text, custom tools) and the response writer.
#include "serve/protocol_internal.h"

#include <algorithm>
#include <limits>

#include "serve/data_url.h"

namespace optiq::serve::detail {

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

std::unique_ptr<ResponseWriter> make_messages_writer(const GenRequest& req, const std::string& id_hex, int64_t created) {
  return std::make_unique<MessagesWriter>(req, id_hex, created);
}

}  // namespace optiq::serve::detail
