// FsckPool: checks a durable pool image completely (every header and, unlike a store's open,
// every chunk's bytes against their checksum) and optionally repairs it: headers of chunks
// that fail, and of those that lost a conflict, are freed; slab records that form no span are
// cleared; the superblock is marked not clean, so no stale snapshot is trusted. What a repair
// frees is gone; what it keeps reads back intact. Run it on a pool no store has open.
//
// Thread-safety: one call at a time per region.
#pragma once

#include <cstdint>
#include <string>

#include "backends/pool/pool_scan.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/status.h"

namespace cxlkv::internal {

struct FsckReport {
  Superblock superblock;
  PoolScanCounts counts;            // from the header scan (snapshot ignored)
  std::uint64_t spans = 0;
  std::uint64_t chunks = 0;         // committed, whole headers naming a valid data slot
  std::uint64_t chunk_bytes = 0;
  std::uint64_t corrupt = 0;        // of those, bytes failing their checksum
  std::uint64_t repaired_headers = 0;  // freed by --repair (corrupt chunks and conflict losers)
  std::uint64_t repaired_records = 0;  // slab records cleared by --repair
  double seconds = 0;

  // Problems a repair would act on: corrupt chunks, conflicts, bad slab records. Torn and
  // pending headers are what crashes leave; they are reported but harmless.
  bool clean() const {
    return corrupt == 0 && counts.conflicts == 0 && counts.bad_slab_records == 0 &&
           counts.bad_data_slot == 0 && counts.bad_fields == 0;
  }
  std::string ToString() const;  // several lines, for people
  std::string ToJson() const;    // one object
};

Result<FsckReport> FsckPool(const MemoryRegion& region, bool repair, unsigned threads);

}  // namespace cxlkv::internal
