// Stop strings over streamed text: text is released only once it can no longer be the start of a
// stop string, so a stop string never leaks into a stream, not even partially.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace optiq::serve {

// Not thread-safe; one per response stream.
class StopFilter {
 public:
  // Empty strings in `stops` are ignored (they would match everywhere).
  explicit StopFilter(std::vector<std::string> stops);

  // Appends `text` and returns the part that is now safe to emit. After a stop string is found,
  // returns the text before it and ignores all later input.
  std::string push(std::string_view text);
  // End of generation without a stop string: returns whatever was held back.
  std::string finish();

  bool stopped() const { return stopped_; }
  // The stop string that ended the text (valid when stopped()).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // emitted text ends where held_ begins; held_ may start a stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace optiq::serve
