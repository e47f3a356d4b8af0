// Per-layer K/V rows of a model cache, grown geometrically up to the cache's capacity. Shared by the
// model caches; the cache classes own length, snapshots and any per-model state.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace optiq {

class KvStore {
 public:
  // row_floats[l]: floats per position of layer l (n_kv_heads · head_dim).
  KvStore(std::vector<int64_t> row_floats, int64_t capacity)
      : row_(std::move(row_floats)), capacity_(capacity), k_(row_.size()), v_(row_.size()) {}

  // Makes room for rows [0, n) of every layer (amortised: doubles, at least 64 rows).
  void reserve_rows(int64_t n) {
    if (n <= reserved_) return;
    const int64_t grow = std::max<int64_t>(n, std::min<int64_t>(capacity_, std::max<int64_t>(64, reserved_ * 2)));
    for (size_t l = 0; l < row_.size(); ++l) {
      k_[l].resize(static_cast<size_t>(grow * row_[l]));
      v_[l].resize(static_cast<size_t>(grow * row_[l]));
    }
    reserved_ = grow;
  }
  int64_t reserved_rows() const { return reserved_; }
  float* k(size_t layer) { return k_[layer].data(); }
  float* v(size_t layer) { return v_[layer].data(); }

 private:
  std::vector<int64_t> row_;
  int64_t capacity_;
  int64_t reserved_ = 0;
  std::vector<std::vector<float>> k_, v_;  // per layer [S, n_kv_heads, head_dim]
};

}  // namespace optiq
