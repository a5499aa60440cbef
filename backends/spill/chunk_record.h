// The spill log's on-disk format: superblock, segment header, chunk record header, segment
// summary and trailer, and the 64-bit chunk location. segment_log.h describes the layout as a
// whole; this file says how each piece is encoded and checked.
//
// Every structure is encoded field by field, little-endian, into a byte buffer (never by
// casting a struct onto the bytes), so the format does not depend on padding or on the
// compiler, and every decoder checks what it reads: magic, version, checksum (XXH3-64) and
// that sizes and offsets are in range. A decoder that returns an error never hands out a
// partly filled structure.
//
// Thread-safety: pure functions and values; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "backends/key.h"
#include "cxlkv/status.h"

namespace cxlkv::internal::spill {

// The unit of every offset, length and O_DIRECT transfer in the log.
inline constexpr std::uint32_t kBlockSize = 4096;
// Two superblock copies (blocks 0 and 1); segments start at kDataOffset.
inline constexpr std::uint64_t kSuperblockCopies = 2;
inline constexpr std::uint64_t kDataOffset = 64 * 1024;
// Version 2: a record's data starts on the block after its header block, so that block-aligned
// sources and destinations move straight to and from the device. Version 1 (header, key, meta
// and data contiguous) is refused, with a message naming both versions.
inline constexpr std::uint32_t kFormatVersion = 2;
// Metadata stored with a chunk (the store's ChunkMeta).
inline constexpr std::size_t kMaxMetaSize = 64;

inline constexpr std::uint64_t BlocksFor(std::uint64_t bytes) {
  return (bytes + kBlockSize - 1) / kBlockSize;
}
inline constexpr std::uint64_t RoundUpToBlock(std::uint64_t bytes) {
  return BlocksFor(bytes) * kBlockSize;
}

// ---- chunk location: what the store keeps in its 8-byte data field ----
//
//   bits 63..40  segment index                 (24 bits: up to 16 Mi segments)
//   bits 39..20  first block of the record      (20 bits: segments up to 4 GiB)
//   bits 19..0   record length in blocks        (20 bits)
// The length is in the location so that a read is a single I/O of the whole record. No valid
// location is 0: a record never starts at block 0 (the segment header's).
struct ChunkLocation {
  static constexpr unsigned kSegmentBits = 24;
  static constexpr unsigned kBlockBits = 20;
  static constexpr std::uint64_t kMaxSegments = std::uint64_t{1} << kSegmentBits;
  static constexpr std::uint64_t kMaxBlocksPerSegment = std::uint64_t{1} << kBlockBits;

  std::uint32_t segment = 0;
  std::uint32_t block = 0;   // within the segment
  std::uint32_t blocks = 0;  // the record's length, padding included

