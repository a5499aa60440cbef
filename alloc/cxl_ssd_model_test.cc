// The emulated CXL-SSD's timing and cache model, driven by a fake clock (plain numbers).
#include "alloc/cxl_ssd_model.h"

#include <gtest/gtest.h>

namespace cxlkv::internal {
namespace {

constexpr std::uint64_t kUs = 1000;

CxlSsdModelConfig Config(std::uint32_t dies, std::uint64_t cache_pages,
                         DeviceCachePolicy policy = DeviceCachePolicy::kFifo) {
  CxlSsdModelConfig c;
  c.pages = 1024;
  c.cache_pages = cache_pages;
  c.dies = dies;
  c.read_ns = 40 * kUs;
  c.program_ns = 200 * kUs;
  c.policy = policy;
  c.evict_batch = 1;
  return c;
}

CxlSsdModel Make(const CxlSsdModelConfig& c) {
  Result<CxlSsdModel> m = CxlSsdModel::Create(c);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(*m);
}

// Faults on `page` (a read) at `now` and maps what it fetched at once; returns the ready time.
std::uint64_t ReadMiss(CxlSsdModel& m, std::uint64_t page, std::uint64_t now,
                       FaultOutcome* out = nullptr) {
  FaultOutcome local;
  FaultOutcome& o = out ? *out : local;
  m.OnFault(page, false, now, &o);
  EXPECT_EQ(o.kind, FaultOutcome::Kind::kMiss);
  EXPECT_FALSE(o.fetches.empty());
  for (const Fetch& f : o.fetches) m.OnMapped(f.run);
  return o.fetches.empty() ? 0 : o.fetches[0].ready_ns;
}

TEST(CxlSsdModelTest, OneDieSerialisesMisses) {
  CxlSsdModel m = Make(Config(1, 64));
  EXPECT_EQ(ReadMiss(m, 0, 0), 40 * kUs);
  EXPECT_EQ(ReadMiss(m, 1, 0), 80 * kUs);
  EXPECT_EQ(ReadMiss(m, 2, 10 * kUs), 120 * kUs);
  // Arriving after the die went idle: no queueing.
  EXPECT_EQ(ReadMiss(m, 3, 500 * kUs), 540 * kUs);
  EXPECT_EQ(m.stats().nand_reads, 4u);
  EXPECT_EQ(m.stats().die_busy_ns, 160 * kUs);
  EXPECT_EQ(m.die_busy_ns(0), 160 * kUs);
  m.ResetStats();
  EXPECT_EQ(m.die_busy_ns(0), 0u);
}

TEST(CxlSsdModelTest, MissesToDifferentDiesOverlap) {
  CxlSsdModel m = Make(Config(4, 64));
  for (std::uint64_t p = 0; p < 4; ++p) EXPECT_EQ(ReadMiss(m, p, 0), 40 * kUs) << p;
  EXPECT_EQ(ReadMiss(m, 4, 0), 80 * kUs);  // die 0 again
  EXPECT_EQ(ReadMiss(m, 9, 0), 80 * kUs);  // die 1 again
  EXPECT_EQ(ReadMiss(m, 7, 0), 80 * kUs);  // die 3 again
  EXPECT_EQ(m.die_busy_ns(0), 80 * kUs);
  EXPECT_EQ(m.die_busy_ns(2), 40 * kUs);
}

std::vector<std::uint64_t> Pages(const std::vector<PageRun>& runs) {
  std::vector<std::uint64_t> pages;
  for (const PageRun& r : runs) {
    for (std::uint64_t p = r.first; p < r.first + r.count; ++p) pages.push_back(p);
  }
  return pages;
}

// Four pages cached, page 0 then page 2 read again (hits the caller reports), then misses.
TEST(CxlSsdModelTest, FifoEvictsInArrivalOrderWhateverWasRead) {
  CxlSsdModel m = Make(Config(8, 4, DeviceCachePolicy::kFifo));
  for (std::uint64_t p = 0; p < 4; ++p) ReadMiss(m, p, 0);
  EXPECT_TRUE(m.Touch(0, false));
  FaultOutcome o;
  ReadMiss(m, 10, 0, &o);
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{0});
  ReadMiss(m, 11, 0, &o);
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{1});
  EXPECT_FALSE(m.IsCached(0));
  EXPECT_TRUE(m.IsCached(2));
  EXPECT_EQ(m.cached_pages(), 4u);
}

