// SegmentLog's state, shared by the files that implement it: segment_log.cc (open, appends,
// reads, eviction, statistics) and segment_log_recovery.cc (rebuilding the segment table at
// Open). The I/O channel, the superblock and record I/O are helpers of their own
// (io_channel.h, log_superblock.h, record_io.h).
//
// Internal to backends/spill/. Thread-safety: as SegmentLog's. Which mutex guards what is
// annotated (util/thread_annotations.h) and checked by clang's -Wthread-safety
// (CXLKV_THREAD_SAFETY=ON, tools/test.sh).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/spill/chunk_record.h"
#include "backends/spill/io_channel.h"
#include "backends/spill/log_device.h"
#include "backends/spill/segment_log.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv::internal {

class SegmentLog::Impl {
 public:
  Impl(SegmentLogOptions options, spill::LogDevice dev)
      : options_(std::move(options)),
        dev_(std::move(dev)),
        read_bytes_in_flight_(options_.read_bytes_in_flight) {}

  // Makes the channels, opens the superblock and recovers (segment_log_recovery.cc).
  Status Init(const RecoveryCallback& on_recovered) EXCLUDES(write_mu_, read_mu_, mu_);

  Status AppendBatch(std::span<SegmentLog::AppendItem> items) EXCLUDES(write_mu_, mu_);
  Status ReadBatch(std::span<ChunkRead> reads) EXCLUDES(read_mu_, mu_);
  Status Sync() { return dev_.Sync(); }
  void Touch(std::uint64_t location);
  void SetReadBytesInFlight(std::uint64_t bytes) {
    read_bytes_in_flight_.store(bytes, std::memory_order_relaxed);
  }
  std::optional<std::uint32_t> OldestSegment() const EXCLUDES(mu_);
  Result<std::vector<SegmentChunk>> SegmentChunks(std::uint32_t segment) const EXCLUDES(mu_);
  Result<std::vector<SegmentChunk>> EvictSegment(std::uint32_t segment) EXCLUDES(write_mu_, mu_);
  Result<std::vector<SegmentChunk>> EvictOldestSegment() EXCLUDES(write_mu_, mu_);
  SegmentLogStats GetStats() const EXCLUDES(mu_);
  std::uint64_t MaxChunkSize(std::size_t key_size, std::size_t meta_size) const;

 private:
  struct Segment {
    enum class State : std::uint8_t { kFree, kOpen, kSealed };
    State state = State::kFree;
    std::uint64_t seq = 0;
    std::vector<SegmentChunk> chunks;
    std::uint64_t data_bytes = 0;
  };
  // A record found by scanning an unsealed segment.
  struct ScannedRecord {
    spill::SummaryEntry entry;  // its key and meta views are set once the vector stops growing
    std::string key;
    std::array<std::byte, spill::kMaxMetaSize> meta{};
    std::size_t meta_size = 0;
  };

