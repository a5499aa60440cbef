// One tier of the demo: a memory source, the region it mapped, and the slab allocator that
// carves the region into chunk slots, with the counters the demo reports.
//
// This is deliberately not the tiered store (a later issue): it has no eviction and no
// persistence of its index. It only shows memory sources and the slab allocator at work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "cxlkv/memory_source.h"
#include "cxlkv/slab_allocator.h"
#include "cxlkv/status.h"

namespace cxlkv::cli {

struct TierCounters {
  std::uint64_t chunks = 0;  // chunks stored in this tier
  std::uint64_t bytes = 0;   // their sizes (not their slot capacities)
  double write_seconds = 0;  // time inside the copies into the tier
  std::uint64_t read_bytes = 0;
  double read_seconds = 0;
};

class DemoTier {
 public:
  // Maps `capacity` bytes of `source` and carves it with a slab allocator that has the model's
  // full chunk as an exact size class (so full chunks waste nothing) and 4 KiB-aligned slots.
  static Result<std::unique_ptr<DemoTier>> Open(std::unique_ptr<MemorySource> source,
                                                std::size_t capacity,
                                                std::size_t full_chunk_bytes);
  ~DemoTier();
  DemoTier(const DemoTier&) = delete;
  DemoTier& operator=(const DemoTier&) = delete;

  // A slot for `size` bytes. NoSpace when the allocator has none left: the caller moves on to
  // the next tier.
  Result<Allocation> Allocate(std::size_t size) { return allocator_->Allocate(size); }
  // Copies `bytes` (allocation.size of them) into the slot, persisting them where the region
  // is persistent, and counts the chunk as stored here.
  void Write(const Allocation& allocation, std::span<const std::byte> bytes);
  // Copies a stored chunk out into `out` (at least allocation.size bytes).
  void Load(const Allocation& allocation, std::span<std::byte> out);
  Status Release(const Allocation& allocation);

  const MemorySource& source() const { return *source_; }
  const MemoryRegion& region() const { return *region_; }
  SlabAllocatorStats AllocatorStats() const { return allocator_->Stats(); }
  const TierCounters& counters() const { return counters_; }

 private:
  DemoTier() = default;

  std::unique_ptr<MemorySource> source_;
  std::unique_ptr<MemoryRegion> region_;
  std::unique_ptr<SlabAllocator> allocator_;  // borrows region_: declared after it, freed first
  TierCounters counters_;
};

// The slab size the demo's tiers use; a tier must hold at least one.
inline constexpr std::size_t kDemoSlabSize = std::size_t{4} << 20;

}  // namespace cxlkv::cli
