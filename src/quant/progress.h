// A one-line progress bar with ETA, redrawn in place on a stream (stderr for the CLI).
// Thread safety: none; one owner.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace optiq {

class ProgressBar {
 public:
  // `out` nullptr: silent. ETA is estimated from the units done since construction.
  ProgressBar(int64_t total, std::string label, std::FILE* out)
      : total_(total), label_(std::move(label)), out_(out), start_(std::chrono::steady_clock::now()),
        tty_(out && isatty(fileno(out))) {}

  // Marks `done` units finished (of total) and redraws with `detail` (e.g. the current layer).
  void update(int64_t done, const std::string& detail) {
    if (!out_) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int64_t fresh = done - done_at_start_;
    std::string eta = "--";
    if (fresh > 0 && done < total_) eta = format_seconds(elapsed / static_cast<double>(fresh) * (total_ - done));
    if (done >= total_) eta = "done in " + format_seconds(elapsed);
    const int width = 24;
    const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    if (!tty_) {
      // Logs get one line per tenth of the work instead of carriage-return redraws.
      const int64_t tenth = total_ > 0 ? 10 * done / total_ : 10;
      if (tenth == last_tenth_) return;
      last_tenth_ = tenth;
      std::fprintf(out_, "%s %lld/%lld ETA %s  %s\n", label_.c_str(), static_cast<long long>(done),
                   static_cast<long long>(total_), eta.c_str(), detail.c_str());
      std::fflush(out_);
      return;
    }
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    std::fprintf(out_, "\r%s [%s] %lld/%lld ETA %s  %-48.48s", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), eta.c_str(), detail.c_str());
    if (done >= total_) std::fprintf(out_, "\n");
    std::fflush(out_);
  }
  // Units already done before this run (resumed work) do not count toward the ETA rate.
  void set_resumed(int64_t done) { done_at_start_ = done; }

  static std::string format_seconds(double s) {
    const long long t = static_cast<long long>(s + 0.5);
    char buf[32];
    if (t >= 3600)
      std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60)
      std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
    else
      std::snprintf(buf, sizeof buf, "%llds", t);
    return buf;
  }

 private:
  int64_t total_;
  std::string label_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_;
  int64_t done_at_start_ = 0;
  bool tty_ = false;
  int64_t last_tenth_ = -1;
};

}  // namespace optiq
