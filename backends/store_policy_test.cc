// Eviction order per policy (one tier of 16 chunks, so every eviction is a drop we can see) and
// TTL expiry under an injected clock.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/store_test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;  // NOLINT(google-build-using-namespace): test helpers

constexpr int kCapacityChunks = 16;  // Slabs(4) of 16 KiB chunks

std::unique_ptr<Store> OneTier(const std::string& eviction) {
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(Slabs(4), eviction));
  return OpenTiers(std::move(tiers));
}

void Read(Store& s, int i, int times = 1) {
  for (int n = 0; n < times; ++n) ExpectChunk(s, i);
}

std::vector<int> Missing(Store& s, int upto) {
  std::vector<int> out;
  for (int i = 0; i < upto; ++i) {
    if (!s.Contains(Key(i))) out.push_back(i);
  }
  return out;
}

TEST(StorePolicyTest, LruEvictsTheLeastRecentlyRead) {
  auto s = OneTier("lru");
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < kCapacityChunks; ++i) PutChunk(*s, i);
  Read(*s, 0);
  Read(*s, 1);
  PutChunk(*s, 16);
  PutChunk(*s, 17);
  EXPECT_EQ(Missing(*s, 18), (std::vector<int>{2, 3}));
}

TEST(StorePolicyTest, FifoIgnoresReads) {
  auto s = OneTier("fifo");
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < kCapacityChunks; ++i) PutChunk(*s, i);
  Read(*s, 0, 5);
  PutChunk(*s, 16);
  PutChunk(*s, 17);
  EXPECT_EQ(Missing(*s, 18), (std::vector<int>{0, 1}));
}

TEST(StorePolicyTest, LfuEvictsTheLeastReadThenTheLeastRecent) {
  auto s = OneTier("lfu");
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < kCapacityChunks; ++i) PutChunk(*s, i);
  for (int i = 0; i < kCapacityChunks; ++i) Read(*s, i, i % 4);  // 0, 4, 8, 12 never read
  PutChunk(*s, 16);  // unread: 0 4 8 12, oldest first
  EXPECT_EQ(Missing(*s, 17), (std::vector<int>{0}));
  PutChunk(*s, 17);  // unread: 4 8 12 16
  EXPECT_EQ(Missing(*s, 18), (std::vector<int>{0, 4}));
  Read(*s, 8);  // 8 now read once: 12 and 16, 17 are the unread ones
  PutChunk(*s, 18);
  EXPECT_EQ(Missing(*s, 19), (std::vector<int>{0, 4, 12}));
  // The most-read survive a long run of new chunks: 3, 7, 11, 15 were read three times.
  for (int i = 100; i < 112; ++i) PutChunk(*s, i);
  for (int i : {3, 7, 11, 15}) EXPECT_TRUE(s->Contains(Key(i))) << i;
}

TEST(StorePolicyTest, S3FifoKeepsReadChunksThroughAScan) {
  auto s = OneTier("s3fifo");
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < kCapacityChunks; ++i) PutChunk(*s, i);
  Read(*s, 0);
  Read(*s, 1);
  // The small queue holds all 16 (far over its 10%): its tail 0 and 1 were read, so they move
  // to main, and 2, unread, is the first to go.
  PutChunk(*s, 16);
  EXPECT_EQ(Missing(*s, 17), (std::vector<int>{2}));
  // A scan of 40 one-time chunks churns through the small queue and never touches 0 and 1.
  for (int i = 200; i < 240; ++i) PutChunk(*s, i);
  EXPECT_TRUE(s->Contains(Key(0)));
  EXPECT_TRUE(s->Contains(Key(1)));
  for (int i = 3; i < 16; ++i) EXPECT_FALSE(s->Contains(Key(i))) << i;

  // LRU under the same scan loses them.
  auto lru = OneTier("lru");
  ASSERT_NE(lru, nullptr);
  for (int i = 0; i < kCapacityChunks; ++i) PutChunk(*lru, i);
  Read(*lru, 0);
  Read(*lru, 1);
  for (int i = 200; i < 240; ++i) PutChunk(*lru, i);
  EXPECT_FALSE(lru->Contains(Key(0)));
  EXPECT_FALSE(lru->Contains(Key(1)));
}

