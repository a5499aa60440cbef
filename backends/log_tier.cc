#include "backends/log_tier.h"

#include <utility>

namespace cxlkv::internal {
namespace {
// Bounds the evict-and-retry loop of one Append.
constexpr int kMaxSegmentEvictions = 64;
}  // namespace

Result<std::unique_ptr<TierBackend>> LogTier::Open(const SpillOptions& options) {
  std::unique_ptr<LogTier> tier(new LogTier());
  SegmentLogOptions log;
  log.path = options.path;
  log.capacity = options.capacity;
  log.segment_size = options.segment_size;
  log.queue_depth = options.queue_depth;
  log.read_bytes_in_flight = options.read_bytes_in_flight;
  log.write_unit = options.write_unit;
  log.direct_io = options.direct_io;
  log.format = options.format;
  if (options.eviction == "fifo") {
    log.eviction = SegmentEviction::kFifo;
  } else if (options.eviction == "lru") {
    log.eviction = SegmentEviction::kLru;
  } else {
    return Status::InvalidArgument("unknown spill eviction '" + options.eviction +
                                   "' (expected fifo or lru, of whole segments)");
  }
  if (options.promote_after_hits < 0 || options.promote_after_hits > 63) {
    return Status::InvalidArgument("spill promote_after_hits " +
                                   std::to_string(options.promote_after_hits) +
                                   " must be 0 (never) to 63");
  }
  tier->eviction_ = "segment-" + options.eviction;
  tier->promote_after_hits_ = options.promote_after_hits;
  tier->spec_ = "spill:" + options.path;
  // Collected here, indexed by the store once the tier exists (the callback must not call back
  // into the log). Later records of a key come later: the store keeps the last.
  std::vector<TierChunk>& found = tier->recovered_;
  CXLKV_ASSIGN_OR_RETURN(tier->log_,
                         SegmentLog::Open(std::move(log), [&found](const RecoveredChunk& c) {
                           found.push_back({c.key_hash, c.location,
                                            static_cast<std::uint32_t>(c.size), 0, false});
                         }));
  tier->max_chunk_ = tier->log_->MaxChunkSize(kMaxKeySize, ChunkMeta::kMaxSize);
  return std::unique_ptr<TierBackend>(std::move(tier));
}

bool LogTier::EvictSegment(const LeftFn& left) {
  WriterLock lock(segments_);
  Result<std::vector<SegmentChunk>> gone = EvictOldestSegmentLocked();
  if (!gone.ok()) return false;
  std::vector<TierChunk> left_tier;
  left_tier.reserve(gone->size());
  for (const SegmentChunk& c : *gone) {
    left_tier.push_back({c.key_hash, c.location, static_cast<std::uint32_t>(c.size), 0, false});
  }
  left(left_tier);
  return true;
}

void LogTier::Append(std::span<AppendItem> items, const SettledFn& settled, const LeftFn& left) {
  std::vector<iovec> parts(items.size());
  std::vector<SegmentLog::AppendItem> appends(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    parts[i] = {const_cast<std::byte*>(items[i].bytes.data()), items[i].bytes.size()};
    appends[i].key = items[i].key;
    appends[i].parts = std::span(&parts[i], 1);
    appends[i].meta = items[i].meta;
  }
  // Each round's results are settled before a segment is evicted for the next: an appended
  // record must be in the index when its segment goes (left drops the entries that name it),
  // never switched to afterwards. A round holds segments_ shared from its write to its last
  // settle, so a concurrent Append's eviction cannot free the segment in between either.
  std::vector<std::size_t> pending(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) pending[i] = i;
  for (int attempt = 0; !pending.empty(); ++attempt) {
    std::vector<SegmentLog::AppendItem> round;
    for (std::size_t i : pending) round.push_back(appends[i]);
    std::vector<std::size_t> again;
    {
      ReaderLock no_eviction(segments_);
      (void)AppendBatchLocked(round);  // each item has its own status
      for (std::size_t r = 0; r < round.size(); ++r) {
        const std::size_t i = pending[r];
        if (round[r].status.IsNoSpace() && attempt + 1 < kMaxSegmentEvictions) {
          again.push_back(i);
          continue;
        }
        items[i].status = round[r].status;
        items[i].locator = round[r].location;
        settled(i);
      }
    }
    pending.swap(again);
    if (!pending.empty() && !EvictSegment(left)) {
      for (std::size_t i : pending) {
        items[i].status = Status::NoSpace("the spill tier is full and has nothing to evict");
        settled(i);
      }
      break;
    }
  }
}

void LogTier::Read(std::span<ReadItem> reads, const CurrentFn& current) {
  std::vector<ChunkRead> live;
  std::vector<std::size_t> live_index;
  ReaderLock lock(segments_);
  for (std::size_t i = 0; i < reads.size(); ++i) {
    ReadItem& r = reads[i];
    if (!current(i)) {
      r.stale = true;
      r.status = Status::NotFound("chunk left the spill tier before it could be read");
      continue;
    }
    ChunkRead read;
    read.location = r.locator;
    read.key = r.key;
    read.dst = r.dst;
    read.meta_dst = r.meta_dst;
    live.push_back(read);
    live_index.push_back(i);
  }
  (void)ReadBatchLocked(live);  // each read has its own status
  for (std::size_t k = 0; k < live.size(); ++k) {
    ReadItem& r = reads[live_index[k]];
    r.status = live[k].status;
    r.size = live[k].size;
    r.meta_size = live[k].meta_size;
  }
}

void LogTier::Describe(TierStats& ts, StoreStats& stats) const {
  const SegmentLogStats log = log_->GetStats();
  ts.source = spec_;
  ts.eviction = eviction_;
  ts.copy = log.direct_io ? "o_direct" : "buffered";
  ts.capacity = log.capacity;
  // What the store's index never saw: records Open's scan stepped over.
  ts.corrupt_dropped += log.recovery_skipped_records;
  ts.read_errors = log.read_errors;  // reads the log failed (corrupt record, segment gone)
  stats.spill_write_amplification = log.write_amplification();
}

}  // namespace cxlkv::internal
