// EvictionPolicy: how a tier orders its chunks for eviction. One per tier.
//
// The store tells the policy when a chunk enters the tier (Insert: a put, a demotion into it,
// a promotion into it), is read (Touch), and leaves (Erase, saying whether it was evicted,
// which S3-FIFO remembers). Victim names the chunk to evict next; it may reorder the policy's
// lists on the way (S3-FIFO moves read chunks to its main queue, gives second chances) but
// never removes an entry: the store rechecks the candidate under its shard mutex and then
// calls Erase. Pinned chunks (a nonzero pin count, read as a hint) are passed over.
//
// Implementations: "lru", "fifo" (lru_fifo.cc), "lfu" (lfu.cc), "s3fifo" (s3fifo.cc).
//
// Thread-safety: none; every call is made under the owning tier's mutex.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "backends/entry.h"
#include "cxlkv/status.h"

namespace cxlkv::internal {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;

  virtual void Insert(EntryId id, Entry& e) = 0;
  virtual void Touch(EntryId id, Entry& e) = 0;
  virtual void Erase(EntryId id, Entry& e, bool evicted) = 0;
  virtual EntryId Victim() = 0;

  virtual const char* name() const = 0;
  virtual std::size_t state_bytes() const { return 0; }  // DRAM beyond the entries (ghosts)

  // capacity_bytes: the tier's size, which S3-FIFO's queues are proportioned to.
  // InvalidArgument for an unknown name, listing the known ones.
  static Result<std::unique_ptr<EvictionPolicy>> Create(std::string_view name,
                                                        const EntryTable& entries,
                                                        std::size_t capacity_bytes);
};

std::unique_ptr<EvictionPolicy> MakeLruPolicy(const EntryTable& entries);
std::unique_ptr<EvictionPolicy> MakeFifoPolicy(const EntryTable& entries);
std::unique_ptr<EvictionPolicy> MakeLfuPolicy(const EntryTable& entries);
std::unique_ptr<EvictionPolicy> MakeS3FifoPolicy(const EntryTable& entries,
                                                 std::size_t capacity_bytes);

}  // namespace cxlkv::internal
