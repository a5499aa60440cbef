// MemoryTier: a mapped tier over one region of memory (DRAM, a NUMA node, /dev/dax, a file): the
// slab allocator that carves the region into chunk and header slots, the store's eviction
// policy for it, its watermarks and copy method, and its durable pool when it persists.
//
// Thread-safety: Open is not thread-safe; after it, every member is (see TierBackend): the
// allocator and the pool lock on their own, everything else is immutable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/pool/durable_pool.h"
#include "backends/tier_backend.h"
#include "backends/tier_factory.h"
#include "util/copy.h"

namespace cxlkv::internal {

class MemoryTier final : public MappedTier {
 public:
  // Maps options.capacity bytes from the source and builds the allocator and the policy. A
  // durable tier also opens its pool: the chunks it recovers wait in TakeRecovered() for the
  // store's index.
  static Result<std::unique_ptr<TierBackend>> Open(TierOptions& options, const TierPlace& place);

  const MemoryRegion& region() const override { return *region_; }
  std::size_t max_chunk() const override { return allocator_->max_allocation(); }
  std::size_t Charge(std::size_t size) const override;
  void Release(std::uint64_t locator, std::uint32_t size, std::uint16_t class_id) override;
  std::vector<TierChunk> TakeRecovered() override;
  bool ListsChunksAtClose() const override { return pool_ != nullptr; }
  // Clean shutdown of a durable tier: the snapshot of its chunks, the superblock marked clean.
  Status Close(std::span<const TierChunk> stored) override;
  void Sync() override;
  std::size_t bookkeeping_bytes() const override { return allocator_->slot_bookkeeping_bytes(); }

  Result<ChunkSlots> Allocate(std::size_t size) override;
  void Write(const ChunkSlots& slots, std::span<const std::span<const std::byte>> parts,
             const ChunkHeader& header) override;
  // A failure means the store's bookkeeping is broken, so it aborts with the allocator's message
  // rather than corrupt chunks.
  void FreeSlots(const ChunkSlots& slots) override;
  bool Intact(std::uint64_t locator, std::size_t size) const override;

 private:
  MemoryTier(std::string name, std::unique_ptr<MemorySource> source,
             std::unique_ptr<MemoryRegion> region);
  void Describe(TierStats& tier, StoreStats& stats) const override;
  std::size_t AllocSize(std::size_t size) const {
    return pool_ != nullptr ? DataAllocSize(size) : size;
  }

  std::string source_spec_;
  std::size_t capacity_ = 0;
  CopyMethod copy_method_ = CopyMethod::kMemcpy;
  std::uint32_t header_class_ = 0;
  std::size_t header_slot_bytes_ = 0;
  std::unique_ptr<MemorySource> source_;
  std::unique_ptr<MemoryRegion> region_;      // outlives allocator_ (declared before it)
  std::unique_ptr<DurablePool> pool_;         // between the two: the allocator calls it
  std::vector<PoolChunk> recovered_;
  std::unique_ptr<SlabAllocator> allocator_;
};

// The copy method "auto" picks for a kind of memory (measured by bench_store).
CopyMethod AutoCopyMethod(MemoryKind kind);

}  // namespace cxlkv::internal
