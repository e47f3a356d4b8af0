#include "core/huge_pages.h"

#include <sys/mman.h>

#include <new>

namespace optiq {

HugeRegion allocate_huge_region(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  HugeRegion r;
  r.size = (bytes + kHuge - 1) / kHuge * kHuge;
  // One extra huge page to align the start: THP only backs 2 MiB-aligned ranges.
  const size_t total = r.size + kHuge;
  void* raw = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  r.owner = std::shared_ptr<void>(raw, [total](void* p) { munmap(p, total); });
  r.data = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
  madvise(r.data, r.size, MADV_HUGEPAGE);  // advisory
  return r;
}

std::pair<uint8_t*, std::shared_ptr<void>> HugePageArena::allocate(size_t n) {
  constexpr size_t kRegion = size_t{64} << 20;
  n = (n + 63) / 64 * 64;
  if (region_.data == nullptr || used_ + n > region_.size) {
    region_ = allocate_huge_region(n > kRegion ? n : kRegion);
    used_ = 0;
  }
  uint8_t* p = region_.data + used_;
  used_ += n;
  return {p, region_.owner};
}

}  // namespace optiq
