// The emulated CXL-SSD through real userfaultfd faults: bytes survive every miss, eviction and
// write-back under concurrent threads, and the statistics count what the access pattern
// implies. Timing is modelled but never asserted.
#include "cxlkv/cxl_ssd.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "cxlkv/store.h"

namespace cxlkv {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kPage = 4096;

CxlSsdOptions SmallDevice() {
  CxlSsdOptions o;
  o.capacity = 8 << 20;
  o.cache_bytes = 1 << 20;
  o.channels = 4;
  o.dies_per_channel = 2;
  o.read_latency = 5us;
  o.program_latency = 20us;
  o.evict_batch = 16;
  return o;
}

// Creates the device or skips the test with the reason (no userfaultfd MINOR faults here).
#define CREATE_OR_SKIP(var, options)                                      \
  auto var##_result = CxlSsd::Create(options);                           \
  if (var##_result.status().IsUnsupported()) {                           \
    GTEST_SKIP() << var##_result.status().ToString();                    \
  }                                                                      \
  ASSERT_TRUE(var##_result.ok()) << var##_result.status().ToString();   \
  std::shared_ptr<CxlSsd> var = std::move(*var##_result)

std::uint64_t Stamp(std::size_t page, std::size_t word) {
  return (std::uint64_t{page} << 20) ^ (word * 0x9E3779B97F4A7C15ull) ^ 0x5A5A;
}

void WritePattern(std::byte* base, std::size_t bytes) {
  auto* words = reinterpret_cast<std::uint64_t*>(base);
  for (std::size_t i = 0; i < bytes / 8; ++i) words[i] = Stamp(i * 8 / kPage, i % (kPage / 8));
}

// Number of 8-byte words of page `page` that differ from the pattern.
std::size_t CheckPage(const std::byte* base, std::size_t page) {
  const auto* words = reinterpret_cast<const std::uint64_t*>(base + page * kPage);
  std::size_t bad = 0;
  for (std::size_t w = 0; w < kPage / 8; ++w) bad += words[w] != Stamp(page, w);
  return bad;
}

void PinSelf(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int CpuCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof(set), &set);
  return CPU_COUNT(&set);
}

TEST(CxlSsdTest, RejectsBadOptions) {
  CxlSsdOptions o = SmallDevice();
  o.page_size = 8192;
  EXPECT_TRUE(CxlSsd::Create(o).status().IsInvalidArgument());
  o = SmallDevice();
  o.capacity = 0;
  EXPECT_TRUE(CxlSsd::Create(o).status().IsInvalidArgument());
  o = SmallDevice();
  o.cache_bytes = 100;
  EXPECT_TRUE(CxlSsd::Create(o).status().IsInvalidArgument());
  o = SmallDevice();
  o.cache_policy = "mru";
  EXPECT_TRUE(CxlSsd::Create(o).status().IsInvalidArgument());
}

// Written once through the small cache (every page evicted dirty at least once), then read by
// several threads at random (pinned and unpinned), with device prefetch: all bytes intact.
TEST(CxlSsdTest, EveryByteSurvivesMissesEvictionsAndWriteBacks) {
  for (const char* policy : {"fifo", "lru", "clock"}) {
    SCOPED_TRACE(policy);
    CxlSsdOptions o = SmallDevice();
    o.cache_policy = policy;
    o.next_n = 2;
    CREATE_OR_SKIP(dev, o);
    WritePattern(dev->data(), dev->size());
    const std::size_t pages = dev->size() / kPage;
    std::atomic<std::size_t> bad{0};
    std::vector<std::thread> readers;
    const int cpus = CpuCount();
    for (int t = 0; t < 4; ++t) {
      readers.emplace_back([&, t] {
        if (t < 2) PinSelf(t % cpus);
        std::mt19937_64 rng(static_cast<std::uint64_t>(t));
        for (int i = 0; i < 1500; ++i) {
          const std::size_t p = rng() % pages;
          bad.fetch_add(CheckPage(dev->data(), p));
        }
      });
    }
    for (auto& r : readers) r.join();
    EXPECT_EQ(bad.load(), 0u);
    for (std::size_t p = 0; p < pages; ++p) ASSERT_EQ(CheckPage(dev->data(), p), 0u) << p;
    const CxlSsdStats s = dev->Stats();
    EXPECT_TRUE(dev->health().ok()) << dev->health().ToString();
    EXPECT_EQ(s.write_misses, pages);  // each page written once, first touch
    EXPECT_GT(s.read_misses, 0u);
    EXPECT_GT(s.nand_programs, 0u);    // dirty pages left the 1 MiB cache
    EXPECT_GT(s.prefetch_reads, 0u);
    EXPECT_LE(s.cached_pages, o.cache_bytes / kPage + o.evict_batch);
  }
}

// A sequential read of cold pages: one miss per page, or one per N+1 pages with next-N.
TEST(CxlSsdTest, DevicePrefetchTurnsSequentialMissesIntoRuns) {
  CxlSsdOptions o = SmallDevice();
  o.cache_bytes = 16 << 20;  // larger than the device: nothing is evicted
  CREATE_OR_SKIP(dev, o);
  const std::size_t pages = 256;
  dev->SetTiming(false);
  WritePattern(dev->data(), pages * kPage);
  dev->SetTiming(true);
  EXPECT_EQ(dev->Stats().write_misses, pages);
  ASSERT_TRUE(dev->DropCache().ok());
  EXPECT_EQ(dev->Stats().nand_programs, pages);  // DropCache wrote the dirty pages back
  dev->ResetStats();
  for (std::size_t p = 0; p < pages; ++p) ASSERT_EQ(CheckPage(dev->data(), p), 0u);
  EXPECT_EQ(dev->Stats().read_misses, pages);

  ASSERT_TRUE(dev->DropCache().ok());
  dev->SetNextN(7);
  dev->ResetStats();
  for (std::size_t p = 0; p < pages; ++p) ASSERT_EQ(CheckPage(dev->data(), p), 0u);
  const CxlSsdStats s = dev->Stats();
  EXPECT_EQ(s.read_misses, pages / 8);
  EXPECT_EQ(s.nand_reads, pages);
  EXPECT_EQ(s.prefetch_reads, pages - pages / 8);
  EXPECT_GT(s.die_utilisation, 0.0);
  ASSERT_EQ(s.die_utilisation_per_die.size(), 8u);
  for (double u : s.die_utilisation_per_die) EXPECT_GT(u, 0.0);  // 256 pages over 8 dies
}

// A store tier on the device: chunks round-trip through faults; the device maps once.
TEST(CxlSsdTest, AStoreTierLivesOnTheDevice) {
  CxlSsdOptions o = SmallDevice();
  o.capacity = 16 << 20;
  CREATE_OR_SKIP(dev, o);
  StoreOptions so;
  so.background_thread = false;
  TierOptions t;
  t.name = "cxlssd";
  t.source = CxlSsd::Source(dev);
  t.capacity = dev->size();
  so.tiers.push_back(std::move(t));
  Result<std::unique_ptr<Store>> store = Store::Open(std::move(so));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<std::byte> chunk(256 << 10);
  for (int i = 0; i < 20; ++i) {
    for (std::size_t b = 0; b < chunk.size(); ++b) chunk[b] = std::byte(b * 7 + i);
    ASSERT_TRUE((*store)->Put("k" + std::to_string(i), chunk).ok());
  }
  ASSERT_TRUE(dev->DropCache().ok());
  std::vector<std::byte> out(chunk.size());
  for (int i = 0; i < 20; ++i) {
    for (std::size_t b = 0; b < chunk.size(); ++b) chunk[b] = std::byte(b * 7 + i);
    Result<std::size_t> n = (*store)->Get("k" + std::to_string(i), out);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(out, chunk) << i;
  }
  EXPECT_GT(dev->Stats().read_misses, 0u);
  // A second tier cannot map the same device.
  std::unique_ptr<MemorySource> again = CxlSsd::Source(dev);
  EXPECT_EQ(again->Map(1 << 20).status().code(), StatusCode::kBusy);
  EXPECT_EQ(again->kind(), MemoryKind::kEmulatedCxlSsd);
}

}  // namespace
}  // namespace cxlkv
