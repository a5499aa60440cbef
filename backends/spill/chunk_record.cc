#include "backends/spill/chunk_record.h"

#include <bit>
#include <cstring>
#include <string>
#include <type_traits>

#include "cxlkv/store.h"
#include "util/xxh3.h"

namespace cxlkv::internal::spill {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the spill format is little-endian and encoded with memcpy");
static_assert(kMaxMetaSize == ChunkMeta::kMaxSize, "the log stores the store's chunk metadata");
static_assert(RecordHeader::kEncodedSize + kMaxKeySize + kMaxMetaSize <= kRecordDataOffset,
              "header, key and meta fit a record's first block");
static_assert(kDataOffset >= kSuperblockCopies * kBlockSize && kDataOffset % kBlockSize == 0);

constexpr std::uint64_t kSuperblockMagic = 0x314c536b766c7863ULL;  // "cxlkvSL1"
constexpr std::uint32_t kSegmentMagic = 0x47534b43;                // "CKSG"
constexpr std::uint32_t kRecordMagic = 0x43524b43;                 // "CKRC"
constexpr std::uint32_t kTrailerMagic = 0x52544b43;                // "CKTR"

// Appends fields at a moving position. The callers size their buffers from kEncodedSize, so an
// overrun is a programming error; the span's bounds are still never exceeded.
class Encoder {
 public:
  explicit Encoder(std::span<std::byte> out) : out_(out) {}
  template <typename T>
  void Put(T value) {
    static_assert(std::is_integral_v<T>);
    if (pos_ + sizeof(T) <= out_.size()) std::memcpy(out_.data() + pos_, &value, sizeof(T));
    pos_ += sizeof(T);
  }
  void PutHash(const KeyHash& h) {
    Put(h.lo);
    Put(h.hi);
  }
  void PutBytes(const void* src, std::size_t n) {
    if (n != 0 && pos_ + n <= out_.size()) std::memcpy(out_.data() + pos_, src, n);
    pos_ += n;
  }
  // Writes XXH3-64 of everything so far.
  void PutChecksum() { Put(Checksum(out_.first(pos_))); }
  std::size_t pos() const { return pos_; }

