// Writes the seed corpus of the fuzz targets: `pool_fuzz_corpus DIR` writes seed-N files into
// DIR/<target>/ (the repository's copy is backends/pool/fuzz/corpus/,
// which also keeps regress-* crash reproducers and inputs the fuzzer found, named by hash).
//
// The seeds are what a real pool holds, written with the real encoders: superblock pairs, slab
// records, committed headers and snapshots for format_fuzz; for scan_fuzz, pools laid out as
// DurablePool lays them out (a header span, data spans of exact and geometric classes,
// committed, pending and torn headers, conflicts, a clean close with its snapshot). The fuzzer
// starts from these and mutates them, rather than from bytes no checksum accepts.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "alloc/size_classes.h"
#include "backends/key.h"
#include "backends/pool/fuzz/fuzz_input.h"
#include "backends/pool/pool_format.h"
#include "backends/spill/chunk_record.h"

namespace cxlkv::internal::fuzz {
namespace {

constexpr std::size_t kUnit = ChunkHeader::kSize;

bool WriteFile(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::perror(path.c_str());
    return false;
  }
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

Superblock TypicalSuperblock(std::uint64_t generation) {
  Superblock sb;
  sb.generation = generation;
  for (std::size_t i = 0; i < sb.uuid.size(); ++i) sb.uuid[i] = static_cast<std::uint8_t>(i * 17);
  SlabAllocatorOptions o;
  o.slab_size = std::size_t{4} << 20;
  o.slot_alignment = kUnit;
  o.min_slot_size = kUnit;
  o.max_slot_size = 64u << 20;
  o.exact_sizes = {std::size_t{5} << 20, 327680};
  const std::size_t region = std::size_t{1} << 30;
  o.reserved_slabs = ReservedSlabsFor(region / o.slab_size, o.slab_size);
  sb.geometry = PoolGeometry::From(region, o);
  sb.created_unix_s = 1790000000;
  sb.next_sequence = 1000;
  return sb;
}

// --- format_fuzz seeds ---

std::vector<std::uint8_t> Mode(FormatMode m, const void* payload, std::size_t n) {
  Writer w;
  w.U8(m).Raw(payload, n);
  return w.bytes();
}

ChunkHeader CommittedHeader() {
  ChunkHeader h;
  const char key[] = "model-7b/layer-00/chunk-0000";
  h.key_len = sizeof key - 1;
  std::memcpy(h.key, key, h.key_len);
  h.meta_len = 4;
  h.size = 327680;
  h.data_ref = 4096;
  h.sequence = 7;
  h.data_xxh3 = 0x1234;
  StoreCommitWord(&h, CommitWord(kHeaderCommitted, HeaderCheck(h)));
  return h;
}

std::vector<std::vector<std::uint8_t>> FormatSeeds() {
  std::vector<std::vector<std::uint8_t>> seeds;
  // Raw: a superblock pair (B newer and clean), one copy alone, a slab record, a header and
  // a snapshot.
  std::vector<std::byte> pair(2 * kSuperblockSize);
  Superblock a = TypicalSuperblock(1), b = TypicalSuperblock(2);
  b.clean = true;
  b.snapshot_offset = std::size_t{8} << 20;
  b.snapshot_bytes = 64 + 3 * 32;
  b.snapshot_xxh3 = 42;
  EncodeSuperblock(a, std::span<std::byte, kSuperblockSize>(pair.data(), kSuperblockSize));
  EncodeSuperblock(b, std::span<std::byte, kSuperblockSize>(pair.data() + kSuperblockSize,
                                                            kSuperblockSize));
  seeds.push_back(Mode(kFormatRaw, pair.data(), pair.size()));
  seeds.push_back(Mode(kFormatRaw, pair.data(), kSuperblockSize));

  std::byte record[kSlabRecordSize + 4] = {};
  EncodeSlabRecord(9, SlabRecord{8, 327680}, std::span<std::byte, kSlabRecordSize>(record, 16));
  const std::uint32_t slab = 9;
  std::memcpy(record + kSlabRecordSize, &slab, sizeof slab);
  seeds.push_back(Mode(kFormatRaw, record, sizeof record));

  const ChunkHeader h = CommittedHeader();
  seeds.push_back(Mode(kFormatRaw, &h, sizeof h));

  std::vector<SnapshotRecord> records(3);
  for (std::uint32_t i = 0; i < records.size(); ++i) {
    records[i] = SnapshotRecord{i * 0x9e3779b97f4a7c15ULL, ~i * 1ULL, 16384 + i, 4096 + 1280 * i,
                                327680, 0};
  }
  const std::vector<std::byte> snapshot = EncodeSnapshot(5, records);
  seeds.push_back(Mode(kFormatRaw, snapshot.data(), snapshot.size()));

  // Structured: superblock fields of a typical pool (all fields near range), the same as raw
  // values, a snapshot and a header.
  {
    Writer w;
    w.U8(kFormatSuperblock).U8(0).U64(3);  // selector 0, generation
    for (int i = 0; i < 16; ++i) w.U8(i);
    w.U8(1).U8(1);          // version, durability
    w.U8(22 - 15);          // slab 4 MiB
    w.U16(255).U8(0);       // 256 slabs
    w.U8(1);                // reserved slabs exact
    w.U8(3);                // alignment 256
    w.U8(1);                // min slot = alignment
    w.U16(127);             // max slot 128 * 256
    w.U8(50);               // growth 1.25
    w.U8(2).U32(327680).U32(4096);
    w.U8(1).U64(1790000000).U64(8 << 20).U64(160).U64(42).U64(1000);
    w.U16(100).U8(0xff);    // damage B at byte 100
    seeds.push_back(w.bytes());
  }
  {
    Writer w;
    w.U8(kFormatSuperblock).U8(0x7f).U64(3);  // every field raw
    for (int i = 0; i < 16; ++i) w.U8(i);
    w.U8(1).U8(2);
    w.U64(4u << 20).U64(std::uint64_t{1} << 30).U64(1).U64(256).U64(256).U64(64u << 20);
    const double growth = 1.25;
    std::uint64_t bits;
    std::memcpy(&bits, &growth, sizeof bits);
    w.U64(bits);
    w.U8(1).U32(5u << 20);
    w.U8(0).U64(1790000000).U64(0).U64(0).U64(0).U64(1);
    w.U16(3000).U8(1);  // damage B past its fields
    seeds.push_back(w.bytes());
  }
  {
    Writer w;
    w.U8(kFormatSnapshot).U64(9);
    for (std::uint32_t i = 0; i < 4; ++i) w.U32(i).U32(i + 1).U32(16384 + i).U32(4096 + i).U32(1000);
    seeds.push_back(w.bytes());
  }
  {
    Writer w;
    w.U8(kFormatHeader);
    w.Raw(reinterpret_cast<const std::uint8_t*>(&h) + 8, sizeof h - 8);  // fields in order
    w.U32(99).U32(5);
    seeds.push_back(w.bytes());
  }
  return seeds;
}

// --- scan_fuzz seeds ---

// A pool as DurablePool writes it, in scan_fuzz commands.
struct ScanSeed {
  Writer w;
  PoolGeometry g;
  SizeClassTable table;

