// SegmentLog: opening, appends, reads and eviction over the segment table. The I/O channel
// (io_channel.h), the superblock (log_superblock.h), record writes and verified reads
// (record_io.h) and recovery (segment_log_recovery.cc) live in files of their own.
#include "backends/spill/segment_log.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <string>
#include <utility>

#include "backends/spill/chunk_record.h"
#include "backends/spill/log_device.h"
#include "backends/spill/record_io.h"
#include "backends/spill/segment_log_impl.h"
#include "util/format.h"
#include "util/mutex.h"

namespace cxlkv::internal {
namespace {

using spill::ChunkLocation;
using spill::HexLocation;
using spill::kBlockSize;
using spill::LogDevice;
using spill::RecordHeader;
using spill::RoundUpToBlock;
using spill::SegmentHeader;
using spill::SegmentTrailer;
using spill::SummaryEntry;

constexpr std::uint64_t kMinSegmentSize = 64 * 1024;
constexpr std::uint64_t kMaxSegmentSize = ChunkLocation::kMaxBlocksPerSegment * kBlockSize;
constexpr std::uint32_t kMaxIoSize = 64u << 20;
constexpr unsigned kMaxQueueDepth = 4096;

}  // namespace

// ---- appends and segments ----

bool SegmentLog::Impl::OpenSegmentFits(std::uint32_t record_blocks, std::size_t entry_size) const {
  const std::uint64_t summary = RoundUpToBlock(open_summary_.size() + entry_size);
  return (std::uint64_t{open_next_block_} + record_blocks) * kBlockSize + summary + kBlockSize <=
         sb_.segment_size;
}

Status SegmentLog::Impl::OpenNewSegment() {
  std::uint32_t index = 0;
  {
    MutexLock lock(mu_);
    auto it = std::find_if(segments_.begin(), segments_.end(),
                           [](const Segment& s) { return s.state == Segment::State::kFree; });
    if (it == segments_.end()) {
      return Status::NoSpace("no free segment in " + options_.path + " (" +
                             std::to_string(sb_.segment_count) + " segments of " +
                             std::to_string(sb_.segment_size) + " bytes): evict one");
    }
    index = static_cast<std::uint32_t>(it - segments_.begin());
  }
  if (next_seq_ == UINT32_MAX) {
    return Status::NoSpace("segment sequence numbers exhausted for this open; reopen the log");
  }
  // Space first: a full file system fails here, before anything is written.
  CXLKV_RETURN_IF_ERROR(dev_.Allocate(SegmentOffset(index), sb_.segment_size));
  const std::uint64_t seq = seq_base_ | ++next_seq_;
  std::array<std::byte, kBlockSize> block{};
  spill::EncodeSegmentHeader(SegmentHeader{sb_.log_id, seq, index, sb_.segment_size}, block);
  CXLKV_RETURN_IF_ERROR(writer_->WriteRange(SegmentOffset(index), block));

  MutexLock lock(mu_);
  Segment& seg = segments_[index];
  seg = Segment{Segment::State::kOpen, seq, {}, 0};
  open_ = index;
  open_next_block_ = 1;
  open_summary_.clear();
  open_chunks_ = 0;
  MarkUsed(index);
  return Status::Ok();
}

Status SegmentLog::Impl::SealOpenSegment() {
  const std::uint32_t index = *WriterOpenSegment();
  std::uint64_t seq;
  {
    MutexLock lock(mu_);
    seq = segments_[index].seq;
  }
  const std::uint64_t summary_blocks_bytes = RoundUpToBlock(open_summary_.size());
  const std::uint64_t records_end = std::uint64_t{open_next_block_} * kBlockSize;
  if (records_end + summary_blocks_bytes + kBlockSize > sb_.segment_size) {
    // Appends reserve room for the summary, so only a damaged recovery could get here; never
    // write a summary over records.
    return Status::Corruption("segment " + std::to_string(index) + " of " + options_.path +
                              " has no room left for its summary");
  }
  std::vector<std::byte> tail(summary_blocks_bytes + kBlockSize);
  std::copy(open_summary_.begin(), open_summary_.end(), tail.begin());
  SegmentTrailer t;
  t.log_id = sb_.log_id;
  t.seq = seq;
  t.index = index;
  t.chunk_count = open_chunks_;
  t.records_end = records_end;
  t.summary_offset = sb_.segment_size - kBlockSize - summary_blocks_bytes;
  t.summary_size = open_summary_.size();
  t.summary_checksum = spill::Checksum(open_summary_);
  spill::EncodeSegmentTrailer(t, std::span(tail).subspan(summary_blocks_bytes));
  CXLKV_RETURN_IF_ERROR(writer_->WriteRange(SegmentOffset(index) + t.summary_offset, tail));

  MutexLock lock(mu_);
  segments_[index].state = Segment::State::kSealed;
  sealed_by_seq_[seq] = index;
  open_.reset();
  open_summary_.clear();
  open_chunks_ = 0;
  MarkUsed(index);
  segments_sealed_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Status SegmentLog::Impl::AppendBatch(std::span<SegmentLog::AppendItem> items) {
  // Checked before the lock: what does not fit fails alone.
  struct Planned {
    std::size_t item;
    std::uint64_t data_size;
    std::uint32_t blocks;
    std::size_t entry_size;
  };
  std::vector<Planned> plan;
  plan.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    SegmentLog::AppendItem& it = items[i];
    it.status = ValidateKey(it.key);
    if (!it.status.ok()) continue;
    if (it.meta.size() > spill::kMaxMetaSize) {
      it.status = Status::InvalidArgument("chunk metadata of " + std::to_string(it.meta.size()) +
                                          " bytes exceeds " +
                                          std::to_string(spill::kMaxMetaSize));
      continue;
    }
    std::uint64_t data_size = 0;
    for (const iovec& part : it.parts) {
      if (part.iov_len != 0 && part.iov_base == nullptr) {
        it.status = Status::InvalidArgument("a chunk part with a null base");
        break;
      }
      data_size += part.iov_len;
    }
    if (!it.status.ok()) continue;
    if (data_size > MaxChunkSize(it.key.size(), it.meta.size())) {
      it.status = Status::InvalidArgument("chunk of " + std::to_string(data_size) +
                                          " bytes does not fit in a segment of " +
                                          std::to_string(sb_.segment_size) + " bytes");
      continue;
    }
    const auto blocks = static_cast<std::uint32_t>(spill::RecordBlocks(data_size));
    plan.push_back({i, data_size, blocks, spill::SummaryEntrySize(it.key.size(), it.meta.size())});
  }

  MutexLock write_lock(write_mu_);
  spill::SlotWriter w(*writer_);
  // Records queued and not yet known to be on the device, all in the open segment. Their blocks
  // and summary entries are taken as they are queued (the next record goes after them); their
  // chunks become the segment's, and their items OK, only once every write has completed.
  struct Queued {
    std::size_t item;
    ChunkLocation loc;
    KeyHash key_hash;
    std::uint64_t data_size;
  };
  std::vector<Queued> queued;
  std::uint32_t queued_first_block = 0;
  std::size_t queued_summary_size = 0;
  auto complete = [&]() REQUIRES(write_mu_) -> Status {
    const Status s = w.Finish();
    if (queued.empty()) return s;
    if (!s.ok()) {  // nothing of the group counts; the next records go over its blocks
      for (const Queued& q : queued) items[q.item].status = s;
      open_next_block_ = queued_first_block;
      open_summary_.resize(queued_summary_size);
      open_chunks_ -= static_cast<std::uint32_t>(queued.size());
      queued.clear();
      return s;
    }
    {
      MutexLock lock(mu_);
      Segment& seg = segments_[queued.front().loc.segment];
      for (const Queued& q : queued) {
        seg.chunks.push_back(SegmentChunk{q.key_hash, q.loc.Pack(), q.data_size});
        seg.data_bytes += q.data_size;
        ++live_chunks_;
        live_bytes_ += q.data_size;
      }
    }
    for (const Queued& q : queued) {
      items[q.item].location = q.loc.Pack();
      chunks_appended_.fetch_add(1, std::memory_order_relaxed);
      bytes_appended_.fetch_add(q.data_size, std::memory_order_relaxed);
    }
    queued.clear();
    return Status::Ok();
  };

  for (std::size_t p = 0; p < plan.size(); ++p) {
    const Planned& pl = plan[p];
    SegmentLog::AppendItem& it = items[pl.item];
    Status s;
    if (WriterOpenSegment() && !OpenSegmentFits(pl.blocks, pl.entry_size)) {
      // A summary lists records that are on the device: the queued ones first.
      s = complete();
      if (s.ok()) s = SealOpenSegment();
    }
    if (s.ok() && !WriterOpenSegment()) s = OpenNewSegment();
    if (!s.ok()) {  // this and every later item (no segment to put them in, or a failed seal)
      for (std::size_t rest = p; rest < plan.size(); ++rest) items[plan[rest].item].status = s;
      break;
    }
    if (queued.empty()) {
      queued_first_block = open_next_block_;
      queued_summary_size = open_summary_.size();
    }
    const std::uint32_t index = *WriterOpenSegment();
    if (phase_segment_ != index) {  // where the disk's units lie under this segment
      phase_ = dev_.PhysicalPhase(SegmentOffset(index), options_.write_unit);
      phase_segment_ = index;
    }
    s = w.SetPhase(phase_);
    if (!s.ok()) {  // the run before could not be sent: this and every later item
      static_cast<void>(complete());
      for (std::size_t rest = p; rest < plan.size(); ++rest) items[plan[rest].item].status = s;
      break;
    }
    RecordHeader h;
    h.log_id = sb_.log_id;
    {
      MutexLock lock(mu_);
      h.seq = segments_[index].seq;
    }
    h.segment = index;
    h.block = open_next_block_;
    h.blocks = pl.blocks;
    h.key_size = static_cast<std::uint16_t>(it.key.size());
    h.meta_size = static_cast<std::uint16_t>(it.meta.size());
    h.data_size = pl.data_size;
    h.key_hash = HashKey(it.key);
    s = spill::WriteRecord(*writer_, w, SegmentOffset(index) + std::uint64_t{h.block} * kBlockSize,
                           h, it.key, it.meta, it.parts);
    if (!s.ok()) {
      // Part of it may be in flight: wait, then it fails (with the group, if the wait fails).
      static_cast<void>(complete());
      it.status = s;
      continue;
    }
    const ChunkLocation loc{index, h.block, pl.blocks};
    const std::size_t at = open_summary_.size();
    open_summary_.resize(at + pl.entry_size);
    spill::EncodeSummaryEntry(
        SummaryEntry{h.block, pl.blocks, pl.data_size, h.key_hash, it.key, it.meta},
        std::span(open_summary_).subspan(at));
    open_next_block_ += pl.blocks;
    ++open_chunks_;
    queued.push_back({pl.item, loc, h.key_hash, pl.data_size});
  }
  static_cast<void>(complete());
  for (const SegmentLog::AppendItem& it : items) {
    if (!it.status.ok()) return it.status;
  }
  return Status::Ok();
}

std::uint64_t SegmentLog::Impl::MaxChunkSize(std::size_t key_size, std::size_t meta_size) const {
  // One record alone in a segment: header block and trailer block, the summary's blocks.
  const std::uint64_t summary = RoundUpToBlock(spill::SummaryEntrySize(key_size, meta_size));
  const std::uint64_t room = sb_.segment_size - 2 * kBlockSize - summary;
  return room > spill::kRecordDataOffset ? room - spill::kRecordDataOffset : 0;
}

// ---- reads ----

Status SegmentLog::Impl::ReadBatch(std::span<ChunkRead> reads) {
  std::vector<spill::RecordJob> jobs(reads.size());
  const std::uint32_t seg_blocks = SegmentBlocks();
  {
    MutexLock lock(mu_);
    for (std::size_t i = 0; i < reads.size(); ++i) {
      const ChunkRead& r = reads[i];
      spill::RecordJob& job = jobs[i];
      job.loc = ChunkLocation::Unpack(r.location);
      job.expected_key = r.key;
      job.dst = r.dst;
      job.meta_dst = r.meta_dst;
      if (job.loc.segment >= sb_.segment_count || job.loc.block == 0 || job.loc.blocks == 0 ||
          std::uint64_t{job.loc.block} + job.loc.blocks >= seg_blocks) {
        job.status =
            Status::InvalidArgument("location " + HexLocation(r.location) + " is not in the log");
        continue;
      }
      if (r.key.empty()) {
        job.status = Status::InvalidArgument("reading a chunk needs its key");
        continue;
      }
      const Segment& seg = segments_[job.loc.segment];
      if (seg.state == Segment::State::kFree) {
        job.status = Status::NotFound("location " + HexLocation(r.location) + ": segment " +
                                      std::to_string(job.loc.segment) + " is free (evicted)");
        continue;
      }
      job.seq = seg.seq;
      job.dev_offset = SegmentOffset(job.loc.segment) + std::uint64_t{job.loc.block} * kBlockSize;
    }
  }
  {
    MutexLock lock(read_mu_);
    spill::ReadRecords(*reader_, sb_.log_id, jobs,
                       read_bytes_in_flight_.load(std::memory_order_relaxed));
  }
  Status first;
  std::uint64_t ok_count = 0, ok_bytes = 0;
  for (std::size_t i = 0; i < reads.size(); ++i) {
    ChunkRead& r = reads[i];
    spill::RecordJob& job = jobs[i];
    r.status = job.status;
    if (!job.status.ok()) {
      r.size = 0;
      r.meta_size = 0;
      read_errors_.fetch_add(1, std::memory_order_relaxed);
      if (first.ok()) first = job.status;
      continue;
    }
    r.size = job.header.data_size;
    r.meta_size = job.header.meta_size;
    if (!r.meta_dst.empty()) {
      std::memcpy(r.meta_dst.data(), job.meta.data(), std::min(r.meta_dst.size(), r.meta_size));
    }
    ++ok_count;
    ok_bytes += r.size;
    if (options_.eviction == SegmentEviction::kLru) Touch(r.location);
  }
  chunks_read_.fetch_add(ok_count, std::memory_order_relaxed);
  bytes_read_.fetch_add(ok_bytes, std::memory_order_relaxed);
  return first;
}

void SegmentLog::Impl::Touch(std::uint64_t location) {
  if (options_.eviction != SegmentEviction::kLru) return;
  const std::uint32_t segment = ChunkLocation::Unpack(location).segment;
  if (segment >= sb_.segment_count) return;
  MarkUsed(segment);
}

// ---- eviction ----

std::optional<std::uint32_t> SegmentLog::Impl::OldestSegmentLocked() const {
  if (!sealed_by_seq_.empty()) {
    if (options_.eviction == SegmentEviction::kFifo) return sealed_by_seq_.begin()->second;
    std::optional<std::uint32_t> best;
    std::uint64_t best_use = UINT64_MAX;
    for (const auto& [seq, index] : sealed_by_seq_) {
      const std::uint64_t use = last_use_[index].load(std::memory_order_relaxed);
      if (use < best_use) {
        best_use = use;
        best = index;
      }
    }
    return best;
  }
  return open_;
}

std::optional<std::uint32_t> SegmentLog::Impl::OldestSegment() const {
  MutexLock lock(mu_);
  return OldestSegmentLocked();
}

Result<std::vector<SegmentChunk>> SegmentLog::Impl::SegmentChunks(std::uint32_t segment) const {
  MutexLock lock(mu_);
  if (segment >= segments_.size() || segments_[segment].state == Segment::State::kFree) {
    return Status::NotFound("segment " + std::to_string(segment) + " of " + options_.path +
                            " is free");
  }
  return segments_[segment].chunks;
}

Result<std::vector<SegmentChunk>> SegmentLog::Impl::EvictSegment(std::uint32_t segment) {
  MutexLock write_lock(write_mu_);
  return EvictSegmentLocked(segment);
}

Result<std::vector<SegmentChunk>> SegmentLog::Impl::EvictSegmentLocked(std::uint32_t segment) {
  {
    MutexLock lock(mu_);
    if (segment >= segments_.size() || segments_[segment].state == Segment::State::kFree) {
      return Status::NotFound("segment " + std::to_string(segment) + " of " + options_.path +
                              " is free");
    }
  }
  // Zero the header: the segment is free from now on, also for the next Open.
  const std::array<std::byte, kBlockSize> zeros{};
  CXLKV_RETURN_IF_ERROR(writer_->WriteRange(SegmentOffset(segment), zeros));

  MutexLock lock(mu_);
  Segment& seg = segments_[segment];
  std::vector<SegmentChunk> chunks = std::move(seg.chunks);
  live_chunks_ -= chunks.size();
  live_bytes_ -= seg.data_bytes;
  sealed_by_seq_.erase(seg.seq);
  if (open_ == segment) {
    open_.reset();
    open_summary_.clear();
    open_chunks_ = 0;
  }
  seg = Segment{};
  segments_evicted_.fetch_add(1, std::memory_order_relaxed);
  return chunks;
}

Result<std::vector<SegmentChunk>> SegmentLog::Impl::EvictOldestSegment() {
  // The victim is chosen under write_mu_: nothing else can seal, open or evict until it is
  // evicted, so the choice stays valid.
  MutexLock write_lock(write_mu_);
  std::optional<std::uint32_t> victim;
  {
    MutexLock lock(mu_);
    victim = OldestSegmentLocked();
  }
  if (!victim) return Status::NotFound("every segment of " + options_.path + " is free");
  return EvictSegmentLocked(*victim);
}

SegmentLogStats SegmentLog::Impl::GetStats() const {
  SegmentLogStats s;
  s.capacity = sb_.capacity;
  s.segment_size = sb_.segment_size;
  s.segments = static_cast<std::uint32_t>(sb_.segment_count);
  {
    MutexLock lock(mu_);
    for (const Segment& seg : segments_) {
      if (seg.state == Segment::State::kFree) ++s.free_segments;
      if (seg.state == Segment::State::kSealed) ++s.sealed_segments;
    }
    s.open_segment = open_.has_value();
    s.live_chunks = live_chunks_;
    s.live_bytes = live_bytes_;
  }
  constexpr auto r = std::memory_order_relaxed;
  s.chunks_appended = chunks_appended_.load(r);
  s.bytes_appended = bytes_appended_.load(r);
  s.device_bytes_written = io_.written.load(r);
  s.direct_bytes_written = io_.written_direct.load(r);
  s.direct_fallbacks = io_.direct_fallbacks.load(r);
  s.chunks_read = chunks_read_.load(r);
  s.bytes_read = bytes_read_.load(r);
  s.device_bytes_read = io_.read.load(r);
  s.read_errors = read_errors_.load(r);
  s.segments_sealed = segments_sealed_.load(r);
  s.segments_evicted = segments_evicted_.load(r);
  s.recovered_chunks = recovered_.load(r);
  s.recovery_skipped_records = recovery_skipped_.load(r);
  s.direct_io = dev_.direct_io();
  s.io_uring = io_modes_.io_uring;
  s.fixed_buffers = io_modes_.fixed_buffers;
  s.fixed_file = io_modes_.fixed_file;
  s.read_bytes_in_flight = read_bytes_in_flight_.load(r);
  return s;
}

// ---------------------------------------------------------------------------------------------

SegmentLog::SegmentLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SegmentLog::~SegmentLog() = default;

Result<std::unique_ptr<SegmentLog>> SegmentLog::Open(SegmentLogOptions options,
                                                     const RecoveryCallback& on_recovered) {
  if (options.queue_depth < 2 || options.queue_depth > kMaxQueueDepth) {
    return Status::InvalidArgument("queue depth " + std::to_string(options.queue_depth) +
                                   " is outside 2.." + std::to_string(kMaxQueueDepth));
  }
  if (options.io_size < kBlockSize || options.io_size % kBlockSize != 0 ||
      options.io_size > kMaxIoSize) {
    return Status::InvalidArgument("I/O size " + std::to_string(options.io_size) +
                                   " is not a multiple of 4 KiB up to 64 MiB");
  }
  if (options.write_unit != 0 &&
      (options.write_unit < kBlockSize || !IsPowerOfTwo(options.write_unit) ||
       options.write_unit > options.io_size)) {
    return Status::InvalidArgument("write unit " + std::to_string(options.write_unit) +
                                   " is not a power of two from 4 KiB to the I/O size (" +
                                   std::to_string(options.io_size) + ")");
  }
  if (options.segment_size != 0 &&
      (options.segment_size % kBlockSize != 0 || options.segment_size < kMinSegmentSize ||
       options.segment_size > kMaxSegmentSize)) {
    return Status::InvalidArgument("segment size " + std::to_string(options.segment_size) +
                                   " is not a multiple of 4 KiB from 64 KiB to 4 GiB");
  }
  CXLKV_ASSIGN_OR_RETURN(LogDevice dev,
                         LogDevice::Open({options.path, options.direct_io, /*create=*/true}));
  auto impl = std::make_unique<Impl>(std::move(options), std::move(dev));
  CXLKV_RETURN_IF_ERROR(impl->Init(on_recovered));
  return std::unique_ptr<SegmentLog>(new SegmentLog(std::move(impl)));
}

Result<std::uint64_t> SegmentLog::Append(std::string_view key, std::span<const iovec> parts,
                                         std::span<const std::byte> meta) {
  AppendItem item{key, parts, meta, Status::Ok(), 0};
  CXLKV_RETURN_IF_ERROR(impl_->AppendBatch({&item, 1}));
  return item.location;
}

Result<std::uint64_t> SegmentLog::Append(std::string_view key, std::span<const std::byte> data,
                                         std::span<const std::byte> meta) {
  const iovec part{const_cast<std::byte*>(data.data()), data.size()};
  return Append(key, {&part, 1}, meta);
}

Status SegmentLog::AppendBatch(std::span<AppendItem> items) { return impl_->AppendBatch(items); }

Result<std::uint64_t> SegmentLog::Read(std::uint64_t location, std::string_view key,
                                       std::span<std::byte> dst) {
  ChunkRead r;
  r.location = location;
  r.key = key;
  r.dst = dst;
  CXLKV_RETURN_IF_ERROR(impl_->ReadBatch({&r, 1}));
  return r.size;
}

Status SegmentLog::ReadBatch(std::span<ChunkRead> reads) { return impl_->ReadBatch(reads); }
Status SegmentLog::Sync() { return impl_->Sync(); }
void SegmentLog::Touch(std::uint64_t location) { impl_->Touch(location); }
void SegmentLog::SetReadBytesInFlight(std::uint64_t bytes) { impl_->SetReadBytesInFlight(bytes); }
std::optional<std::uint32_t> SegmentLog::OldestSegment() const { return impl_->OldestSegment(); }
Result<std::vector<SegmentChunk>> SegmentLog::SegmentChunks(std::uint32_t segment) const {
  return impl_->SegmentChunks(segment);
}
Result<std::vector<SegmentChunk>> SegmentLog::EvictSegment(std::uint32_t segment) {
  return impl_->EvictSegment(segment);
}
Result<std::vector<SegmentChunk>> SegmentLog::EvictOldestSegment() {
  return impl_->EvictOldestSegment();
}
SegmentLogStats SegmentLog::GetStats() const { return impl_->GetStats(); }
std::uint32_t SegmentLog::SegmentOf(std::uint64_t location) {
  return ChunkLocation::Unpack(location).segment;
}
std::uint64_t SegmentLog::MaxChunkSize(std::size_t key_size, std::size_t meta_size) const {
  return impl_->MaxChunkSize(key_size, meta_size);
}

}  // namespace cxlkv::internal
