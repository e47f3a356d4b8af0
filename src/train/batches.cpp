// Batches per specs/optiq-surface.md L.4.
#include "train/batches.h"

#include <algorithm>
#include <numeric>

namespace optiq {

std::vector<int64_t> shuffled_order(int64_t n, SplitMix64& rng) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

Result<BatchStream> BatchStream::make(std::span<const TrainRow> rows, int64_t batch_size, uint64_t seed,
                                      const std::string& name) {
  if (batch_size <= 0) return Status::InvalidArgument("--batch-size must be positive, got " + std::to_string(batch_size));
  const auto n = static_cast<int64_t>(rows.size());
  if (n < batch_size)
    return Status::InvalidArgument(name + ": " + std::to_string(n) + " row(s), fewer than --batch-size " +
                                   std::to_string(batch_size));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  // Python's sorted() is stable: equal lengths keep file order.
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return rows[static_cast<size_t>(a)].full_length < rows[static_cast<size_t>(b)].full_length; });
  std::vector<std::vector<int64_t>> batches;
  for (int64_t i = 0; i + batch_size <= n; i += batch_size)
    batches.emplace_back(idx.begin() + i, idx.begin() + i + batch_size);
  return BatchStream(std::move(batches), seed);
}

void BatchStream::shuffle() {
  order_ = shuffled_order(batches_per_pass(), rng_);
  pos_ = 0;
}

const std::vector<int64_t>& BatchStream::next() {
  if (order_.empty() || pos_ >= static_cast<int64_t>(order_.size())) shuffle();
  return batches_[static_cast<size_t>(order_[static_cast<size_t>(pos_++)])];
}

Status BatchStream::restore(const State& s) {
  const int64_t n = batches_per_pass();
  if (!s.order.empty()) {
    if (static_cast<int64_t>(s.order.size()) != n)
      return Status::InvalidArgument("training state: " + std::to_string(s.order.size()) + " batches per pass, the data gives " +
                                     std::to_string(n));
    std::vector<int64_t> sorted = s.order;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i)
      if (sorted[static_cast<size_t>(i)] != i) return Status::InvalidArgument("training state: batch order is not a permutation");
  }
  if (s.pos < 0 || s.pos > static_cast<int64_t>(s.order.size()))
    return Status::InvalidArgument("training state: batch position " + std::to_string(s.pos) + " out of range");
  rng_ = SplitMix64(s.rng);
  order_ = s.order;
  pos_ = s.pos;
  return Status::Ok();
}

}  // namespace optiq
