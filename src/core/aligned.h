// Scratch buffers reused across calls: std::vector storage aligned to a cache line (AMX tile loads
// and AVX-512 loads that straddle two lines cost two accesses each), and grow() for buffers that
// are enlarged on demand and never shrunk, so steady-state forwards allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace optiq {

template <typename T, size_t kAlign = 64>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, kAlign>&) noexcept {}
  template <typename U>
  struct rebind {
    using other = AlignedAllocator<U, kAlign>;
  };
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kAlign))); }
  void deallocate(T* p, size_t) noexcept { ::operator delete(p, std::align_val_t(kAlign)); }
  bool operator==(const AlignedAllocator&) const noexcept { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

// v.data() with at least n elements (growth zero-fills the new ones; existing contents are kept).
template <typename T, typename A>
T* grow(std::vector<T, A>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace optiq
