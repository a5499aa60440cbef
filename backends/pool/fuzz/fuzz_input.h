// The input formats of the pool fuzz targets, shared by the targets and the corpus generator.
//
// Raw bytes almost never get past a checksum, so both targets read most of their input as
// instructions: field values the target encodes with the real encoders (valid checksums), and
// byte patches laid over the result. The fuzzer then mutates values, not hashes, and reaches
// the range checks, the span walk, header validation and conflict settling.
//
// format_fuzz: byte 0 picks a mode (FormatMode), the rest is its payload.
//
// scan_fuzz: an 8-byte prefix, then commands until the input ends.
//   prefix[0]  region slabs: 16 + b % 49 (64 KiB slabs, so 1..4 MiB)
//   prefix[1]  exact chunk sizes: bit i adds kScanExactSizes[i] (those above the largest slot
//              are left out)
//   prefix[2]  bits 0-1: growth factor (kScanGrowth); bits 2-3: largest slot (kScanMaxSlot);
//              bits 4-7: extra 256-byte units past the last whole slab (a ragged region)
//   prefix[3]  ScanFlag bits
//   prefix[4..8) superblock generation (little-endian)
//   Commands (ScanOp, the opcode byte modulo kScanOpCount), each with fixed-size arguments; a
//   command cut short by the end of the input is dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backends/pool/pool_format.h"

// A promise a target checks: broken, it traps, which libFuzzer reports as a crash with the
// input saved (and the corpus replay tests as a failed test).
#define CHECK(cond)                  \
  do {                               \
    if (!(cond)) __builtin_trap();   \
  } while (0)

