// libFuzzer target: a sealed spill segment's summary as recovery decodes it
// (spill::DecodeSummary, backends/spill/chunk_record.h): entries encoded from fuzzed fields,
// or raw bytes with a checksum that matches, so that the fuzzer gets past the checksum to the
// entry parser and the checks on order, place, key hashes and count.
//
// Besides "no crash, no sanitizer report", it checks what recovery relies on when the summary
// decodes: as many entries as the trailer says, each with a key of 1..150 bytes and metadata
// of at most 64 bytes that lie inside the summary's bytes, a key hash that is its key's, sizes
// that fit its blocks, and blocks in record order, after block 0, inside the records area,
// never overlapping; a summary of well-formed entries decodes to exactly them; one with a bad
// checksum, a wrong count or a wrong key hash never decodes. A broken promise traps.
//
// The input format is in fuzz_input.h. Built by -DCXLKV_FUZZ=ON with clang; the normal builds
// compile it into backends_pool_spill_summary_fuzz_replay_test, which replays the corpus.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "backends/key.h"
#include "backends/pool/fuzz/fuzz_input.h"
#include "backends/spill/chunk_record.h"
#include "cxlkv/store.h"

namespace cxlkv::internal::fuzz {
namespace {

namespace sp = spill;

struct Built {
  std::vector<std::byte> bytes;
  std::vector<sp::SummaryEntry> entries;  // as encoded (key and meta point into `keys`)
  bool well_formed = true;                // every entry in range, in order, in place
};

// Entries from fields until the input ends; keys and metas are kept in `store`.
Built FromFields(Reader& in, std::uint64_t records_blocks, bool bad_hash,
                 std::vector<std::string>& store) {
  Built b;
  std::uint64_t next_block = 1;
  store.reserve(in.left() / 15 + 1);  // no reallocation: entries point into the strings
  while (in.Has(15)) {
    sp::SummaryEntry e;
    e.block = in.U32();
    e.blocks = in.U32();
    e.data_size = in.U32();
    const std::uint8_t key_len = in.U8(), seed = in.U8(), meta_len = in.U8();
    std::string& s = store.emplace_back();
    for (std::size_t i = 0; i < key_len; ++i) s += static_cast<char>(seed + i);
    for (std::size_t i = 0; i < meta_len; ++i) s += static_cast<char>(seed ^ i);
    e.key = std::string_view(s).substr(0, key_len);
    e.meta = std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()) + key_len,
                                        meta_len);
    e.key_hash = HashKey(e.key);
    if (bad_hash) ++e.key_hash.lo;
    const bool in_range =
        key_len >= 1 && key_len <= kMaxKeySize && meta_len <= sp::kMaxMetaSize && e.blocks >= 1 &&
        e.data_size <= std::uint64_t{e.blocks} * sp::kBlockSize &&
        sp::RecordBlocks(e.data_size) == e.blocks;
    const bool in_place = e.block >= next_block &&
                          std::uint64_t{e.block} + e.blocks <= records_blocks;
    b.well_formed = b.well_formed && in_range && in_place;
    next_block = std::uint64_t{e.block} + e.blocks;
    const std::size_t at = b.bytes.size();
    b.bytes.resize(at + sp::SummaryEntrySize(e.key.size(), e.meta.size()));
    sp::EncodeSummaryEntry(e, std::span<std::byte>(b.bytes).subspan(at));
    b.entries.push_back(e);
  }
  return b;
}

void CheckDecoded(const std::vector<sp::SummaryEntry>& entries, std::span<const std::byte> summary,
                  const sp::SegmentTrailer& t) {
  CHECK(entries.size() == t.chunk_count);
  std::uint64_t next_block = 1;
  const auto* lo = reinterpret_cast<const char*>(summary.data());
  const auto* hi = lo + summary.size();
  for (const sp::SummaryEntry& e : entries) {
    CHECK(!e.key.empty() && e.key.size() <= kMaxKeySize && e.meta.size() <= sp::kMaxMetaSize);
    CHECK(e.key.data() >= lo && e.key.data() + e.key.size() <= hi);
    const auto* meta = reinterpret_cast<const char*>(e.meta.data());
    CHECK(e.meta.empty() || (meta >= lo && meta + e.meta.size() <= hi));
    CHECK(HashKey(e.key) == e.key_hash);
    CHECK(e.blocks >= 1 && e.data_size <= std::uint64_t{e.blocks} * sp::kBlockSize);
    CHECK(sp::RecordBlocks(e.data_size) == e.blocks);
    CHECK(e.block >= next_block);
    next_block = std::uint64_t{e.block} + e.blocks;
    CHECK(next_block <= t.records_end / sp::kBlockSize);
  }
}

}  // namespace
}  // namespace cxlkv::internal::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cxlkv;
  using namespace cxlkv::internal;
  using namespace cxlkv::internal::fuzz;
  namespace sp = cxlkv::internal::spill;
  if (size < 5) return 0;
  Reader in(data, size);
  const std::uint8_t flags = in.U8();
  // Segments hold at most 2^20 blocks.
  const std::uint64_t records_blocks = in.U32() % (sp::ChunkLocation::kMaxBlocksPerSegment + 1);

  std::vector<std::string> store;
  Built b;
  if (flags & kSummaryRaw) {
    std::size_t got = 0;
    const std::uint8_t* p = in.Bytes(in.left(), &got);
    b.bytes.resize(got);
    if (got != 0) std::memcpy(b.bytes.data(), p, got);
    b.well_formed = false;  // unknown
  } else {
    b = FromFields(in, records_blocks, flags & kSummaryBadHash, store);
  }
  sp::SegmentTrailer t;
  t.records_end = records_blocks * sp::kBlockSize;
  t.summary_size = b.bytes.size();
  t.summary_checksum = sp::Checksum(b.bytes) + (flags & kSummaryBadChecksum ? 1 : 0);
  t.chunk_count = static_cast<std::uint32_t>(b.entries.size()) + (flags & kSummaryCountOff ? 1 : 0);
  if (flags & kSummaryRaw) {
    // A count the fuzzer cannot aim at otherwise: the number of entries the bytes hold.
    std::size_t pos = 0;
    std::uint32_t n = 0;
    while (pos < b.bytes.size() && sp::DecodeSummaryEntry(b.bytes, &pos).ok()) ++n;
    t.chunk_count = n + (flags & kSummaryCountOff ? 1 : 0);
  }

  auto decoded = sp::DecodeSummary(b.bytes, t);
  if (decoded.ok()) CheckDecoded(*decoded, b.bytes, t);
  if (flags & (kSummaryBadChecksum | kSummaryCountOff)) CHECK(!decoded.ok());
  if (!(flags & kSummaryRaw)) {
    if (flags & kSummaryBadHash && !b.entries.empty()) CHECK(!decoded.ok());
    if (!(flags & (kSummaryBadChecksum | kSummaryCountOff | kSummaryBadHash)) && b.well_formed) {
      CHECK(decoded.ok() && decoded->size() == b.entries.size());
      for (std::size_t i = 0; i < b.entries.size(); ++i) {
        const sp::SummaryEntry& want = b.entries[i];
        const sp::SummaryEntry& got = (*decoded)[i];
        CHECK(got.block == want.block && got.blocks == want.blocks &&
              got.data_size == want.data_size && got.key == want.key &&
              got.meta.size() == want.meta.size() &&
              (want.meta.empty() ||
               std::memcmp(got.meta.data(), want.meta.data(), want.meta.size()) == 0));
      }
    }
  }
  return 0;
}
