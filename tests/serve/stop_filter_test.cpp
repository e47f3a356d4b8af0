#include "serve/stop_filter.h"

#include <gtest/gtest.h>

#include <random>

namespace optiq::serve {
namespace {

// Feeds `text` in pieces of `piece` bytes; returns everything emitted.
std::string feed(StopFilter& f, const std::string& text, size_t piece) {
  std::string out;
  for (size_t i = 0; i < text.size() && !f.stopped(); i += piece) out += f.push(text.substr(i, piece));
  out += f.finish();
  return out;
}

TEST(StopFilter, NoStopsPassesEverythingThrough) {
  StopFilter f({});
  EXPECT_EQ(f.push("hello"), "hello");
  EXPECT_EQ(f.finish(), "");
  EXPECT_FALSE(f.stopped());
}

TEST(StopFilter, CutsBeforeStopAndReportsIt) {
  for (size_t piece = 1; piece <= 12; ++piece) {
    StopFilter f({"END"});
    EXPECT_EQ(feed(f, "abc ENDING more", piece), "abc ") << "piece " << piece;
    EXPECT_TRUE(f.stopped());
    EXPECT_EQ(f.matched(), "END");
  }
}

TEST(StopFilter, HoldsBackPartialPrefixUntilDisambiguated) {
  StopFilter f({"</s>"});
  EXPECT_EQ(f.push("ab<"), "ab");   // "<" might start "</s>"
  EXPECT_EQ(f.push("/"), "");       // "</" still might
  EXPECT_EQ(f.push("x"), "</x");    // no longer a prefix: released
  EXPECT_FALSE(f.stopped());
  EXPECT_EQ(f.push("<"), "");
  EXPECT_EQ(f.finish(), "<");       // end of text releases the held part
}

TEST(StopFilter, EarliestMatchWinsAmongSeveralStops) {
  StopFilter f({"world", "lo w"});
  EXPECT_EQ(feed(f, "hello world", 3), "hel");
  EXPECT_EQ(f.matched(), "lo w");
}

TEST(StopFilter, IgnoresInputAfterStop) {
  StopFilter f({"x"});
  EXPECT_EQ(f.push("ax"), "a");
  EXPECT_EQ(f.push("bbb"), "");
  EXPECT_EQ(f.finish(), "");
}

TEST(StopFilter, EmptyStopStringsAreIgnored) {
  StopFilter f({"", "zz"});
  EXPECT_EQ(feed(f, "abc", 1), "abc");
  EXPECT_FALSE(f.stopped());
}

// Property: for random texts, stops and piece sizes, the emitted stream is exactly the text before
// the first occurrence of any stop, and no intermediate output ever contains a stop's first byte
// sequence that later turned into the stop.
TEST(StopFilter, RandomisedMatchesOneShotReference) {
  std::mt19937 rng(7);
  const std::string alphabet = "ab<>/ ";
  for (int iter = 0; iter < 2000; ++iter) {
    std::string text;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) text.push_back(alphabet[rng() % alphabet.size()]);
    std::vector<std::string> stops;
    const int n_stops = 1 + static_cast<int>(rng() % 3);
    for (int s = 0; s < n_stops; ++s) {
      std::string st;
      const int sl = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < sl; ++i) st.push_back(alphabet[rng() % alphabet.size()]);
      stops.push_back(st);
    }
    size_t first = std::string::npos;
    for (const auto& s : stops) first = std::min(first, text.find(s));
    const std::string want = first == std::string::npos ? text : text.substr(0, first);
    StopFilter f(stops);
    std::string out;
    for (size_t i = 0; i < text.size() && !f.stopped();) {
      const size_t piece = 1 + rng() % 5;
      out += f.push(text.substr(i, piece));
      // Whatever has been emitted so far must be a prefix of the final answer.
      ASSERT_EQ(want.compare(0, out.size(), out), 0) << "text '" << text << "' emitted '" << out << "'";
      i += piece;
    }
    out += f.finish();
    ASSERT_EQ(out, want) << "text '" << text << "'";
    ASSERT_EQ(f.stopped(), first != std::string::npos);
  }
}

}  // namespace
}  // namespace optiq::serve
