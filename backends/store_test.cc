#include "cxlkv/store.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "backends/key.h"
#include "backends/store_test_util.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;  // NOLINT(google-build-using-namespace): test helpers
using testing::FirstPatternMismatch;
using testing::TempDir;

std::unique_ptr<Store> OneTier(std::size_t capacity, std::string eviction = "lru") {
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(capacity, std::move(eviction)));
  return OpenTiers(std::move(tiers));
}

TEST(StoreTest, RoundTripOfSeveralSizesWithMeta) {
  auto s = OneTier(Slabs(64));
  ASSERT_NE(s, nullptr);
  const std::size_t sizes[] = {1, 4095, 4096, kChunk, 100000, 1000 * kKiB};
  int i = 0;
  for (std::size_t size : sizes) {
    const std::string m = "fmt=vllm dtype=bf16 shape=" + std::to_string(size);
    auto meta = ChunkMeta::From(std::as_bytes(std::span(m.data(), m.size())));
    ASSERT_TRUE(meta.ok());
    ASSERT_TRUE(s->Put(Key(i), Bytes(size, Seed(i)), *meta).ok()) << size;
    ChunkMeta got;
    std::vector<std::byte> dst(size);
    auto n = s->Get(Key(i), dst, &got);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, size);
    EXPECT_EQ(FirstPatternMismatch(dst.data(), size, Seed(i)), -1) << size;
    EXPECT_EQ(got, *meta);
    EXPECT_EQ(s->Size(Key(i)).value_or(0), size);
    ++i;
  }
  StoreStats st = s->Stats();
  EXPECT_EQ(st.index_entries, std::size(sizes));
  EXPECT_EQ(st.tiers[0].chunks, std::size(sizes));
  EXPECT_EQ(st.tiers[0].hits, std::size(sizes));
  EXPECT_GT(st.index_bytes_per_entry, 0);
  std::printf("%s", st.ToString().c_str());
}

TEST(StoreTest, WriteOnceKeepsTheFirstBytes) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  PutChunk(*s, 1);
  ASSERT_TRUE(s->Put(Key(1), Bytes(kChunk, 77)).ok());
  ASSERT_TRUE(s->Put(Key(1), Bytes(100, 77)).ok());
  ExpectChunk(*s, 1);
  EXPECT_EQ(s->Stats().tiers[0].chunks, 1u);
}

TEST(StoreTest, BadInputsAreInvalidArgument) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  auto bytes = Bytes(kChunk, 1);
  Status st = s->Put("", bytes);
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  st = s->Put(std::string(151, 'k'), bytes);
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("151"), std::string::npos) << st.ToString();
  EXPECT_TRUE(s->Put(std::string(150, 'k'), bytes).ok());
  st = s->Put("empty", std::span<const std::byte>());
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  st = s->Put("huge", Bytes(Slabs(4) + 1, 1));  // larger than the whole tier
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_TRUE(ChunkMeta::From(std::vector<std::byte>(65)).status().IsInvalidArgument());
  EXPECT_TRUE(s->Get("", bytes).status().IsInvalidArgument());

  PutChunk(*s, 2);
  std::vector<std::byte> small(kChunk - 1);
  EXPECT_TRUE(s->Get(Key(2), small).status().IsInvalidArgument());
}

TEST(StoreTest, OpenErrorsNameTheTier) {
  EXPECT_TRUE(Store::Open(StoreOptions{}).status().IsInvalidArgument());
  auto open_one = [](TierOptions t) {
    StoreOptions o;
    o.tiers.push_back(std::move(t));
    o.slab_size = kSlab;
    return Store::Open(std::move(o)).status();
  };
  Status st = open_one(Dram(Slabs(4), "clock"));
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("dram"), std::string::npos) << st.ToString();
  TierOptions bad_spec;
  bad_spec.name = "weird";
  bad_spec.source_spec = "tape:/dev/st0";
  bad_spec.capacity = 4 * kSlab;
  st = open_one(std::move(bad_spec));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("weird"), std::string::npos) << st.ToString();
  st = open_one(Dram(kSlab / 2));
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
}

TEST(StoreTest, MissesAreNotFoundAndCounted) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  std::vector<std::byte> dst(kChunk);
  EXPECT_TRUE(s->Get("absent", dst).status().IsNotFound());
  EXPECT_TRUE(s->Pin("absent").status().IsNotFound());
  EXPECT_TRUE(s->Size("absent").status().IsNotFound());
  EXPECT_TRUE(s->Remove("absent").IsNotFound());
  EXPECT_FALSE(s->Contains("absent"));
  EXPECT_EQ(s->Stats().misses, 2u);
}

