// A chunk record's trip through an I/O channel: WriteRecord queues a chunk's writes, header
// block last, straight from the caller's memory where it is block-aligned and through staging
// slots elsewhere, hashing every byte once; ReadRecords reads records back
// and verifies each against what its location and caller expect, never handing out unverified
// bytes. The record format itself is chunk_record.h's.
//
// Internal to backends/spill/. Thread-safety: as the channel's (one thread at a time).
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "backends/spill/chunk_record.h"
#include "backends/spill/io_channel.h"
#include "cxlkv/status.h"

namespace cxlkv::internal::spill {

// One record to read and verify.
struct RecordJob {
  ChunkLocation loc;
  std::uint64_t dev_offset = 0;
  std::uint64_t seq = 0;
  std::string_view expected_key;  // empty: any key (recovery scan)
  std::span<std::byte> dst;       // data destination; empty with verify_only
  std::span<std::byte> meta_dst;
  bool verify_only = false;
  // Results.
  Status status;
  RecordHeader header;
  std::string key;  // filled when verify_only (the scan needs it)
  std::array<std::byte, kMaxMetaSize> meta{};
};

// Reads every job whose status is OK, keeping the channel's slots busy, and verifies it: the
// record header (checksum, log, segment, sequence number, position, length), the key and the
// payload checksum. A mismatch is Corruption in the job's status. `max_device_bytes` caps the
// bytes the device holds at once (PipelinedRead's; 0: the slots alone limit them).
void ReadRecords(IoChannel& ch, std::uint64_t log_id, std::span<RecordJob> jobs,
                 std::uint64_t max_device_bytes = 0);

// Queues the writes of the record `h` describes (its payload checksum is filled in) at
// dev_offset on w; the caller waits with w.Finish(), and keeps `parts` unchanged until then:
// their block-aligned blocks are written from where they lie (SlotWriter::SubmitFrom).
Status WriteRecord(IoChannel& ch, SlotWriter& w, std::uint64_t dev_offset, RecordHeader& h,
                   std::string_view key, std::span<const std::byte> meta,
                   std::span<const iovec> parts);

// A location as the log's messages print it (0x...).
std::string HexLocation(std::uint64_t location);

}  // namespace cxlkv::internal::spill
