// splitmix64: the one RNG of optiq's reproducible samplers (specs/diffusiongemma.md, "Reproducible
// sampling"). A seed reproduces a run exactly on every machine: no floating-point state, no
// platform-dependent distributions. One Rng per generate call; not thread-safe.
#pragma once

#include <cstdint>

namespace optiq {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}

  // s += golden gamma; then the two xor-shift-multiply rounds and a final xor-shift (mod 2^64).
  uint64_t next() {
    s_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = s_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // A double in [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // A token id in [0, vocab_size) (plain modulo, as the spec defines it; vocab_size > 0).
  int32_t token(int64_t vocab_size) { return static_cast<int32_t>(next() % static_cast<uint64_t>(vocab_size)); }

  uint64_t state() const { return s_; }

 private:
  uint64_t s_;
};

}  // namespace optiq
