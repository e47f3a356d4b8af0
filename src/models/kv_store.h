// Per-layer K/V rows of a model cache, grown geometrically up to the cache's capacity. Shared by the
// model caches; the cache classes own length, snapshots and any per-model state.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/huge_pages.h"

namespace optiq {

class KvStore {
 public:
  // row_floats[l]: floats per position of layer l (n_kv_heads · head_dim).
  KvStore(std::vector<int64_t> row_floats, int64_t capacity)
      : row_(std::move(row_floats)), capacity_(capacity), k_(row_.size()), v_(row_.size()) {}
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  // Makes room for rows [0, n) of every layer (amortised: doubles, at least 64 rows). All layers
  // live in one huge-page region: a decode step's attention reads ~50 pages per layer, and on 4 KiB
  // pages each one's TLB miss walks page tables that the weight stream has flushed from the caches.
  void reserve_rows(int64_t n) {
    if (n <= reserved_) return;
    const int64_t grow = std::max<int64_t>(n, std::min<int64_t>(capacity_, std::max<int64_t>(64, reserved_ * 2)));
    int64_t total = 0;
    for (int64_t r : row_) total += 2 * grow * r;
    HugeRegion region = allocate_huge_region(static_cast<size_t>(total) * sizeof(float));
    float* p = reinterpret_cast<float*>(region.data);
    for (size_t l = 0; l < row_.size(); ++l) {
      float* k = p;
      float* v = p + grow * row_[l];
      p = v + grow * row_[l];
      if (reserved_ > 0) {
        std::memcpy(k, k_[l], sizeof(float) * static_cast<size_t>(reserved_ * row_[l]));
        std::memcpy(v, v_[l], sizeof(float) * static_cast<size_t>(reserved_ * row_[l]));
      }
      k_[l] = k;
      v_[l] = v;
    }
    region_ = std::move(region);
    reserved_ = grow;
  }
  int64_t reserved_rows() const { return reserved_; }
  float* k(size_t layer) { return k_[layer]; }
  float* v(size_t layer) { return v_[layer]; }

 private:
  std::vector<int64_t> row_;
  int64_t capacity_;
  int64_t reserved_ = 0;
  HugeRegion region_;
  std::vector<float*> k_, v_;  // per layer [S, n_kv_heads, head_dim], inside region_
};

}  // namespace optiq