  ScanSeed(std::uint8_t slabs_byte, std::uint8_t exact_bits, std::uint8_t shape,
           std::uint8_t flags, std::uint32_t generation)
      : g(ScanGeometry(slabs_byte, exact_bits, shape)),
        table(SizeClassTable::Build(g.AllocatorOptions()).value()) {
    w.U8(slabs_byte).U8(exact_bits).U8(shape).U8(flags).U32(generation);
  }
  std::uint32_t ClassOf(std::size_t size) const {
    return static_cast<std::uint32_t>(table.ClassFor(size));
  }
  std::size_t SlotSize(std::size_t size) const { return table.at(ClassOf(size)).slot_size; }
  // A span of the class holding `size`, at `first`.
  ScanSeed& Span(std::size_t first, std::size_t size) {
    w.U8(kScanSpan).U8(first).U8(ClassOf(size));
    return *this;
  }
  // Slot `slot` of the span at `first` whose class holds `size`, in 256-byte units.
  std::uint32_t Ref(std::size_t first, std::size_t slot, std::size_t size) const {
    return static_cast<std::uint32_t>((first * kScanSlabSize + slot * SlotSize(size)) / kUnit);
  }
  ScanSeed& Header(std::uint32_t header_ref, std::uint8_t key_len, std::uint8_t key_seed,
                   std::uint32_t size, std::uint32_t data_ref, std::uint16_t sequence,
                   ScanCommit commit = kCommitValid) {
    w.U8(kScanHeader).U16(header_ref).U8(key_len).U8(key_seed).U8(8).U32(size);
    w.U16(data_ref).U16(sequence).U8(commit);
    return *this;
  }
  struct Rec {
    std::uint8_t key_len, key_seed;
    std::uint32_t header_ref, data_ref, size;
  };
  ScanSeed& Snapshot(std::uint32_t at, const std::vector<Rec>& records) {
    w.U8(kScanSnapshot).U32(at).U8(0).U8(records.size());
    for (const Rec& r : records) {
      w.U8(r.key_len).U8(r.key_seed).U16(r.header_ref).U16(r.data_ref).U32(r.size);
    }
    return *this;
  }
  ScanSeed& Patch(std::uint32_t at, std::vector<std::uint8_t> bytes) {
    w.U8(kScanPatch).U32(at).U8(bytes.size()).Raw(bytes.data(), bytes.size());
    return *this;
  }
};

std::vector<std::vector<std::uint8_t>> ScanSeeds() {
  std::vector<std::vector<std::uint8_t>> seeds;
  const std::uint8_t exact = 1 | 8;  // 1000 and 65536 bytes
  // A pool in use: a header span, spans of 1000 B, 64 KiB and 20 KiB chunks; committed,
  // pending and torn headers.
  {
    ScanSeed s(16, exact, 0, 0, 7);
    s.Span(1, 256).Span(2, 1000).Span(3, 65536).Span(5, 20000);
    for (std::uint8_t i = 0; i < 6; ++i) {
      s.Header(s.Ref(1, i, 256), 20, i, 1000, s.Ref(2, i, 1000), static_cast<std::uint16_t>(i + 1));
    }
    s.Header(s.Ref(1, 6, 256), 20, 6, 65536, s.Ref(3, 0, 65536), 7);
    s.Header(s.Ref(1, 7, 256), 20, 7, 20000, s.Ref(5, 1, 20000), 8);
    s.Header(s.Ref(1, 8, 256), 20, 8, 1000, s.Ref(2, 9, 1000), 9, kCommitPending);
    s.Header(s.Ref(1, 9, 256), 20, 9, 1000, s.Ref(2, 10, 1000), 10, kCommitTorn);
    seeds.push_back(s.w.bytes());
  }
  // Conflicts a crash in background durability leaves: one key twice, one data slot twice.
  {
    ScanSeed s(32, exact, 0, kScanDurabilityBg | kScanThreads, 3);
    s.Span(1, 256).Span(2, 256).Span(3, 1000);
    s.Header(s.Ref(1, 0, 256), 12, 1, 1000, s.Ref(3, 0, 1000), 5);
    s.Header(s.Ref(2, 3, 256), 12, 1, 1000, s.Ref(3, 1, 1000), 9);   // same key, newer
    s.Header(s.Ref(1, 1, 256), 12, 2, 900, s.Ref(3, 2, 1000), 6);
    s.Header(s.Ref(2, 4, 256), 12, 3, 800, s.Ref(3, 2, 1000), 4);    // same slot, older
    seeds.push_back(s.w.bytes());
  }
  // A clean close: headers and the snapshot naming them, in a 1000 B slot.
  {
    ScanSeed s(20, exact, 0, 0, 11);
    s.Span(1, 256).Span(2, 1000).Span(4, 65536);
    std::vector<ScanSeed::Rec> recs;
    for (std::uint8_t i = 0; i < 4; ++i) {
      const std::uint32_t size = i == 3 ? 65536 : 1000;
      const std::uint32_t data = i == 3 ? s.Ref(4, 0, 65536) : s.Ref(2, i, 1000);
      s.Header(s.Ref(1, i, 256), 30, i, size, data, static_cast<std::uint16_t>(i + 1));
      recs.push_back({30, i, s.Ref(1, i, 256), data, size});
    }
    s.Snapshot(s.Ref(2, 20, 1000) * kUnit, recs);
    seeds.push_back(s.w.bytes());
  }
  // Multi-slab spans (96 KiB and 300000 B chunks on 64 KiB slabs), a ragged region, the
  // newest superblock in B.
  {
    ScanSeed s(40, 16 | 64, 0x30, kScanCurrentInB, 2);
    s.Span(3, 256).Span(4, 98304).Span(10, 300000).Span(30, 4096);
    s.Header(s.Ref(3, 0, 256), 40, 1, 98304, s.Ref(4, 1, 98304), 1);
    s.Header(s.Ref(3, 1, 256), 40, 2, 250000, s.Ref(10, 0, 300000), 2);
    s.Header(s.Ref(3, 2, 256), 40, 3, 4000, s.Ref(30, 5, 4096), 3);
    seeds.push_back(s.w.bytes());
  }
  // Damage: a span record naming another head, a patch over the slab table, a header whose
  // data slot is not one, fields out of range, and one superblock copy only.
  {
    ScanSeed s(24, 0, 1, kScanOnlyOneCopy, 5);
    s.Span(1, 256).Span(2, 4096);
    s.w.U8(kScanRecord).U8(6).U8(5).U32(4096);
    s.Patch(static_cast<std::uint32_t>(SlabRecordOffset(3)), {1, 0, 0, 0, 0, 16});
    s.Header(s.Ref(1, 0, 256), 10, 1, 4096, s.Ref(2, 0, 4096) + 1, 1);
    s.Header(s.Ref(1, 1, 256), 0, 1, 4096, s.Ref(2, 1, 4096), 2);
    s.Header(s.Ref(1, 2, 256), 10, 2, 0, s.Ref(2, 2, 4096), 3);
    s.Header(s.Ref(1, 3, 256), 10, 3, 5000, s.Ref(2, 3, 4096), 4);
    seeds.push_back(s.w.bytes());
  }
  return seeds;
}

// --- spill_record_fuzz seeds: blocks as a log writes them ---

std::vector<std::vector<std::uint8_t>> SpillRecordSeeds() {
  namespace sp = spill;
  std::vector<std::vector<std::uint8_t>> seeds;
  auto block = [](auto encode) {
    std::vector<std::byte> b(sp::kBlockSize);
    encode(std::span<std::byte>(b));
    return b;
  };
  auto raw = [&](const std::vector<std::byte>& b, std::size_t n) {
    Writer w;
    w.U8(kRecordRaw).Raw(b.data(), n);
    return w.bytes();
  };
  // Records of a 1-block, a 2 MiB and a longest-key chunk.
  for (const auto& [key, meta, data] : {std::tuple{20u, 0u, 3000u}, std::tuple{40u, 28u, 2u << 20},
                                        std::tuple{150u, 64u, 1u}}) {
    sp::RecordHeader h;
    h.log_id = 0x1234567890abcdefULL;
    h.seq = (std::uint64_t{3} << 32) | 17;
    h.segment = 5;
    h.block = 9;
    h.key_size = static_cast<std::uint16_t>(key);
    h.meta_size = static_cast<std::uint16_t>(meta);
    h.data_size = data;
    h.blocks = static_cast<std::uint32_t>(sp::RecordBlocks(data));
    h.key_hash = HashKey(std::string(key, 'k'));
    h.payload_checksum = 0x5555;
    seeds.push_back(raw(block([&](auto b) { sp::EncodeRecordHeader(h, b); }),
                        sp::RecordHeader::kEncodedSize));
    Writer w;
    w.U8(kRecordFields).U64(h.log_id).U64(h.seq).U32(h.segment).U32(h.block).U32(h.blocks);
    w.U16(h.key_size).U16(h.meta_size).U64(h.data_size).U64(h.key_hash.lo).U64(h.key_hash.hi);
    w.U64(h.payload_checksum);
    seeds.push_back(w.bytes());
    w.U8(90).U8(0x41);  // one patch: a key-size byte
    seeds.push_back(w.bytes());
  }
  sp::SegmentHeader sh{0x1234567890abcdefULL, (std::uint64_t{3} << 32) | 17, 5, 64u << 20};
  seeds.push_back(raw(block([&](auto b) { sp::EncodeSegmentHeader(sh, b); }), 64));
  sp::Superblock sb{0x1234567890abcdefULL, sp::kDataOffset + 16 * (64u << 20), 64u << 20, 16, 3};
  seeds.push_back(raw(block([&](auto b) { sp::EncodeSuperblock(sb, b); }), 128));
  // A sealed 64 MiB segment's trailer: 3 records, a one-block summary.
  sp::SegmentTrailer t{0x1234567890abcdefULL, (std::uint64_t{3} << 32) | 17, 5, 3,
                       std::uint64_t{4} << 12, (64u << 20) - 2 * 4096, 150, 0x77};
  seeds.push_back(raw(block([&](auto b) { sp::EncodeSegmentTrailer(t, b); }), 128));
  Writer w;
  w.U8(kRecordTrailer).U32((64u << 20) / 4096).U32(3).U64(t.records_end).U64(t.summary_offset);
  w.U64(t.summary_size);
  seeds.push_back(w.bytes());
  return seeds;
}

// --- spill_summary_fuzz seeds: summaries of a few records, and their raw bytes ---

std::vector<std::vector<std::uint8_t>> SpillSummarySeeds() {
  namespace sp = spill;
  std::vector<std::vector<std::uint8_t>> seeds;
  struct E { std::uint32_t key, meta, data; };
  const std::vector<std::vector<E>> summaries = {
      {{20, 0, 3000}},
      {{30, 16, 3000}, {30, 16, 20000}, {150, 64, 1}},
      {{40, 28, 2u << 20}, {40, 28, 2u << 20}},
  };
  for (const auto& entries : summaries) {
    Writer fields;
    fields.U8(0).U32(4000);
    std::vector<std::byte> bytes;
    std::uint32_t block = 1;
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const E& e = entries[i];
      const auto blocks =
          static_cast<std::uint32_t>(sp::RecordBlocks(e.data));
      const auto seed = static_cast<std::uint8_t>(65 + i);
      fields.U32(block).U32(blocks).U32(e.data).U8(e.key).U8(seed).U8(e.meta);
      std::string s;
      for (std::uint32_t k = 0; k < e.key; ++k) s += static_cast<char>(seed + k);
      keys.push_back(s);
      const std::vector<std::byte> meta(e.meta, std::byte{0x33});
      sp::SummaryEntry entry{block, blocks, e.data, HashKey(keys.back()), keys.back(), meta};
      const std::size_t at = bytes.size();
      bytes.resize(at + sp::SummaryEntrySize(e.key, e.meta));
      sp::EncodeSummaryEntry(entry, std::span<std::byte>(bytes).subspan(at));
      block += blocks;
    }
    seeds.push_back(fields.bytes());
    Writer raw;
    raw.U8(kSummaryRaw).U32(4000).Raw(bytes.data(), bytes.size());
    seeds.push_back(raw.bytes());
  }
  return seeds;
}

}  // namespace
}  // namespace cxlkv::internal::fuzz

int main(int argc, char** argv) {
  using namespace cxlkv::internal::fuzz;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR (writes DIR/<target>/ for each fuzz target)\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  int n = 0;
  for (const auto& [target, seeds] : {std::pair{"format_fuzz", FormatSeeds()},
                                      std::pair{"scan_fuzz", ScanSeeds()},
                                      std::pair{"spill_record_fuzz", SpillRecordSeeds()},
                                      std::pair{"spill_summary_fuzz", SpillSummarySeeds()}}) {
    std::error_code ec;
    std::filesystem::create_directories(dir + "/" + target, ec);
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      const std::string path = dir + "/" + target + "/seed-" + std::to_string(i);
      if (!WriteFile(path, seeds[i])) return 1;
      ++n;
    }
  }
  std::printf("%d seeds written under %s\n", n, dir.c_str());
  return 0;
}
