// FsckPool: checks a durable pool image completely and optionally repairs it.
//
// It reads the pool the way a store's open does (the index snapshot of a clean close, with the
// headers it names checked, else every header slot), then what the open leaves for later: every
// chunk's bytes against their checksum. It also looks where no open looks: at slabs outside
// every valid span, for committed headers whose span record was lost. Each chunk a reopen would
// drop, and each damaged structure, is a problem, named by header slot and key; a problem is
// damage, or what a crash under background durability can leave (CrashCanLeave in
// pool_scan.h). --repair frees the headers of every dropped chunk, clears slab records that
// form no span and marks the superblock not clean, so no stale snapshot is trusted. What a
// repair frees is gone; what it keeps reads back intact.
//
// The caller holds the pool's lock (a mapping through MemorySource takes it), so no store has
// it open meanwhile.
//
// Thread-safety: one call at a time per region.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/pool/pool_scan.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/status.h"

namespace cxlkv::internal {

struct FsckProblem {
  std::uint32_t header_ref = 0;  // the header slot (256-byte units); 0: not about one header
  std::string key;               // the header's key when its length is in range, else ""
  std::string what;
  bool crash_leftover = false;   // what a crash under background durability can leave
};

struct FsckReport {
  Superblock superblock;
  PoolScanCounts counts;            // from the scan a reopen makes
  std::uint64_t spans = 0;
  std::uint64_t chunks = 0;         // chunks a reopen takes (headers checked)
  std::uint64_t chunk_bytes = 0;
  std::uint64_t corrupt = 0;        // of those, bytes failing their checksum
  std::uint64_t orphans = 0;        // committed headers in slabs outside every valid span
  std::uint64_t repaired_headers = 0;  // freed by --repair
  std::uint64_t repaired_records = 0;  // slab records cleared by --repair
  std::vector<FsckProblem> problems;   // every chunk a reopen would drop, every damage found
  double seconds = 0;

  std::uint64_t damaged() const;          // problems that are damage
  std::uint64_t crash_leftovers() const;  // problems a crash can leave
  // Nothing a reopen would drop, nothing damaged. `cxlkv fsck` exits 1 otherwise.
  bool clean() const { return problems.empty(); }
  std::string ToString() const;  // several lines, for people
  std::string ToJson() const;    // one object
};

Result<FsckReport> FsckPool(const MemoryRegion& region, bool repair, unsigned threads);

}  // namespace cxlkv::internal
