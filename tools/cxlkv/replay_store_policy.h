// The store's own eviction policies (backends/eviction/: lru, fifo, lfu, s3fifo) in the replay
// simulator, so that a simulated capacity sweep and a real Store rank and evict chunks by the
// same code.
//
// The simulator keeps one index entry per chunk id, shared by every tier's policy, as the
// store keeps one entry per stored chunk that moves with it between tiers (so LFU's count
// survives a demotion in both). A chunk stored anew (a miss, not a move) gets a fresh entry,
// as a Put does.
//
// Thread-safety: none, like every SimPolicy; the entries belong to one simulation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "backends/entry.h"
#include "cxlkv/status.h"
#include "tools/cxlkv/replay_policy.h"

namespace cxlkv::cli {

// One entry per chunk id of a workload. The id is the entry's id (shard 0, slot = chunk).
class SimEntries {
 public:
  // InvalidArgument when the workload has more chunks than a shard's pool holds.
  static Result<std::unique_ptr<SimEntries>> Create(std::size_t chunks);

  internal::EntryTable& table() { return *table_; }
  internal::Entry& at(std::uint32_t chunk) { return table_->at(Id(chunk)); }
  static internal::EntryId Id(std::uint32_t chunk) { return internal::MakeEntryId(0, chunk); }
  // A fresh entry for a chunk stored anew: no read count, no list, a hash of its id (S3-FIFO's
  // ghost remembers chunks by hash).
  void Reset(std::uint32_t chunk, std::uint64_t bytes);

 private:
  SimEntries() = default;
  std::unique_ptr<internal::EntryTable> table_;
};

// The store policy `name` for one tier of `capacity_bytes` over `entries`; nullptr when
// `name` is not one of the store's policies.
std::unique_ptr<SimPolicy> MakeStoreSimPolicy(std::string_view name, SimEntries& entries,
                                              std::uint64_t capacity_bytes);

}  // namespace cxlkv::cli
