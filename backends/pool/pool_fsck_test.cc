// fsck reads every chunk's bytes, finds the damaged one a store's open would only find on a
// read, and --repair leaves a pool that checks clean and reopens with the rest intact.
#include "backends/pool/pool_fsck.h"

#include <gtest/gtest.h>

#include <fstream>

#include "backends/key.h"
#include "backends/store_test_util.h"
#include "cxlkv/memory_source.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;

std::unique_ptr<Store> OpenPool(const std::string& path) {
  TierOptions t;
  t.name = "pool";
  t.source_spec = "file:" + path;
  t.capacity = Slabs(32);
  t.durability = "persist-on-put";
  std::vector<TierOptions> tiers;
  tiers.push_back(std::move(t));
  return OpenTiers(std::move(tiers));
}

std::unique_ptr<MemoryRegion> MapPool(const std::string& path) {
  FileOptions fo;
  fo.path = path;
  fo.create = false;
  auto r = MemorySource::File(fo)->Map(Slabs(32));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(PoolFsckTest, FindsAndRepairsADamagedChunk) {
  testing::TempDir dir;
  const std::string pool = dir.File("pool");
  {
    auto s = OpenPool(pool);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 20; ++i) PutChunk(*s, i, 1000 + 3000 * static_cast<std::size_t>(i));
  }
  {
    auto region = MapPool(pool);
    ASSERT_NE(region, nullptr);
    auto report = internal::FsckPool(*region, /*repair=*/false, 2);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->clean()) << report->ToString();
    EXPECT_EQ(report->chunks, 20u);
    EXPECT_TRUE(report->superblock.clean);
    EXPECT_NE(report->ToJson().find("\"chunks\":20"), std::string::npos);

    // One byte of chunk 11 flips on the media.
    auto scan = internal::ScanPool(std::span<const std::byte>(region->data(), region->size()));
    ASSERT_TRUE(scan.ok());
    for (const auto& c : scan->chunks) {
      if (c.hash == internal::HashKey(Key(11))) {
        region->data()[std::size_t{c.data_ref} * internal::ChunkHeader::kSize + 5] ^= std::byte{1};
      }
    }
    report = internal::FsckPool(*region, /*repair=*/false, 2);
    ASSERT_TRUE(report.ok());
    EXPECT_EQ(report->corrupt, 1u);
    EXPECT_FALSE(report->clean());
    EXPECT_NE(report->ToString().find("PROBLEMS FOUND"), std::string::npos);

    report = internal::FsckPool(*region, /*repair=*/true, 2);
    ASSERT_TRUE(report.ok());
    EXPECT_EQ(report->repaired_headers, 1u);
    report = internal::FsckPool(*region, /*repair=*/false, 1);
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->clean()) << report->ToString();
    EXPECT_EQ(report->chunks, 19u);
    EXPECT_FALSE(report->superblock.clean);  // the snapshot is stale now
  }
  auto s = OpenPool(pool);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->Stats().tiers[0].recovered_from_snapshot);
  EXPECT_EQ(s->Stats().tiers[0].recovered, 19u);
  EXPECT_FALSE(s->Contains(Key(11)));
  for (int i = 0; i < 20; ++i) {
    if (i != 11) {
      ExpectChunk(*s, i, 1000 + 3000 * static_cast<std::size_t>(i));
    }
  }
}

TEST(PoolFsckTest, NotAPoolIsAnError) {
  testing::TempDir dir;
  const std::string path = dir.File("zeros");
  { std::ofstream(path) << std::string(Slabs(32), '\0'); }
  auto region = MapPool(path);
  ASSERT_NE(region, nullptr);
  auto report = internal::FsckPool(*region, false, 1);
  EXPECT_TRUE(report.status().IsNotFound()) << report.status().ToString();
}

}  // namespace
}  // namespace cxlkv
