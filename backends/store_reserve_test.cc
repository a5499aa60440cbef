// Store::Reserve / ReservedChunk: bytes written in place become visible only at Commit; an
// abandoned reservation leaves nothing behind.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "backends/store_test_util.h"
#include "cxlkv/store.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;  // NOLINT(google-build-using-namespace): test helpers

std::unique_ptr<Store> OneTier(std::size_t capacity) {
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(capacity));
  return OpenTiers(std::move(tiers));
}

ChunkMeta MetaOf(const std::string& text) {
  auto m = ChunkMeta::From(std::as_bytes(std::span(text.data(), text.size())));
  EXPECT_TRUE(m.ok());
  return m.value_or(ChunkMeta{});
}

TEST(StoreReserveTest, InvisibleUntilCommitThenReadBackWithMeta) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  const ChunkMeta meta = MetaOf("fmt=1 dtype=3 shape=2,32,256,1024");
  auto r = s->Reserve(Key(1), kChunk, meta);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_NE(r->data(), nullptr);
  ASSERT_EQ(r->size(), kChunk);
  EXPECT_FALSE(r->already_stored());
  // Half written: nothing is visible.
  testing::FillPattern(r->data(), kChunk / 2, Seed(1));
  EXPECT_FALSE(s->Contains(Key(1)));
  std::vector<std::byte> dst(kChunk);
  EXPECT_TRUE(s->Get(Key(1), dst).status().IsNotFound());
  testing::FillPattern(r->data(), kChunk, Seed(1));
  ASSERT_TRUE(r->Commit().ok());
  EXPECT_EQ(r->data(), nullptr);  // empty after commit
  ChunkMeta got;
  auto n = s->Get(Key(1), dst, &got);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, kChunk);
  EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), kChunk, Seed(1)), -1);
  EXPECT_EQ(got, meta);
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[0].chunks, 1u);
  EXPECT_EQ(st.put_latency.count, 1u);
}

TEST(StoreReserveTest, AbandonedReservationFreesItsSlot) {
  auto s = OneTier(Slabs(1));  // room for 4 chunks
  ASSERT_NE(s, nullptr);
  for (int round = 0; round < 3; ++round) {
    std::vector<ReservedChunk> held;
    for (int i = 0; i < 4; ++i) {
      auto r = s->Reserve(Key(i), kChunk);
      ASSERT_TRUE(r.ok()) << round << " " << i << ": " << r.status().ToString();
      std::memset(r->data(), 0xAB, kChunk);
      held.push_back(std::move(r).value());
    }
    // Every slot is reserved and none is evictable: the tier is full.
    EXPECT_TRUE(s->Reserve(Key(9), kChunk).status().IsNoSpace());
    held[0].Abort();
    EXPECT_EQ(held[0].data(), nullptr);
  }  // the rest are destroyed without Commit
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.index_entries, 0u);
  EXPECT_EQ(st.tiers[0].chunks, 0u);
  EXPECT_EQ(st.tiers[0].used_bytes, 0u);
  for (int i = 0; i < 4; ++i) PutChunk(*s, i);  // every slot came back
  for (int i = 0; i < 4; ++i) ExpectChunk(*s, i);
}

TEST(StoreReserveTest, StoredKeyIsWriteOnce) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  PutChunk(*s, 1);
  auto r = s->Reserve(Key(1), kChunk);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->already_stored());
  EXPECT_EQ(r->data(), nullptr);
  bool published = true;
  EXPECT_TRUE(r->Commit(&published).ok());
  EXPECT_FALSE(published);  // nothing of this reservation was stored
  ExpectChunk(*s, 1);
}

TEST(StoreReserveTest, RacingReservationsOfOneKeyKeepTheFirstCommitted) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  auto a = s->Reserve(Key(1), kChunk);
  auto b = s->Reserve(Key(1), kChunk);
  ASSERT_TRUE(a.ok() && b.ok());
  testing::FillPattern(a->data(), kChunk, Seed(1));
  testing::FillPattern(b->data(), kChunk, 4242);
  bool a_published = false, b_published = true;
  ASSERT_TRUE(a->Commit(&a_published).ok());
  // As Put: the key is stored, the second bytes dropped, and the second commit says so (a
  // server counts one PUT as stored, not two).
  ASSERT_TRUE(b->Commit(&b_published).ok());
  EXPECT_TRUE(a_published);
  EXPECT_FALSE(b_published);
  ExpectChunk(*s, 1);
  EXPECT_EQ(s->Stats().tiers[0].chunks, 1u);
}

TEST(StoreReserveTest, BadRequestsFailLikePut) {
  auto s = OneTier(Slabs(4));
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->Reserve("", kChunk).status().IsInvalidArgument());
  EXPECT_TRUE(s->Reserve(std::string(kMaxKeySize + 1, 'k'), kChunk).status().IsInvalidArgument());
  EXPECT_TRUE(s->Reserve(Key(1), 0).status().IsInvalidArgument());
  EXPECT_TRUE(s->Reserve(Key(1), std::size_t{1} << 30).status().IsInvalidArgument());
  ReservedChunk empty;
  EXPECT_TRUE(empty.Commit().IsInvalidArgument());
}

TEST(StoreReserveTest, ConcurrentReserveCommitAndReaders) {
  auto s = OneTier(Slabs(8));
  ASSERT_NE(s, nullptr);
  constexpr int kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&s, t] {
      std::vector<std::byte> dst(kChunk);
      for (int i = 0; i < kPerThread; ++i) {
        const int k = t * kPerThread + i;
        auto r = s->Reserve(Key(k), kChunk);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        testing::FillPattern(r->data(), kChunk, Seed(k));
        if (i % 3 == 0) continue;  // abandoned
        ASSERT_TRUE(r->Commit().ok());
        // Read back something committed earlier by either thread: always whole.
        auto n = s->Get(Key(k), dst);
        if (n.ok()) {
          EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), kChunk, Seed(k)), -1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  s->Maintain();
  for (int k = 0; k < 2 * kPerThread; ++k) {
    if (k % kPerThread % 3 == 0) {
      EXPECT_FALSE(s->Contains(Key(k))) << k;
    }
  }
}

}  // namespace
}  // namespace cxlkv
