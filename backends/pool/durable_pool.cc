#include "backends/pool/durable_pool.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <random>

#include "util/cpu.h"
#include "util/format.h"
#include "util/xxh3.h"

namespace cxlkv::internal {
namespace {

constexpr std::size_t kUnit = ChunkHeader::kSize;

}  // namespace

void FreeHeaderOnMedia(const MemoryRegion& region, ChunkHeader* header) {
  StoreCommitWord(header, FreeCommitWord());
  region.Persist(header, sizeof(std::uint64_t));
}

void WriteSuperblockOnMedia(const MemoryRegion& region, const Superblock& sb, int slot) {
  std::byte* at = region.data() + static_cast<std::size_t>(slot) * kSuperblockSize;
  EncodeSuperblock(sb, std::span<std::byte, kSuperblockSize>(at, kSuperblockSize));
  region.Persist(at, kSuperblockSize);
}

Result<std::unique_ptr<DurablePool>> DurablePool::Open(const MemoryRegion& region,
                                                       SlabAllocatorOptions& allocator_options,
                                                       const DurablePoolOptions& options) {
  if (options.durability == Durability::kVolatile) {
    return Status::InvalidArgument("a volatile tier has no durable pool");
  }
  if (region.info().persistence == PersistGranularity::kNone) {
    return Status::InvalidArgument(
        "durability " + std::string(DurabilityName(options.durability)) + " needs a file or "
        "devdax tier: " + region.info().ToString() + " does not outlive the process");
  }
  if (allocator_options.exact_sizes.size() > kMaxExactSizes) {
    return Status::InvalidArgument("a durable pool records at most " +
                                   std::to_string(kMaxExactSizes) + " chunk sizes, not " +
                                   std::to_string(allocator_options.exact_sizes.size()));
  }
  if (options.flush_interval.count() <= 0) {
    return Status::InvalidArgument("flush_interval must be positive");
  }
  const std::size_t slabs = region.size() / allocator_options.slab_size;
  allocator_options.reserved_slabs = ReservedSlabsFor(slabs, allocator_options.slab_size);
  const PoolGeometry geometry = PoolGeometry::From(region.size(), allocator_options);

  std::unique_ptr<DurablePool> pool(new DurablePool(region, options));
  const std::uint64_t start = MonotonicNs();
  const std::span<const std::byte> image(region.data(), region.size());
  Result<PoolScan> scan = Status::NotFound("");
  if (!options.format) {
    ScanOptions so;
    so.threads = options.scan_threads != 0 ? options.scan_threads
                                           : static_cast<unsigned>(AllowedCpus().size());
    scan = ScanPool(image, so);
  }
  const std::string where = region.info().path.empty() ? "the region" : region.info().path;
  if (scan.ok()) {
    const std::string diff = scan->superblock.geometry.Difference(geometry);
    if (!diff.empty()) {
      return Status::InvalidArgument("pool " + where + " was formatted with another geometry: " +
                                     diff + "; open it with its own options or reformat it " +
                                     "(TierOptions::format, `cxlkv format --force`)");
    }
    pool->sb_ = scan->superblock;
    pool->sb_slot_ = scan->superblock_slot;
    pool->scan_ = std::move(scan).value();
    pool->report_.counts = pool->scan_.counts;
    pool->next_sequence_.store(pool->scan_.max_sequence + 1);
  } else if (scan.status().IsNotFound()) {
    pool->Format(geometry);
  } else if (scan.status().IsUnsupported()) {
    return scan.status().WithContext("pool " + where + " needs a newer cxlkv");
  } else {
    return scan.status().WithContext("pool " + where + " is damaged: run `cxlkv fsck` on it, " +
                                     "or reformat it (`cxlkv format --force`)");
  }
  pool->report_.seconds = static_cast<double>(MonotonicNs() - start) * 1e-9;
  DurablePool* self = pool.get();
  allocator_options.on_span_change = [self](const SlabAllocatorOptions::SpanChange& c) {
    self->WriteSlabRecords(c);
  };
  if (options.durability == Durability::kBackground) {
    pool->flusher_ = std::thread([self] { self->FlusherLoop(); });
  }
  return pool;
}

DurablePool::~DurablePool() { StopFlusher(); }

void DurablePool::StopFlusher() {
  if (!flusher_.joinable()) return;
  {
    MutexLock lock(pending_mu_);
    stop_ = true;
  }
  pending_cv_.SignalAll();
  flusher_.join();  // it flushes what it holds before it returns
}

void DurablePool::Format(const PoolGeometry& geometry) {
  report_.formatted = true;
  // The slab table first (all free), then the superblock that makes the region a pool.
  std::byte* table = region_.data() + SlabTableOffset();
  const std::size_t table_bytes = geometry.slab_count() * kSlabRecordSize;
  std::memset(table, 0, table_bytes);
  region_.Persist(table, table_bytes);
  std::memset(region_.data(), 0, 2 * kSuperblockSize);
  region_.Persist(region_.data(), 2 * kSuperblockSize);
  sb_ = Superblock{};
  std::random_device rd;
  for (std::size_t i = 0; i < sb_.uuid.size(); i += 4) {
    const std::uint32_t r = rd();
    std::memcpy(sb_.uuid.data() + i, &r, 4);
  }
  sb_.durability = options_.durability;
  sb_.geometry = geometry;
  sb_.created_unix_s = static_cast<std::uint64_t>(std::time(nullptr));
  sb_.generation = 0;
  sb_slot_ = 1;  // so that the first write goes to A
  WriteSuperblock();
  scan_ = PoolScan{};
}

void DurablePool::WriteSuperblock() {
  ++sb_.generation;
  sb_slot_ ^= 1;
  WriteSuperblockOnMedia(region_, sb_, sb_slot_);
}

void DurablePool::WriteSlabRecords(const SlabAllocatorOptions::SpanChange& c) {
  if (c.slot_size == kUnit) {
    // A new header span: its bytes may hold headers of an earlier life of the region (a span
    // a crash left unrecorded, a reformatted pool). Cleared first, so a scan finds only
    // headers written since, and every slot marked free (kHeaderFreeMark), so a slot wiped
    // later is told from a free one.
    std::byte* span = region_.data() + c.first_slab * sb_.geometry.slab_size;
    const std::size_t bytes = c.slabs * sb_.geometry.slab_size;
    std::memset(span, 0, bytes);
    for (std::size_t off = 0; off < bytes; off += kUnit) {
      StoreCommitWord(reinterpret_cast<ChunkHeader*>(span + off), FreeCommitWord());
    }
    region_.Persist(span, bytes);
  }
  std::byte* first = region_.data() + SlabRecordOffset(c.first_slab);
  for (std::size_t s = c.first_slab; s < c.first_slab + c.slabs; ++s) {
    SlabRecord r;
    if (c.slot_size != 0) {
      r.head = static_cast<std::uint32_t>(c.first_slab);
      r.slot_size = static_cast<std::uint32_t>(c.slot_size);
    }
    EncodeSlabRecord(s, r,
                     std::span<std::byte, kSlabRecordSize>(
                         region_.data() + SlabRecordOffset(s), kSlabRecordSize));
  }
  region_.Persist(first, c.slabs * kSlabRecordSize);
}

Result<std::vector<PoolChunk>> DurablePool::Recover(SlabAllocator& allocator) {
  std::vector<PoolChunk> out;
  const std::uint64_t start = MonotonicNs();
  if (!report_.formatted) {
    for (const ScannedSpan& s : scan_.spans) {
      Status st = allocator.RestoreSpan(s.first_slab, s.slot_size);
      if (!st.ok()) return st.WithContext("restoring the pool's spans");
    }
    out.reserve(scan_.chunks.size());
    for (const ScannedChunk& c : scan_.chunks) {
      std::byte* header = region_.data() + std::size_t{c.header_ref} * kUnit;
      std::byte* data = region_.data() + std::size_t{c.data_ref} * kUnit;
      Result<Allocation> h = allocator.ClaimSlot(header, kUnit);
      if (!h.ok()) return h.status().WithContext("claiming a recovered header");
      Result<Allocation> d = allocator.ClaimSlot(data, DataAllocSize(c.size));
      if (!d.ok()) return d.status().WithContext("claiming a recovered chunk");
      d->size = c.size;
      out.push_back({c.hash, *d, reinterpret_cast<ChunkHeader*>(header)});
    }
    // Headers that lost a conflict or were dropped: freed on the media, so they never come
    // back (their slots are free in the allocator from here on).
    auto free_header = [&](std::uint32_t ref) {
      FreeHeaderOnMedia(region_,
                        reinterpret_cast<ChunkHeader*>(region_.data() + std::size_t{ref} * kUnit));
    };
    for (const std::uint32_t ref : scan_.losers) {
      free_header(ref);
      ++report_.losers_freed;
    }
    if (!CrashCanLeaveConflicts(sb_)) report_.damaged += scan_.losers.size();
    for (const DroppedHeader& d : scan_.dropped) {
      free_header(d.header_ref);
      ++report_.dropped_freed;
      if (!CrashCanLeave(d.reason, sb_)) ++report_.damaged;
    }
    allocator.FinishRestore();
  }
  // In use from here on: a crash must not trust the snapshot; and what a crash leaves is
  // judged by the durability written with from now on.
  sb_.durability = options_.durability;
  sb_.clean = false;
  sb_.snapshot_offset = 0;
  sb_.snapshot_bytes = 0;
  sb_.snapshot_xxh3 = 0;
  WriteSuperblock();
  scan_ = PoolScan{};
  report_.seconds += static_cast<double>(MonotonicNs() - start) * 1e-9;
  return out;
}

void DurablePool::Commit(ChunkHeader* slot, ChunkHeader& header, const std::byte* data,
                         std::size_t size, bool data_flushed) {
  header.sequence = next_sequence_.fetch_add(1, std::memory_order_relaxed);
  header.state = kHeaderPending;
  header.check = 0;
  const std::uint64_t word = CommitWord(kHeaderCommitted, HeaderCheck(header));
  if (options_.durability == Durability::kPersistOnPut) {
    std::memcpy(slot, &header, sizeof header);
    // Bytes and header body first; the commit word only once they are on the media.
    if (!data_flushed) region_.Flush(data, size);
    region_.Flush(slot, sizeof header);
    region_.Drain();
    StoreCommitWord(slot, word);
    region_.Persist(slot, sizeof word);
    return;
  }
  {
    // The flusher reads reused header slots under commit_mu_: write this one under it too.
    MutexLock lock(commit_mu_);
    std::memcpy(slot, &header, sizeof header);
  }
  MutexLock lock(pending_mu_);
  pending_.push_back({slot, header.sequence, data, size});
}

void DurablePool::Release(ChunkHeader* slot) {
  if (options_.durability == Durability::kPersistOnPut) {
    FreeHeaderOnMedia(region_, slot);
    return;
  }
  // Under commit_mu_, so the flusher never commits a header after it was freed. Not flushed:
  // after a power loss the chunk may come back, and its data checksum decides whether it is
  // whole (its slot may have been reused meanwhile).
  MutexLock lock(commit_mu_);
  StoreCommitWord(slot, FreeCommitWord());
}

void DurablePool::FlushPending(std::vector<Pending>& batch) {
  if (batch.empty()) return;
  for (const Pending& p : batch) {
    region_.Flush(p.data, p.size);
    region_.Flush(p.header, sizeof(ChunkHeader));
  }
  region_.Drain();
  {
    MutexLock lock(commit_mu_);
    for (const Pending& p : batch) {
      // Freed (and perhaps reused by a later put) since: not this flush's to commit.
      if (p.header->state != kHeaderPending || p.header->sequence != p.sequence) continue;
      StoreCommitWord(p.header, CommitWord(kHeaderCommitted, HeaderCheck(*p.header)));
    }
  }
  for (const Pending& p : batch) region_.Flush(p.header, sizeof(std::uint64_t));
  region_.Drain();
  batch.clear();
}

void DurablePool::Flush() {
  if (options_.durability != Durability::kBackground) return;
  // One flush at a time, and each takes every pending header: a Flush (Store::Sync) that
  // found the flusher thread committing a batch waits for it, so that every chunk put before
  // the call is durable when it returns.
  MutexLock flush_lock(flush_mu_);
  std::vector<Pending> batch;
  {
    MutexLock lock(pending_mu_);
    batch.swap(pending_);
  }
  FlushPending(batch);
}

void DurablePool::FlusherLoop() {
  for (;;) {
    bool stopping;
    {
      MutexLock lock(pending_mu_);
      const auto deadline = std::chrono::steady_clock::now() + options_.flush_interval;
      while (!stop_ && pending_cv_.WaitUntil(pending_mu_, deadline)) {
      }
      stopping = stop_;
    }
    Flush();
    if (stopping) return;
  }
}

Status DurablePool::Close(SlabAllocator& allocator, std::span<const SnapshotRecord> records) {
  // No flush may still be committing headers once the superblock says clean.
  StopFlusher();
  Flush();
  sb_.next_sequence = next_sequence_.load();
  sb_.snapshot_offset = 0;
  sb_.snapshot_bytes = 0;
  sb_.snapshot_xxh3 = 0;
  const std::vector<std::byte> snapshot = EncodeSnapshot(sb_.generation + 1, records);
  // Never a header slot, even for a small snapshot: its magic begins with the committed state
  // word, and a header scan after the next crash would take it for a damaged header.
  const std::size_t slot_size = DataAllocSize(snapshot.size());
  if (slot_size <= allocator.max_allocation()) {
    Result<Allocation> slot = allocator.Allocate(slot_size);
    if (slot.ok()) {
      region_.CopyAndPersist(slot->data, snapshot.data(), snapshot.size());
      sb_.snapshot_offset = static_cast<std::uint64_t>(slot->data - region_.data());
      sb_.snapshot_bytes = snapshot.size();
      sb_.snapshot_xxh3 = XXH3_64bits(snapshot.data(), snapshot.size());
      // The slot stays allocated until the process ends: the next open takes the snapshot
      // and frees it (nothing claims it).
    }
  }
  sb_.clean = true;
  WriteSuperblock();  // generation + 1: the snapshot's
  return Status::Ok();
}

}  // namespace cxlkv::internal
