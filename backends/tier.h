// Tier: one level of the store. A mapped region, the slab allocator that carves it, the
// recency list its eviction policy reads, and its counters.
//
// Thread-safety: Open is not; after it, the allocator is thread-safe on its own, the recency
// list (and Entry::prev/next/in_list of entries in it) is guarded by mu, counters are atomic.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "backends/chunk_index.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/slab_allocator.h"
#include "cxlkv/store.h"

namespace cxlkv::internal {

enum class EvictionPolicy : std::uint8_t {
  kLru,   // a hit moves the chunk to the front
  kFifo,  // insertion order only
};

class Tier {
 public:
  // Maps options.capacity bytes from the source and builds the allocator. Errors are left
  // without tier context; the caller adds it.
  static Result<std::unique_ptr<Tier>> Open(TierOptions options, std::size_t index,
                                            const std::vector<std::size_t>& chunk_sizes,
                                            std::size_t slab_size);

  const std::string& name() const { return name_; }
  const std::string& source_spec() const { return source_spec_; }
  std::size_t capacity() const { return capacity_; }
  SlabAllocator& allocator() { return *allocator_; }
  const MemoryRegion& region() const { return *region_; }

  // Recency list; callers hold mu.
  void PushFront(Entry* e);
  void Unlink(Entry* e);
  void OnHit(Entry* e);  // LRU: move to front; FIFO: nothing
  // The least recent entry with no pin, or nullptr. A hint: the caller rechecks under the
  // entry's shard mutex.
  Entry* ColdestUnpinned() const;

  std::mutex mu;
  std::atomic<std::size_t> used_bytes{0};
  std::atomic<std::size_t> chunks{0};
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> demotions{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};

 private:
  Tier() = default;
  std::string name_;
  std::string source_spec_;
  std::size_t capacity_ = 0;
  EvictionPolicy policy_ = EvictionPolicy::kLru;
  std::unique_ptr<MemorySource> source_;
  std::unique_ptr<MemoryRegion> region_;      // outlives allocator_ (declared before it)
  std::unique_ptr<SlabAllocator> allocator_;
  Entry* head_ = nullptr;  // most recent; guarded by mu
  Entry* tail_ = nullptr;  // least recent; guarded by mu
};

}  // namespace cxlkv::internal
