// LogTier: an unmapped tier over a SegmentLog on NVMe (a file or a raw block device), the store's
// spill tier (built from SpillOptions, below the memory tiers).
//
// A chunk's locator is its record's location in the log. The log checks the key and the
// checksums on every read, and makes room a whole segment at a time, oldest first (FIFO or LRU
// of segments): Append evicts while the log is full and hands back the chunks each evicted
// segment held. The store has no eviction policy for the tier.
//
// Thread-safety: every member is thread-safe. segments_ orders reads against segment evictions:
// Read holds it shared from its currency check to the end of its I/O, an eviction holds it alone
// while the log frees the segment and while the store drops the entries that named it. So a
// read either sees its entry dropped (stale) or reads a segment that cannot be evicted under
// it: Corruption then means the medium, not a race. Append holds it shared from a round's writes
// to their settling, so no eviction frees a record before the store has switched its entry to
// it. Lock order: segments_ before any shard mutex. clang's -Wthread-safety checks that each log
// call segments_ orders is made under the hold it needs (the ...Locked wrappers below) and that
// no member takes segments_ while it holds it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/spill/segment_log.h"
#include "backends/tier_backend.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv::internal {

class LogTier final : public UnmappedTier {
 public:
  // Opens (or creates) the log SpillOptions describe; the chunks it holds wait in
  // TakeRecovered() for the store's index.
  static Result<std::unique_ptr<TierBackend>> Open(const SpillOptions& options);

  std::size_t max_chunk() const override { return max_chunk_; }
  std::size_t Charge(std::size_t size) const override { return size; }
  // A record that left the index stays in its segment, garbage, until the segment is evicted.
  void Release(std::uint64_t, std::uint32_t, std::uint16_t) override {}
  std::vector<TierChunk> TakeRecovered() override { return std::move(recovered_); }

  void Append(std::span<AppendItem> items, const SettledFn& settled, const LeftFn& left)
      EXCLUDES(segments_) override;
  void Read(std::span<ReadItem> reads, const CurrentFn& current) EXCLUDES(segments_) override;

 private:
  LogTier() : UnmappedTier("spill") {}
  void Describe(TierStats& tier, StoreStats& stats) const override;
  // Evicts the oldest segment and hands its chunks to left; false when there is none.
  bool EvictSegment(const LeftFn& left) EXCLUDES(segments_);
  // The log calls segments_ orders, each under the hold it needs: a write or a read of records
  // shared (no segment can be freed under it), the freeing of a segment alone.
  Status AppendBatchLocked(std::span<SegmentLog::AppendItem> items) REQUIRES_SHARED(segments_) {
    return log_->AppendBatch(items);
  }
  Status ReadBatchLocked(std::span<ChunkRead> reads) REQUIRES_SHARED(segments_) {
    return log_->ReadBatch(reads);
  }
  Result<std::vector<SegmentChunk>> EvictOldestSegmentLocked() REQUIRES(segments_) {
    return log_->EvictOldestSegment();
  }

  std::unique_ptr<SegmentLog> log_;
  std::string spec_;             // "spill:<path>"
  std::string eviction_;         // "segment-fifo" or "segment-lru"
  std::size_t max_chunk_ = 0;    // the largest chunk a segment holds (with the longest key)
  SharedMutex segments_;
  std::vector<TierChunk> recovered_;
};

}  // namespace cxlkv::internal
