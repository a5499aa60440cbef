// Durable pools seen from outside a store: which pool an image holds, and a full check with
// optional repair (what `cxlkv fsck` runs). A store opens, recovers and closes its pools by
// itself (TierOptions::durability); these calls are for tools that inspect or mend one.
//
// Thread-safety: each call stands alone; CheckPool needs the region to itself (no store may
// have the pool open: mapping it through MemorySource takes the pool's lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "cxlkv/memory_source.h"
#include "cxlkv/status.h"

namespace cxlkv {

struct PoolIdentity {
  std::string uuid;             // the pool's id, as `cxlkv fsck` and the store's log show it
  std::size_t region_size = 0;  // bytes the pool was formatted for
};

// The pool at the start of `image`. NotFound when the bytes hold no cxlkv pool (never
// formatted); Corruption when both superblocks are damaged; Unsupported when a newer build
// formatted it.
Result<PoolIdentity> IdentifyPool(std::span<const std::byte> image);

struct PoolCheckReport {
  // Nothing a reopen would drop and nothing damaged (`cxlkv fsck` exits 1 otherwise).
  bool clean = false;
  std::uint64_t chunks = 0;           // chunks a reopen takes
  std::uint64_t damaged = 0;          // problems that are damage
  std::uint64_t crash_leftovers = 0;  // problems a crash under background durability can leave
  std::string text;                   // the full report, several lines, for people
  std::string json;                   // the same, one JSON object
};

// Reads the pool as a reopen does, then every chunk's bytes against their checksums, with
// `threads` checksum threads; with `repair`, frees what a reopen would drop and marks the pool
// not clean. Corruption when the pool cannot be read at all (its superblocks).
Result<PoolCheckReport> CheckPool(const MemoryRegion& region, bool repair, unsigned threads);

}  // namespace cxlkv