  std::uint64_t SegmentOffset(std::uint32_t segment) const {
    return spill::kDataOffset + std::uint64_t{segment} * sb_.segment_size;
  }
  std::uint32_t SegmentBlocks() const {
    return static_cast<std::uint32_t>(sb_.segment_size / spill::kBlockSize);
  }
  std::optional<std::uint32_t> OldestSegmentLocked() const REQUIRES(mu_);
  Result<std::vector<SegmentChunk>> EvictSegmentLocked(std::uint32_t segment)
      REQUIRES(write_mu_) EXCLUDES(mu_);
  // open_ changes only with both write_mu_ and mu_ held, so the writer may read it under
  // write_mu_ alone; the analysis has no "guarded by either", hence this one unchecked read.
  std::optional<std::uint32_t> WriterOpenSegment() const REQUIRES(write_mu_)
      NO_THREAD_SAFETY_ANALYSIS {
    return open_;
  }
  // Stamps the segment as used now (LRU order).
  void MarkUsed(std::uint32_t segment) {
    last_use_[segment].store(clock_.fetch_add(1, std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
  }

  // Recovery (segment_log_recovery.cc). Init holds write_mu_ and read_mu_ throughout.
  Status Recover(const RecoveryCallback& on_recovered) REQUIRES(write_mu_, read_mu_)
      EXCLUDES(mu_);
  Status ScanSegment(std::uint32_t index, std::uint64_t seq, std::vector<ScannedRecord>* out)
      REQUIRES(read_mu_);
  Status SealRecovered(std::uint32_t index, const std::vector<spill::SummaryEntry>& entries)
      REQUIRES(write_mu_) EXCLUDES(mu_);
  void ReportRecovered(std::uint32_t index, const std::vector<spill::SummaryEntry>& entries,
                       const RecoveryCallback& on_recovered) EXCLUDES(mu_);

  // Writer-side segment changes.
  bool OpenSegmentFits(std::uint32_t record_blocks, std::size_t entry_size) const
      REQUIRES(write_mu_);
  Status OpenNewSegment() REQUIRES(write_mu_) EXCLUDES(mu_);
  Status SealOpenSegment() REQUIRES(write_mu_) EXCLUDES(mu_);

  const SegmentLogOptions options_;
  spill::LogDevice dev_;
  spill::Superblock sb_;        // set by Init, read-only after
  std::uint64_t seq_base_ = 0;  // epoch << 32; likewise
  spill::IoCounters io_;        // device bytes read and written, both channels
  // How the channels run (for GetStats); set by Init, read-only after.
  struct IoModes {
    bool io_uring = false;
    bool fixed_buffers = false;
    bool fixed_file = false;
  } io_modes_;

  // Appends, seals and evictions: one at a time, on the write channel.
  Mutex write_mu_;
  std::unique_ptr<spill::IoChannel> writer_ PT_GUARDED_BY(write_mu_);
  std::uint32_t open_next_block_ GUARDED_BY(write_mu_) = 0;  // next free block of the open segment
  std::vector<std::byte> open_summary_ GUARDED_BY(write_mu_);  // its summary entries so far
  std::uint32_t open_chunks_ GUARDED_BY(write_mu_) = 0;      // and how many there are
  std::uint32_t next_seq_ GUARDED_BY(write_mu_) = 0;  // the low half of the next sequence number
  // The disk's phase under the segment last appended to (LogDevice::PhysicalPhase), for the
  // write units' boundaries; looked up once per segment.
  std::optional<std::uint32_t> phase_segment_ GUARDED_BY(write_mu_);
  std::uint64_t phase_ GUARDED_BY(write_mu_) = 0;

  // Reads: one batch at a time, on the read channel.
  Mutex read_mu_;
  std::unique_ptr<spill::IoChannel> reader_ PT_GUARDED_BY(read_mu_);
  std::atomic<std::uint64_t> read_bytes_in_flight_;  // a batch reads under the value it finds

  // The segment table. Lock order: write_mu_ or read_mu_, then mu_.
  mutable Mutex mu_ ACQUIRED_AFTER(write_mu_, read_mu_);
  std::vector<Segment> segments_ GUARDED_BY(mu_);
  std::map<std::uint64_t, std::uint32_t> sealed_by_seq_ GUARDED_BY(mu_);  // FIFO order
  std::optional<std::uint32_t> open_ GUARDED_BY(mu_);  // changed under write_mu_ too
  std::uint64_t live_chunks_ GUARDED_BY(mu_) = 0;
  std::uint64_t live_bytes_ GUARDED_BY(mu_) = 0;

  // LRU clock, lock-free.
  std::unique_ptr<std::atomic<std::uint64_t>[]> last_use_;
  std::atomic<std::uint64_t> clock_{0};

  // Counters (relaxed: statistics only).
  std::atomic<std::uint64_t> chunks_appended_{0}, bytes_appended_{0};
  std::atomic<std::uint64_t> chunks_read_{0}, bytes_read_{0}, read_errors_{0};
  std::atomic<std::uint64_t> segments_sealed_{0}, segments_evicted_{0}, recovered_{0};
  std::atomic<std::uint64_t> recovery_skipped_{0};
};

}  // namespace cxlkv::internal
