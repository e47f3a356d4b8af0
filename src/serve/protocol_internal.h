// Internal to the wire formats of protocol.h: what protocol_common.cpp shares with the per-API files
// (protocol_openai.cpp, protocol_anthropic.cpp, protocol_responses.cpp) and what each of them hands back to
// the dispatch in parse_request and ResponseWriter::make. Only src/serve/protocol_*.cpp include it.
//
// Every parser reads one field (or one API's body) of a parsed request object and fills a GenRequest. A
// missing or null field leaves the output as it was; anything malformed is InvalidArgument naming the field
// ("messages[2].content: expected ..."). Pure functions: no I/O, no shared state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "serve/protocol.h"

namespace optiq::serve::detail {

// ---- Field readers (protocol_common.cpp) ----
Status bad(const std::string& field, const std::string& what);  // InvalidArgument "field: what"
Status wrong_type(const std::string& field, const char* want, const Json& got);
// A present, non-null field; nullptr otherwise.
const Json* field(const Json& obj, const char* key);
Status get_bool(const Json& obj, const char* key, bool& out);
Status get_string(const Json& obj, const char* key, std::string& out);
// Numbers outside [lo, hi] are rejected, quoting the range.
Status get_float(const Json& obj, const char* key, std::optional<float>& out, double lo, double hi);
Status get_int(const Json& obj, const char* key, std::optional<int64_t>& out, int64_t lo, int64_t hi);

// ---- Fields several APIs accept (protocol_common.cpp) ----
// Stop strings at `key`: a list, or (allow_string) also a single string; empty strings are dropped.
Status parse_stop(const Json& j, const char* key, std::vector<std::string>& out, bool allow_string = true);
Status parse_mode(const Json& j, GenRequest& r);           // "decoding"
Status parse_canvas_fields(const Json& j, GenRequest& r);  // "sampler", "threshold", "steps"
Status parse_template_kwargs(const Json& j, GenRequest& r);  // "chat_template_kwargs"
Status parse_adapter(const Json& j, GenRequest& r);        // "adapter" / "adapters", every API

// ---- OpenAI parts the Responses API reuses (protocol_openai.cpp) ----
Status parse_openai_sampling(const Json& j, GenRequest& r);
// A content value (string or parts) → a message's content: a string, or with image parts the template's
// item list, the images appended to r.images.
Status openai_content(const Json& content, const std::string& name, GenRequest& r, Json& out);
// Refuses image parts outside user messages.
Status user_only_images(const Json& content, const std::string& role, const std::string& name);

// ---- One parser per API: the whole body into `r` (r.api already set) ----
Status parse_chat(const Json& j, GenRequest& r);        // protocol_openai.cpp
Status parse_completion(const Json& j, GenRequest& r);  // protocol_openai.cpp
Status parse_messages(const Json& j, GenRequest& r);    // protocol_anthropic.cpp
Status parse_responses(const Json& j, GenRequest& r);   // protocol_responses.cpp

// ---- One response writer per API (see ResponseWriter::make for the arguments) ----
std::unique_ptr<ResponseWriter> make_chat_writer(const GenRequest& req, const std::string& id_hex, int64_t created);
std::unique_ptr<ResponseWriter> make_completion_writer(const GenRequest& req, const std::string& id_hex,
                                                       int64_t created);
std::unique_ptr<ResponseWriter> make_messages_writer(const GenRequest& req, const std::string& id_hex,
                                                     int64_t created);
std::unique_ptr<ResponseWriter> make_responses_writer(const GenRequest& req, const std::string& id_hex,
                                                      int64_t created);

}  // namespace optiq::serve::detail
