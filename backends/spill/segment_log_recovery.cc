// SegmentLog at Open: the channels, the superblock, then the segment table rebuilt from the
// device (segment_log.h, "Recovery", describes what is trusted and what is scanned).
#include <algorithm>
#include <string>
#include <utility>

#include "backends/spill/log_superblock.h"
#include "backends/spill/record_io.h"
#include "backends/spill/segment_log_impl.h"
#include "util/log.h"

namespace cxlkv::internal {
namespace {

using spill::ChunkLocation;
using spill::kBlockSize;
using spill::SegmentTrailer;
using spill::SummaryEntry;

// Recovery reads segment header and trailer blocks for this many segments at a time, and scans
// an unsealed segment through a window of this many bytes.
constexpr std::size_t kRecoveryBatch = 256;
constexpr std::size_t kScanWindow = 4u << 20;

}  // namespace

Status SegmentLog::Impl::Init(const RecoveryCallback& on_recovered) {
  // No other thread can reach the log before Open returns; the locks are held anyway, so that
  // the channels and the writer's state are touched under their mutexes here as everywhere.
  MutexLock write_lock(write_mu_);
  MutexLock read_lock(read_mu_);
  spill::IoChannel::Warned warned;
  const spill::IoChannel::Options channel{dev_.fd(),          options_.path,
                                          options_.queue_depth, options_.io_size,
                                          options_.use_io_uring, options_.write_unit};
  CXLKV_ASSIGN_OR_RETURN(writer_, spill::IoChannel::Create(channel, &io_, &warned));
  CXLKV_ASSIGN_OR_RETURN(reader_, spill::IoChannel::Create(channel, &io_, &warned));
  CXLKV_ASSIGN_OR_RETURN(sb_, spill::OpenSuperblock(options_, dev_, *reader_, *writer_));
  seq_base_ = sb_.epoch << 32;
  io_modes_.io_uring = writer_->ring().uses_io_uring();
  io_modes_.fixed_buffers = writer_->ring().fixed_buffer() && reader_->ring().fixed_buffer();
  io_modes_.fixed_file = writer_->ring().fixed_file() && reader_->ring().fixed_file();
  {
    MutexLock lock(mu_);
    segments_.resize(sb_.segment_count);
  }
  last_use_ = std::make_unique<std::atomic<std::uint64_t>[]>(sb_.segment_count);
  return Recover(on_recovered);
}

Status SegmentLog::Impl::Recover(const RecoveryCallback& on_recovered) {
  const std::string& path = options_.path;
  const std::uint32_t count = static_cast<std::uint32_t>(sb_.segment_count);
  std::uint64_t file_size = UINT64_MAX;
  if (!dev_.is_block_device()) {
    CXLKV_ASSIGN_OR_RETURN(file_size, dev_.Size());
  }

  // 1. Header and trailer block of every segment the file reaches.
  struct Found {
    std::uint32_t index = 0;
    std::uint64_t seq = 0;
    std::optional<SegmentTrailer> trailer;
  };
  std::vector<Found> in_use;
  std::vector<std::byte> buf(kRecoveryBatch * 2 * kBlockSize);
  for (std::uint32_t first = 0; first < count; first += kRecoveryBatch) {
    const std::uint32_t n = std::min<std::uint32_t>(kRecoveryBatch, count - first);
    std::vector<spill::RangeRead> ranges;
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint64_t off = SegmentOffset(first + i);
      if (off >= file_size) break;  // never written: free
      ranges.push_back({off, kBlockSize, buf.data() + 2 * i * kBlockSize, {}});
      ranges.push_back({off + sb_.segment_size - kBlockSize,
                        kBlockSize,
                        buf.data() + (2 * i + 1) * kBlockSize,
                        {}});
    }
    CXLKV_RETURN_IF_ERROR(reader_->ReadRanges(ranges));
    for (std::size_t r = 0; r < ranges.size(); r += 2) {
      CXLKV_RETURN_IF_ERROR(ranges[r].status);
      CXLKV_RETURN_IF_ERROR(ranges[r + 1].status);
      const auto index = static_cast<std::uint32_t>(first + r / 2);
      auto header = spill::DecodeSegmentHeader({ranges[r].dst, kBlockSize});
      if (!header.ok() || header->log_id != sb_.log_id || header->index != index ||
          header->segment_size != sb_.segment_size || (header->seq >> 32) >= sb_.epoch) {
        continue;  // free: zeroed by eviction, never used, or from an earlier log
      }
      Found f{index, header->seq, std::nullopt};
      auto t = spill::DecodeSegmentTrailer({ranges[r + 1].dst, kBlockSize});
      if (t.ok() && t->log_id == sb_.log_id && t->seq == f.seq && t->index == index &&
          spill::TrailerFitsSegment(*t, sb_.segment_size)) {
        f.trailer = *t;
      }
      in_use.push_back(f);
    }
  }
  std::sort(in_use.begin(), in_use.end(),
            [](const Found& a, const Found& b) { return a.seq < b.seq; });

