// The on-media format of durable pools (pool_format.h): superblocks, the superblock pair, slab
// records, chunk header checks and index snapshots, each round trip and each way to refuse.
#include "backends/pool/pool_format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace cxlkv::internal {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

Superblock Typical() {
  Superblock sb;
  sb.generation = 41;
  for (std::size_t i = 0; i < sb.uuid.size(); ++i) sb.uuid[i] = static_cast<std::uint8_t>(i + 1);
  sb.durability = Durability::kBackground;
  SlabAllocatorOptions o;
  o.slab_size = 4 * kMiB;
  o.slot_alignment = 256;
  o.min_slot_size = 256;
  o.max_slot_size = 64 * kMiB;
  o.exact_sizes = {5 * kMiB, 327680};
  o.reserved_slabs = ReservedSlabsFor(256, o.slab_size);
  sb.geometry = PoolGeometry::From(256 * o.slab_size, o);
  sb.created_unix_s = 1790000000;
  sb.clean = true;
  sb.snapshot_offset = 12 * kMiB;
  sb.snapshot_bytes = 64 + 32 * 10;
  sb.snapshot_xxh3 = 0xfeedface;
  sb.next_sequence = 12345;
  return sb;
}

using Block = std::array<std::byte, kSuperblockSize>;

Block Encode(const Superblock& sb) {
  Block b{};
  EncodeSuperblock(sb, b);
  return b;
}

void ExpectSame(const Superblock& a, const Superblock& b) {
  EXPECT_EQ(a.generation, b.generation);
  EXPECT_EQ(a.uuid, b.uuid);
  EXPECT_EQ(a.UuidString(), b.UuidString());
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.durability, b.durability);
  EXPECT_EQ(a.geometry.Difference(b.geometry), "");
  EXPECT_EQ(a.geometry.exact_sizes, b.geometry.exact_sizes);
  EXPECT_EQ(a.created_unix_s, b.created_unix_s);
  EXPECT_EQ(a.clean, b.clean);
  EXPECT_EQ(a.snapshot_offset, b.snapshot_offset);
  EXPECT_EQ(a.snapshot_bytes, b.snapshot_bytes);
  EXPECT_EQ(a.snapshot_xxh3, b.snapshot_xxh3);
  EXPECT_EQ(a.next_sequence, b.next_sequence);
}

TEST(Superblock, RoundTrip) {
  const Superblock sb = Typical();
  Result<Superblock> got = DecodeSuperblock(Encode(sb));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSame(sb, *got);
  EXPECT_EQ(got->geometry.exact_sizes, (std::vector<std::uint64_t>{327680, 5 * kMiB}));
}

TEST(Superblock, ZerosAreNotFoundAndShortBlocksCorrupt) {
  const Block zeros{};
  EXPECT_TRUE(DecodeSuperblock(zeros).status().IsNotFound());
  const Block b = Encode(Typical());
  EXPECT_TRUE(DecodeSuperblock(std::span(b).first(kSuperblockSize - 1)).status().IsCorruption());
}

TEST(Superblock, AnyFlippedByteIsCorruption) {
  const Block good = Encode(Typical());
  // The fields and their checksum take the first 408 bytes; every one of them counts.
  for (std::size_t i = 0; i < 408; ++i) {
    Block b = good;
    b[i] ^= std::byte{0x10};
    EXPECT_TRUE(DecodeSuperblock(b).status().IsCorruption()) << "byte " << i;
  }
}

TEST(Superblock, BadMagic) {
  Block b = Encode(Typical());
  b[0] = std::byte{'X'};
  const Status s = DecodeSuperblock(b).status();
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s.ToString();
}

// Fields out of range, written with a valid checksum: each refused, naming the field.
TEST(Superblock, EachOutOfRangeFieldIsCorruption) {
  struct Case {
    const char* what;  // in the message
    void (*mutate)(Superblock&);
  };
  const Case cases[] = {
      {"version 0", [](Superblock& s) { s.version = 0; }},
      {"durability", [](Superblock& s) { s.durability = static_cast<Durability>(3); }},
      {"slab size", [](Superblock& s) { s.geometry.slab_size = 32 << 10; }},
      {"slab size", [](Superblock& s) { s.geometry.slab_size = 3 * kMiB; }},
      {"slab size", [](Superblock& s) { s.geometry.slab_size = 64 * kMiB; }},
      {"capacity", [](Superblock& s) { s.geometry.region_size = 4 * kMiB - 1; }},
      {"capacity", [](Superblock& s) { s.geometry.region_size = std::uint64_t{1} << 49; }},
      {"reserved slabs", [](Superblock& s) { s.geometry.reserved_slabs += 1; }},
      {"reserved slabs",
       [](Superblock& s) {
         s.geometry.region_size = 4 * kMiB;  // one slab: the metadata takes it all
         s.geometry.reserved_slabs = 1;
       }},
      {"slot alignment", [](Superblock& s) { s.geometry.slot_alignment = 32; }},
      {"slot alignment", [](Superblock& s) { s.geometry.slot_alignment = 3000; }},
      {"slot alignment", [](Superblock& s) { s.geometry.slot_alignment = 8 * kMiB; }},
      {"growth factor", [](Superblock& s) { s.geometry.growth_factor = 1.0; }},
      {"growth factor", [](Superblock& s) { s.geometry.growth_factor = 2.5; }},
      {"growth factor",
       [](Superblock& s) { s.geometry.growth_factor = std::numeric_limits<double>::quiet_NaN(); }},
      {"slot size bounds", [](Superblock& s) { s.geometry.min_slot_size = 128; }},
      {"slot size bounds", [](Superblock& s) { s.geometry.max_slot_size = 128; }},
      {"slot size bounds", [](Superblock& s) { s.geometry.max_slot_size = 65 * 4 * kMiB; }},
      {"chunk size 0", [](Superblock& s) { s.geometry.exact_sizes.push_back(0); }},
      {"chunk size", [](Superblock& s) { s.geometry.exact_sizes.push_back(65 * kMiB); }},
  };
  for (const Case& c : cases) {
    Superblock sb = Typical();
    c.mutate(sb);
    const Status s = DecodeSuperblock(Encode(sb)).status();
    EXPECT_TRUE(s.IsCorruption()) << c.what << ": " << s.ToString();
    EXPECT_NE(s.message().find(c.what), std::string::npos) << c.what << ": " << s.ToString();
  }
}

TEST(Superblock, NewerVersionIsUnsupported) {
  Superblock sb = Typical();
  sb.version = kPoolFormatVersion + 1;
  const Status s = DecodeSuperblock(Encode(sb)).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.ToString();
}

std::vector<std::byte> Pair(const Block& a, const Block& b) {
  std::vector<std::byte> image(2 * kSuperblockSize + 100);
  std::memcpy(image.data(), a.data(), kSuperblockSize);
  std::memcpy(image.data() + kSuperblockSize, b.data(), kSuperblockSize);
  return image;
}

TEST(ReadSuperblocks, TakesTheHigherGeneration) {
  Superblock older = Typical(), newer = Typical();
  newer.generation = older.generation + 1;
  newer.clean = false;
  Result<SuperblockChoice> c = ReadSuperblocks(Pair(Encode(older), Encode(newer)));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->slot, 1);
  EXPECT_EQ(c->sb.generation, newer.generation);
  EXPECT_FALSE(c->sb.clean);
  c = ReadSuperblocks(Pair(Encode(newer), Encode(older)));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->slot, 0);
  EXPECT_EQ(c->sb.generation, newer.generation);
}

TEST(ReadSuperblocks, SurvivesOneTornCopy) {
  Superblock older = Typical(), newer = Typical();
  newer.generation = older.generation + 1;
  Block torn = Encode(newer);
  torn[200] ^= std::byte{1};  // the newer write was cut short
  Result<SuperblockChoice> c = ReadSuperblocks(Pair(Encode(older), torn));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->slot, 0);
  EXPECT_EQ(c->sb.generation, older.generation);
  // The same with the copies the other way round, and with the other copy never written.
  c = ReadSuperblocks(Pair(torn, Encode(older)));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->slot, 1);
  c = ReadSuperblocks(Pair(Encode(older), Block{}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->slot, 0);
}

TEST(ReadSuperblocks, Errors) {
  EXPECT_TRUE(ReadSuperblocks(Pair(Block{}, Block{})).status().IsNotFound());
  Block torn_a = Encode(Typical()), torn_b = Encode(Typical());
  torn_a[20] ^= std::byte{1};
  torn_b[30] ^= std::byte{1};
  const Status both = ReadSuperblocks(Pair(torn_a, torn_b)).status();
  EXPECT_TRUE(both.IsCorruption());
  EXPECT_NE(both.message().find("A: "), std::string::npos) << both.ToString();
  EXPECT_NE(both.message().find("B: "), std::string::npos) << both.ToString();
  Superblock future = Typical();
  future.version = kPoolFormatVersion + 1;
  EXPECT_EQ(ReadSuperblocks(Pair(torn_a, Encode(future))).status().code(),
            StatusCode::kUnsupported);
  const std::vector<std::byte> short_image(2 * kSuperblockSize - 1);
  EXPECT_TRUE(ReadSuperblocks(short_image).status().IsCorruption());
}

TEST(SlabRecord, RoundTripAndFreeRecords) {
  std::array<std::byte, kSlabRecordSize> rec{};
  EncodeSlabRecord(9, SlabRecord{7, 327680}, rec);
  SlabRecord r;
  ASSERT_TRUE(DecodeSlabRecord(9, rec, &r));
  EXPECT_EQ(r.head, 7u);
  EXPECT_EQ(r.slot_size, 327680u);
  // The check word binds the record to its slab: moved to another slab it names no span.
  EXPECT_FALSE(DecodeSlabRecord(10, rec, &r));
  EXPECT_FALSE(DecodeSlabRecord(9, std::span(rec).first(kSlabRecordSize - 1), &r));

  EncodeSlabRecord(9, SlabRecord{}, rec);  // a free slab
  EXPECT_EQ(rec, (std::array<std::byte, kSlabRecordSize>{}));
  EXPECT_FALSE(DecodeSlabRecord(9, rec, &r));
}

TEST(SlabRecord, TornRecordIsRejected) {
  std::array<std::byte, kSlabRecordSize> good{};
  EncodeSlabRecord(3, SlabRecord{2, 1024}, good);
  for (std::size_t i = 0; i < kSlabRecordSize; ++i) {
    auto rec = good;
    rec[i] ^= std::byte{4};
    SlabRecord r;
    EXPECT_FALSE(DecodeSlabRecord(3, rec, &r)) << "byte " << i;
  }
}

ChunkHeader Header() {
  ChunkHeader h;
  const std::string key = "llama-70b/seq-12/layer-3";
  h.key_len = static_cast<std::uint8_t>(key.size());
  std::memcpy(h.key, key.data(), key.size());
  h.meta_len = 3;
  h.size = 65536;
  h.data_ref = 513;
  h.sequence = 99;
  h.data_xxh3 = 0x1234;
  StoreCommitWord(&h, CommitWord(kHeaderCommitted, HeaderCheck(h)));
  return h;
}

TEST(HeaderCheck, LeavesOutTheCommitWordAndTheDeadline) {
  ChunkHeader h = Header();
  const std::uint32_t check = HeaderCheck(h);
  EXPECT_EQ(HeaderProblem(h), "");
  h.expires_s = 1234567;  // a reopened store rewrites deadlines without re-committing
  EXPECT_EQ(HeaderCheck(h), check);
  EXPECT_EQ(HeaderProblem(h), "");
  StoreCommitWord(&h, CommitWord(kHeaderPending, 77));
  EXPECT_EQ(HeaderCheck(h), check);
  EXPECT_EQ(CommitWord(kHeaderCommitted, check) & 0xffffffffu, kHeaderCommitted);
  EXPECT_EQ(CommitWord(kHeaderCommitted, check) >> 32, check);
}

TEST(HeaderCheck, CatchesAFlippedKeyByte) {
  ChunkHeader h = Header();
  const std::uint32_t check = HeaderCheck(h);
  h.key[5] ^= 1;
  EXPECT_NE(HeaderCheck(h), check);
  EXPECT_EQ(HeaderProblem(h), "check mismatch (torn or corrupt)");
}

