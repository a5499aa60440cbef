// SpillTier: the store's last tier, a SegmentLog on NVMe (a file or a raw block device) below
// the memory tiers, with the counters the store reports for it.
//
// Chunks reach it only by demotion from the last memory tier. The index keeps a spilled
// chunk's 64-bit log location in the entry's data field and its TTL deadline in the header
// field (a spilled chunk has no memory header); the key is not in DRAM, so a lookup in this
// tier is decided by the 128-bit key hash, and the log checks the key when the chunk is read.
//
// Thread-safety: the log is thread-safe on its own; `segments` orders reads against segment
// evictions (reads share it for the duration of their I/O, an eviction takes it alone, so no
// read is ever in flight on a segment being freed); counters are atomic.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>

#include "backends/spill/segment_log.h"
#include "cxlkv/store.h"

namespace cxlkv::internal {

struct SpillTier {
  std::unique_ptr<SegmentLog> log;
  std::string spec;            // "spill:<path>"
  std::string eviction;        // "segment-fifo" or "segment-lru"
  int promote_after_hits = 2;  // reads that bring a chunk back to the first tier; 0 never
  std::uint64_t max_chunk = 0; // the largest chunk a segment holds (with the longest key)
  std::shared_mutex segments;

  std::atomic<std::size_t> used_bytes{0};  // chunk bytes of live entries in the tier
  std::atomic<std::size_t> chunks{0};
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> evictions{0};   // entries dropped with their evicted segment
  std::atomic<std::uint64_t> promotions{0};
  std::atomic<std::uint64_t> expirations{0};
  std::atomic<std::uint64_t> read_errors{0}; // reads that failed (Corruption, segment gone)
  std::atomic<std::uint64_t> corrupt_dropped{0};  // entries dropped because a read said Corruption
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
};

// Opens the log described by options; on_recovered sees every chunk it already holds.
Result<std::unique_ptr<SpillTier>> OpenSpillTier(const SpillOptions& options,
                                                 const SegmentLog::RecoveryCallback& on_recovered);

}  // namespace cxlkv::internal
