// Tier: one level of the store. A mapped region, the slab allocator that carves it into chunk
// and header slots, its eviction policy, its watermarks and copy method, and its counters.
//
// Thread-safety: Open is not thread-safe; after it, the allocator is thread-safe on its own,
// the policy (and the "tier" fields of entries in it) is guarded by mu, counters are atomic,
// everything else is immutable.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/chunk_header.h"
#include "backends/entry.h"
#include "backends/eviction/eviction_policy.h"
#include "backends/pool/durable_pool.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/slab_allocator.h"
#include "cxlkv/store.h"
#include "util/copy.h"

namespace cxlkv::internal {

// A chunk's two slots in a tier: its bytes and its header.
struct ChunkSlots {
  Allocation data;
  Allocation header;
};

// Where a stored chunk's slots are, as an entry records them.
struct SlotRef {
  std::byte* data = nullptr;
  std::uint32_t size = 0;
  std::uint32_t header = 0;
  std::uint16_t class_id = 0;
};

class Tier {
 public:
  // Maps options.capacity bytes from the source and builds the allocator and the policy. A
  // durable tier also opens its pool: the chunks it recovers wait in TakeRecovered() for the
  // store's index. Errors are left without tier context; the caller adds it.
  static Result<std::unique_ptr<Tier>> Open(TierOptions options, std::size_t index,
                                            std::size_t tier_count,
                                            const std::vector<std::size_t>& chunk_sizes,
                                            std::size_t slab_size, const EntryTable& entries);

  const std::string& name() const { return name_; }
  const std::string& source_spec() const { return source_spec_; }
  std::size_t capacity() const { return capacity_; }
  const MemoryRegion& region() const { return *region_; }
  SlabAllocator& allocator() { return *allocator_; }
  std::size_t max_chunk() const { return allocator_->max_allocation(); }
  // The chunk's slot in 256-byte units from the region start (headers name slots so).
  std::uint32_t DataRef(const std::byte* data) const {
    return static_cast<std::uint32_t>((data - region_->data()) / ChunkHeader::kSize);
  }

  // Durability (backends/pool/): null pool for a volatile tier.
  DurablePool* pool() const { return pool_.get(); }
  std::vector<PoolChunk> TakeRecovered() { return std::move(recovered_); }
  // Whether a chunk's bytes match the checksum its header recorded (durable tiers).
  bool DataIntact(const std::byte* data, std::size_t size, const ChunkHeader& header) const;
  // Clean shutdown of a durable tier: the snapshot of its chunks, the superblock marked clean.
  Status ClosePool(std::span<const SnapshotRecord> records);

  std::size_t high_bytes() const { return high_bytes_; }
  std::size_t low_bytes() const { return low_bytes_; }
  int promote_after_hits() const { return promote_after_hits_; }
  CopyMethod copy_method() const { return copy_method_; }
  const char* policy_name() const { return policy_->name(); }

  // Both slots of a chunk of `size`; NoSpace (nothing held) when either cannot be had.
  Result<ChunkSlots> Allocate(std::size_t size);
  // Frees the slots of an entry in this tier. A failure means the store's bookkeeping is
  // broken, so it aborts with the allocator's message rather than corrupt chunks.
  void Free(const SlotRef& slots);
  void Free(const Entry& e) { Free(SlotRef{e.data, e.size, e.header, e.class_id}); }
  void FreeSlots(const ChunkSlots& slots);
  // Slot bytes an entry holds (data and header), for used_bytes.
  std::size_t SlotBytes(std::size_t size) const;

  ChunkHeader* header(std::uint32_t ref) const {
    return reinterpret_cast<ChunkHeader*>(region_->data() + std::size_t{ref} * ChunkHeader::kSize);
  }
  std::uint32_t HeaderRef(const Allocation& header_slot) const {
    return static_cast<std::uint32_t>((header_slot.data - region_->data()) / ChunkHeader::kSize);
  }
  // Writes a chunk's bytes (gathered from parts) and its header into its slots, with the
  // tier's copy method, and makes them durable first when the tier persists.
  void Write(const ChunkSlots& slots, std::span<const std::span<const std::byte>> parts,
             const ChunkHeader& header) const;

  // The eviction policy, under mu. Erase and Touch ignore an entry that is not listed (one a
  // mover has taken out of the policy while it copies).
  void PolicyInsert(EntryId id, Entry& e);
  void PolicyTouch(EntryId id, Entry& e);
  void PolicyErase(EntryId id, Entry& e, bool evicted);
  EntryId PolicyVictim() { return policy_->Victim(); }
  std::size_t policy_bytes() const { return policy_->state_bytes(); }

  std::mutex mu;
  std::atomic<std::size_t> used_bytes{0};
  std::atomic<std::size_t> chunks{0};
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> demotions{0};
  std::atomic<std::uint64_t> sync_evictions{0};
  std::atomic<std::uint64_t> promotions{0};
  std::atomic<std::uint64_t> expirations{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> corrupt_dropped{0};
  std::uint64_t recovered = 0;  // set once by the store's open

 private:
  Tier() = default;
  std::string name_;
  std::string source_spec_;
  std::size_t capacity_ = 0;
  std::size_t high_bytes_ = 0;
  std::size_t low_bytes_ = 0;
  int promote_after_hits_ = 0;
  CopyMethod copy_method_ = CopyMethod::kMemcpy;
  std::size_t AllocSize(std::size_t size) const {
    return pool_ != nullptr ? DataAllocSize(size) : size;
  }
  std::uint32_t header_class_ = 0;
  std::size_t header_slot_bytes_ = 0;
  std::unique_ptr<MemorySource> source_;
  std::unique_ptr<MemoryRegion> region_;      // outlives allocator_ (declared before it)
  std::unique_ptr<DurablePool> pool_;         // between the two: the allocator calls it
  std::vector<PoolChunk> recovered_;
  std::unique_ptr<SlabAllocator> allocator_;
  std::unique_ptr<EvictionPolicy> policy_;    // guarded by mu
};

// The copy method "auto" picks for a kind of memory (measured by bench_store).
CopyMethod AutoCopyMethod(MemoryKind kind);

}  // namespace cxlkv::internal
