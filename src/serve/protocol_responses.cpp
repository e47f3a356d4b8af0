// The OpenAI Responses API: request parsing (instructions, input items, flat function tools) and the
// response writer with its numbered event stream.
#include "serve/protocol_internal.h"

#include <limits>

namespace optiq::serve::detail {

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

namespace {

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

std::unique_ptr<ResponseWriter> make_responses_writer(const GenRequest& req, const std::string& id_hex, int64_t created) {
  return std::make_unique<ResponsesWriter>(req, id_hex, created);
}

}  // namespace optiq::serve::detail