  std::uint64_t Pack() const {
    return (std::uint64_t{segment} << (2 * kBlockBits)) | (std::uint64_t{block} << kBlockBits) |
           std::uint64_t{blocks};
  }
  static ChunkLocation Unpack(std::uint64_t location) {
    constexpr std::uint64_t kMask = kMaxBlocksPerSegment - 1;
    return ChunkLocation{static_cast<std::uint32_t>(location >> (2 * kBlockBits)),
                         static_cast<std::uint32_t>((location >> kBlockBits) & kMask),
                         static_cast<std::uint32_t>(location & kMask)};
  }
  friend bool operator==(const ChunkLocation&, const ChunkLocation&) = default;
};

// ---- superblock (blocks 0 and 1) ----
// Two copies. Each Open writes the new one into the copy that does not hold the newest valid
// superblock, so a torn write leaves the other intact. The epoch counts opens: each Open
// writes a higher epoch and syncs it before writing anything else (one more than the newest
// valid copy, two more when the other copy is damaged and may have held a higher one), and
// segment sequence numbers are (epoch << 32 | n), so a sequence number is never reused, not
// even after a crash that lost unsynced writes.
struct Superblock {
  static constexpr std::size_t kEncodedSize = 72;
  std::uint64_t log_id = 0;        // random, fixed at format time; every block carries it
  std::uint64_t capacity = 0;      // bytes of the file or device the log may use
  std::uint64_t segment_size = 0;  // bytes, a multiple of kBlockSize
  std::uint64_t segment_count = 0;
  std::uint64_t epoch = 0;
};
void EncodeSuperblock(const Superblock& sb, std::span<std::byte> block);
// Corruption when the block is not a valid superblock (wrong magic, version or checksum,
// inconsistent geometry).
Result<Superblock> DecodeSuperblock(std::span<const std::byte> block);
// The format version of a block that is an intact superblock (magic and checksum hold) of a
// version other than this build's; 0 otherwise. Open uses it to say "old log", not "damage".
std::uint32_t OtherSuperblockVersion(std::span<const std::byte> block);

// ---- segment header (block 0 of a segment in use; zeros once the segment is evicted) ----
struct SegmentHeader {
  static constexpr std::size_t kEncodedSize = 48;
  std::uint64_t log_id = 0;
  std::uint64_t seq = 0;    // (epoch << 32 | n): orders segments, ties records to them
  std::uint32_t index = 0;  // the segment's position on the device
  std::uint64_t segment_size = 0;
};
void EncodeSegmentHeader(const SegmentHeader& h, std::span<std::byte> block);
Result<SegmentHeader> DecodeSegmentHeader(std::span<const std::byte> block);

// ---- chunk record: a header block, then the data from the next block boundary ----
//
//   block 0 of the record   header (80 B), key, meta, zero padding to the block's end
//   blocks 1..              data, zero padding to a whole block (none when data is empty)
//
// So a record of a block-multiple chunk costs one block more than its data (as in version 1),
// and its data can be written from (and read into) block-aligned memory with no staging copy.
// The header names its own place (log, segment, sequence number, block, length), so a record
// read from the wrong place, from an older use of the segment or from another log is refused;
// the payload checksum covers key, meta and data; the header checksum covers the header,
// payload checksum included.
struct RecordHeader {
  static constexpr std::size_t kEncodedSize = 80;
  std::uint64_t log_id = 0;
  std::uint64_t seq = 0;
  std::uint32_t segment = 0;
  std::uint32_t block = 0;
  std::uint32_t blocks = 0;
  std::uint16_t key_size = 0;
  std::uint16_t meta_size = 0;
  std::uint64_t data_size = 0;
  KeyHash key_hash;
  std::uint64_t payload_checksum = 0;  // XXH3-64 of key, meta, data in that order
};
// Where a record's data starts, in bytes from the record's start.
inline constexpr std::uint64_t kRecordDataOffset = kBlockSize;
// Blocks of a record holding data_size bytes of data: the header block and the data's blocks.
inline constexpr std::uint64_t RecordBlocks(std::uint64_t data_size) {
  return 1 + BlocksFor(data_size);
}
void EncodeRecordHeader(const RecordHeader& h, std::span<std::byte> out);
// Corruption on a bad magic, version or checksum, or sizes that do not fit `blocks`
// (key > 150 bytes, meta > 64 bytes, blocks != RecordBlocks(data size)).
Result<RecordHeader> DecodeRecordHeader(std::span<const std::byte> in);

// ---- segment summary (ends a sealed segment, just before its trailer) ----
// One variable-length entry per record, in record order: enough for recovery to tell the store
// about every chunk (key, size, meta, location) without reading chunk data.
struct SummaryEntry {
  std::uint32_t block = 0;
  std::uint32_t blocks = 0;
  std::uint64_t data_size = 0;
  KeyHash key_hash;
  std::string_view key;             // points into the summary bytes when decoded
  std::span<const std::byte> meta;  // likewise
};
inline constexpr std::size_t kSummaryEntryFixedSize = 36;
inline std::size_t SummaryEntrySize(std::size_t key_size, std::size_t meta_size) {
  return kSummaryEntryFixedSize + key_size + meta_size;
}
// Writes one entry at out[0, SummaryEntrySize(...)).
void EncodeSummaryEntry(const SummaryEntry& e, std::span<std::byte> out);
// Decodes the entry at in[*pos] and advances *pos; Corruption when it runs past the end or its
// sizes are out of range.
Result<SummaryEntry> DecodeSummaryEntry(std::span<const std::byte> in, std::size_t* pos);

// ---- segment trailer (the last block of a sealed segment) ----
struct SegmentTrailer {
  static constexpr std::size_t kEncodedSize = 72;
  std::uint64_t log_id = 0;
  std::uint64_t seq = 0;
  std::uint32_t index = 0;
  std::uint32_t chunk_count = 0;
  std::uint64_t records_end = 0;       // bytes from the segment start to the last record's end
  std::uint64_t summary_offset = 0;    // bytes from the segment start; block aligned
  std::uint64_t summary_size = 0;      // bytes of entries
  std::uint64_t summary_checksum = 0;  // XXH3-64 of the entries
};
void EncodeSegmentTrailer(const SegmentTrailer& t, std::span<std::byte> block);
Result<SegmentTrailer> DecodeSegmentTrailer(std::span<const std::byte> block);
// Whether a decoded trailer's offsets fit a segment of segment_size bytes: records end on a
// block boundary after block 0 and before the summary, which ends where the trailer starts.
bool TrailerFitsSegment(const SegmentTrailer& t, std::uint64_t segment_size);

// A sealed segment's summary (the trailer's summary_size bytes at its summary_offset), as
// recovery reads it: Corruption unless its checksum holds and its entries, each with a key
// whose XXH3-128 is the entry's key hash, lie in record order inside the records area without
// overlapping, as many as the trailer says. The entries' key and meta point into `summary`.
Result<std::vector<SummaryEntry>> DecodeSummary(std::span<const std::byte> summary,
                                                const SegmentTrailer& t);

// XXH3-64 of `bytes`, the checksum used throughout the format.
std::uint64_t Checksum(std::span<const std::byte> bytes);

}  // namespace cxlkv::internal::spill
