// The store's own eviction policies (backends/eviction/: lru, fifo, lfu, s3fifo, prefix-chains,
// prefix, prefix-hazard) in the replay simulator, so that a simulated capacity sweep and a real
// Store rank and evict chunks by the same code. The adapter calls a policy as the store does:
// a request's chain and time as Store::LongestPrefix passes them, admission as Put asks it,
// the orphans to drop as the store asks for them.
//
// The simulator keeps one index entry per chunk id, shared by every tier's policy, as the
// store keeps one entry per stored chunk that moves with it between tiers (so LFU's count
// survives a demotion in both). A chunk stored anew (a miss, not a move) gets a fresh entry,
// as a Put does.
//
// Thread-safety: none, like every SimPolicy; the entries belong to one simulation.
#pragma once

#include <chrono>
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
  // The hash standing for the chunk's key: distinct per chunk (the multiplier is odd).
  static internal::KeyHash HashOf(std::uint32_t chunk) {
    return {(std::uint64_t{chunk} + 1) * 0x9E3779B97F4A7C15ull, chunk};
  }

 private:
  SimEntries() = default;
  std::unique_ptr<internal::EntryTable> table_;
};

// A trace timestamp as the store's clock: a replay through a real Store gives the store a clock
// that returns this for the current request, and the simulator derives a policy's time from it
// the same way, so both pass the policies the same seconds, to the bit.
inline std::chrono::nanoseconds TraceClock(double time_ms) {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(time_ms * 1e6));
}
inline double TraceSeconds(double time_ms) {
  return std::chrono::duration<double>(TraceClock(time_ms)).count();
}

// The store policy `name` for one tier of `capacity_bytes` over `entries`; nullptr when
// `name` is not one of the store's policies.
std::unique_ptr<SimPolicy> MakeStoreSimPolicy(std::string_view name, SimEntries& entries,
                                              std::uint64_t capacity_bytes);

}  // namespace cxlkv::cli
