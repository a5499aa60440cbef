#include "server/key_list.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <vector>

namespace cxlkv::serve {
namespace {

std::unique_ptr<Store> TinyStore() {
  StoreOptions o;
  TierOptions t;
  t.source = MemorySource::Dram(DramOptions{HugePages::kNone, false});
  t.capacity = std::size_t{1} << 20;  // 16 slabs of 64 KiB: a few hundred 1 KiB chunks
  o.tiers.push_back(std::move(t));
  o.slab_size = std::size_t{64} << 10;
  o.background_thread = false;
  auto s = Store::Open(std::move(o));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

TEST(KeyListTest, ListsWhatTheStoreHoldsAndStaysBounded) {
  auto store = TinyStore();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<ChunkStore> chunks = StoreChunks(*store);
  KeyList keys;
  std::vector<std::byte> chunk(1024);
  for (int i = 0; i < 20000; ++i) {
    const std::string k = "key" + std::to_string(i);
    ASSERT_TRUE(store->Put(k, chunk).ok());  // the tier holds far fewer: older ones are dropped
    keys.Add(k, *chunks);
  }
  const std::size_t held = store->Stats().index_entries;
  ASSERT_LT(held, 2000u);
  EXPECT_LE(keys.size(), 2 * held + 1024);  // pruned as it grew, never 20000
  std::set<std::string> listed;
  bool truncated = true;
  std::istringstream in(keys.Snapshot(*chunks, std::size_t{1} << 20, &truncated));
  EXPECT_FALSE(truncated);
  for (std::string line; std::getline(in, line);) listed.insert(line);
  EXPECT_EQ(listed.size(), held);
  for (const std::string& k : listed) EXPECT_TRUE(store->Contains(k)) << k;
  EXPECT_EQ(keys.size(), held);
}

TEST(KeyListTest, SnapshotStopsAtItsCap) {
  auto store = TinyStore();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<ChunkStore> chunks = StoreChunks(*store);
  KeyList keys;
  std::vector<std::byte> chunk(1024);
  for (int i = 0; i < 100; ++i) {
    const std::string k = "key-" + std::to_string(1000 + i);  // 8 bytes each
    ASSERT_TRUE(store->Put(k, chunk).ok());
    keys.Add(k, *chunks);
  }
  bool truncated = false;
  const std::string capped = keys.Snapshot(*chunks, 9 * 10, &truncated);
  EXPECT_TRUE(truncated);
  EXPECT_EQ(capped.size(), 9u * 10 - 1);  // ten keys and nine newlines fit 90 bytes
  const std::string all = keys.Snapshot(*chunks, 9 * 100, &truncated);
  EXPECT_FALSE(truncated);
  EXPECT_EQ(all.size(), 9u * 100 - 1);
}

}  // namespace
}  // namespace cxlkv::serve