TEST(CxlSsdModelTest, LruEvictsTheLeastRecentlyUsed) {
  CxlSsdModel m = Make(Config(8, 4, DeviceCachePolicy::kLru));
  for (std::uint64_t p = 0; p < 4; ++p) ReadMiss(m, p, 0);
  EXPECT_TRUE(m.Touch(0, false));  // order now 1 2 3 0
  FaultOutcome o;
  ReadMiss(m, 10, 0, &o);
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{1});
  EXPECT_TRUE(m.Touch(2, false));  // order 3 0 10 2
  ReadMiss(m, 11, 0, &o);
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{3});
  ReadMiss(m, 12, 0, &o);
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{0});
}

TEST(CxlSsdModelTest, ClockGivesReferencedPagesASecondChance) {
  CxlSsdModel m = Make(Config(8, 4, DeviceCachePolicy::kClock));
  for (std::uint64_t p = 0; p < 4; ++p) ReadMiss(m, p, 0);  // each referenced by its miss
  FaultOutcome o;
  ReadMiss(m, 10, 0, &o);  // the hand clears 0..3, comes round, evicts 0
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{0});
  EXPECT_TRUE(m.Touch(2, false));
  ReadMiss(m, 11, 0, &o);  // hand at 1: unreferenced
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{1});
  ReadMiss(m, 12, 0, &o);  // hand at 2: referenced again, spared; 3 goes
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{3});
  EXPECT_TRUE(m.IsCached(2));
}

TEST(CxlSsdModelTest, EvictingADirtyPageProgramsItOnItsDie) {
  CxlSsdModel m = Make(Config(1, 1));
  FaultOutcome o;
  m.OnFault(0, /*write=*/true, 0, &o);
  ASSERT_EQ(o.kind, FaultOutcome::Kind::kMiss);
  ASSERT_EQ(o.fetches.size(), 1u);
  EXPECT_EQ(o.fetches[0].ready_ns, 0u);  // a write allocates without reading NAND
  m.OnMapped(o.fetches[0].run);
  EXPECT_TRUE(m.IsDirty(0));
  // The read of page 1 evicts dirty page 0: its program holds the only die for 200 us first.
  EXPECT_EQ(ReadMiss(m, 1, 0, &o), 240 * kUs);
  EXPECT_EQ(Pages(o.unmap), std::vector<std::uint64_t>{0});
  EXPECT_EQ(m.stats().nand_programs, 1u);
  // A clean page leaves without a program.
  EXPECT_EQ(ReadMiss(m, 2, 240 * kUs, &o), 280 * kUs);
  EXPECT_EQ(m.stats().nand_programs, 1u);
}

TEST(CxlSsdModelTest, NextNFetchesTheFollowingPagesInOneRun) {
  CxlSsdModelConfig c = Config(8, 64);
  c.next_n = 4;
  CxlSsdModel m = Make(c);
  FaultOutcome o;
  m.OnFault(0, false, 0, &o);
  ASSERT_EQ(o.kind, FaultOutcome::Kind::kMiss);
  ASSERT_EQ(o.fetches.size(), 1u);
  EXPECT_EQ(o.fetches[0].run.first, 0u);
  EXPECT_EQ(o.fetches[0].run.count, 5u);
  EXPECT_EQ(o.fetches[0].ready_ns, 40 * kUs);  // five dies in parallel
  // Before the run is mapped, a fault on one of its pages waits for it.
  FaultOutcome o2;
  m.OnFault(3, false, 1 * kUs, &o2);
  EXPECT_EQ(o2.kind, FaultOutcome::Kind::kInFlight);
  EXPECT_TRUE(o2.fetches.empty());
  m.OnMapped(o.fetches[0].run);
  EXPECT_TRUE(m.IsMapped(4));
  EXPECT_EQ(m.stats().nand_reads, 5u);
  EXPECT_EQ(m.stats().prefetch_reads, 4u);
  EXPECT_EQ(m.stats().read_misses, 1u);
  EXPECT_EQ(m.stats().inflight_faults, 1u);
}

TEST(CxlSsdModelTest, NextNSkipsPagesAlreadyCachedAndStopsAtTheEnd) {
  CxlSsdModelConfig c = Config(8, 64);
  c.pages = 8;
  c.next_n = 4;
  CxlSsdModel m = Make(c);
  ReadMiss(m, 7, 0);  // the last page: nothing after it
  EXPECT_EQ(m.stats().nand_reads, 1u);
  m.SetNextN(0);
  ReadMiss(m, 2, 0);
  m.SetNextN(4);
  FaultOutcome o;
  m.OnFault(0, false, 0, &o);
  ASSERT_EQ(o.fetches.size(), 2u);  // 0-1, then 3-4; 2 is cached
  EXPECT_EQ(o.fetches[0].run.first, 0u);
  EXPECT_EQ(o.fetches[0].run.count, 2u);
  EXPECT_EQ(o.fetches[1].run.first, 3u);
  EXPECT_EQ(o.fetches[1].run.count, 2u);
}

// When hits are invisible, LRU unmaps a candidate once to learn whether it is still used.
TEST(CxlSsdModelTest, ObservingByUnmappingSparesPagesThatFaultAgain) {
  CxlSsdModelConfig c = Config(8, 2, DeviceCachePolicy::kLru);
  c.observe_by_unmapping = true;
  CxlSsdModel m = Make(c);
  ReadMiss(m, 0, 0);
  ReadMiss(m, 1, 0);
  FaultOutcome o;
  ReadMiss(m, 5, 0, &o);  // checks 0 and 1 (unmaps both), then evicts 0
  EXPECT_EQ(Pages(o.unmap), (std::vector<std::uint64_t>{0, 1}));
  EXPECT_FALSE(m.IsCached(0));
  EXPECT_TRUE(m.IsCached(1));
  EXPECT_FALSE(m.IsMapped(1));
  m.OnFault(1, false, 0, &o);  // page 1 is used: a soft fault, no NAND time
  EXPECT_EQ(o.kind, FaultOutcome::Kind::kSoftFault);
  EXPECT_TRUE(m.IsMapped(1));
  EXPECT_EQ(m.stats().soft_faults, 1u);
  // 1 moved to the recent end: 5 is checked first, then 1, then 5 (unused since) goes.
  ReadMiss(m, 6, 0, &o);
  EXPECT_EQ(Pages(o.unmap), (std::vector<std::uint64_t>{1, 5}));
  EXPECT_FALSE(m.IsCached(5));
  EXPECT_TRUE(m.IsCached(1));
  ReadMiss(m, 7, 0, &o);  // 1 was not used since its check: it goes now
  EXPECT_FALSE(m.IsCached(1));
  EXPECT_TRUE(Pages(o.unmap).empty());  // unmapped already
}

TEST(CxlSsdModelTest, EvictsInBatchesAndReportsRanges) {
  CxlSsdModelConfig c = Config(8, 16);
  c.evict_batch = 8;
  CxlSsdModel m = Make(c);
  for (std::uint64_t p = 0; p < 16; ++p) ReadMiss(m, p, 0);
  FaultOutcome o;
  ReadMiss(m, 100, 0, &o);
  ASSERT_EQ(o.unmap.size(), 1u);
  EXPECT_EQ(o.unmap[0].first, 0u);
  EXPECT_EQ(o.unmap[0].count, 8u);
  EXPECT_EQ(m.cached_pages(), 9u);
}

