// Calibration data for `optiq convert` (specs/mlx-format.md §12).
//
// JSONL, one object per line: {"domain": "prose", "text": ...}, {"domain": ..., "messages": [...]},
// optionally with "tools": [...]. Samples are rendered to text (chat samples through the model's chat
// template shape), tokenized, concatenated, cut into `seq_len` chunks; max(2·n, 16) chunks are kept,
// shuffled with a seeded RNG (seed 42), and the first n are used.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace optiq {

struct CalibrationSample {
  std::string domain;
  std::string text;                                      // prose samples
  nlohmann::json messages = nlohmann::json::array();     // chat samples: [{"role", "content"}, ...]
  nlohmann::json tools = nlohmann::json::array();
};

// Parses a JSONL file; errors name the file, the line and the field.
Result<std::vector<CalibrationSample>> read_calibration_jsonl(const std::string& path);

// Renders one sample as model input text. Prose is used as is. Chat samples go through the
// tokenizer's chat template (with tools); without a template, or when rendering fails (`tok` may be
// nullptr), they fall back to role-prefixed concatenation ("role: content" turns, tools listed in a
// leading system turn), as OptiQ does (§12).
std::string render_calibration_sample(const CalibrationSample& s, const Tokenizer* tok);

struct CalibrationOptions {
  int n_samples = 24;
  int seq_len = 512;
  uint64_t seed = 42;
};

// Tokens → chunks as described above. Returns fewer than n_samples chunks only when the text is
// too short (the caller reports it).
std::vector<std::vector<int32_t>> make_calibration_chunks(const std::vector<int32_t>& tokens,
                                                          const CalibrationOptions& opts);

// Reads, renders and tokenizes a calibration file for the model in `model_dir` and chunks it.
Result<std::vector<std::vector<int32_t>>> load_calibration(const std::string& jsonl_path,
                                                           const std::string& model_dir,
                                                           const CalibrationOptions& opts);

// Deterministic RNG (splitmix64) for shuffles and mask positions: identical on every platform,
// unlike std::shuffle.
struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  uint64_t below(uint64_t n) { return next() % n; }
};

// Fisher–Yates with SplitMix64.
template <typename T>
void seeded_shuffle(std::vector<T>& v, uint64_t seed) {
  SplitMix64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace optiq
