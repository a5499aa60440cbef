// SlabAllocator: carves one MemoryRegion into slots for KV chunks.
//
// The region is cut into fixed-size slabs (4 MiB by default). A size class owns spans of one or
// more contiguous slabs and cuts each span into equal slots. A KV workload has few distinct
// sizes (a full 256-token chunk and partial tails), so callers register the exact sizes they
// know (a full chunk then wastes nothing) and geometric classes (factor <= 1.25) cover the rest.
// A chunk larger than a slab gets a span of several slabs, sized to waste the least.
//
// Span bookkeeping lives in ordinary DRAM, never in the region: the region may be a slow or
// persistent device (CXL, devdax, an emulated CXL-SSD) that metadata traffic must not touch.
//
// Rebalancing: a class that needs a span when no free run of slabs is left takes back the
// wholly empty spans that other classes hold (after draining the per-CPU caches), so a
// changing size mix does not strand capacity. Only then does Allocate return NoSpace.
//
// Thread-safety: all member functions are thread-safe. Allocate and Free go through a small
// per-CPU cache of slots (one lock per CPU, uncontended in the common case) before the
// per-class lock; slab moves take one allocator-wide lock and are rare.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/status.h"

namespace cxlkv {

struct SlabAllocatorOptions {
  std::size_t slab_size = std::size_t{4} << 20;  // a power of two, 64 KiB .. 32 MiB
  // Sizes to give classes of their own (e.g. the full 256-token chunk of the served model):
  // a request of exactly such a size wastes no byte in its slot.
  std::vector<std::size_t> exact_sizes;
  // Geometric classes from min_slot_size up to max_slot_size, each <= growth_factor times the
  // previous one, rounded to slot_alignment. max_slot_size 0 means 16 slabs.
  std::size_t min_slot_size = 4096;
  std::size_t max_slot_size = 0;
  double growth_factor = 1.25;  // in (1.0, 2.0]
  std::size_t slot_alignment = 64;  // power of two >= 64; 4096 for O_DIRECT or DMA
  // Free slots each CPU may hold per class before returning them, in bytes; 0 disables the
  // per-CPU caches. A class whose slot is larger than this is never cached.
  std::size_t per_cpu_cache_bytes = std::size_t{8} << 20;

  // For a durable pool, which keeps its span layout on the media (backends/pool/):
  // Leading slabs no class ever takes: the pool's superblocks and slab table live there.
  std::size_t reserved_slabs = 0;
  // Called whenever a run of slabs is given to a class (before any of its slots is handed
  // out; slot_size is the class's) or taken back (after its last slot came back; slot_size 0).
  // Runs under the allocator-wide lock, so changes arrive in order; it must not call into the
  // allocator. A durable pool writes and persists its slab table here.
  struct SpanChange {
    std::size_t first_slab = 0;
    std::size_t slabs = 0;
    std::size_t slot_size = 0;
  };
  std::function<void(const SpanChange&)> on_span_change;
};

// One allocated slot. `size` is what was asked for, `capacity` what the slot holds.
struct Allocation {
  std::byte* data = nullptr;
  std::size_t size = 0;
  std::size_t capacity = 0;
  std::uint32_t class_id = 0;
};

struct SizeClassStats {
  std::uint32_t class_id = 0;
  std::size_t slot_size = 0;
  bool exact = false;               // registered through exact_sizes
  std::size_t slabs_per_span = 0;
  std::size_t slabs = 0;            // slabs this class holds now
  std::size_t slots_total = 0;
  std::size_t slots_used = 0;       // slots handed out (not counting per-CPU caches)
  std::size_t bytes_requested = 0;  // sum of Allocation::size over live allocations
  std::size_t bytes_used = 0;       // slots_used * slot_size
  std::size_t bytes_free = 0;       // free slot bytes inside this class's slabs
  std::uint64_t allocations = 0;    // successful Allocate calls, ever
  std::uint64_t failures = 0;       // NoSpace returned for this class, ever
};

struct SlabAllocatorStats {
  std::size_t region_bytes = 0;
  std::size_t slab_size = 0;
  std::size_t slabs_total = 0;
  std::size_t slabs_free = 0;          // slabs held by no class
  std::size_t largest_free_run = 0;    // longest run of contiguous free slabs
  std::uint64_t rebalanced_slabs = 0;  // slabs taken back from one class for another, ever
  // DRAM the allocator keeps per slot: a live flag for every slot of every span it has carved
  // (1 byte, spread to slot_size / 1024 bytes, at most 64, so that flags of slots different
  // CPUs hold rarely share a cache line), and a 4-byte free-stack entry for every slot given
  // back and not taken again.
  std::size_t slot_bookkeeping_bytes = 0;
  // 1 - requested bytes / used slot bytes, over all live allocations (0 when none).
  double internal_fragmentation = 0;
  // 1 - largest free run / free slabs: how much free slab space is too scattered for the
  // largest span (0 when no slab is free).
  double external_fragmentation = 0;
  std::vector<SizeClassStats> classes;
  std::string ToString() const;  // a human-readable table, one line per class
};

class SlabAllocator {
 public:
  // The region is borrowed: it must outlive the allocator. Fails with InvalidArgument on bad
  // options (naming the option) and when the region holds fewer than one slab.
  static Result<std::unique_ptr<SlabAllocator>> Create(const MemoryRegion& region,
                                                       SlabAllocatorOptions options = {});
  ~SlabAllocator();
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // A slot of at least `size` bytes aligned to slot_alignment. NoSpace when no class can give
  // one even after rebalancing; InvalidArgument when size is 0 or above the largest class.
  Result<Allocation> Allocate(std::size_t size);
  // Returns the slot. InvalidArgument for a pointer this allocator did not hand out or one
  // already freed (the allocator's state is left unchanged).
  Status Free(const Allocation& allocation);

  // Recovery of a durable pool, before the first Allocate: RestoreSpan lays out the spans a
  // previous allocator over the same region left (their classes named by slot size), ClaimSlot
  // marks the slots that hold live chunks (thread-safe among concurrent claims), and
  // FinishRestore makes every other slot of those spans free. InvalidArgument, with the state
  // unchanged, for a slot size no class has, a run that is reserved, out of the region or
  // overlaps another span, a pointer that is not the start of a slot of a restored span, or a
  // slot claimed twice. on_span_change is not called for restored spans.
  Status RestoreSpan(std::size_t first_slab, std::size_t slot_size);
  Result<Allocation> ClaimSlot(std::byte* slot, std::size_t size);
  void FinishRestore();

  // Capacity of the slot a request of `size` would get; 0 when no class fits.
  std::size_t SlotSizeFor(std::size_t size) const;
  std::size_t max_allocation() const;
  const MemoryRegion& region() const;
  SlabAllocatorStats Stats() const;
  // SlabAllocatorStats::slot_bookkeeping_bytes alone, without Stats' locks.
  std::size_t slot_bookkeeping_bytes() const;

 private:
  struct Impl;
  explicit SlabAllocator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv
