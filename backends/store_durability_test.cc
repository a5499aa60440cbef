// Durable tiers: a store reopened on its pool finds every chunk again, after a clean close
// (from the index snapshot) and after a crash (an image of the pool file taken while the
// store is still open, which is what a killed process leaves in the page cache); damaged
// pools are refused or their damaged chunks dropped, never returned.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backends/key.h"
#include "backends/pool/pool_format.h"
#include "backends/pool/pool_scan.h"
#include "backends/store_test_util.h"
#include "cxlkv/store.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;
namespace fs = std::filesystem;

void WriteAt(const std::string& path, std::size_t offset, const void* data, std::size_t len) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(len));
  ASSERT_TRUE(f.good());
}

TierOptions Durable(const std::string& path, std::string durability = "persist-on-put",
                    std::size_t capacity = Slabs(64)) {
  TierOptions t;
  t.name = "pool";
  t.source_spec = "file:" + path;
  t.capacity = capacity;
  t.durability = std::move(durability);
  return t;
}

std::unique_ptr<Store> OpenPool(const std::string& path, std::string durability = "persist-on-put") {
  std::vector<TierOptions> tiers;
  tiers.push_back(Durable(path, std::move(durability)));
  return OpenTiers(std::move(tiers));
}

const std::size_t kSizes[] = {1, 255, 256, 257, 4000, kChunk, kChunk + 1, 100 * kKiB};

void PutAll(Store& s, int n) {
  for (int i = 0; i < n; ++i) {
    const std::size_t size = kSizes[i % std::size(kSizes)];
    const std::vector<std::byte> meta_bytes(static_cast<std::size_t>(i % 60), std::byte{7});
    auto meta = ChunkMeta::From(meta_bytes);
    ASSERT_TRUE(meta.ok());
    ASSERT_TRUE(s.Put(Key(i), Bytes(size, Seed(i)), *meta).ok()) << i;
  }
}

void ExpectAll(Store& s, int n) {
  for (int i = 0; i < n; ++i) {
    const std::size_t size = kSizes[i % std::size(kSizes)];
    std::vector<std::byte> dst(size);
    ChunkMeta meta;
    auto got = s.Get(Key(i), dst, &meta);
    ASSERT_TRUE(got.ok()) << Key(i) << ": " << got.status().ToString();
    EXPECT_EQ(*got, size);
    EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), size, Seed(i)), -1) << Key(i);
    EXPECT_EQ(meta.size, i % 60) << Key(i);
  }
}

TEST(StoreDurabilityTest, CleanCloseReopensFromTheSnapshot) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  {
    auto s = OpenPool(pool);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->Stats().tiers[0].durability, "persist-on-put");
    EXPECT_EQ(s->Stats().tiers[0].recovered, 0u);
    PutAll(*s, 40);
    ASSERT_TRUE(s->Remove(Key(5)).ok());
  }
  auto s = OpenPool(pool);
  ASSERT_NE(s, nullptr);
  const TierStats t = s->Stats().tiers[0];
  EXPECT_EQ(t.recovered, 39u);
  EXPECT_TRUE(t.recovered_from_snapshot);
  EXPECT_EQ(t.chunks, 39u);
  EXPECT_FALSE(s->Contains(Key(5)));
  ASSERT_TRUE(s->Remove(Key(6)).ok());
  // Everything else reads back, byte for byte, with its metadata.
  ASSERT_TRUE(s->Put(Key(5), Bytes(kSizes[5], Seed(5)), *ChunkMeta::From(
      std::vector<std::byte>(5, std::byte{7}))).ok());
  ASSERT_TRUE(s->Put(Key(6), Bytes(kSizes[6], Seed(6)), *ChunkMeta::From(
      std::vector<std::byte>(6, std::byte{7}))).ok());
  ExpectAll(*s, 40);
  EXPECT_EQ(s->Stats().tiers[0].corrupt_dropped, 0u);
}

TEST(StoreDurabilityTest, CrashImageRecoversByScanningHeaders) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool"), crashed = dir.File("crashed");
  auto s = OpenPool(pool);
  ASSERT_NE(s, nullptr);
  PutAll(*s, 50);
  ASSERT_TRUE(s->Remove(Key(7)).ok());
  // What a kill -9 leaves: the page cache's view of the file, no clean shutdown.
  fs::copy_file(pool, crashed);
  auto r = OpenPool(crashed);
  ASSERT_NE(r, nullptr);
  const TierStats t = r->Stats().tiers[0];
  EXPECT_FALSE(t.recovered_from_snapshot);
  EXPECT_EQ(t.recovered, 49u);
  EXPECT_FALSE(r->Contains(Key(7)));
  for (int i = 0; i < 50; ++i) {
    if (i != 7) {
      EXPECT_TRUE(r->Contains(Key(i))) << i;
    }
  }
  ASSERT_TRUE(r->Put(Key(7), Bytes(kSizes[7], Seed(7)), *ChunkMeta::From(
      std::vector<std::byte>(7, std::byte{7}))).ok());
  ExpectAll(*r, 50);
}

TEST(StoreDurabilityTest, SnapshotOfAnEarlierCloseIsNotTrustedAfterACrash) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool"), crashed = dir.File("crashed");
  { auto s = OpenPool(pool); ASSERT_NE(s, nullptr); PutAll(*s, 10); }
  auto s = OpenPool(pool);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->Stats().tiers[0].recovered_from_snapshot);
  // Chunks the snapshot does not list, one it does removed, then a crash.
  for (int i = 10; i < 20; ++i) PutChunk(*s, i, kSizes[i % std::size(kSizes)]);
  ASSERT_TRUE(s->Remove(Key(3)).ok());
  fs::copy_file(pool, crashed);
  auto r = OpenPool(crashed);
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->Stats().tiers[0].recovered_from_snapshot);
  EXPECT_EQ(r->Stats().tiers[0].recovered, 19u);
  EXPECT_FALSE(r->Contains(Key(3)));
  for (int i = 10; i < 20; ++i) ExpectChunk(*r, i, kSizes[i % std::size(kSizes)]);
}

TEST(StoreDurabilityTest, BackgroundDurabilityAfterSync) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool"), crashed = dir.File("crashed");
  std::vector<TierOptions> tiers;
  tiers.push_back(Durable(pool, "background"));
  tiers[0].flush_interval = std::chrono::hours(1);  // only Sync makes them durable here
  auto s = OpenTiers(std::move(tiers));
  ASSERT_NE(s, nullptr);
  PutAll(*s, 30);
  fs::copy_file(pool, dir.File("before_sync"));
  s->Sync();
  fs::copy_file(pool, crashed);
  {
    auto before = OpenPool(dir.File("before_sync"), "background");
    ASSERT_NE(before, nullptr);
    EXPECT_EQ(before->Stats().tiers[0].recovered, 0u);  // pending headers never count
  }
  auto r = OpenPool(crashed, "background");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->Stats().tiers[0].recovered, 30u);
  ExpectAll(*r, 30);
}

// Sync must also wait for a batch the flusher thread took before it: otherwise a process that
// dies right after Sync returns loses that batch (it did, before Flush waited for it).
TEST(StoreDurabilityTest, SyncWaitsForTheFlushersBatchInProgress) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  std::vector<TierOptions> tiers;
  tiers.push_back(Durable(pool, "background", Slabs(512)));
  tiers[0].flush_interval = std::chrono::milliseconds(1);  // the flusher runs all the time
  auto s = OpenTiers(std::move(tiers));
  ASSERT_NE(s, nullptr);
  for (int round = 0; round < 30; ++round) {
    const int first = round * 60;
    for (int i = first; i < first + 60; ++i) {
      ASSERT_TRUE(s->Put(Key(i), Bytes(kChunk, Seed(i))).ok());
    }
    s->Sync();
    // What a process killed now leaves in the page cache.
    const std::string image = dir.File("image" + std::to_string(round));
    fs::copy_file(pool, image);
    std::vector<TierOptions> again;
    again.push_back(Durable(image, "background", Slabs(512)));
    auto r = OpenTiers(std::move(again));
    ASSERT_NE(r, nullptr);
    for (int i = 0; i < first + 60; ++i) {
      ASSERT_TRUE(r->Contains(Key(i))) << "round " << round << ": chunk " << i
                                       << " put before Sync is not in the image";
    }
    r.reset();
    fs::remove(image);
  }
}

TEST(StoreDurabilityTest, ChunkWithDamagedBytesIsDroppedNeverReturned) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  { auto s = OpenPool(pool); ASSERT_NE(s, nullptr); PutAll(*s, 16); }
  // Find chunk 13's bytes in the image and flip one.
  const std::vector<std::byte> image = ReadWholeFile(pool);
  auto scan = internal::ScanPool(image);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  const internal::KeyHash h = internal::HashKey(Key(13));
  std::size_t offset = 0;
  for (const auto& c : scan->chunks) {
    if (c.hash == h) offset = std::size_t{c.data_ref} * internal::ChunkHeader::kSize + c.size / 2;
  }
  ASSERT_NE(offset, 0u);
  const char flipped = static_cast<char>(static_cast<unsigned char>(image[offset]) ^ 0x10);
  WriteAt(pool, offset, &flipped, 1);

  auto s = OpenPool(pool);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->Stats().tiers[0].recovered, 16u);  // headers alone look whole
  std::vector<std::byte> dst(200 * kKiB);
  auto got = s->Get(Key(13), dst);
  EXPECT_TRUE(got.status().IsCorruption()) << got.status().ToString();
  EXPECT_FALSE(s->Contains(Key(13)));
  EXPECT_FALSE(s->Pin(Key(13)).ok());
  EXPECT_EQ(s->Stats().tiers[0].corrupt_dropped, 1u);
  for (int i = 0; i < 16; ++i) {
    if (i != 13) {
      ExpectChunk(*s, i, kSizes[i % std::size(kSizes)]);
    }
  }
}

TEST(StoreDurabilityTest, TornHeaderIsNotRecovered) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool"), crashed = dir.File("crashed");
  auto s = OpenPool(pool);
  ASSERT_NE(s, nullptr);
  PutAll(*s, 8);
  fs::copy_file(pool, crashed);
  auto scan = internal::ScanPool(ReadWholeFile(crashed));
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->chunks.size(), 8u);
  // A byte of one header's key changes: its check no longer matches.
  const std::size_t at = std::size_t{scan->chunks[2].header_ref} * internal::ChunkHeader::kSize +
                         offsetof(internal::ChunkHeader, key);
  const char x = 'Z';
  WriteAt(crashed, at, &x, 1);
  auto rescan = internal::ScanPool(ReadWholeFile(crashed));
  ASSERT_TRUE(rescan.ok());
  EXPECT_EQ(rescan->chunks.size(), 7u);
  EXPECT_EQ(rescan->counts.torn, 1u);
  auto r = OpenPool(crashed);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->Stats().tiers[0].recovered, 7u);
}

TEST(StoreDurabilityTest, AnotherGeometryIsRefused) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  { auto s = OpenPool(pool); ASSERT_NE(s, nullptr); PutAll(*s, 4); }
  StoreOptions o;
  o.tiers.push_back(Durable(pool));
  o.chunk_sizes = {kChunk, 3 * kChunk};  // another class table
  o.slab_size = kSlab;
  o.background_thread = false;
  auto s = Store::Open(std::move(o));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsInvalidArgument());
  EXPECT_NE(s.status().message().find("another geometry"), std::string::npos)
      << s.status().ToString();
  EXPECT_NE(s.status().message().find("chunk sizes"), std::string::npos);
  // format = true starts over.
  std::vector<TierOptions> tiers;
  tiers.push_back(Durable(pool));
  tiers[0].format = true;
  auto fresh = OpenTiers(std::move(tiers));
  ASSERT_NE(fresh, nullptr);
  EXPECT_FALSE(fresh->Contains(Key(0)));
}

TEST(StoreDurabilityTest, NewerFormatAndDamagedSuperblocksAreRefused) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  { auto s = OpenPool(pool); ASSERT_NE(s, nullptr); PutAll(*s, 2); }
  const std::vector<std::byte> image = ReadWholeFile(pool);
  auto choice = internal::ReadSuperblocks(image);
  ASSERT_TRUE(choice.ok());
  internal::Superblock newer = choice->sb;
  newer.version = internal::kPoolFormatVersion + 1;
  std::vector<std::byte> block(internal::kSuperblockSize);
  internal::EncodeSuperblock(newer, std::span<std::byte, internal::kSuperblockSize>(block));
  WriteAt(pool, 0, block.data(), block.size());
  WriteAt(pool, internal::kSuperblockSize, block.data(), block.size());
  std::vector<TierOptions> tiers;
  tiers.push_back(Durable(pool));
  StoreOptions o2;
  o2.tiers = std::move(tiers);
  o2.chunk_sizes = {kChunk};
  o2.slab_size = kSlab;
  auto r = Store::Open(std::move(o2));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsUnsupported()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("newer"), std::string::npos);

  // Garbage in both superblocks: Corruption, with what to run.
  const std::vector<char> junk(2 * internal::kSuperblockSize, 'x');
  WriteAt(pool, 0, junk.data(), junk.size());
  StoreOptions o3;
  o3.tiers.push_back(Durable(pool));
  o3.chunk_sizes = {kChunk};
  o3.slab_size = kSlab;
  auto d = Store::Open(std::move(o3));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.status().IsCorruption()) << d.status().ToString();
  EXPECT_NE(d.status().message().find("cxlkv fsck"), std::string::npos);
}

TEST(StoreDurabilityTest, VolatileFileTierStartsEmptyAndDramCannotBeDurable) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  { auto s = OpenPool(pool, "volatile"); ASSERT_NE(s, nullptr); PutAll(*s, 4); }
  auto s = OpenPool(pool, "volatile");
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->Contains(Key(0)));
  EXPECT_EQ(s->Stats().tiers[0].durability, "volatile");

  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(8)));
  o.tiers[0].durability = "persist-on-put";
  o.slab_size = kSlab;
  auto d = Store::Open(std::move(o));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.status().IsInvalidArgument());
  EXPECT_NE(d.status().message().find("file or devdax"), std::string::npos)
      << d.status().ToString();
  StoreOptions bad;
  bad.tiers.push_back(Durable(pool, "sometimes"));
  EXPECT_TRUE(Store::Open(std::move(bad)).status().IsInvalidArgument());
}

TEST(StoreDurabilityTest, DemotionOutOfADurableTierAndSpillSurviveARestart) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  auto open = [&] {
    StoreOptions o;
    o.tiers.push_back(Durable(pool, "persist-on-put", Slabs(8)));
    o.spill.path = dir.File("spill");
    o.spill.capacity = 64ull << 20;
    o.spill.segment_size = 1 << 20;
    o.spill.direct_io = false;
    return OpenStore(std::move(o));
  };
  {
    auto s = open();
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 80; ++i) PutChunk(*s, i);  // 8 slabs hold 32: the rest spill
    s->Maintain();
  }
  auto s = open();
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 80; ++i) ExpectChunk(*s, i);
}

}  // namespace
}  // namespace cxlkv