  // 2. Oldest first: sealed segments from their summaries (read a batch at a time), the rest
  // by scanning their records, then sealing them.
  for (std::size_t first = 0; first < in_use.size(); first += kRecoveryBatch) {
    const std::size_t n = std::min(kRecoveryBatch, in_use.size() - first);
    std::vector<std::vector<std::byte>> summaries(n);
    std::vector<spill::RangeRead> ranges;
    std::vector<std::size_t> range_of(n, SIZE_MAX);
    for (std::size_t i = 0; i < n; ++i) {
      const Found& f = in_use[first + i];
      if (!f.trailer || f.trailer->summary_size == 0) continue;
      summaries[i].resize(spill::RoundUpToBlock(f.trailer->summary_size));
      range_of[i] = ranges.size();
      ranges.push_back({SegmentOffset(f.index) + f.trailer->summary_offset,
                        summaries[i].size(),
                        summaries[i].data(),
                        {}});
    }
    CXLKV_RETURN_IF_ERROR(reader_->ReadRanges(ranges));

    for (std::size_t i = 0; i < n; ++i) {
      const Found& f = in_use[first + i];
      std::vector<SummaryEntry> entries;
      std::string why;
      if (f.trailer) {
        const SegmentTrailer& t = *f.trailer;
        const std::span<const std::byte> summary =
            std::span<const std::byte>(summaries[i]).first(t.summary_size);
        if (range_of[i] != SIZE_MAX && !ranges[range_of[i]].status.ok()) {
          why = ranges[range_of[i]].status.ToString();
        } else {
          auto decoded = spill::DecodeSummary(summary, t);
          if (decoded.ok()) {
            entries = std::move(decoded).value();
          } else {
            why = decoded.status().message();
          }
        }
        if (!why.empty()) {
          internal::LogF("cxlkv: %s: segment %u: summary unusable (%s); scanning its records",
                         path.c_str(), f.index, why.c_str());
        }
      }

      if (f.trailer && why.empty()) {
        {
          MutexLock lock(mu_);
          segments_[f.index].seq = f.seq;
          segments_[f.index].state = Segment::State::kSealed;
        }
        ReportRecovered(f.index, entries, on_recovered);
        continue;
      }

      // Unsealed (or its seal is unusable): scan, then seal what was found.
      std::vector<ScannedRecord> scanned;
      CXLKV_RETURN_IF_ERROR(ScanSegment(f.index, f.seq, &scanned));
      if (scanned.empty()) continue;  // nothing in it: free (its header is rewritten on reuse)
      entries.clear();
      for (const ScannedRecord& r : scanned) entries.push_back(r.entry);
      {
        MutexLock lock(mu_);
        segments_[f.index].seq = f.seq;
      }
      if (const Status s = SealRecovered(f.index, entries); !s.ok()) {
        // Its chunks stay readable; the next Open scans it again.
        internal::LogF("cxlkv: %s: segment %u: sealing after recovery failed (%s)",
                       path.c_str(), f.index, s.ToString().c_str());
        MutexLock lock(mu_);
        segments_[f.index].state = Segment::State::kSealed;
        sealed_by_seq_[f.seq] = f.index;
        open_.reset();
      }
      ReportRecovered(f.index, entries, on_recovered);
    }
  }
  return Status::Ok();
}

Status SegmentLog::Impl::SealRecovered(std::uint32_t index,
                                       const std::vector<SummaryEntry>& entries) {
  // Seal it as if it had been open: rebuild its summary and write it.
  open_summary_.clear();
  open_chunks_ = static_cast<std::uint32_t>(entries.size());
  for (const SummaryEntry& e : entries) {
    const std::size_t at = open_summary_.size();
    open_summary_.resize(at + spill::SummaryEntrySize(e.key.size(), e.meta.size()));
    spill::EncodeSummaryEntry(e, std::span(open_summary_).subspan(at));
  }
  const SummaryEntry& last = entries.back();
  open_next_block_ = last.block + last.blocks;
  {
    MutexLock lock(mu_);
    segments_[index].state = Segment::State::kOpen;
    open_ = index;
  }
  CXLKV_RETURN_IF_ERROR(dev_.Allocate(SegmentOffset(index), sb_.segment_size));
  return SealOpenSegment();
}

