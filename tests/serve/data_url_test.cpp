// base64 and data: URLs as requests carry images: RFC 4648 vectors, round trips at every length,
// tolerated variants (no padding, whitespace, URL-safe digits) and errors that name the offset.
#include "serve/data_url.h"

#include <gtest/gtest.h>

#include <random>

namespace optiq::serve {
namespace {

std::vector<uint8_t> bytes_of(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }

TEST(ServeBase64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> cases[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                       {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                                       {"foobar", "Zm9vYmFy"}};
  for (auto [plain, enc] : cases) {
    EXPECT_EQ(base64_encode(bytes_of(plain)), enc);
    auto d = base64_decode(enc);
    ASSERT_TRUE(d.ok()) << enc << ": " << d.status().ToString();
    EXPECT_EQ(*d, bytes_of(plain)) << enc;
  }
}

TEST(ServeBase64, RoundTripsEveryLengthAndByte) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 70; ++n) {
    std::vector<uint8_t> b(n);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    auto d = base64_decode(base64_encode(b));
    ASSERT_TRUE(d.ok()) << n;
    EXPECT_EQ(*d, b) << n;
  }
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(*base64_decode(base64_encode(all)), all);
}

TEST(ServeBase64, AcceptsUnpaddedWrappedAndUrlSafe) {
  EXPECT_EQ(*base64_decode("Zm9vYg"), bytes_of("foob"));
  EXPECT_EQ(*base64_decode("Zm9v\r\nYmFy\n"), bytes_of("foobar"));
  // 0xfb 0xff encodes as "+/8=" (standard) or "-_8=" (URL-safe).
  EXPECT_EQ(*base64_decode("+/8="), (std::vector<uint8_t>{0xfb, 0xff}));
  EXPECT_EQ(*base64_decode("-_8="), (std::vector<uint8_t>{0xfb, 0xff}));
}

TEST(ServeBase64, RejectsMalformedNamingTheProblem) {
  struct Case {
    const char* text;
    const char* needle;
  } cases[] = {
      {"Zm9v!mFy", "invalid base64 character at offset 4"},
      {"Zm9vY", "truncated"},
      {"Zg=", "padding"},
      {"Zg===", "padding"},
      {"Zm9v=", "padding"},
      {"Zg==Zg==", "after '=' padding at offset 4"},
      {"Zm9v\x80", "offset 4"},
  };
  for (const auto& c : cases) {
    auto d = base64_decode(c.text);
    ASSERT_FALSE(d.ok()) << c.text;
    EXPECT_EQ(d.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(d.status().message().find(c.needle), std::string::npos) << c.text << " → " << d.status().message();
  }
}

TEST(ServeDataUrl, ParsesMediaTypeAndPayload) {
  auto d = parse_data_url("data:image/PNG;base64,Zm9v");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->media_type, "image/png");
  EXPECT_EQ(d->bytes, bytes_of("foo"));
  auto p = parse_data_url("DATA:image/jpeg;name=x.jpg;base64,Zm9vYg==");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->media_type, "image/jpeg");
  EXPECT_EQ(p->bytes, bytes_of("foob"));
  auto bare = parse_data_url("data:;base64,");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->media_type, "text/plain");
  EXPECT_TRUE(bare->bytes.empty());
}

TEST(ServeDataUrl, RefusesRemoteAndNonBase64Urls) {
  struct Case {
    const char* url;
    const char* needle;
  } cases[] = {
      {"http://example.com/cat.png", "a http: URL; only data: URLs"},
      {"https://example.com/cat.png", "never fetches"},
      {"cat.png", "not a URL"},
      {"", "not a URL"},
      {"data:image/png;base64", "without a ','"},
      {"data:image/png,rawbytes", "not base64-encoded"},
      {"data:image/png;base64,@@@", "data: URL payload: invalid base64 character at offset 0"},
  };
  for (const auto& c : cases) {
    auto d = parse_data_url(c.url);
    ASSERT_FALSE(d.ok()) << c.url;
    EXPECT_NE(d.status().message().find(c.needle), std::string::npos) << c.url << " → " << d.status().message();
  }
}

}  // namespace
}  // namespace optiq::serve
