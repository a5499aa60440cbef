#include "backends/spill/record_io.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "backends/key.h"

namespace cxlkv::internal::spill {
namespace {

// Copy and hash alternate in strides of this size, so the hash reads bytes the copy has just
// brought into cache.
constexpr std::size_t kHashStride = 64 * 1024;

// One piece of a job's record, in record order: the first piece checks the header and key,
// every piece is hashed and its data part copied out, the last checks the payload checksum.
void ConsumeRecordPiece(RecordJob& job, std::uint64_t log_id, const std::string& path,
                        std::uint64_t offset, const std::byte* bytes, std::uint32_t len,
                        Hasher& hasher) {
  if (!job.status.ok()) return;
  auto corrupt = [&](const std::string& why) {
    job.status = Status::Corruption("chunk at segment " + std::to_string(job.loc.segment) +
                                    " block " + std::to_string(job.loc.block) + " (location " +
                                    HexLocation(job.loc.Pack()) + ") of " + path + ": " + why);
  };
  RecordHeader& h = job.header;
  if (offset == 0) {
    // The first piece holds the header, the key and the meta (80 + 150 + 64 < 4 KiB).
    auto decoded = DecodeRecordHeader({bytes, len});
    if (!decoded.ok()) return corrupt(decoded.status().message());
    h = *decoded;
    if (h.log_id != log_id) return corrupt("record of another log");
    if (h.seq != job.seq || h.segment != job.loc.segment || h.block != job.loc.block) {
      return corrupt("record of segment " + std::to_string(h.segment) + " block " +
                     std::to_string(h.block) + " sequence " + HexLocation(h.seq) +
                     " found (stale or misplaced)");
    }
    if (h.blocks != job.loc.blocks) {
      return corrupt("record of " + std::to_string(h.blocks) + " blocks, location says " +
                     std::to_string(job.loc.blocks));
    }
    const std::string_view key(reinterpret_cast<const char*>(bytes) + RecordHeader::kEncodedSize,
                               h.key_size);
    if (!job.verify_only) {
      if (key != job.expected_key || h.key_hash != HashKey(job.expected_key)) {
        return corrupt("record holds another key");
      }
      if (h.data_size > job.dst.size()) {
        job.status = Status::InvalidArgument("chunk of " + std::to_string(h.data_size) +
                                             " bytes does not fit a " +
                                             std::to_string(job.dst.size()) + "-byte buffer");
        return;
      }
    } else {
      job.key.assign(key);
    }
    std::memcpy(job.meta.data(), bytes + RecordHeader::kEncodedSize + h.key_size, h.meta_size);
    hasher.Reset();
  }
  // This piece's share of the payload [80, payload_end): hash all of it, copy the data part.
  const std::uint64_t payload_end = RecordPayloadEnd(h.key_size, h.meta_size, h.data_size);
  const std::uint64_t data_start = payload_end - h.data_size;
  const std::uint64_t from = std::max<std::uint64_t>(offset, RecordHeader::kEncodedSize);
  const std::uint64_t to = std::min<std::uint64_t>(offset + len, payload_end);
  if (from < to) hasher.Update(bytes + (from - offset), to - from);
  const std::uint64_t copy_from = std::max(from, data_start);
  if (!job.verify_only && copy_from < to) {
    std::memcpy(job.dst.data() + (copy_from - data_start), bytes + (copy_from - offset),
                to - copy_from);
  }
  if (offset + len == std::uint64_t{job.loc.blocks} * kBlockSize) {
    auto digest = hasher.Digest();
    if (!digest.ok()) {
      job.status = digest.status();
    } else if (*digest != h.payload_checksum) {
      corrupt("payload checksum mismatch");
    }
  }
}

}  // namespace

std::string HexLocation(std::uint64_t location) {
  char buf[19];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(location));
  return buf;
}

void ReadRecords(IoChannel& ch, std::uint64_t log_id, std::span<RecordJob> jobs) {
  const Status ring = PipelinedRead(
      ch, jobs.size(),
      [&](std::size_t j) {
        const RecordJob& job = jobs[j];
        return std::pair{job.dev_offset,
                         job.status.ok() ? std::uint64_t{job.loc.blocks} * kBlockSize : 0};
      },
      [&](std::size_t j, std::uint64_t off, const std::byte* p, std::uint32_t len) {
        ConsumeRecordPiece(jobs[j], log_id, ch.path(), off, p, len, ch.hasher());
      },
      [&](std::size_t j, const Status& st) {
        if (jobs[j].status.ok()) jobs[j].status = st;
      });
  static_cast<void>(ring);  // already recorded in every unfinished job's status
}

Status WriteRecord(IoChannel& ch, SlotWriter& w, std::uint64_t dev_offset, RecordHeader& h,
                   std::string_view key, std::span<const std::byte> meta,
                   std::span<const iovec> parts) {
  // The record goes out in slot-sized pieces. The first piece, which holds the header, is
  // submitted last: the header carries the payload checksum, known only once every byte has
  // been copied (and hashed while still in cache). Pieces are submitted as they fill, so the
  // copy of one overlaps the device's write of the previous (and of the records before it in
  // a batch).
  Hasher& hasher = ch.hasher();
  hasher.Reset();

  CXLKV_ASSIGN_OR_RETURN(const std::uint32_t first, w.Acquire());
  std::uint32_t slot = first;
  std::byte* base = ch.slot(slot);
  std::uint64_t piece_start = 0;  // record offset of the current slot's first byte
  std::size_t fill = RecordHeader::kEncodedSize;

  auto emit = [&](const std::byte* src, std::size_t n) -> Status {
    while (n > 0) {
      if (fill == ch.slot_size()) {
        if (slot != first)
          CXLKV_RETURN_IF_ERROR(w.Submit(slot, ch.slot_size(), dev_offset + piece_start));
        piece_start += fill;
        CXLKV_ASSIGN_OR_RETURN(slot, w.Acquire());
        base = ch.slot(slot);
        fill = 0;
      }
      const std::size_t m = std::min({n, std::size_t{ch.slot_size()} - fill, kHashStride});
      std::memcpy(base + fill, src, m);
      hasher.Update(base + fill, m);
      fill += m;
      src += m;
      n -= m;
    }
    return Status::Ok();
  };
  CXLKV_RETURN_IF_ERROR(emit(reinterpret_cast<const std::byte*>(key.data()), key.size()));
  CXLKV_RETURN_IF_ERROR(emit(meta.data(), meta.size()));
  for (const iovec& part : parts) {
    CXLKV_RETURN_IF_ERROR(emit(static_cast<const std::byte*>(part.iov_base), part.iov_len));
  }
  const auto last_len = static_cast<std::uint32_t>(RoundUpToBlock(fill));
  std::memset(base + fill, 0, last_len - fill);
  if (slot != first) CXLKV_RETURN_IF_ERROR(w.Submit(slot, last_len, dev_offset + piece_start));

  CXLKV_ASSIGN_OR_RETURN(h.payload_checksum, hasher.Digest());
  EncodeRecordHeader(h, {ch.slot(first), RecordHeader::kEncodedSize});
  return w.Submit(first, slot == first ? last_len : ch.slot_size(), dev_offset);
}

}  // namespace cxlkv::internal::spill