TEST(StoreTest, LongestPrefix) {
  auto s = OneTier(Slabs(8));
  ASSERT_NE(s, nullptr);
  for (int i : {0, 1, 2, 4}) PutChunk(*s, i);
  std::vector<std::string> owned;
  for (int i = 0; i < 6; ++i) owned.push_back(Key(i));
  std::vector<std::string_view> keys(owned.begin(), owned.end());
  EXPECT_EQ(s->LongestPrefix(keys), 3u);
  EXPECT_EQ(s->LongestPrefix(std::span(keys).subspan(1)), 2u);
  EXPECT_EQ(s->LongestPrefix(std::span(keys).subspan(3)), 0u);
  EXPECT_EQ(s->LongestPrefix({}), 0u);
}

// ContainsBatch gives Contains' answer for every key, across groups (it works in groups of
// 64), with present, absent, removed and invalid keys mixed, and counts the present ones.
TEST(StoreTest, ContainsBatchAgreesWithContains) {
  auto s = OneTier(Slabs(8));
  ASSERT_NE(s, nullptr);
  const std::byte small[64] = {};
  std::vector<std::string> owned;
  for (int i = 0; i < 300; ++i) {
    owned.push_back(Key(i));
    if (i % 3 != 0) {
      ASSERT_TRUE(s->Put(Key(i), small).ok()) << i;
    }
  }
  for (int i = 1; i < 300; i += 30) ASSERT_TRUE(s->Remove(Key(i)).ok()) << i;
  owned.insert(owned.begin() + 70, "");                      // invalid: empty
  owned.insert(owned.begin() + 130, std::string(4096, 'k'));  // invalid: too long
  owned.push_back(Key(2));                                    // a key asked twice
  std::vector<std::string_view> keys(owned.begin(), owned.end());
  std::unique_ptr<bool[]> found(new bool[keys.size()]);
  std::fill_n(found.get(), keys.size(), true);  // every answer must be written
  const std::size_t hits = s->ContainsBatch(keys, std::span(found.get(), keys.size()));
  std::size_t expected_hits = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const bool want = s->Contains(keys[i]);
    expected_hits += want ? 1 : 0;
    EXPECT_EQ(found[i], want) << i << ": " << keys[i].substr(0, 40);
  }
  EXPECT_EQ(hits, expected_hits);
  EXPECT_EQ(expected_hits, 300u - 100u - 10u + 1u);  // 200 put, 10 of them removed, Key(2) twice
  // Within the prefix of keys a shorter found span limits the lookups.
  EXPECT_EQ(s->ContainsBatch(keys, std::span(found.get(), 3)), 1u);
  EXPECT_EQ(s->ContainsBatch({}, {}), 0u);
}

TEST(StoreTest, LongestPrefixAcrossItsWindows) {
  auto s = OneTier(Slabs(8));
  ASSERT_NE(s, nullptr);
  const std::byte small[64] = {};
  std::vector<std::string> owned;
  for (int i = 0; i < 50; ++i) {
    owned.push_back(Key(i));
    if (i != 37) {
      ASSERT_TRUE(s->Put(Key(i), small).ok()) << i;
    }
  }
  std::vector<std::string_view> keys(owned.begin(), owned.end());
  EXPECT_EQ(s->LongestPrefix(keys), 37u);
  EXPECT_EQ(s->LongestPrefix(std::span(keys).first(37)), 37u);
  EXPECT_EQ(s->LongestPrefix(std::span(keys).first(32)), 32u);  // two whole windows
  EXPECT_EQ(s->LongestPrefix(std::span(keys).subspan(38)), 12u);
}

// Fills a one-tier store of 4 slabs (16 chunks) and returns how many fit before any eviction.
int Fill(Store& s, int n) {
  for (int i = 0; i < n; ++i) {
    PutChunk(s, i);
    if (s.Stats().tiers.back().evictions != 0) return i;
  }
  return n;
}