TEST(StorePolicyTest, S3FifoGhostSendsAReturningChunkToMain) {
  auto s = OneTier("s3fifo");
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < kCapacityChunks; ++i) PutChunk(*s, i);
  PutChunk(*s, 16);  // evicts 0 (unread) into the ghost
  ASSERT_FALSE(s->Contains(Key(0)));
  PutChunk(*s, 0);   // remembered: straight to main
  // A scan of unread chunks now passes 0 by, though it was never read since it came back.
  for (int i = 300; i < 340; ++i) PutChunk(*s, i);
  EXPECT_TRUE(s->Contains(Key(0)));
  EXPECT_FALSE(s->Contains(Key(1)));
  EXPECT_GT(s->Stats().policy_bytes, 0u);
}

TEST(StorePolicyTest, PinnedChunksArePassedOverByEveryPolicy) {
  for (const char* policy :
       {"lru", "fifo", "lfu", "s3fifo", "prefix-chains", "prefix", "prefix-hazard"}) {
    SCOPED_TRACE(policy);
    auto s = OneTier(policy);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < kCapacityChunks; ++i) PutChunk(*s, i);
    std::vector<PinnedChunk> leases;
    for (int i : {0, 1, 2}) leases.push_back(std::move(s->Pin(Key(i))).value());
    for (int i = 100; i < 140; ++i) PutChunk(*s, i);
    for (int i : {0, 1, 2}) ExpectChunk(*s, i);
    EXPECT_EQ(s->Stats().tiers[0].chunks, static_cast<std::size_t>(kCapacityChunks));
  }
}

// A prefix policy learns the prompt's chain from LongestPrefix and declines, with an Ok that
// stores nothing, what no prefix lookup could reach: a chain's last chunk smaller than the
// chunks before it (a partial block), and a chunk whose predecessor is not stored.
TEST(StorePolicyTest, PrefixPoliciesDeclineUnreachableChunks) {
  for (const char* policy : {"prefix-chains", "prefix", "prefix-hazard"}) {
    SCOPED_TRACE(policy);
    auto s = OneTier(policy);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(LongestPrefix(*s, Keys(0, 3)), 0u);
    PutChunk(*s, 0);
    PutChunk(*s, 1);
    PutChunk(*s, 2, kChunk / 2);  // the partial last chunk
    EXPECT_EQ(Missing(*s, 3), (std::vector<int>{2}));

    ASSERT_EQ(LongestPrefix(*s, Keys(10, 13)), 0u);
    PutChunk(*s, 11);  // 10 is not stored: 11 cannot be reached
    Result<ReservedChunk> reserved = s->Reserve(Key(12), kChunk);
    ASSERT_TRUE(reserved.ok()) << reserved.status().ToString();
    EXPECT_TRUE(reserved->already_stored());  // 11 is not stored either
    EXPECT_TRUE(reserved->Commit().ok());
    EXPECT_FALSE(s->Contains(Key(11)));
    EXPECT_FALSE(s->Contains(Key(12)));

    // The next request reads the stored prefix and stores the rest.
    ASSERT_EQ(LongestPrefix(*s, Keys(0, 3)), 2u);
    ExpectChunk(*s, 0);
    ExpectChunk(*s, 1);
    EXPECT_EQ(s->Stats().tiers[0].chunks, 2u);
    EXPECT_GT(s->Stats().policy_bytes, 0u);
  }
  auto lru = OneTier("lru");  // the others store what they are given
  ASSERT_EQ(LongestPrefix(*lru, Keys(10, 13)), 0u);
  PutChunk(*lru, 11);
  EXPECT_TRUE(lru->Contains(Key(11)));
}

// A prompt longer than the tier: storing its 17th chunk evicts the least recent, the chain's
// head, and a prefix policy removes the chunks behind it too (never a hit without it).
TEST(StorePolicyTest, PrefixPoliciesDropOrphansWithTheirHead) {
  for (const char* policy : {"prefix-chains", "prefix", "prefix-hazard", "lru"}) {
    SCOPED_TRACE(policy);
    auto s = OneTier(policy);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(LongestPrefix(*s, Keys(0, kCapacityChunks + 1)), 0u);
    for (int i = 0; i <= kCapacityChunks; ++i) PutChunk(*s, i);
    const StoreStats st = s->Stats();
    EXPECT_EQ(st.tiers[0].evictions, 1u);
    EXPECT_FALSE(s->Contains(Key(0)));
    EXPECT_TRUE(s->Contains(Key(kCapacityChunks)));  // admitted while its predecessor was stored
    if (std::string(policy) == "lru") {
      EXPECT_EQ(st.tiers[0].chunks, static_cast<std::size_t>(kCapacityChunks));
    } else {
      EXPECT_EQ(st.tiers[0].chunks, 1u);
      EXPECT_EQ(Missing(*s, kCapacityChunks).size(), static_cast<std::size_t>(kCapacityChunks));
    }
  }
}