void SegmentLog::Impl::ReportRecovered(std::uint32_t index,
                                       const std::vector<SummaryEntry>& entries,
                                       const RecoveryCallback& on_recovered) {
  {
    MutexLock lock(mu_);
    Segment& seg = segments_[index];
    seg.chunks.clear();
    seg.data_bytes = 0;
    for (const SummaryEntry& e : entries) {
      const std::uint64_t location = ChunkLocation{index, e.block, e.blocks}.Pack();
      seg.chunks.push_back(SegmentChunk{e.key_hash, location, e.data_size});
      seg.data_bytes += e.data_size;
    }
    if (seg.state == Segment::State::kSealed) sealed_by_seq_[seg.seq] = index;
    live_chunks_ += seg.chunks.size();
    live_bytes_ += seg.data_bytes;
  }
  MarkUsed(index);
  recovered_.fetch_add(entries.size(), std::memory_order_relaxed);
  if (!on_recovered) return;
  // Outside the lock: the callback runs the caller's code.
  for (const SummaryEntry& e : entries) {
    on_recovered(RecoveredChunk{e.key, e.key_hash, e.data_size, e.meta,
                                ChunkLocation{index, e.block, e.blocks}.Pack()});
  }
}

Status SegmentLog::Impl::ScanSegment(std::uint32_t index, std::uint64_t seq,
                                     std::vector<ScannedRecord>* out) {
  // Find candidate headers through a window over the segment; verify each candidate by reading
  // its whole record. Anything that is not a verified record of this segment's sequence number
  // is stepped over one block at a time.
  const std::uint32_t blocks = SegmentBlocks();
  const std::uint32_t end = blocks - 1;  // the last block is the trailer's
  const std::uint64_t base = SegmentOffset(index);
  std::vector<std::byte> window(std::min<std::uint64_t>(kScanWindow, sb_.segment_size));
  const auto window_blocks = static_cast<std::uint32_t>(window.size() / kBlockSize);
  std::uint32_t window_first = 0, window_count = 0;

  for (std::uint32_t b = 1; b < end;) {
    if (b < window_first || b >= window_first + window_count) {
      window_first = b;
      window_count = std::min(window_blocks, end - b);
      spill::RangeRead r{base + std::uint64_t{b} * kBlockSize,
                         std::uint64_t{window_count} * kBlockSize,
                         window.data(),
                         {}};
      CXLKV_RETURN_IF_ERROR(reader_->ReadRanges({&r, 1}));
      CXLKV_RETURN_IF_ERROR(r.status);
    }
    const std::span<const std::byte> block(
        window.data() + std::size_t{b - window_first} * kBlockSize, kBlockSize);
    auto h = spill::DecodeRecordHeader(block);
    if (!h.ok() || h->log_id != sb_.log_id || h->seq != seq || h->segment != index ||
        h->block != b || std::uint64_t{b} + h->blocks > end) {
      ++b;
      continue;
    }
    spill::RecordJob job;
    job.loc = ChunkLocation{index, b, h->blocks};
    job.dev_offset = base + std::uint64_t{b} * kBlockSize;
    job.seq = seq;
    job.verify_only = true;
    spill::ReadRecords(*reader_, sb_.log_id, {&job, 1});
    if (!job.status.ok()) {
      ++b;
      continue;
    }
    // Records are back to back from block 1: anything stepped over before this one was a
    // record that is not whole any more.
    const std::uint32_t expected =
        out->empty() ? 1 : out->back().entry.block + out->back().entry.blocks;
    if (b != expected) recovery_skipped_.fetch_add(1, std::memory_order_relaxed);
    ScannedRecord& r = out->emplace_back();
    r.key = std::move(job.key);
    r.meta = job.meta;
    r.meta_size = h->meta_size;
    r.entry = SummaryEntry{b, h->blocks, h->data_size, h->key_hash, {}, {}};
    b += h->blocks;
  }
  for (ScannedRecord& r : *out) {
    r.entry.key = r.key;
    r.entry.meta = std::span<const std::byte>(r.meta.data(), r.meta_size);
  }
  return Status::Ok();
}

}  // namespace cxlkv::internal
