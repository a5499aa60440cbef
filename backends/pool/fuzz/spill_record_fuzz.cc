// libFuzzer target: the spill log's block decoders (backends/spill/chunk_record.h) over
// arbitrary bytes, and over real encodings with bytes patched: record headers, segment
// headers, trailers and superblocks.
//
// Besides "no crash, no sanitizer report", it checks what the decoders promise: a record
// header that decodes has sizes that fit its blocks (key 1..150 B, meta <= 64 B, a header
// block and then just the data's blocks); whatever decodes re-encodes to what decodes the same; an unpatched
// encoding of valid fields decodes to them; a trailer that fits its segment keeps its summary
// and records inside it. A broken promise traps, which libFuzzer reports as a crash.
//
// The input format is in fuzz_input.h. Built by -DCXLKV_FUZZ=ON with clang; the normal builds
// compile it into backends_pool_spill_record_fuzz_replay_test, which replays the corpus.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "backends/pool/fuzz/fuzz_input.h"
#include "backends/spill/chunk_record.h"
#include "cxlkv/store.h"

namespace cxlkv::internal::fuzz {
namespace {

namespace sp = spill;

using Block = std::array<std::byte, sp::kBlockSize>;

bool SameRecord(const sp::RecordHeader& a, const sp::RecordHeader& b) {
  return a.log_id == b.log_id && a.seq == b.seq && a.segment == b.segment && a.block == b.block &&
         a.blocks == b.blocks && a.key_size == b.key_size && a.meta_size == b.meta_size &&
         a.data_size == b.data_size && a.key_hash == b.key_hash &&
         a.payload_checksum == b.payload_checksum;
}

bool SameTrailer(const sp::SegmentTrailer& a, const sp::SegmentTrailer& b) {
  return a.log_id == b.log_id && a.seq == b.seq && a.index == b.index &&
         a.chunk_count == b.chunk_count && a.records_end == b.records_end &&
         a.summary_offset == b.summary_offset && a.summary_size == b.summary_size &&
         a.summary_checksum == b.summary_checksum;
}

void CheckRecord(const sp::RecordHeader& h) {
  CHECK(h.key_size >= 1 && h.key_size <= kMaxKeySize);
  CHECK(h.meta_size <= sp::kMaxMetaSize);
  CHECK(h.blocks >= 1 && h.data_size <= std::uint64_t{h.blocks} * sp::kBlockSize);
  CHECK(sp::RecordBlocks(h.data_size) == h.blocks);
  Block again{};
  sp::EncodeRecordHeader(h, again);
  auto back = sp::DecodeRecordHeader(again);
  CHECK(back.ok() && SameRecord(*back, h));
}

void CheckTrailer(const sp::SegmentTrailer& t, std::uint64_t segment_size) {
  Block again{};
  sp::EncodeSegmentTrailer(t, again);
  auto back = sp::DecodeSegmentTrailer(again);
  CHECK(back.ok() && SameTrailer(*back, t));
  if (!sp::TrailerFitsSegment(t, segment_size)) return;
  // What recovery then reads: [summary_offset, + round up(summary_size)) and the records
  // before it, all inside the segment and clear of the trailer block.
  CHECK(t.records_end >= sp::kBlockSize && t.records_end % sp::kBlockSize == 0);
  CHECK(t.records_end <= t.summary_offset && t.summary_offset % sp::kBlockSize == 0);
  CHECK(t.summary_offset + sp::RoundUpToBlock(t.summary_size) + sp::kBlockSize == segment_size);
}

void Raw(Reader& in) {
  Block block{};
  std::size_t got = 0;
  const std::uint8_t* p = in.Bytes(block.size(), &got);
  std::memcpy(block.data(), p, got);
  // Short inputs too: each decoder gets exactly the bytes there are.
  const std::span<const std::byte> bytes(block.data(), got);
  if (auto h = sp::DecodeRecordHeader(bytes); h.ok()) CheckRecord(*h);
  if (auto h = sp::DecodeSegmentHeader(bytes); h.ok()) {
    Block again{};
    sp::EncodeSegmentHeader(*h, again);
    auto back = sp::DecodeSegmentHeader(again);
    CHECK(back.ok() && back->log_id == h->log_id && back->seq == h->seq &&
          back->index == h->index && back->segment_size == h->segment_size);
  }
  if (auto t = sp::DecodeSegmentTrailer(bytes); t.ok()) CheckTrailer(*t, 64 * 1024);
  if (auto sb = sp::DecodeSuperblock(bytes); sb.ok()) {
    CHECK(sb->segment_size != 0 && sb->segment_size % sp::kBlockSize == 0);
    CHECK(sb->segment_count != 0 && sb->segment_count <= sp::ChunkLocation::kMaxSegments);
    CHECK(sb->segment_size / sp::kBlockSize <= sp::ChunkLocation::kMaxBlocksPerSegment);
    CHECK(sp::kDataOffset + sb->segment_count * sb->segment_size <= sb->capacity);
  }
}

// Patches (offset mod `span`, value) over the first bytes of block until the input ends.
bool Patch(Reader& in, Block& block, std::size_t span) {
  bool patched = false;
  while (in.Has(2)) {
    const std::size_t at = in.U8() % span;
    block[at] = std::byte{in.U8()};
    patched = true;
  }
  return patched;
}

void RecordFields(Reader& in) {
  sp::RecordHeader h;
  h.log_id = in.U64();
  h.seq = in.U64();
  h.segment = in.U32();
  h.block = in.U32();
  h.blocks = in.U32();
  h.key_size = in.U16();
  h.meta_size = in.U16();
  h.data_size = in.U64();
  h.key_hash.lo = in.U64();
  h.key_hash.hi = in.U64();
  h.payload_checksum = in.U64();
  Block block{};
  sp::EncodeRecordHeader(h, block);
  const bool patched = Patch(in, block, sp::RecordHeader::kEncodedSize);
  auto got = sp::DecodeRecordHeader(block);
  if (got.ok()) CheckRecord(*got);
  if (!patched) {
    const bool valid = h.key_size >= 1 && h.key_size <= kMaxKeySize &&
                       h.meta_size <= sp::kMaxMetaSize && h.blocks >= 1 &&
                       h.data_size <= std::uint64_t{h.blocks} * sp::kBlockSize &&
                       sp::RecordBlocks(h.data_size) == h.blocks;
    CHECK(got.ok() == valid);
    if (valid) CHECK(SameRecord(*got, h));
  }
}

void Trailer(Reader& in) {
  const std::uint64_t segment_blocks = in.U32() % (sp::ChunkLocation::kMaxBlocksPerSegment + 1);
  sp::SegmentTrailer t;
  t.log_id = 7;
  t.seq = 9;
  t.chunk_count = in.U32();
  t.records_end = in.U64();
  t.summary_offset = in.U64();
  t.summary_size = in.U64();
  Block block{};
  sp::EncodeSegmentTrailer(t, block);
  Patch(in, block, sp::SegmentTrailer::kEncodedSize);
  if (auto got = sp::DecodeSegmentTrailer(block); got.ok()) {
    CheckTrailer(*got, segment_blocks * sp::kBlockSize);
  }
}

}  // namespace
}  // namespace cxlkv::internal::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cxlkv::internal::fuzz;
  if (size == 0) return 0;
  Reader in(data, size);
  switch (in.U8() % kRecordModeCount) {
    case kRecordRaw: Raw(in); break;
    case kRecordFields: RecordFields(in); break;
    case kRecordTrailer: Trailer(in); break;
  }
  return 0;
}
