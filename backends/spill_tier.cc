#include "backends/spill_tier.h"

#include <utility>

namespace cxlkv::internal {

Result<std::unique_ptr<SpillTier>> OpenSpillTier(const SpillOptions& options,
                                                 const SegmentLog::RecoveryCallback& on_recovered) {
  auto tier = std::make_unique<SpillTier>();
  SegmentLogOptions log;
  log.path = options.path;
  log.capacity = options.capacity;
  log.segment_size = options.segment_size;
  log.queue_depth = options.queue_depth;
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
  tier->eviction = "segment-" + options.eviction;
  tier->promote_after_hits = options.promote_after_hits;
  tier->spec = "spill:" + options.path;
  CXLKV_ASSIGN_OR_RETURN(tier->log, SegmentLog::Open(std::move(log), on_recovered));
  tier->max_chunk = tier->log->MaxChunkSize(kMaxKeySize, ChunkMeta::kMaxSize);
  return tier;
}

}  // namespace cxlkv::internal
