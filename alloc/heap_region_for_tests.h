// HeapRegion: a MemoryRegion over anonymous memory mapped right here, for the slab allocator's
// tests, so that they depend on no memory source (NUMA, libpmem2, hugetlb).
//
// MAP_NORESERVE: a region may be far larger than what a test touches; untouched pages cost
// nothing. `offset` shifts the start past the page boundary, to test start alignment.
//
// Thread-safety: as MemoryRegion (the bytes are the caller's to synchronise).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "cxlkv/memory_source.h"

namespace cxlkv::testing {

class HeapRegion final : public MemoryRegion {
 public:
  // nullptr when mmap fails.
  static std::unique_ptr<HeapRegion> Make(std::size_t size, std::size_t offset = 0) {
    void* map = mmap(nullptr, size + offset, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    // MAP_FAILED is a C-style cast (-Wold-style-cast); compare with the same value spelled out.
    if (map == reinterpret_cast<void*>(static_cast<std::intptr_t>(-1))) return nullptr;
    RegionInfo info;
    info.kind = MemoryKind::kDram;
    info.page_size = 4096;
    return std::unique_ptr<HeapRegion>(
        new HeapRegion(static_cast<std::byte*>(map), size, offset, std::move(info)));
  }
  ~HeapRegion() override { munmap(data() - offset_, size() + offset_); }

 private:
  HeapRegion(std::byte* map, std::size_t size, std::size_t offset, RegionInfo info)
      : MemoryRegion(map + offset, size, std::move(info)), offset_(offset) {}
  std::size_t offset_;
};

}  // namespace cxlkv::testing
