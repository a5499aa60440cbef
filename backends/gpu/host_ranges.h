// Host ranges for GPU copies, without CUDA: how a mapped tier is cut into registrations, and
// which parts of a chunk can be DMA'd in place and which must be staged.
//
// Recent drivers refuse (or take very long over) a single cudaHostRegister of many GiB, so a
// region is registered in pieces of at most max_piece bytes, each a whole number of pages. A
// piece the driver refuses (a userfaultfd-backed region, some file mappings) is staged through
// pinned buffers instead; the others are copied from in place. A chunk may straddle two pieces
// (chunks larger than a slab take several slabs); a copy is never issued across a piece
// boundary, because the driver looks a source range up as one registration.
//
// Thread-safety: PlanRegistration is a pure function. HostRangeMap is built by one thread and
// then only read (Split is const and thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::internal {

struct HostPiece {
  std::byte* base = nullptr;
  std::size_t size = 0;
};

// Cuts [base, base + size) into consecutive pieces of at most max_piece bytes (rounded down to
// whole pages, at least one page). The first piece starts at base rounded down to a page and
// the last ends at base + size rounded up to one: the driver pins whole pages. InvalidArgument
// when page is not a power of two, size is 0 or max_piece is smaller than a page.
Result<std::vector<HostPiece>> PlanRegistration(std::byte* base, std::size_t size,
                                                std::size_t max_piece, std::size_t page);

// A contiguous part of a copy, and whether its source (or destination) is registered.
struct HostSegment {
  std::size_t offset = 0;  // from the start of the range split
  std::size_t length = 0;
  bool registered = false;
};

class HostRangeMap {
 public:
  // Records a piece; pieces must not overlap. `registered`: the driver accepted it.
  void Add(const HostPiece& piece, bool registered);
  // Sorts the pieces; call once after the last Add and before Split.
  void Finish();
  // Splits [p, p + len) at piece boundaries, merging neighbours of the same kind that are
  // not both registered (a staged copy may run across pieces, a DMA may not). Bytes outside
  // every piece count as not registered.
  std::vector<HostSegment> Split(const std::byte* p, std::size_t len) const;

 private:
  struct Entry {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    bool registered = false;
  };
  std::vector<Entry> entries_;  // sorted by begin after Finish
};

}  // namespace cxlkv::internal