TEST(StoreTest, LruEvictsTheLeastRecentlyUsed) {
  auto s = OneTier(Slabs(4), "lru");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(Fill(*s, 16), 16);
  ExpectChunk(*s, 0);  // 0 becomes the most recent; 1 is now the coldest
  PutChunk(*s, 16);
  PutChunk(*s, 17);
  EXPECT_TRUE(s->Contains(Key(0)));
  EXPECT_FALSE(s->Contains(Key(1)));
  EXPECT_FALSE(s->Contains(Key(2)));
  for (int i = 3; i <= 17; ++i) EXPECT_TRUE(s->Contains(Key(i))) << i;
  EXPECT_EQ(s->Stats().tiers[0].evictions, 2u);
  EXPECT_EQ(s->Stats().tiers[0].demotions, 0u);  // last tier: dropped
}

TEST(StoreTest, FifoIgnoresHits) {
  auto s = OneTier(Slabs(4), "fifo");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(Fill(*s, 16), 16);
  ExpectChunk(*s, 0);
  PutChunk(*s, 16);
  EXPECT_FALSE(s->Contains(Key(0)));
  for (int i = 1; i <= 16; ++i) EXPECT_TRUE(s->Contains(Key(i))) << i;
}

TEST(StoreTest, DemotesToTheFileTierAndKeepsEveryByte) {
  TempDir dir;
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(Slabs(4)));
  tiers.push_back(FilePool(dir, Slabs(16)));
  auto s = OpenTiers(std::move(tiers));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 40; ++i) PutChunk(*s, i);
  for (int i = 0; i < 40; ++i) ExpectChunk(*s, i);
  StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[0].demotions, 24u);
  EXPECT_EQ(st.tiers[0].evictions, 24u);
  EXPECT_EQ(st.tiers[0].chunks, 16u);
  EXPECT_EQ(st.tiers[1].chunks, 24u);
  EXPECT_EQ(st.tiers[1].evictions, 0u);
  EXPECT_EQ(st.tiers[1].bytes_in, 24 * kChunk);
  auto pinned = s->Pin(Key(0));
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(pinned->tier(), 1u);
  EXPECT_EQ(FirstPatternMismatch(pinned->data(), pinned->size(), Seed(0)), -1);
  std::printf("%s", st.ToString().c_str());
}

TEST(StoreTest, LastTierDropsItsColdest) {
  TempDir dir;
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(Slabs(4)));
  tiers.push_back(FilePool(dir, Slabs(4)));
  auto s = OpenTiers(std::move(tiers));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 40; ++i) PutChunk(*s, i);
  for (int i = 0; i < 8; ++i) EXPECT_FALSE(s->Contains(Key(i))) << i;
  for (int i = 8; i < 40; ++i) ExpectChunk(*s, i);
  StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[1].evictions, 8u);
  EXPECT_EQ(st.tiers[1].demotions, 0u);
  EXPECT_EQ(st.index_entries, 32u);
}

TEST(StoreTest, DemotesAcrossThreeTiersDramFileNumaNode0) {
  TempDir dir;
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(Slabs(4)));
  tiers.push_back(FilePool(dir, Slabs(4)));
  TierOptions numa;
  numa.name = "numa0";
  numa.source = MemorySource::NumaNode(NumaOptions{0, HugePages::kNone, true});
  numa.capacity = Slabs(8);
  tiers.push_back(std::move(numa));
  auto s = OpenTiers(std::move(tiers));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 64; ++i) PutChunk(*s, i);  // 16 + 16 + 32 slots: nothing dropped
  StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[0].demotions, 48u);
  EXPECT_EQ(st.tiers[1].demotions, 32u);
  EXPECT_EQ(st.tiers[2].chunks, 32u);
  EXPECT_EQ(st.tiers[2].evictions, 0u);
  for (int i = 0; i < 64; ++i) {
    auto p = s->Pin(Key(i));
    ASSERT_TRUE(p.ok()) << Key(i);
    EXPECT_EQ(p->tier(), i < 32 ? 2u : i < 48 ? 1u : 0u) << Key(i);
    EXPECT_EQ(FirstPatternMismatch(p->data(), p->size(), Seed(i)), -1) << Key(i);
  }
}

TEST(StoreTest, ChunkTooLargeForTheNextTierIsDropped) {
  TempDir dir;
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(Slabs(32)));      // slots up to 16 slabs
  tiers.push_back(FilePool(dir, Slabs(4)));  // slots up to 4 slabs
  auto s = OpenTiers(std::move(tiers));
  ASSERT_NE(s, nullptr);
  const std::size_t big = 8 * kSlab;  // how many fit in tier 0 is the slab allocator's call
  for (int i = 0; i < 6; ++i) PutChunk(*s, i, big);
  int present = 0;
  for (int i = 0; i < 6; ++i) {
    if (!s->Contains(Key(i))) continue;
    ++present;
    ExpectChunk(*s, i, big);
  }
  EXPECT_FALSE(s->Contains(Key(0)));
  EXPECT_TRUE(s->Contains(Key(5)));
  StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[0].evictions, static_cast<std::uint64_t>(6 - present));
  EXPECT_EQ(st.tiers[0].demotions, 0u);
  EXPECT_EQ(st.tiers[1].chunks, 0u);
}

