// ScanPool on small hand-built images: what a header scan and a snapshot give, and a snapshot
// that names one header slot twice (found by backends/pool/fuzz/scan_fuzz: the scan used to
// return both chunks, and DurablePool::Recover then failed to claim the slot twice, leaving the
// pool unopenable although its headers were whole).
#include "backends/pool/pool_scan.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "util/xxh3.h"

namespace cxlkv::internal {
namespace {

constexpr std::size_t kSlab = std::size_t{64} << 10;
constexpr std::size_t kUnit = ChunkHeader::kSize;
constexpr std::size_t kHeaderSlab = 1;  // a span of 256-byte header slots
constexpr std::size_t kDataSlab = 2;    // a span of 1 KiB data slots

// A 16-slab pool with one header span and one 1 KiB data span.
struct Image {
  std::vector<std::byte> bytes = std::vector<std::byte>(16 * kSlab);
  Superblock sb;

  Image() {
    SlabAllocatorOptions o;
    o.slab_size = kSlab;
    o.slot_alignment = kUnit;
    o.min_slot_size = kUnit;
    o.max_slot_size = 16 * kSlab;
    o.exact_sizes = {1024};
    o.reserved_slabs = ReservedSlabsFor(16, kSlab);
    sb.geometry = PoolGeometry::From(bytes.size(), o);
    sb.generation = 4;
    Record(kHeaderSlab, kUnit);
    Record(kDataSlab, 1024);
    WriteSuperblock();
  }
  void Record(std::size_t slab, std::uint32_t slot_size) {
    EncodeSlabRecord(slab, SlabRecord{static_cast<std::uint32_t>(slab), slot_size},
                     std::span<std::byte, kSlabRecordSize>(
                         bytes.data() + SlabRecordOffset(slab), kSlabRecordSize));
  }
  void WriteSuperblock() {
    EncodeSuperblock(sb, std::span<std::byte, kSuperblockSize>(bytes.data(), kSuperblockSize));
  }
  static std::uint32_t HeaderRef(std::size_t slot) {
    return static_cast<std::uint32_t>((kHeaderSlab * kSlab + slot * kUnit) / kUnit);
  }
  static std::uint32_t DataRef(std::size_t slot) {
    return static_cast<std::uint32_t>((kDataSlab * kSlab + slot * 1024) / kUnit);
  }
  // A committed header in header slot `slot` for `key`, its chunk in data slot `data`.
  void Header(std::size_t slot, const std::string& key, std::size_t data, std::uint64_t seq) {
    ChunkHeader h;
    h.key_len = static_cast<std::uint8_t>(key.size());
    std::memcpy(h.key, key.data(), key.size());
    h.size = 1000;
    h.data_ref = DataRef(data);
    h.sequence = seq;
    StoreCommitWord(&h, CommitWord(kHeaderCommitted, HeaderCheck(h)));
    std::memcpy(bytes.data() + std::size_t{HeaderRef(slot)} * kUnit, &h, sizeof h);
  }
  // A clean close whose snapshot lists `records`, in data slot 10.
  void CleanClose(const std::vector<SnapshotRecord>& records) {
    const std::vector<std::byte> snap = EncodeSnapshot(sb.generation, records);
    const std::size_t at = std::size_t{DataRef(10)} * kUnit;
    std::memcpy(bytes.data() + at, snap.data(), snap.size());
    sb.clean = true;
    sb.snapshot_offset = at;
    sb.snapshot_bytes = snap.size();
    sb.snapshot_xxh3 = XXH3_64bits(snap.data(), snap.size());
    sb.next_sequence = 100;
    WriteSuperblock();
  }
};

SnapshotRecord Rec(const std::string& key, std::uint32_t header_ref, std::uint32_t data_ref) {
  const KeyHash h = HashKey(key);
  return SnapshotRecord{h.lo, h.hi, header_ref, data_ref, 1000, 0};
}

TEST(PoolScan, HeadersAfterACrash) {
  Image img;
  img.Header(0, "a", 0, 1);
  img.Header(1, "b", 1, 2);
  img.Header(2, "a", 2, 3);  // "a" again, newer: the first one loses
  Result<PoolScan> scan = ScanPool(img.bytes);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_FALSE(scan->counts.used_snapshot);
  ASSERT_EQ(scan->chunks.size(), 2u);
  EXPECT_EQ(scan->losers, std::vector<std::uint32_t>{Image::HeaderRef(0)});
  EXPECT_EQ(scan->max_sequence, 3u);
}

TEST(PoolScan, CleanCloseUsesTheSnapshot) {
  Image img;
  img.Header(0, "a", 0, 1);
  img.Header(1, "b", 1, 2);
  img.CleanClose({Rec("a", Image::HeaderRef(0), Image::DataRef(0)),
                  Rec("b", Image::HeaderRef(1), Image::DataRef(1))});
  Result<PoolScan> scan = ScanPool(img.bytes);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_TRUE(scan->counts.used_snapshot) << scan->counts.snapshot_problem;
  EXPECT_EQ(scan->chunks.size(), 2u);
  EXPECT_EQ(scan->max_sequence, 100u);
}

TEST(PoolScan, SnapshotNamingOneHeaderSlotTwiceFallsBackToHeaders) {
  Image img;
  img.Header(0, "a", 0, 1);
  img.Header(1, "b", 1, 2);
  // Distinct keys and data slots, one header slot: no chunk may share a header slot.
  img.CleanClose({Rec("a", Image::HeaderRef(0), Image::DataRef(0)),
                  Rec("b", Image::HeaderRef(0), Image::DataRef(1))});
  Result<PoolScan> scan = ScanPool(img.bytes);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_FALSE(scan->counts.used_snapshot);
  EXPECT_EQ(scan->counts.snapshot_problem, "snapshot lists one slot or key twice");
  ASSERT_EQ(scan->chunks.size(), 2u);  // both, from their headers
  std::set<std::uint32_t> headers;
  for (const ScannedChunk& c : scan->chunks) headers.insert(c.header_ref);
  EXPECT_EQ(headers, (std::set<std::uint32_t>{Image::HeaderRef(0), Image::HeaderRef(1)}));
  EXPECT_TRUE(scan->losers.empty());
}

}  // namespace
}  // namespace cxlkv::internal
