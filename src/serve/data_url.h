// Inline image data as requests carry it: RFC 4648 base64 and RFC 2397 data URLs
// ("data:image/png;base64,...."). The server never fetches remote URLs, so anything else is refused.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace optiq::serve {

// Decodes standard base64 (alphabet A–Z a–z 0–9 + /; the URL-safe - and _ are accepted too). Padding is
// optional but, when present, must be correct; ASCII whitespace (line breaks of MIME-wrapped data) is
// skipped. InvalidArgument naming the byte offset of the first bad character, or a bad length.
Result<std::vector<uint8_t>> base64_decode(std::string_view text);

// Standard base64 with padding (builds data URLs; the inverse of base64_decode).
std::string base64_encode(std::span<const uint8_t> bytes);

struct DataUrl {
  std::string media_type;      // e.g. "image/png"; "text/plain" when the URL names none (RFC 2397)
  std::vector<uint8_t> bytes;  // the decoded payload
};

// Parses "data:[<media type>][;param=value]*;base64,<data>". Only base64 payloads are accepted (images are
// binary). InvalidArgument for other schemes (http, https, file ...: "only data: URLs are accepted"), a
// missing comma or ";base64", or bad base64.
Result<DataUrl> parse_data_url(std::string_view url);

}  // namespace optiq::serve
