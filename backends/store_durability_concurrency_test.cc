// Durable tiers under concurrency (also run under ThreadSanitizer): threads put, read and
// remove chunks in a pool with background durability while its flusher commits headers every
// millisecond and another thread calls Sync; demotions to a second durable tier run on the
// background thread. After a clean close and a reopen, exactly the chunks that were not
// removed are there, intact.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "backends/store_test_util.h"
#include "cxlkv/store.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;

StoreOptions Options(const testing::TempDir& dir) {
  StoreOptions o;
  for (const char* name : {"fast", "slow"}) {
    TierOptions t;
    t.name = name;
    t.source_spec = "file:" + dir.File(name);
    t.capacity = Slabs(48);
    t.durability = std::string(name) == "fast" ? "background" : "persist-on-put";
    t.flush_interval = std::chrono::milliseconds(1);
    o.tiers.push_back(std::move(t));
  }
  o.chunk_sizes = {kChunk};
  o.slab_size = kSlab;
  o.maintenance_interval = std::chrono::milliseconds(1);
  return o;
}

TEST(StoreDurabilityConcurrencyTest, ThreadsWithFlusherAndDemotionKeepWhatTheyDidNotRemove) {
  testing::TempDir dir;
  constexpr int kThreads = 4, kPerThread = 40;
  std::set<int> kept;
  std::mutex kept_mu;
  {
    auto opened = Store::Open(Options(dir));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Store& s = **opened;
    std::atomic<bool> done{false};
    std::thread syncer([&] {
      while (!done.load()) s.Sync();
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::byte> dst(kChunk);
        for (int j = 0; j < kPerThread; ++j) {
          const int i = t * 1000 + j;
          ASSERT_TRUE(s.Put(Key(i), Bytes(kChunk, Seed(i))).ok());
          auto got = s.Get(Key(i), dst);
          if (got.ok()) {
            EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), kChunk, Seed(i)), -1);
          }
          if (j % 3 == 0) {
            ASSERT_TRUE(s.Remove(Key(i)).ok());
          } else {
            std::lock_guard lock(kept_mu);
            kept.insert(i);
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    done = true;
    syncer.join();
  }
  auto reopened = Store::Open(Options(dir));
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  Store& s = **reopened;
  // 2 x 48 slabs hold every chunk: nothing was dropped, so exactly `kept` is there.
  for (int t = 0; t < kThreads; ++t) {
    for (int j = 0; j < kPerThread; ++j) {
      const int i = t * 1000 + j;
      EXPECT_EQ(s.Contains(Key(i)), kept.count(i) > 0) << i;
    }
  }
  for (int i : kept) ExpectChunk(s, i);
  EXPECT_EQ(s.Stats().tiers[0].corrupt_dropped + s.Stats().tiers[1].corrupt_dropped, 0u);
}

}  // namespace
}  // namespace cxlkv