namespace cxlkv::internal::fuzz {

// Reads little-endian values off the front of the input; past the end it yields zeros.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::size_t left() const { return size_ - pos_; }
  bool Has(std::size_t n) const { return left() >= n; }
  std::uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint16_t U16() { return static_cast<std::uint16_t>(U8() | U8() << 8); }
  std::uint32_t U32() { return U16() | std::uint32_t{U16()} << 16; }
  std::uint64_t U64() { return U32() | std::uint64_t{U32()} << 32; }
  // Up to n bytes (fewer at the end of the input).
  const std::uint8_t* Bytes(std::size_t n, std::size_t* got) {
    *got = n < left() ? n : left();
    const std::uint8_t* p = data_ + pos_;
    pos_ += *got;
    return p;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Appends little-endian values: the corpus generator writes inputs with it.
class Writer {
 public:
  Writer& U8(std::uint64_t v) { return Put(v, 1); }
  Writer& U16(std::uint64_t v) { return Put(v, 2); }
  Writer& U32(std::uint64_t v) { return Put(v, 4); }
  Writer& U64(std::uint64_t v) { return Put(v, 8); }
  Writer& Raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }

 private:
  Writer& Put(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  std::vector<std::uint8_t> bytes_;
};

// --- format_fuzz ---
enum FormatMode : std::uint8_t {
  kFormatRaw = 0,         // the payload as a superblock pair, a slab record, a header, a snapshot
  kFormatSuperblock = 1,  // superblock fields: encoded, decoded, re-encoded
  kFormatSnapshot = 2,    // u64 generation, then 20-byte records: encoded, damaged, decoded
  kFormatHeader = 3,      // header fields: committed with its check, then damaged
  kFormatModeCount = 4,
};

// --- scan_fuzz ---
inline constexpr std::size_t kScanSlabSize = std::size_t{64} << 10;
inline constexpr std::size_t kScanPrefixSize = 8;
inline constexpr std::size_t kScanExactSizes[8] = {1000,  4096,  20000,  65536,
                                                   98304, 100000, 300000, 1u << 20};
inline constexpr double kScanGrowth[4] = {1.25, 2.0, 1.5, 1.05};
inline constexpr std::size_t kScanMaxSlot[4] = {std::size_t{1} << 20, std::size_t{64} << 10,
                                                std::size_t{256} << 10, std::size_t{192} << 10};

// The geometry prefix[0..3) picks: 64 KiB slabs, slots from 256 B in 256-byte steps (as the
// store asks for a durable tier, whose refs count 256-byte units).
inline PoolGeometry ScanGeometry(std::uint8_t slabs_byte, std::uint8_t exact_bits,
                                 std::uint8_t shape) {
  const std::size_t slabs = 16 + slabs_byte % 49;
  PoolGeometry g;
  g.slab_size = kScanSlabSize;
  g.region_size = slabs * kScanSlabSize + (shape >> 4) * std::size_t{256};
  g.reserved_slabs = ReservedSlabsFor(slabs, kScanSlabSize);
  g.slot_alignment = 256;
  g.min_slot_size = 256;
  g.max_slot_size = kScanMaxSlot[(shape >> 2) & 3];
  g.growth_factor = kScanGrowth[shape & 3];
  for (int i = 0; i < 8; ++i) {
    if ((exact_bits >> i & 1) && kScanExactSizes[i] <= g.max_slot_size) {
      g.exact_sizes.push_back(kScanExactSizes[i]);
    }
  }
  return g;
}

enum ScanFlag : std::uint8_t {
  kScanCurrentInB = 1,    // the newest superblock is B; A holds generation - 1
  kScanOnlyOneCopy = 2,   // the other superblock stays zero
  kScanDurabilityBg = 4,  // background durability (the scan must not care)
  kScanNoSnapshot = 8,    // ScanOptions::use_snapshot = false
  kScanThreads = 16,      // scan headers on 3 threads
  kScanShortImage = 32,   // the image ends one slab before the region does: Corruption
  kScanFormat1 = 64,      // a format-1 pool: zeroed free header slots are not wiped ones
};

enum ScanOp : std::uint8_t {
  // u8 first_slab, u8 class index (mod the class count): every slab record of that class's
  // span, clipped to the region.
  kScanSpan = 0,
  // u8 slab, u8 head, u32 slot_size: one record with a valid check word.
  kScanRecord = 1,
  // u16 header ref (mod the region's 256-byte units), u8 key_len, u8 key seed, u8 meta_len,
  // u32 size, u16 data ref, u16 sequence, u8 commit (ScanCommit, mod kScanCommitCount):
  // a header; key byte i is seed + i, so equal (len, seed) pairs are equal keys.
  kScanHeader = 2,
  // u32 offset (mod the image size), u8 length, that many bytes: laid over the image as is.
  kScanPatch = 3,
  // u32 byte offset (mod the region), u8 generation delta (0: the superblock's), u8 count,
  // then count records of u8 key_len, u8 key seed, u16 header ref, u16 data ref, u32 size:
  // an index snapshot written there, and both superblocks rewritten clean, naming it.
  kScanSnapshot = 4,
  kScanOpCount = 5,
};

enum ScanCommit : std::uint8_t {
  kCommitValid = 0,    // committed, with the right check
  kCommitTorn = 1,     // committed, with a check off by one bit
  kCommitPending = 2,  // written, never committed
  kCommitFree = 3,
  kCommitCount = 4,
};

// --- spill_record_fuzz: the spill log's block decoders (backends/spill/chunk_record.h) ---
// Byte 0 picks a mode (RecordMode), the rest is its payload.
enum RecordMode : std::uint8_t {
  kRecordRaw = 0,      // the payload as one block: record header, segment header, trailer,
                       // superblock decoders on the same bytes
  // u64 log id, u64 seq, u32 segment, u32 block, u32 blocks, u16 key, u16 meta, u64 data,
  // u64 hash lo, u64 hash hi, u64 payload checksum: a record header encoded (valid
  // checksum), then patches of (u8 offset mod 80, u8 value) until the input ends.
  kRecordFields = 1,
  // u32 segment blocks (mod 2^20, so segments up to 4 GiB), u32 chunk count, u64 records end,
  // u64 summary offset, u64 summary size: a trailer encoded, then patches as above (mod 72).
  kRecordTrailer = 2,
  kRecordModeCount = 3,
};

// --- spill_summary_fuzz: a sealed segment's summary as recovery decodes it ---
//   byte 0     flags (SummaryFlag)
//   bytes 1-4  records end, in blocks (u32)
//   then, with kSummaryRaw, the rest is the summary's bytes; else entries of
//   u32 block, u32 blocks, u32 data size, u8 key length, u8 key seed, u8 meta length,
//   encoded with the real encoder (key byte i is seed + i), until the input ends.
enum SummaryFlag : std::uint8_t {
  kSummaryRaw = 1,          // the bytes as given (the checksum is made to match)
  kSummaryBadChecksum = 2,  // the trailer's checksum off by one
  kSummaryCountOff = 4,     // the trailer's chunk count one more than the entries
  kSummaryBadHash = 8,      // every key hash off by one
};

}  // namespace cxlkv::internal::fuzz
