// Helpers shared by the protocol_*_test.cpp files.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "serve/protocol.h"

namespace optiq::serve::test {

// A request body and a piece of the error message it must produce.
struct Rejected {
  const char* body;
  const char* needle;
};

// Each body is refused by parse_request as InvalidArgument, its message naming the needle.
inline void expect_rejected(Api api, std::initializer_list<Rejected> cases) {
  for (const auto& c : cases) {
    auto r = parse_request(api, c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << c.body;
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << c.body << " → " << r.status().message();
  }
}

// Parses the SSE frames of a stream into (event, data) pairs.
inline std::vector<std::pair<std::string, std::string>> frames(const std::string& s) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated frame";
    if (end == std::string::npos) break;
    std::string block = s.substr(pos, end - pos), event, data;
    size_t lp = 0;
    while (lp <= block.size()) {
      size_t le = block.find('\n', lp);
      if (le == std::string::npos) le = block.size();
      std::string line = block.substr(lp, le - lp);
      if (line.rfind("event: ", 0) == 0) event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) data = line.substr(6);
      lp = le + 1;
    }
    out.emplace_back(event, data);
    pos = end + 2;
  }
  return out;
}

}  // namespace optiq::serve::test
