// The prefetcher's bounds and its effect: it never claims further ahead of the reader than its
// budget, stops when finished, and on the emulated CXL-SSD turns the reader's misses into hits
// without changing a byte read. No timing is asserted.
#include "cxlkv/prefetcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "cxlkv/cxl_ssd.h"
#include "cxlkv/store.h"

namespace cxlkv {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t kChunk = 128 << 10;

std::vector<std::span<const std::byte>> Chunks(const std::byte* base, std::size_t count) {
  std::vector<std::span<const std::byte>> r;
  for (std::size_t i = 0; i < count; ++i) r.emplace_back(base + i * kChunk, kChunk);
  return r;
}

TEST(PrefetcherTest, RejectsBadOptions) {
  PrefetchOptions o;
  o.threads = 0;
  EXPECT_TRUE(Prefetcher::Create(o).status().IsInvalidArgument());
  o = {};
  o.page_size = 3000;
  EXPECT_TRUE(Prefetcher::Create(o).status().IsInvalidArgument());
  o = {};
  o.max_ahead_bytes = 100;
  EXPECT_TRUE(Prefetcher::Create(o).status().IsInvalidArgument());
}

// Resident memory: touches are fast, so the stream only samples, and never past its budget.
TEST(PrefetcherTest, SamplesResidentMemoryWithinTheBudget) {
  std::vector<std::byte> memory(64 * kChunk, std::byte{1});
  PrefetchOptions o;
  o.threads = 4;
  o.max_ahead_bytes = 1 << 20;
  auto p = Prefetcher::Create(o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto ranges = Chunks(memory.data(), 64);
  auto stream = (*p)->Announce(ranges);
  for (std::size_t k = 0; k < 64; ++k) {
    stream->Started(k);
    std::this_thread::sleep_for(100us);
  }
  stream->Finish();
  const PrefetchStats s = (*p)->Stats();
  EXPECT_LE(stream->max_ahead_seen(), o.max_ahead_bytes);
  EXPECT_LE(s.max_ahead_seen, o.max_ahead_bytes);
  EXPECT_GT(s.pages_touched, 0u);
  // Sampling: far fewer touches than pages (64 chunks x 32 pages).
  EXPECT_LT(s.pages_touched, 64u * 32u);
  // Finished: nothing more is touched.
  const std::uint64_t touched = s.pages_touched;
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ((*p)->Stats().pages_touched, touched);
}

#define CREATE_OR_SKIP(var, options)                                    \
  auto var##_result = CxlSsd::Create(options);                         \
  if (var##_result.status().IsUnsupported()) {                         \
    GTEST_SKIP() << var##_result.status().ToString();                  \
  }                                                                    \
  ASSERT_TRUE(var##_result.ok()) << var##_result.status().ToString(); \
  std::shared_ptr<CxlSsd> var = std::move(*var##_result)

CxlSsdOptions SlowDevice() {
  CxlSsdOptions o;
  o.capacity = 16 << 20;
  o.cache_bytes = 4 << 20;
  o.channels = 4;
  o.dies_per_channel = 4;
  o.read_latency = 20us;
  o.program_latency = 50us;
  return o;
}

// On a device that misses, the stream touches every page ahead of the reader (so the reader
// itself misses far less) and still never claims past the budget; readers see their bytes.
TEST(PrefetcherTest, BringsMissingPagesForwardWithinTheBudget) {
  CREATE_OR_SKIP(dev, SlowDevice());
  const std::size_t chunks = dev->size() / kChunk;
  dev->SetTiming(false);
  for (std::size_t i = 0; i < dev->size(); i += 8) {
    const std::uint64_t v = i * 2654435761u;
    std::memcpy(dev->data() + i, &v, 8);
  }
  dev->SetTiming(true);
  ASSERT_TRUE(dev->DropCache().ok());
  dev->ResetStats();

  PrefetchOptions o;
  o.threads = 16;
  o.max_ahead_bytes = 1 << 20;  // a quarter of the device cache
  auto p = Prefetcher::Create(o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto stream = (*p)->Announce(Chunks(dev->data(), chunks));
  std::vector<std::byte> out(kChunk);
  std::size_t bad = 0;
  for (std::size_t k = 0; k < chunks; ++k) {
    stream->Started(k);
    std::memcpy(out.data(), dev->data() + k * kChunk, kChunk);
    for (std::size_t i = 0; i < kChunk; i += 8) {
      std::uint64_t v;
      std::memcpy(&v, out.data() + i, 8);
      bad += v != (k * kChunk + i) * 2654435761u;
    }
  }
  stream->Finish();
  EXPECT_EQ(bad, 0u);
  const PrefetchStats s = (*p)->Stats();
  EXPECT_LE(stream->max_ahead_seen(), o.max_ahead_bytes);
  EXPECT_GT(s.slow_touches, 0u);
  const CxlSsdStats d = dev->Stats();
  // Every page was read from NAND once; the prefetcher, not the reader, took most misses.
  EXPECT_EQ(d.nand_reads, dev->size() / 4096);
  EXPECT_GT(s.slow_touches, d.read_misses / 2);
  EXPECT_TRUE(dev->health().ok());
}

// Through the store: a batched get of every chunk on the device with prefetch on returns every
// byte, while several batches run at once.
TEST(PrefetcherTest, StoreBatchesWithPrefetchReturnEveryByte) {
  CREATE_OR_SKIP(dev, SlowDevice());
  StoreOptions so;
  so.background_thread = false;
  so.copy_threads = 2;
  PrefetchOptions po;
  po.threads = 8;
  po.max_ahead_bytes = 1 << 20;
  so.prefetch = po;
  TierOptions t;
  t.name = "cxlssd";
  t.source = CxlSsd::Source(dev);
  t.capacity = dev->size();
  so.tiers.push_back(std::move(t));
  auto store = Store::Open(std::move(so));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const int n = 60;
  std::vector<std::byte> chunk(kChunk);
  for (int i = 0; i < n; ++i) {
    for (std::size_t b = 0; b < kChunk; ++b) chunk[b] = std::byte(b * 13 + i);
    ASSERT_TRUE((*store)->Put("c" + std::to_string(i), chunk).ok());
  }
  ASSERT_TRUE(dev->DropCache().ok());
  std::vector<std::thread> readers;
  std::atomic<int> bad{0};
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      std::vector<std::string> keys;
      for (int i = 0; i < n; ++i) keys.push_back("c" + std::to_string(i));
      std::vector<std::byte> out(n * kChunk);
      std::vector<GetRequest> reqs;
      for (int i = 0; i < n; ++i) {
        reqs.push_back({keys[i], {out.data() + i * kChunk, kChunk}, nullptr,
                        static_cast<std::uint64_t>(i)});
      }
      auto queue = CompletionQueue::Create();
      if (!queue.ok()) {
        bad.fetch_add(1000);
        return;
      }
      CompletionQueue& cq = **queue;
      if (!(*store)->SubmitGets(reqs, cq).ok()) {
        bad.fetch_add(1000);
        return;
      }
      std::vector<Completion> done(n);
      std::size_t got = 0;
      while (got < static_cast<std::size_t>(n)) {
        got += cq.Wait(std::span(done).subspan(got), 1, std::chrono::milliseconds(10000));
      }
      for (const Completion& c : done) {
        if (!c.status.ok() || c.size != kChunk) bad.fetch_add(1);
      }
      for (int i = 0; i < n; ++i) {
        for (std::size_t b = 0; b < kChunk; ++b) {
          if (out[i * kChunk + b] != std::byte(b * 13 + i)) {
            bad.fetch_add(1);
            break;
          }
        }
      }
    });
  }
  for (auto& th : readers) th.join();
  EXPECT_EQ(bad.load(), 0);
  const StoreStats st = (*store)->Stats();
  EXPECT_GE(st.prefetch.streams, 2u);
  EXPECT_GT(st.prefetch.pages_touched, 0u);
  EXPECT_LE(st.prefetch.max_ahead_seen, po.max_ahead_bytes);
}

}  // namespace
}  // namespace cxlkv