TEST(StoreTest, PinnedChunksAreNeverEvicted) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  PutChunk(*s, 0);
  auto lease = s->Pin(Key(0));
  ASSERT_TRUE(lease.ok());
  for (int i = 1; i < 100; ++i) PutChunk(*s, i);
  EXPECT_TRUE(s->Contains(Key(0)));
  EXPECT_EQ(FirstPatternMismatch(lease->data(), kChunk, Seed(0)), -1);
  ExpectChunk(*s, 0);
  lease->Release();
  for (int i = 100; i < 120; ++i) PutChunk(*s, i);
  EXPECT_FALSE(s->Contains(Key(0)));  // evictable again once released
}

TEST(StoreTest, EverythingPinnedIsNoSpace) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  std::vector<PinnedChunk> leases;
  for (int i = 0; i < 16; ++i) {
    PutChunk(*s, i);
    auto p = s->Pin(Key(i));
    ASSERT_TRUE(p.ok());
    leases.push_back(std::move(p).value());
  }
  Status st = s->Put(Key(16), Bytes(kChunk, Seed(16)));
  EXPECT_TRUE(st.IsNoSpace()) << st.ToString();
  for (int i = 0; i < 16; ++i) ExpectChunk(*s, i);
  leases.pop_back();  // frees one candidate: chunk 15
  EXPECT_TRUE(s->Put(Key(16), Bytes(kChunk, Seed(16))).ok());
  EXPECT_FALSE(s->Contains(Key(15)));
}

TEST(StoreTest, RemoveFreesNowOrWhenTheLastLeaseEnds) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  PutChunk(*s, 0);
  PutChunk(*s, 1);
  ASSERT_TRUE(s->Remove(Key(0)).ok());
  EXPECT_FALSE(s->Contains(Key(0)));
  EXPECT_EQ(s->Stats().tiers[0].chunks, 1u);
  EXPECT_TRUE(s->Remove(Key(0)).IsNotFound());

  auto lease = s->Pin(Key(1));
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(s->Remove(Key(1)).ok());
  EXPECT_FALSE(s->Contains(Key(1)));
  EXPECT_EQ(s->Stats().tiers[0].chunks, 1u);  // slot held by the lease
  // The key may be stored again while the old bytes are still leased.
  ASSERT_TRUE(s->Put(Key(1), Bytes(kChunk, 5)).ok());
  EXPECT_EQ(s->Stats().tiers[0].chunks, 2u);
  EXPECT_EQ(FirstPatternMismatch(lease->data(), kChunk, Seed(1)), -1);
  PinnedChunk moved = std::move(lease).value();
  moved.Release();
  EXPECT_EQ(s->Stats().tiers[0].chunks, 1u);
  std::vector<std::byte> dst(kChunk);
  ASSERT_TRUE(s->Get(Key(1), dst).ok());
  EXPECT_EQ(FirstPatternMismatch(dst.data(), kChunk, 5), -1);
}

internal::KeyHash SameHash(std::string_view) { return {42, 7}; }

TEST(StoreTest, HashCollisionNeverReturnsAnotherKeysChunk) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  internal::SetKeyHasherForTesting(&SameHash);
  PutChunk(*s, 1);
  std::vector<std::byte> dst(kChunk);
  EXPECT_TRUE(s->Get(Key(2), dst).status().IsNotFound());
  EXPECT_TRUE(s->Contains(Key(2)));  // lookups go by the hash alone (documented); reads do not
  EXPECT_TRUE(s->Pin(Key(2)).status().IsNotFound());
  EXPECT_TRUE(s->Remove(Key(2)).IsNotFound());
  Status st = s->Put(Key(2), Bytes(kChunk, Seed(2)));
  EXPECT_EQ(st.code(), StatusCode::kBusy) << st.ToString();
  ExpectChunk(*s, 1);
  internal::SetKeyHasherForTesting(nullptr);
}

}  // namespace
}  // namespace cxlkv
