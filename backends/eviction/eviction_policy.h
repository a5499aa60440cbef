// EvictionPolicy: how a tier orders its chunks for eviction. One per tier.
//
// The store tells the policy when a chunk enters the tier (Insert: a put, a demotion into it,
// a promotion into it), is read (Touch), and leaves (Erase, saying whether it was evicted,
// which S3-FIFO remembers). Victim names the chunk to evict next; it may reorder the policy's
// lists on the way (S3-FIFO moves read chunks to its main queue, gives second chances) but
// never removes an entry: the store rechecks the candidate under its shard mutex and then
// calls Erase. Pinned chunks (a nonzero pin count, read as a hint) are passed over.
//
// Policies that see a prompt's chunks as a chain (prefix.cc) also learn what an engine's calls
// tell about requests, through hooks the others leave empty (the store calls them only when
// the policy's flags ask, so they cost the other policies nothing):
//  - BeginRequest: a Store::LongestPrefix call, taken as the start of a request whose chunks,
//    in prompt order, form a chain (each chunk's predecessor is the key before it), the first
//    `prefix` of them stored (the engine reads them next); with the store's clock;
//  - Admit: a Put of a chunk not stored, about to land in this tier; false declines it (the
//    Put succeeds without storing, see Store::Put). The store first asks ChainPredecessor and
//    looks that key up, so the policy learns whether the chunk can be reached at all;
//  - ChildrenOf: when a chunk leaves the store (dropped, not demoted: evicted from the last
//    tier, a demotion that found no room below, a spill segment evicted, or dropped as
//    unreadable) and the first tier's policy drops_orphans, the store removes its stored
//    successors with it, and theirs.
//
// Implementations: "lru", "fifo" (lru_fifo.cc), "lfu" (lfu.cc), "s3fifo" (s3fifo.cc),
// "prefix-chains", "prefix", "prefix-hazard" (prefix.cc).
//
// Thread-safety: none; every call is made under the owning tier's mutex.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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
  // DRAM beyond the entries (ghosts; the prefix policies' per-key state).
  virtual std::size_t state_bytes() const { return 0; }

  // --- Requests and chains (see above). The flags are constant: read them without the mutex.
  virtual bool wants_requests() const { return false; }
  virtual bool admits_selectively() const { return false; }
  virtual bool drops_orphans() const { return false; }
  // chain: the prompt's key hashes in prompt order; now_s: the store's clock in seconds.
  virtual void BeginRequest(std::span<const KeyHash> chain, std::size_t prefix, double now_s) {
    (void)chain, (void)prefix, (void)now_s;
  }
  // The key before h in the current request's chain; nullopt for its first key or a key
  // outside it.
  virtual std::optional<KeyHash> ChainPredecessor(const KeyHash& h) const {
    (void)h;
    return std::nullopt;
  }
  // predecessor_stored: ChainPredecessor's key is in some tier (true when there is none).
  virtual bool Admit(const KeyHash& h, std::size_t size, bool predecessor_stored) {
    (void)h, (void)size, (void)predecessor_stored;
    return true;
  }
  // Appends the keys seen right after h in a chain.
  virtual void ChildrenOf(const KeyHash& h, std::vector<KeyHash>* out) const {
    (void)h, (void)out;
  }

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
// "prefix-chains", "prefix" or "prefix-hazard" (prefix.cc); nullptr for another name.
// How much state a prefix policy keeps (see prefix.cc): key ids before it first forgets the
// keys it no longer needs (about 130 bytes each), and the follow-up hazard's units.
struct PrefixStateLimits {
  std::size_t max_keys = std::size_t{1} << 20;
  std::size_t max_units = std::size_t{1} << 21;
};
std::unique_ptr<EvictionPolicy> MakePrefixPolicy(std::string_view name, const EntryTable& entries,
                                                 const PrefixStateLimits& limits = {});

}  // namespace cxlkv::internal