 private:
  std::span<std::byte> out_;
  std::size_t pos_ = 0;
};

class Decoder {
 public:
  Decoder(std::span<const std::byte> in, std::size_t pos = 0) : in_(in), pos_(pos) {}
  bool Has(std::size_t n) const { return pos_ <= in_.size() && n <= in_.size() - pos_; }
  template <typename T>
  T Get() {
    T value{};
    if (Has(sizeof(T))) std::memcpy(&value, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  KeyHash GetHash() {
    KeyHash h;
    h.lo = Get<std::uint64_t>();
    h.hi = Get<std::uint64_t>();
    return h;
  }
  // True when the stored checksum (the next 8 bytes) matches everything before it.
  bool ChecksumMatches() {
    const std::size_t covered = pos_;
    return Has(8) && Get<std::uint64_t>() == Checksum(in_.first(covered));
  }
  std::size_t pos() const { return pos_; }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_;
};

Status TooShort(const char* what, std::size_t size, std::size_t need) {
  return Status::Corruption(std::string(what) + " of " + std::to_string(size) +
                            " bytes is shorter than " + std::to_string(need));
}

}  // namespace

std::uint64_t Checksum(std::span<const std::byte> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

void EncodeSuperblock(const Superblock& sb, std::span<std::byte> block) {
  Encoder e(block);
  e.Put(kSuperblockMagic);
  e.Put(kFormatVersion);
  e.Put(kBlockSize);
  e.Put(sb.log_id);
  e.Put(sb.capacity);
  e.Put(sb.segment_size);
  e.Put(kDataOffset);
  e.Put(sb.segment_count);
  e.Put(sb.epoch);
  e.PutChecksum();
}

Result<Superblock> DecodeSuperblock(std::span<const std::byte> block) {
  if (block.size() < Superblock::kEncodedSize) {
    return TooShort("superblock", block.size(), Superblock::kEncodedSize);
  }
  Decoder d(block);
  if (d.Get<std::uint64_t>() != kSuperblockMagic) return Status::Corruption("no superblock magic");
  const auto version = d.Get<std::uint32_t>();
  const auto block_size = d.Get<std::uint32_t>();
  Superblock sb;
  sb.log_id = d.Get<std::uint64_t>();
  sb.capacity = d.Get<std::uint64_t>();
  sb.segment_size = d.Get<std::uint64_t>();
  const auto data_offset = d.Get<std::uint64_t>();
  sb.segment_count = d.Get<std::uint64_t>();
  sb.epoch = d.Get<std::uint64_t>();
  if (!d.ChecksumMatches()) return Status::Corruption("superblock checksum mismatch");
  // A valid checksum over values this version cannot read is a newer format, not damage, but
  // it is still unreadable here: say which.
  if (version != kFormatVersion) {
    return Status::Corruption("a spill log of format version " + std::to_string(version) +
                              "; this build reads format version " +
                              std::to_string(kFormatVersion) +
                              " only (record data starts on a block boundary since version 2)");
  }
  if (block_size != kBlockSize || data_offset != kDataOffset) {
    return Status::Corruption("superblock of block size " + std::to_string(block_size) +
                              " and data offset " + std::to_string(data_offset) +
                              "; this build reads " + std::to_string(kBlockSize) + " and " +
                              std::to_string(kDataOffset));
  }
  if (sb.segment_size == 0 || sb.segment_size % kBlockSize != 0 ||
      sb.segment_size / kBlockSize > ChunkLocation::kMaxBlocksPerSegment || sb.segment_count == 0 ||
      sb.segment_count > ChunkLocation::kMaxSegments ||
      kDataOffset + sb.segment_count * sb.segment_size > sb.capacity) {
    return Status::Corruption("superblock geometry out of range: capacity " +
                              std::to_string(sb.capacity) + ", " +
                              std::to_string(sb.segment_count) + " segments of " +
                              std::to_string(sb.segment_size) + " bytes");
  }
  return sb;
}

std::uint32_t OtherSuperblockVersion(std::span<const std::byte> block) {
  if (block.size() < Superblock::kEncodedSize) return 0;
  Decoder d(block);
  if (d.Get<std::uint64_t>() != kSuperblockMagic) return 0;
  const auto version = d.Get<std::uint32_t>();
  Decoder sum(block, Superblock::kEncodedSize - 8);
  if (!sum.ChecksumMatches() || version == kFormatVersion) return 0;
  return version;
}

void EncodeSegmentHeader(const SegmentHeader& h, std::span<std::byte> block) {
  Encoder e(block);
  e.Put(kSegmentMagic);
  e.Put(static_cast<std::uint16_t>(kFormatVersion));
  e.Put(std::uint16_t{0});
  e.Put(h.log_id);
  e.Put(h.seq);
  e.Put(h.index);
  e.Put(std::uint32_t{0});
  e.Put(h.segment_size);
  e.PutChecksum();
}

Result<SegmentHeader> DecodeSegmentHeader(std::span<const std::byte> block) {
  if (block.size() < SegmentHeader::kEncodedSize) {
    return TooShort("segment header", block.size(), SegmentHeader::kEncodedSize);
  }
  Decoder d(block);
  if (d.Get<std::uint32_t>() != kSegmentMagic) return Status::Corruption("no segment magic");
  const auto version = d.Get<std::uint16_t>();
  d.Get<std::uint16_t>();
  SegmentHeader h;
  h.log_id = d.Get<std::uint64_t>();
  h.seq = d.Get<std::uint64_t>();
  h.index = d.Get<std::uint32_t>();
  d.Get<std::uint32_t>();
  h.segment_size = d.Get<std::uint64_t>();
  if (!d.ChecksumMatches()) return Status::Corruption("segment header checksum mismatch");
  if (version != kFormatVersion) {
    return Status::Corruption("segment header of version " + std::to_string(version));
  }
  return h;
}

void EncodeRecordHeader(const RecordHeader& h, std::span<std::byte> out) {
  Encoder e(out);
  e.Put(kRecordMagic);
  e.Put(static_cast<std::uint16_t>(kFormatVersion));
  e.Put(static_cast<std::uint16_t>(RecordHeader::kEncodedSize));
  e.Put(h.log_id);
  e.Put(h.seq);
  e.Put(h.segment);
  e.Put(h.block);
  e.Put(h.blocks);
  e.Put(h.key_size);
  e.Put(h.meta_size);
  e.Put(h.data_size);
  e.PutHash(h.key_hash);
  e.Put(h.payload_checksum);
  e.PutChecksum();
}

Result<RecordHeader> DecodeRecordHeader(std::span<const std::byte> in) {
  if (in.size() < RecordHeader::kEncodedSize) {
    return TooShort("record header", in.size(), RecordHeader::kEncodedSize);
  }
  Decoder d(in);
  if (d.Get<std::uint32_t>() != kRecordMagic) return Status::Corruption("no record magic");
  const auto version = d.Get<std::uint16_t>();
  const auto header_size = d.Get<std::uint16_t>();
  RecordHeader h;
  h.log_id = d.Get<std::uint64_t>();
  h.seq = d.Get<std::uint64_t>();
  h.segment = d.Get<std::uint32_t>();
  h.block = d.Get<std::uint32_t>();
  h.blocks = d.Get<std::uint32_t>();
  h.key_size = d.Get<std::uint16_t>();
  h.meta_size = d.Get<std::uint16_t>();
  h.data_size = d.Get<std::uint64_t>();
  h.key_hash = d.GetHash();
  h.payload_checksum = d.Get<std::uint64_t>();
  if (!d.ChecksumMatches()) return Status::Corruption("record header checksum mismatch");
  if (version != kFormatVersion || header_size != RecordHeader::kEncodedSize) {
    return Status::Corruption("record header of version " + std::to_string(version) + ", size " +
                              std::to_string(header_size));
  }
  // A header block, then the data's blocks: a record is never longer than it needs.
  if (h.key_size == 0 || h.key_size > kMaxKeySize || h.meta_size > kMaxMetaSize || h.blocks == 0 ||
      h.data_size > std::uint64_t{h.blocks} * kBlockSize || RecordBlocks(h.data_size) != h.blocks) {
    return Status::Corruption("record header sizes out of range: key " +
                              std::to_string(h.key_size) + ", meta " + std::to_string(h.meta_size) +
                              ", data " + std::to_string(h.data_size) + " in " +
                              std::to_string(h.blocks) + " blocks");
  }
  return h;
}

void EncodeSummaryEntry(const SummaryEntry& entry, std::span<std::byte> out) {
  Encoder e(out);
  e.Put(entry.block);
  e.Put(entry.blocks);
  e.Put(entry.data_size);
  e.PutHash(entry.key_hash);
  e.Put(static_cast<std::uint16_t>(entry.key.size()));
  e.Put(static_cast<std::uint16_t>(entry.meta.size()));
  e.PutBytes(entry.key.data(), entry.key.size());
  e.PutBytes(entry.meta.data(), entry.meta.size());
}

Result<SummaryEntry> DecodeSummaryEntry(std::span<const std::byte> in, std::size_t* pos) {
  Decoder d(in, *pos);
  if (!d.Has(kSummaryEntryFixedSize)) {
    return Status::Corruption("summary entry at byte " + std::to_string(*pos) +
                              " runs past the summary's end");
  }
  SummaryEntry e;
  e.block = d.Get<std::uint32_t>();
  e.blocks = d.Get<std::uint32_t>();
  e.data_size = d.Get<std::uint64_t>();
  e.key_hash = d.GetHash();
  const auto key_size = d.Get<std::uint16_t>();
  const auto meta_size = d.Get<std::uint16_t>();
  if (key_size == 0 || key_size > kMaxKeySize || meta_size > kMaxMetaSize ||
      !d.Has(std::size_t{key_size} + meta_size) || e.blocks == 0 ||
      e.data_size > std::uint64_t{e.blocks} * kBlockSize ||
      RecordBlocks(e.data_size) != e.blocks) {
    return Status::Corruption("summary entry at byte " + std::to_string(*pos) +
                              " has sizes out of range");
  }
  const std::size_t key_at = d.pos();
  e.key = std::string_view(reinterpret_cast<const char*>(in.data() + key_at), key_size);
  e.meta = in.subspan(key_at + key_size, meta_size);
  *pos = key_at + key_size + meta_size;
  return e;
}

void EncodeSegmentTrailer(const SegmentTrailer& t, std::span<std::byte> block) {
  Encoder e(block);
  e.Put(kTrailerMagic);
  e.Put(static_cast<std::uint16_t>(kFormatVersion));
  e.Put(std::uint16_t{0});
  e.Put(t.log_id);
  e.Put(t.seq);
  e.Put(t.index);
  e.Put(t.chunk_count);
  e.Put(t.records_end);
  e.Put(t.summary_offset);
  e.Put(t.summary_size);
  e.Put(t.summary_checksum);
  e.PutChecksum();
}

Result<SegmentTrailer> DecodeSegmentTrailer(std::span<const std::byte> block) {
  if (block.size() < SegmentTrailer::kEncodedSize) {
    return TooShort("segment trailer", block.size(), SegmentTrailer::kEncodedSize);
  }
  Decoder d(block);
  if (d.Get<std::uint32_t>() != kTrailerMagic) return Status::Corruption("no trailer magic");
  const auto version = d.Get<std::uint16_t>();
  d.Get<std::uint16_t>();
  SegmentTrailer t;
  t.log_id = d.Get<std::uint64_t>();
  t.seq = d.Get<std::uint64_t>();
  t.index = d.Get<std::uint32_t>();
  t.chunk_count = d.Get<std::uint32_t>();
  t.records_end = d.Get<std::uint64_t>();
  t.summary_offset = d.Get<std::uint64_t>();
  t.summary_size = d.Get<std::uint64_t>();
  t.summary_checksum = d.Get<std::uint64_t>();
  if (!d.ChecksumMatches()) return Status::Corruption("segment trailer checksum mismatch");
  if (version != kFormatVersion) {
    return Status::Corruption("segment trailer of version " + std::to_string(version));
  }
  return t;
}

bool TrailerFitsSegment(const SegmentTrailer& t, std::uint64_t segment_size) {
  return segment_size >= 2 * std::uint64_t{kBlockSize} && t.records_end % kBlockSize == 0 &&
         t.records_end >= kBlockSize && t.summary_offset % kBlockSize == 0 &&
         t.records_end <= t.summary_offset && t.summary_size <= segment_size &&
         t.summary_offset <= segment_size &&
         t.summary_offset + RoundUpToBlock(t.summary_size) == segment_size - kBlockSize;
}

Result<std::vector<SummaryEntry>> DecodeSummary(std::span<const std::byte> summary,
                                                const SegmentTrailer& t) {
  if (summary.size() != t.summary_size) {
    return Status::Corruption("summary of " + std::to_string(summary.size()) +
                              " bytes, the trailer says " + std::to_string(t.summary_size));
  }
  if (Checksum(summary) != t.summary_checksum) {
    return Status::Corruption("summary checksum mismatch");
  }
  std::vector<SummaryEntry> entries;
  std::size_t pos = 0;
  std::uint64_t next_block = 1;
  while (pos < summary.size()) {
    CXLKV_ASSIGN_OR_RETURN(SummaryEntry e, DecodeSummaryEntry(summary, &pos));
    if (e.block < next_block || std::uint64_t{e.block} + e.blocks > t.records_end / kBlockSize) {
      return Status::Corruption("summary entry for block " + std::to_string(e.block) +
                                " out of place");
    }
    if (HashKey(e.key) != e.key_hash) {
      return Status::Corruption("summary entry for block " + std::to_string(e.block) +
                                ": its key hash is not its key's");
    }
    next_block = std::uint64_t{e.block} + e.blocks;
    entries.push_back(e);
  }
  if (entries.size() != t.chunk_count) {
    return Status::Corruption("summary lists " + std::to_string(entries.size()) +
                              " chunks, trailer " + std::to_string(t.chunk_count));
  }
  return entries;
}

}  // namespace cxlkv::internal::spill