TEST(CxlSsdModelTest, DropAllEmptiesTheCache) {
  CxlSsdModel m = Make(Config(8, 16));
  for (std::uint64_t p = 0; p < 5; ++p) ReadMiss(m, p, 0);
  std::vector<PageRun> unmap;
  m.DropAll(0, &unmap);
  EXPECT_EQ(Pages(unmap), (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(m.cached_pages(), 0u);
  EXPECT_EQ(ReadMiss(m, 0, 1000 * kUs), 1040 * kUs);
}

// Time dilation: the same accesses, arriving D times later on a device D times slower, complete
// exactly D times later, with the same dies overlapping and the same ones queueing (reads,
// next-N runs, programs of dirty victims). The clock is the numbers passed in.
TEST(CxlSsdModelTest, DilationMultipliesDeviceTimesAndKeepsDieOverlap) {
  struct Access {
    std::uint64_t page;
    bool write;
    std::uint64_t at_us;
  };
  // 4 dies, 8 cache pages, next-2 on the reads from the 5th access on.
  const std::vector<Access> script = {
      {0, false, 0},  {1, false, 0},  {4, false, 5},   {2, true, 10},  {3, true, 10},
      {8, false, 20}, {12, false, 20}, {5, false, 300}, {20, false, 310}, {24, false, 310},
      {0, false, 900}, {9, false, 905}, {30, false, 2000}};
  auto run = [&](std::uint32_t d) {
    CxlSsdModelConfig c = Config(4, 8);
    c.dilation = d;
    CxlSsdModel m = Make(c);
    std::vector<std::uint64_t> ready;
    FaultOutcome o;
    for (std::size_t i = 0; i < script.size(); ++i) {
      if (i == 4) m.SetNextN(2);
      m.OnFault(script[i].page, script[i].write, script[i].at_us * kUs * d, &o);
      EXPECT_EQ(o.kind, FaultOutcome::Kind::kMiss) << "access " << i << " at D " << d;
      for (const Fetch& f : o.fetches) {
        ready.push_back(f.ready_ns);
        m.OnMapped(f.run);
      }
    }
    std::vector<std::uint64_t> busy;
    for (std::uint32_t die = 0; die < 4; ++die) busy.push_back(m.die_busy_ns(die));
    EXPECT_GT(m.stats().nand_programs, 0u);  // dirty victims were programmed on their dies
    EXPECT_GT(m.stats().prefetch_reads, 0u);
    return std::pair{ready, busy};
  };
  const auto [ready1, busy1] = run(1);
  // At D = 1: pages 0 and 1 on dies 0 and 1 overlap; 4 queues behind 0 on die 0.
  EXPECT_EQ(ready1[0], 40 * kUs);
  EXPECT_EQ(ready1[1], 40 * kUs);
  EXPECT_EQ(ready1[2], 80 * kUs);
  for (std::uint32_t d : {2u, 7u, 40u}) {
    const auto [ready, busy] = run(d);
    ASSERT_EQ(ready.size(), ready1.size()) << "D " << d;
    for (std::size_t i = 0; i < ready.size(); ++i) {
      EXPECT_EQ(ready[i], ready1[i] * d) << "fetch " << i << " at D " << d;
    }
    for (std::uint32_t die = 0; die < 4; ++die) {
      EXPECT_EQ(busy[die], busy1[die] * d) << "die " << die << " at D " << d;
    }
  }
  // Changing D on a live model changes the next fetch's time, not the ones already made.
  CxlSsdModel m = Make(Config(4, 8));
  EXPECT_EQ(ReadMiss(m, 0, 0), 40 * kUs);
  m.SetDilation(10);
  EXPECT_EQ(m.read_cost_ns(), 400 * kUs);
  EXPECT_EQ(ReadMiss(m, 4, 0), 440 * kUs);  // queued behind the undilated read on die 0
  EXPECT_EQ(ReadMiss(m, 1, 0), 400 * kUs);  // another die: no queue
}

TEST(CxlSsdModelTest, RejectsBadConfigurations) {
  CxlSsdModelConfig c = Config(8, 16);
  c.pages = 0;
  EXPECT_TRUE(CxlSsdModel::Create(c).status().IsInvalidArgument());
  c = Config(8, 0);
  EXPECT_TRUE(CxlSsdModel::Create(c).status().IsInvalidArgument());
  c = Config(0, 16);
  EXPECT_TRUE(CxlSsdModel::Create(c).status().IsInvalidArgument());
  c = Config(8, 16);
  c.dilation = 0;
  EXPECT_TRUE(CxlSsdModel::Create(c).status().IsInvalidArgument());
  c.dilation = kMaxDilation + 1;
  EXPECT_TRUE(CxlSsdModel::Create(c).status().IsInvalidArgument());
  EXPECT_TRUE(ParseDeviceCachePolicy("mru").status().IsInvalidArgument());
  EXPECT_EQ(*ParseDeviceCachePolicy("clock"), DeviceCachePolicy::kClock);
}

}  // namespace
}  // namespace cxlkv::internal
