// Batches of training rows, specs/optiq-surface.md L.4 (mlx-lm trainer.iterate_batches): rows sorted
// by token length (stable, by the length before truncation), cut into consecutive batches of
// `batch_size` (a smaller remainder is dropped), and every pass visits the batches in a fresh shuffled
// order drawn from optiq's own RNG. Rows are not padded: a TrainSequence carries its own length and
// only real tokens are targets (L.5), so mlx-lm's padding never reaches the loss.
//
// Thread safety: none; one owner.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "decode/rng.h"
#include "train/dataset.h"

namespace optiq {

class BatchStream {
 public:
  // InvalidArgument (naming `name`, the data file) when there are fewer rows than `batch_size`.
  static Result<BatchStream> make(std::span<const TrainRow> rows, int64_t batch_size, uint64_t seed,
                                  const std::string& name);

  // Row indices (into the rows given to make) of the next batch, in length order. A pass ends after
  // every batch was visited once; the next one starts with a new shuffle.
  const std::vector<int64_t>& next();

  int64_t batches_per_pass() const { return static_cast<int64_t>(batches_.size()); }
  // The batches in length order (validation takes the first ones of a pass).
  const std::vector<std::vector<int64_t>>& batches() const { return batches_; }

  // Everything next() depends on, for checkpoints: restoring it continues the same sequence.
  struct State {
    uint64_t rng = 0;            // SplitMix64 state after the current pass's shuffle
    std::vector<int64_t> order;  // the current pass's visiting order (empty before the first pass)
    int64_t pos = 0;             // batches of the current pass already returned
  };
  State state() const { return {rng_.state(), order_, pos_}; }
  // InvalidArgument if the state does not fit these batches (another data set or batch size).
  Status restore(const State& s);

 private:
  BatchStream(std::vector<std::vector<int64_t>> batches, uint64_t seed) : batches_(std::move(batches)), rng_(seed) {}
  void shuffle();

  std::vector<std::vector<int64_t>> batches_;
  SplitMix64 rng_;
  std::vector<int64_t> order_;
  int64_t pos_ = 0;
};

// Fisher–Yates over [0, n): for i = n−1 … 1, swap(i, next() % (i + 1)). The permutation every pass uses.
std::vector<int64_t> shuffled_order(int64_t n, SplitMix64& rng);

}  // namespace optiq
