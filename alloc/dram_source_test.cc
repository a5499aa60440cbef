// DRAM source: alignment, huge-page policy and its fallbacks, population.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "alloc/os_memory.h"
#include "cxlkv/memory_source.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kGiB = std::size_t{1} << 30;

std::uintptr_t Addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

std::unique_ptr<MemoryRegion> MapOrDie(MemorySource& source, std::size_t size,
                                       std::size_t alignment) {
  Result<std::unique_ptr<MemoryRegion>> r = source.Map(size, alignment);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

// The VmFlags line of the /proc/self/smaps entry that starts at addr ("rd wr mr mw me ac hg").
std::string VmFlagsAt(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_vma = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t start = 0;
    std::uintptr_t end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> start >> dash >> end && dash == '-') {
      in_vma = start <= Addr(addr) && Addr(addr) < end;
      continue;
    }
    if (in_vma && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

void ExpectWritable(const MemoryRegion& region, std::uint64_t seed) {
  testing::FillPattern(region.data(), region.size(), seed);
  EXPECT_EQ(testing::FirstPatternMismatch(region.data(), region.size(), seed), -1);
}

class DramAlignmentTest : public ::testing::TestWithParam<HugePages> {};

TEST_P(DramAlignmentTest, HonoursAlignmentAndIsWritable) {
  DramOptions options;
  options.huge_pages = GetParam();
  auto source = MemorySource::Dram(options);
  for (const std::size_t alignment : {2 * kMiB, kGiB}) {
    auto region = MapOrDie(*source, 5 * kMiB + 123, alignment);
    ASSERT_NE(region, nullptr);
    EXPECT_EQ(Addr(region->data()) % alignment, 0u) << "alignment " << alignment;
    EXPECT_EQ(region->size(), 5 * kMiB + 123);
    EXPECT_EQ(region->info().kind, MemoryKind::kDram);
    EXPECT_EQ(region->info().numa_node, -1);
    EXPECT_EQ(region->info().persistence, PersistGranularity::kNone);
    EXPECT_TRUE(region->info().path.empty());
    ExpectWritable(*region, alignment);
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, DramAlignmentTest,
                         ::testing::Values(HugePages::kNone, HugePages::kTransparent,
                                           HugePages::kAuto));

TEST(DramSourceTest, NaturalAlignmentFollowsThePagePolicy) {
  DramOptions plain;
  plain.huge_pages = HugePages::kNone;
  auto small = MapOrDie(*MemorySource::Dram(plain), 10000, 0);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(Addr(small->data()) % os::BasePageSize(), 0u);
  EXPECT_EQ(small->info().page_size, os::BasePageSize());
  EXPECT_FALSE(small->info().transparent_huge_pages);

  DramOptions thp;
  thp.huge_pages = HugePages::kTransparent;
  auto big = MapOrDie(*MemorySource::Dram(thp), 3 * kMiB, 0);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(Addr(big->data()) % os::kHugePageSize, 0u) << "THP needs 2 MiB-aligned memory";
}

TEST(DramSourceTest, RejectsAlignmentThatIsNotAPowerOfTwo) {
  auto source = MemorySource::Dram();
  Result<std::unique_ptr<MemoryRegion>> r = source->Map(kMiB, 3000);
  ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("3000"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("power of two"), std::string::npos);
}

TEST(DramSourceTest, RejectsSizeZero) {
  Result<std::unique_ptr<MemoryRegion>> r = MemorySource::Dram()->Map(0);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
}

TEST(DramSourceTest, ExplicitHugePagesNeedAPoolThatCanHoldTheRegion) {
  const std::size_t size = 8 * kMiB;
  if (os::ReadHugetlbPool().CanHold(size)) {
    GTEST_SKIP() << "the hugetlb pool holds 8 MiB here; the empty-pool error is not reachable";
  }
  DramOptions options;
  options.huge_pages = HugePages::kExplicit;
  Result<std::unique_ptr<MemoryRegion>> r = MemorySource::Dram(options)->Map(size);
  ASSERT_TRUE(r.status().IsUnsupported()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("hugetlb"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("8.0 MiB"), std::string::npos) << r.status().message();
}

TEST(DramSourceTest, ExplicitHugePagesFromAPool) {
  const std::size_t size = 4 * kMiB;
  if (!os::ReadHugetlbPool().CanHold(size)) {
    CXLKV_SKIP_NO_HARDWARE("no 4 MiB free in the 2 MiB hugetlb pool (vm.nr_hugepages)");
  }
  DramOptions options;
  options.huge_pages = HugePages::kExplicit;
  auto region = MapOrDie(*MemorySource::Dram(options), size, 0);
  ASSERT_NE(region, nullptr);
  EXPECT_EQ(region->info().page_size, os::kHugePageSize);
  EXPECT_EQ(Addr(region->data()) % os::kHugePageSize, 0u);
  ExpectWritable(*region, 7);
}

TEST(DramSourceTest, AutoUsesTheHugetlbPoolOrFallsBackToTransparent) {
  const std::size_t size = 6 * kMiB;
  const bool pool_holds = os::ReadHugetlbPool().CanHold(size);
  auto region = MapOrDie(*MemorySource::Dram(), size, 0);  // kAuto is the default
  ASSERT_NE(region, nullptr);
  if (pool_holds) {
    EXPECT_EQ(region->info().page_size, os::kHugePageSize);
  } else {
    EXPECT_EQ(region->info().page_size, os::BasePageSize());
    EXPECT_EQ(Addr(region->data()) % os::kHugePageSize, 0u);
  }
  ExpectWritable(*region, 11);
}

TEST(DramSourceTest, TransparentHugePagesReportMatchesTheKernel) {
  DramOptions options;
  options.huge_pages = HugePages::kTransparent;
  auto region = MapOrDie(*MemorySource::Dram(options), 4 * kMiB, 0);
  ASSERT_NE(region, nullptr);
  const os::ThpMode mode = os::ReadThpMode();
  const bool expected = mode == os::ThpMode::kAlways || mode == os::ThpMode::kMadvise;
  EXPECT_EQ(region->info().transparent_huge_pages, expected)
      << "THP mode " << os::ThpModeName(mode);
  // The kernel's own record of the madvise: "hg" in the VMA's flags.
  const std::string flags = VmFlagsAt(region->data());
  ASSERT_FALSE(flags.empty()) << "no smaps entry for the region";
  EXPECT_EQ(flags.find(" hg") != std::string::npos, region->info().transparent_huge_pages)
      << flags;
  EXPECT_EQ(region->info().ToString().find("(THP advised)") != std::string::npos, expected);
}

TEST(DramSourceTest, PopulateFaultsInEveryPageAndLazyMapFaultsNone) {
  DramOptions options;
  options.huge_pages = HugePages::kNone;
  options.populate = true;
  auto populated = MapOrDie(*MemorySource::Dram(options), 8 * kMiB, 0);
  ASSERT_NE(populated, nullptr);
  Result<std::size_t> resident = os::ResidentBytes(populated->data(), populated->size());
  ASSERT_TRUE(resident.ok()) << resident.status().ToString();
  EXPECT_EQ(*resident, populated->size());

  options.populate = false;
  auto lazy = MapOrDie(*MemorySource::Dram(options), 8 * kMiB, 0);
  ASSERT_NE(lazy, nullptr);
  resident = os::ResidentBytes(lazy->data(), lazy->size());
  ASSERT_TRUE(resident.ok()) << resident.status().ToString();
  EXPECT_EQ(*resident, 0u);
}

TEST(DramSourceTest, RegionUnmapsOnDestruction) {
  auto region = MapOrDie(*MemorySource::Dram(), 2 * kMiB, 0);
  ASSERT_NE(region, nullptr);
  const void* addr = region->data();
  ASSERT_TRUE(os::ResidentBytes(addr, 2 * kMiB).ok());
  region.reset();
  EXPECT_TRUE(os::ResidentBytes(addr, 2 * kMiB).status().IsNoSpace()) << "still mapped";
}

TEST(DramSourceTest, MapsFromSeveralThreadsAtOnce) {
  auto source = MemorySource::Dram();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, -2);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        Result<std::unique_ptr<MemoryRegion>> r = source->Map(kMiB, 2 * kMiB);
        if (!r.ok()) return;
        testing::FillPattern((*r)->data(), kMiB, static_cast<std::uint64_t>(t * 100 + i));
        mismatches[t] = static_cast<int>(testing::FirstPatternMismatch(
            (*r)->data(), kMiB, static_cast<std::uint64_t>(t * 100 + i)));
        if (mismatches[t] != -1) return;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, -1);
}

}  // namespace
}  // namespace cxlkv
