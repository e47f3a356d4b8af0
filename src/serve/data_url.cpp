#include "serve/data_url.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace optiq::serve {

namespace {

constexpr int8_t kSkip = -2, kBad = -1;

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = kBad;
  for (int i = 0; i < 26; ++i) {
    t['A' + i] = static_cast<int8_t>(i);
    t['a' + i] = static_cast<int8_t>(26 + i);
  }
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<int8_t>(52 + i);
  t['+'] = t['-'] = 62;
  t['/'] = t['_'] = 63;
  for (char c : {' ', '\t', '\n', '\r', '\f', '\v'}) t[static_cast<unsigned char>(c)] = kSkip;
  return t;
}
constexpr std::array<int8_t, 256> kTable = make_table();

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string base64_encode(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = static_cast<uint32_t>(bytes[i]) << 16;
    if (n > 1) v |= static_cast<uint32_t>(bytes[i + 1]) << 8;
    if (n > 2) v |= bytes[i + 2];
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kDigits[(v >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

Result<std::vector<uint8_t>> base64_decode(std::string_view text) {
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int n = 0;         // sextets in acc (0..3)
  size_t pads = 0;   // '=' seen
  size_t digits = 0; // base64 digits seen
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '=') {
      ++pads;
      continue;
    }
    const int8_t v = kTable[c];
    if (v == kSkip) continue;
    if (v == kBad || pads > 0) {
      const std::string what = v == kBad ? "invalid base64 character" : "base64 data after '=' padding";
      return Status::InvalidArgument(what + " at offset " + std::to_string(i));
    }
    ++digits;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    if (++n == 4) {
      out.push_back(static_cast<uint8_t>(acc >> 16));
      out.push_back(static_cast<uint8_t>(acc >> 8));
      out.push_back(static_cast<uint8_t>(acc));
      acc = 0;
      n = 0;
    }
  }
  // A final group of 2 or 3 digits carries 1 or 2 bytes; 1 digit cannot encode a byte.
  if (n == 1) return Status::InvalidArgument("base64: truncated data (" + std::to_string(digits) + " digits)");
  if (pads > 0 && (n == 0 || pads != static_cast<size_t>(4 - n)))
    return Status::InvalidArgument("base64: " + std::to_string(pads) + " '=' padding characters after " +
                                   std::to_string(digits) + " digits");
  if (n == 2) out.push_back(static_cast<uint8_t>(acc >> 4));
  if (n == 3) {
    out.push_back(static_cast<uint8_t>(acc >> 10));
    out.push_back(static_cast<uint8_t>(acc >> 2));
  }
  return out;
}

Result<DataUrl> parse_data_url(std::string_view url) {
  if (lower(url.substr(0, 5)) != "data:") {
    const size_t colon = url.find(':');
    const std::string scheme = colon == std::string_view::npos || colon > 16 ? "" : std::string(url.substr(0, colon));
    return Status::InvalidArgument(
        (scheme.empty() ? std::string("not a URL") : "a " + scheme + ": URL") +
        "; only data: URLs with base64 image data are accepted (this server never fetches URLs)");
  }
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) return Status::InvalidArgument("data: URL without a ',' before its data");
  const std::string_view header = url.substr(5, comma - 5);
  const size_t semi = header.find(';');
  const std::string params = lower(semi == std::string_view::npos ? std::string_view() : header.substr(semi));
  // ";base64" is the last parameter (RFC 2397).
  if (params.size() < 7 || params.compare(params.size() - 7, 7, ";base64") != 0)
    return Status::InvalidArgument("data: URL is not base64-encoded (expected \";base64,\" before the data)");
  DataUrl d;
  d.media_type = lower(header.substr(0, semi));
  if (d.media_type.empty()) d.media_type = "text/plain";
  auto bytes = base64_decode(url.substr(comma + 1));
  if (!bytes.ok()) return bytes.status().WithContext("data: URL payload");
  d.bytes = std::move(bytes).value();
  return d;
}

}  // namespace optiq::serve
