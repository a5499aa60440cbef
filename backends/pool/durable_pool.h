// DurablePool: what makes one memory tier on a file or /dev/dax survive a restart or a crash
// (the format is in pool_format.h).
//
// The tier asks it for three things:
//  - at open, the pool's state: it formats a region that was never a pool, refuses one of
//    another geometry or a newer format, and otherwise recovers the chunks (from the index
//    snapshot of a clean shutdown, else by scanning headers) into the slab allocator;
//  - for every chunk written, the commit: the chunk's bytes and header body are flushed, then
//    the header's commit word is stored and flushed (persist-on-put: before Put returns;
//    background: by a flusher thread within flush_interval);
//  - for every chunk freed, the release: its commit word goes to kFree before the slots can
//    be reused (persisted at once under persist-on-put).
// At a clean close it flushes what is pending, writes the index snapshot and marks the
// superblock clean.
//
// Thread-safety: Commit, Release and NextSequence are thread-safe; Open, Recover and Close
// are called by the tier alone, before and after all others.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "backends/chunk_header.h"
#include "backends/pool/pool_format.h"
#include "backends/pool/pool_scan.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/slab_allocator.h"
#include "cxlkv/status.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv::internal {

// The two small writes both the pool and fsck make on the media, each persisted before it
// returns: a header's commit word set to free, and a superblock into slot 0 (A) or 1 (B).
void FreeHeaderOnMedia(const MemoryRegion& region, ChunkHeader* header);
void WriteSuperblockOnMedia(const MemoryRegion& region, const Superblock& sb, int slot);

struct DurablePoolOptions {
  Durability durability = Durability::kPersistOnPut;
  bool format = false;  // start empty even when the region holds a valid pool
  std::chrono::milliseconds flush_interval{100};  // background durability
  unsigned scan_threads = 0;                       // 0: the allowed CPUs
};

// A chunk found at open, its slots claimed in the allocator.
struct PoolChunk {
  KeyHash hash;
  Allocation data;
  ChunkHeader* header = nullptr;
};

struct PoolOpenReport {
  bool formatted = false;  // the region was not a pool (or format was asked): now empty
  PoolScanCounts counts;
  std::uint64_t losers_freed = 0;
  // Committed headers the open dropped (freed on the media), and of those and the conflict
  // losers, the ones no crash can leave (CrashCanLeave): damage, counted as corrupt_dropped.
  std::uint64_t dropped_freed = 0;
  std::uint64_t damaged = 0;
  double seconds = 0;
};

class DurablePool {
 public:
  // Reads the region's superblocks and checks them against the geometry of
  // `allocator_options` (whose reserved_slabs and on_span_change it sets), formatting the region
  // when it holds no pool (all zero superblocks) or options.format is set. Errors:
  // InvalidArgument for volatile memory or another geometry, Corruption for a damaged
  // superblock, Unsupported for a newer format; each says what to run.
  static Result<std::unique_ptr<DurablePool>> Open(const MemoryRegion& region,
                                                   SlabAllocatorOptions& allocator_options,
                                                   const DurablePoolOptions& options);
  ~DurablePool();  // stops the flusher (flushing what is pending); Close is separate
  DurablePool(const DurablePool&) = delete;
  DurablePool& operator=(const DurablePool&) = delete;

  // After the allocator exists: lays out its spans, claims the slots of every recovered chunk,
  // frees the headers that lost a conflict or were dropped (so that nothing this open did not
  // take lingers for a later scan), then marks the pool in use (superblock not clean, this
  // open's durability) before anything else is written. The chunks still need their bytes
  // checked on first read.
  Result<std::vector<PoolChunk>> Recover(SlabAllocator& allocator);

  // Fills in the header's sequence and state (pending) and the data checksum the caller
  // computed, writes it into its slot and commits it as the durability says. data_flushed:
  // the caller wrote the bytes with the region's CopyNoDrain (only the drain is left).
  void Commit(ChunkHeader* slot, ChunkHeader& header, const std::byte* data, std::size_t size,
              bool data_flushed = false);
  // The header's slot is about to be freed.
  void Release(ChunkHeader* slot);
  // Makes every committed-but-pending chunk durable now (background durability).
  void Flush();

  // Clean shutdown: flushes, writes the snapshot of `records` into a slot of the allocator
  // (skipped when none is free) and marks the superblock clean.
  Status Close(SlabAllocator& allocator, std::span<const SnapshotRecord> records);

  Durability durability() const { return options_.durability; }
  const PoolOpenReport& open_report() const { return report_; }
  const Superblock& superblock() const { return sb_; }

 private:
  struct Pending {
    ChunkHeader* header;
    std::uint64_t sequence;
    const std::byte* data;
    std::size_t size;
  };
  DurablePool(const MemoryRegion& region, DurablePoolOptions options)
      : region_(region), options_(options) {}
  void Format(const PoolGeometry& geometry);
  void WriteSuperblock();  // into the slot not holding the current one, gen + 1, persisted
  void WriteSlabRecords(const SlabAllocatorOptions::SpanChange& change);
  void FlusherLoop();
  void StopFlusher();
  void FlushPending(std::vector<Pending>& batch) REQUIRES(flush_mu_) EXCLUDES(commit_mu_);

  const MemoryRegion& region_;
  DurablePoolOptions options_;
  Superblock sb_;
  int sb_slot_ = 0;
  PoolScan scan_;  // from Open to Recover
  PoolOpenReport report_;
  std::atomic<std::uint64_t> next_sequence_{1};

  // Background durability: the header words on the media, between the flusher's commit and
  // Release (not a field, so not annotated).
  Mutex commit_mu_;
  Mutex flush_mu_ ACQUIRED_BEFORE(commit_mu_, pending_mu_);  // one Flush at a time
  Mutex pending_mu_;
  CondVar pending_cv_;  // stop_ was set
  std::vector<Pending> pending_ GUARDED_BY(pending_mu_);
  bool stop_ GUARDED_BY(pending_mu_) = false;
  std::thread flusher_;
};

}  // namespace cxlkv::internal