TEST(StorePolicyTest, UnknownPolicyIsInvalidArgument) {
  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(4), "arc"));
  o.slab_size = kSlab;
  Status st = Store::Open(std::move(o)).status();
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("s3fifo"), std::string::npos) << st.ToString();
}

// A clock the test moves by hand.
struct ManualClock {
  std::shared_ptr<std::atomic<std::int64_t>> ns = std::make_shared<std::atomic<std::int64_t>>(0);
  std::function<std::chrono::nanoseconds()> fn() const {
    auto p = ns;
    return [p] { return std::chrono::nanoseconds(p->load()); };
  }
  void Set(double seconds) const { ns->store(static_cast<std::int64_t>(seconds * 1e9)); }
};

std::unique_ptr<Store> TtlStore(const ManualClock& clock, std::chrono::seconds ttl) {
  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(4)));
  o.ttl = ttl;
  o.clock = clock.fn();
  return OpenStore(std::move(o));
}

TEST(StoreTtlTest, ChunksExpireAtTheirDeadlineRoundedUpToASecond) {
  ManualClock clock;
  clock.Set(0.5);
  auto s = TtlStore(clock, std::chrono::seconds(10));
  ASSERT_NE(s, nullptr);
  PutChunk(*s, 1);  // deadline ceil(10.5) = 11 s
  clock.Set(10.999);
  ExpectChunk(*s, 1);
  EXPECT_TRUE(s->Contains(Key(1)));
  clock.Set(11.0);
  EXPECT_FALSE(s->Contains(Key(1)));
  std::vector<std::byte> dst(kChunk);
  EXPECT_TRUE(s->Get(Key(1), dst).status().IsNotFound());
  EXPECT_TRUE(s->Pin(Key(1)).status().IsNotFound());
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[0].expirations, 1u);  // freed by the Get that found it expired
  EXPECT_EQ(st.tiers[0].chunks, 0u);
  EXPECT_EQ(st.index_entries, 0u);
}

TEST(StoreTtlTest, SweepFreesExpiredChunksAndAPutReplacesOne) {
  ManualClock clock;
  auto s = TtlStore(clock, std::chrono::seconds(5));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 8; ++i) PutChunk(*s, i);
  clock.Set(3);
  for (int i = 8; i < 12; ++i) PutChunk(*s, i);
  clock.Set(6);  // the first 8 are past their deadline (5 s), the last 4 are not (8 s)
  s->Maintain();
  StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[0].expirations, 8u);
  EXPECT_EQ(st.tiers[0].chunks, 4u);
  for (int i = 8; i < 12; ++i) ExpectChunk(*s, i);
  // An expired key may be stored again, with new bytes and a new deadline.
  clock.Set(9);
  ASSERT_TRUE(s->Put(Key(8), Bytes(kChunk, 99)).ok());
  std::vector<std::byte> dst(kChunk);
  ASSERT_TRUE(s->Get(Key(8), dst).ok());
  EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), kChunk, 99), -1);
  clock.Set(13.5);
  EXPECT_TRUE(s->Contains(Key(8)));   // deadline 14
  EXPECT_FALSE(s->Contains(Key(9)));  // deadline 8
  const std::string k8 = Key(8), k9 = Key(9), k10 = Key(10);
  const std::string_view keys[] = {k9, k8, k10};
  bool found[3];
  EXPECT_EQ(s->ContainsBatch(keys, found), 1u);
  EXPECT_FALSE(found[0]);
  EXPECT_TRUE(found[1]);
  EXPECT_FALSE(found[2]);  // deadline 8, expired but not yet swept
}

TEST(StoreTtlTest, ExpiredChunksAreDroppedNotDemoted) {
  ManualClock clock;
  testing::TempDir dir;
  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(4)));
  o.tiers.push_back(FilePool(dir, Slabs(8)));
  o.ttl = std::chrono::seconds(1);
  o.clock = clock.fn();
  auto s = OpenStore(std::move(o));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < kCapacityChunks; ++i) PutChunk(*s, i);
  clock.Set(2);
  PutChunk(*s, 16);  // evicts one expired chunk from tier 0: dropped, nothing written below
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[0].expirations, 1u);
  EXPECT_EQ(st.tiers[0].demotions, 0u);
  EXPECT_EQ(st.tiers[1].chunks, 0u);
}

}  // namespace
}  // namespace cxlkv
