#include "backends/spill/record_io.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include "backends/key.h"

namespace cxlkv::internal::spill {
namespace {

// Copy and hash alternate in strides of this size, so the hash reads bytes the copy has just
// brought into cache.
constexpr std::size_t kHashStride = 64 * 1024;
// The largest write straight from the caller's memory: a 2 MiB chunk (the common KV-cache
// chunk) and its header block are one I/O, as a raw O_DIRECT write of it would be.
constexpr std::size_t kMaxDirectWrite = 4 << 20;
// Likewise for a read straight into the caller's memory.
constexpr std::uint64_t kMaxDirectRead = 4 << 20;

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
    // The first piece holds the record's first block: header, key and meta.
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
  // This piece's share of the payload, in order: key and meta [80, 80 + key + meta) (in the
  // first piece), then the data [kRecordDataOffset, + data size): hash all of it, copy the data.
  if (offset == 0) {
    hasher.Update(bytes + RecordHeader::kEncodedSize, std::size_t{h.key_size} + h.meta_size);
  }
  const std::uint64_t data_end = kRecordDataOffset + h.data_size;
  const std::uint64_t from = std::max<std::uint64_t>(offset, kRecordDataOffset);
  const std::uint64_t to = std::min<std::uint64_t>(offset + len, data_end);
  if (from < to) {
    hasher.Update(bytes + (from - offset), to - from);
    std::byte* const place = job.dst.data() + (from - kRecordDataOffset);
    // A piece read straight into dst is in place already (and now verified as it is hashed).
    if (!job.verify_only && place != bytes + (from - offset)) {
      std::memcpy(place, bytes + (from - offset), to - from);
    }
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

void ReadRecords(IoChannel& ch, std::uint64_t log_id, std::span<RecordJob> jobs,
                 std::uint64_t max_device_bytes) {
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
      },
      [&](std::size_t j, std::uint64_t off, std::uint64_t max_len) {
        // Whole data blocks that fit a 4 KiB-aligned dst are read straight into it: the first
        // piece takes the header block into its slot and the data behind it in one read. The
        // data's last blocks, where dst ends inside them, come through the slots.
        const RecordJob& job = jobs[j];
        const auto addr = reinterpret_cast<std::uintptr_t>(job.dst.data());
        const std::uint64_t direct_end =
            kRecordDataOffset + std::min<std::uint64_t>(std::uint64_t{job.loc.blocks - 1} * kBlockSize,
                                                        job.dst.size() / kBlockSize * kBlockSize);
        if (job.verify_only || addr % kBlockSize != 0 || off >= direct_end ||
            direct_end == kRecordDataOffset) {
          return ReadPlacement{max_len, 0, nullptr};
        }
        const std::uint64_t len = std::min<std::uint64_t>(direct_end - off, kMaxDirectRead);
        if (off == 0) return ReadPlacement{len, kBlockSize, job.dst.data()};
        return ReadPlacement{len, 0, job.dst.data() + (off - kRecordDataOffset)};
      },
      max_device_bytes);
  static_cast<void>(ring);  // already recorded in every unfinished job's status
}

Status WriteRecord(IoChannel& ch, SlotWriter& w, std::uint64_t dev_offset, RecordHeader& h,
                   std::string_view key, std::span<const std::byte> meta,
                   std::span<const iovec> parts) {
  // Block 0 of the record (header, key, meta) is staged in the first slot and submitted last:
  // the header carries the payload checksum, known only once every byte has been hashed. The
  // data follows from the next block boundary. Where the caller's bytes are block-aligned (in
  // address and in record position) whole blocks of them are written straight from its memory
  // and hashed while the device writes them; the rest is copied into staging slots, hashed
  // while still in cache, and submitted as each slot fills. A direct run that starts the data
  // goes out with the header block as one write (up to kMaxDirectWrite): a block-aligned 2 MiB
  // chunk is one I/O, as in a raw O_DIRECT write of it, and on a file one range for the file
  // system to convert from unwritten, not two around a gap (which on ext4 mounted with
  // `discard` cost milliseconds per record: extent tree blocks allocated and freed, each free
  // a synchronous discard). Its hash then runs before it is submitted, while the device writes
  // the batch's earlier records.
  Hasher& hasher = ch.hasher();
  hasher.Reset();
  const std::uint32_t slot_size = ch.slot_size();

  CXLKV_ASSIGN_OR_RETURN(const std::uint32_t first, w.Acquire());
  std::byte* const head = ch.slot(first);
  std::memset(head, 0, kRecordDataOffset);
  std::memcpy(head + RecordHeader::kEncodedSize, key.data(), key.size());
  if (!meta.empty()) {
    std::memcpy(head + RecordHeader::kEncodedSize + key.size(), meta.data(), meta.size());
  }
  hasher.Update(head + RecordHeader::kEncodedSize, key.size() + meta.size());

  // One part in block-aligned memory (a chunk demoted from a slab slot: the common case). The
  // data is hashed first, where it lies (the header carries the checksum), then the record
  // joins the writer's run (SlotWriter::Stream), which cuts the device writes across records:
  // its header block, its whole data blocks from the caller's memory, and the block the data
  // ends inside, if any, through a slot.
  if (parts.size() == 1 && parts[0].iov_len >= kBlockSize &&
      reinterpret_cast<std::uintptr_t>(parts[0].iov_base) % kBlockSize == 0) {
    const auto* src = static_cast<const std::byte*>(parts[0].iov_base);
    const std::size_t n = parts[0].iov_len;
    const std::size_t whole = n / kBlockSize * kBlockSize;
    hasher.Update(src, n);
    CXLKV_ASSIGN_OR_RETURN(h.payload_checksum, hasher.Digest());
    EncodeRecordHeader(h, {head, RecordHeader::kEncodedSize});
    // The run cuts the writes (SlotWriter::kStreamBytes): the pieces go in whole. A chunk is
    // smaller than a segment (at most 4 GiB), so its length fits a piece's.
    using Piece = SlotWriter::Piece;
    std::array<Piece, 3> pieces{Piece{first, nullptr, kBlockSize},
                                Piece{SlotWriter::kNoSlot, src, static_cast<std::uint32_t>(whole)}};
    std::size_t count = 2;
    if (whole < n) {
      CXLKV_ASSIGN_OR_RETURN(const std::uint32_t tail, w.Acquire());
      std::memcpy(ch.slot(tail), src + whole, n - whole);
      std::memset(ch.slot(tail) + (n - whole), 0, kBlockSize - (n - whole));
      pieces[count++] = Piece{tail, nullptr, kBlockSize};
    }
    return w.Stream(dev_offset, std::span(pieces).first(count));
  }

  constexpr std::uint32_t kNone = UINT32_MAX;
  std::uint32_t slot = first;     // the staging slot taking data, or kNone
  std::uint64_t piece_start = 0;  // record offset of its first byte
  std::size_t fill = kRecordDataOffset;
  std::uint32_t first_len = 0;    // set when the first slot stops taking data
  // A direct run that starts the data: its first bytes go out with the header block, one
  // contiguous write (so the file system converts one range, not two around a gap).
  const std::byte* lead = nullptr;
  std::uint32_t lead_len = 0;
  std::uint64_t pos = kRecordDataOffset;  // record offset of the next data byte

  // Ends the current staging piece: zero padding to a block, then submitted (the first slot's
  // waits for the header).
  auto close_piece = [&]() -> Status {
    const auto len = static_cast<std::uint32_t>(RoundUpToBlock(fill));
    std::memset(ch.slot(slot) + fill, 0, len - fill);
    const std::uint32_t closing = slot;
    slot = kNone;
    if (closing == first) {
      first_len = len;
      return Status::Ok();
    }
    return w.Submit(closing, len, dev_offset + piece_start);
  };
  auto stage = [&](const std::byte* src, std::size_t n) -> Status {
    while (n > 0) {
      if (slot != kNone && fill == slot_size) CXLKV_RETURN_IF_ERROR(close_piece());
      if (slot == kNone) {
        CXLKV_ASSIGN_OR_RETURN(slot, w.Acquire());
        piece_start = pos;
        fill = 0;
      }
      const std::size_t m = std::min({n, std::size_t{slot_size} - fill, kHashStride});
      std::memcpy(ch.slot(slot) + fill, src, m);
      hasher.Update(ch.slot(slot) + fill, m);
      fill += m;
      pos += m;
      src += m;
      n -= m;
    }
    return Status::Ok();
  };
  // n bytes (a block multiple) from block-aligned src to the block-aligned record offset pos.
  auto direct = [&](const std::byte* src, std::size_t n) -> Status {
    std::size_t done = 0;
    if (slot == first && fill == kRecordDataOffset) {
      lead = src;
      lead_len = static_cast<std::uint32_t>(
          std::min<std::size_t>(n, kMaxDirectWrite - kRecordDataOffset));
      slot = kNone;
      first_len = kRecordDataOffset;
      pos += lead_len;
      done = lead_len;
    } else if (slot != kNone) {
      CXLKV_RETURN_IF_ERROR(close_piece());  // ends on a block boundary
    }
    while (done < n) {
      const auto len =
          static_cast<std::uint32_t>(std::min<std::size_t>(kMaxDirectWrite, n - done));
      CXLKV_ASSIGN_OR_RETURN(const std::uint32_t ticket, w.Acquire());
      CXLKV_RETURN_IF_ERROR(w.SubmitFrom(ticket, src + done, len, dev_offset + pos));
      pos += len;
      done += len;
    }
    // The device has them; hash the same bytes meanwhile (the caller keeps them unchanged).
    CXLKV_RETURN_IF_ERROR(w.Flush());
    hasher.Update(src, n);
    return Status::Ok();
  };

  for (const iovec& part : parts) {
    const auto* src = static_cast<const std::byte*>(part.iov_base);
    std::size_t n = part.iov_len;
    while (n > 0) {
      const auto addr = reinterpret_cast<std::uintptr_t>(src);
      const std::size_t in_block = pos % kBlockSize;
      if ((addr - pos) % kBlockSize != 0) {  // never aligned together: all of it through staging
        CXLKV_RETURN_IF_ERROR(stage(src, n));
        break;
      }
      if (in_block != 0 || n < kBlockSize) {  // up to the next block boundary
        const std::size_t m = std::min<std::size_t>(n, kBlockSize - in_block);
        CXLKV_RETURN_IF_ERROR(stage(src, m));
        src += m;
        n -= m;
        continue;
      }
      const std::size_t m = n / kBlockSize * kBlockSize;
      CXLKV_RETURN_IF_ERROR(direct(src, m));
      src += m;
      n -= m;
    }
  }
  if (slot != kNone) CXLKV_RETURN_IF_ERROR(close_piece());

  CXLKV_ASSIGN_OR_RETURN(h.payload_checksum, hasher.Digest());
  EncodeRecordHeader(h, {head, RecordHeader::kEncodedSize});
  if (lead != nullptr) {
    // A large write already: to the device at once, not after the batch's next records.
    CXLKV_RETURN_IF_ERROR(w.SubmitHeaded(first, first_len, lead, lead_len, dev_offset));
    return w.Flush();
  }
  return w.Submit(first, first_len, dev_offset);
}

}  // namespace cxlkv::internal::spill