TEST(HeaderCheck, ProblemsOfHeadersThatDoNotCount) {
  ChunkHeader h = Header();
  StoreCommitWord(&h, CommitWord(kHeaderFree, 0));
  EXPECT_EQ(HeaderProblem(h), "free");
  StoreCommitWord(&h, CommitWord(kHeaderPending, 0));
  EXPECT_EQ(HeaderProblem(h), "pending (its put never completed)");
  StoreCommitWord(&h, CommitWord(0x12345678, HeaderCheck(h)));
  EXPECT_EQ(HeaderProblem(h), "unknown state");

  // Whole (the check matches) but out of range.
  auto recommit = [](ChunkHeader x) {
    StoreCommitWord(&x, CommitWord(kHeaderCommitted, HeaderCheck(x)));
    return HeaderProblem(x);
  };
  ChunkHeader k0 = Header();
  k0.key_len = 0;
  EXPECT_EQ(recommit(k0), "key length out of range");
  ChunkHeader k151 = Header();
  k151.key_len = static_cast<std::uint8_t>(kMaxKeySize + 1);
  EXPECT_EQ(recommit(k151), "key length out of range");
  ChunkHeader meta = Header();
  meta.meta_len = static_cast<std::uint8_t>(ChunkMeta::kMaxSize + 1);
  EXPECT_EQ(recommit(meta), "metadata length out of range");
  ChunkHeader empty = Header();
  empty.size = 0;
  EXPECT_EQ(recommit(empty), "empty chunk");
}

std::vector<SnapshotRecord> Records(std::uint32_t n) {
  std::vector<SnapshotRecord> r(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    r[i] = SnapshotRecord{i * 3ULL + 1, i * 5ULL + 2, 16384 + i, 4096 + 4 * i, 1000 + i, 0};
  }
  return r;
}

TEST(Snapshot, RoundTrip) {
  for (std::uint32_t n : {0u, 1u, 17u}) {
    const std::vector<SnapshotRecord> records = Records(n);
    const std::vector<std::byte> bytes = EncodeSnapshot(8, records);
    EXPECT_EQ(bytes.size(), kSnapshotHeaderSize + n * sizeof(SnapshotRecord));
    Result<std::vector<SnapshotRecord>> got = DecodeSnapshot(bytes, 8);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->size(), n);
    if (n > 0) {
      EXPECT_EQ(std::memcmp(got->data(), records.data(), n * sizeof(SnapshotRecord)), 0);
    }
  }
}

TEST(Snapshot, Errors) {
  const std::vector<std::byte> good = EncodeSnapshot(8, Records(4));
  auto message = [](std::span<const std::byte> b, std::uint64_t gen) {
    Result<std::vector<SnapshotRecord>> r = DecodeSnapshot(b, gen);
    EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    return r.status().message();
  };
  EXPECT_EQ(message(std::span(good).first(kSnapshotHeaderSize - 1), 8), "snapshot: truncated");
  EXPECT_EQ(message(good, 9), "snapshot: of another generation");
  std::vector<std::byte> b = good;
  b[0] = std::byte{0};
  EXPECT_EQ(message(b, 8), "snapshot: no magic");
  EXPECT_EQ(message(std::span(good).first(good.size() - 1), 8), "snapshot: count past its bytes");
  b = good;
  b[kSnapshotHeaderSize + 40] ^= std::byte{1};  // a record's byte
  EXPECT_EQ(message(b, 8), "snapshot: checksum mismatch");
}

TEST(PoolFormatTest, AFormat1SnapshotInAHeaderSlotIsToldFromADamagedHeader) {
  // Format 1 could write a small snapshot into a free header slot; its magic then reads as a
  // committed state word.
  const std::vector<std::byte> snapshot = EncodeSnapshot(3, {});
  ChunkHeader h;
  std::memcpy(&h, snapshot.data(), std::min(sizeof h, snapshot.size()));
  EXPECT_EQ(h.state, kHeaderCommitted);
  EXPECT_TRUE(OldSnapshotInHeaderSlot(h, 1));
  EXPECT_FALSE(OldSnapshotInHeaderSlot(h, 2));  // format 2 never writes one there
}

}  // namespace
}  // namespace cxlkv::internal
