// Eviction policies for the replay simulator: index and policy state only, no bytes. One
// instance serves one tier. The simulator tells it what happens to chunks (hits, stores,
// removals) and asks it which chunk to evict and whether to store a missing one at all.
//
// Chunks are the dense ids of a Workload; a policy is created for that id space, so it may keep
// per-chunk state in flat arrays.
//
// Thread-safety: none; one simulator drives a policy from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "cxlkv/status.h"

namespace cxlkv::cli {

class SimEntries;  // replay_store_policy.h

// One chunk as the simulator presents it.
struct ChunkEvent {
  std::uint32_t chunk = 0;
  std::uint64_t bytes = 0;
  // Index of the chunk's next access after this one, or kNeverUsedAgain. Only the offline
  // bound (belady) may read it: it is the future.
  std::uint64_t next_use = 0;
  std::uint32_t predecessor = UINT32_MAX;  // the chunk before it in its prompts, or none
  bool predecessor_cached = true;          // ... and that chunk is in some tier
  // OnInsert of a missing chunk stored by the request (as a Put would), not of a chunk moved
  // between tiers (a demotion or promotion, which keeps the store's entry and its counts).
  bool stored_anew = false;
};

class SimPolicy {
 public:
  virtual ~SimPolicy() = default;

  // A chunk of the prompt's cached prefix was read.
  virtual void OnHit(const ChunkEvent& event) = 0;
  // A cached chunk after the prompt's first miss: the engine does not read it (a hit after a
  // miss is no hit) and does not store it again. Most policies ignore it.
  virtual void OnPresent(const ChunkEvent& event) { (void)event; }
  // Whether to store a missing chunk at all; false leaves it out of the tier.
  virtual bool Admit(const ChunkEvent& event) {
    (void)event;
    return true;
  }
  virtual void OnInsert(const ChunkEvent& event) = 0;
  // The chunk to evict next; called only while the tier holds at least one chunk. The
  // simulator then calls OnRemove for it.
  virtual std::uint32_t Victim() = 0;
  // The chunk left the tier: evicted to make room (`evicted`), or promoted, or dropped with
  // an evicted predecessor.
  virtual void OnRemove(std::uint32_t chunk, bool evicted) = 0;
  // A request arrives, `time_ms` from the start of the trace (non-decreasing), with its
  // prompt's chunks in order, the first `prefix` of them cached; before any other call for its
  // chunks. What the store learns from Store::LongestPrefix, for the policies that use it.
  virtual void OnRequestBegin(double time_ms, std::span<const std::uint32_t> chain,
                              std::size_t prefix) {
    (void)time_ms, (void)chain, (void)prefix;
  }
  // The end of one request's accesses.
  virtual void OnRequestEnd() {}
  // Whether room is made before a chunk is stored, as the store does (its policies never see
  // the incoming chunk as a candidate), or after (the offline bound, which must be able to
  // keep what it has and let the incoming chunk go).
  virtual bool EvictsBeforeStoring() const { return true; }
  // When a chunk leaves the store, also drop its cached successors: until it is stored again
  // they cannot be hit, and the request that stores it again stores them too.
  virtual bool DropsOrphans() const { return false; }
};

// The policies, by name: lru, fifo, lfu, s3fifo, prefix-chains, prefix and prefix-hazard (the
// store's own, backends/eviction/, through replay_store_policy.h; the prefix ones are this
// project's prefix-aware policies, see backends/eviction/prefix.cc), lru-admit2 (the store's
// LRU storing a chunk only at its second request, the frequency admission of tiered caches)
// and belady (the offline bound: evict the chunk used farthest in the future, never store one
// that is not used again).
std::span<const std::string_view> SimPolicyNames();

// `chunks`: the workload's id space; `capacity_bytes`: the tier's (S3-FIFO sizes its queues
// by it); `entries`: the simulation's index entries, shared by its tiers (the store's
// policies keep their state in them). InvalidArgument for an unknown name.
Result<std::unique_ptr<SimPolicy>> MakeSimPolicy(std::string_view name, std::size_t chunks,
                                                 std::uint64_t capacity_bytes,
                                                 SimEntries& entries);

}  // namespace cxlkv::cli
