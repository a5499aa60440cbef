#include "alloc/os_memory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/test_util.h"
#include "util/format.h"

namespace cxlkv::os {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kGiB = std::size_t{1} << 30;

std::uintptr_t Addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

TEST(ThpModeTest, ParsesTheBracketedWord) {
  EXPECT_EQ(ParseThpMode("always [madvise] never\n"), ThpMode::kMadvise);
  EXPECT_EQ(ParseThpMode("[always] madvise never"), ThpMode::kAlways);
  EXPECT_EQ(ParseThpMode("always madvise [never]"), ThpMode::kNever);
  EXPECT_EQ(ParseThpMode("always madvise never"), ThpMode::kUnavailable);
  EXPECT_EQ(ParseThpMode(""), ThpMode::kUnavailable);
  EXPECT_EQ(ParseThpMode("[sometimes]"), ThpMode::kUnavailable);
}

TEST(ThpModeTest, ReadsAFileAndReportsAMissingOne) {
  testing::TempDir dir;
  WriteFile(dir.File("enabled"), "always madvise [never]\n");
  EXPECT_EQ(ReadThpMode(dir.File("enabled")), ThpMode::kNever);
  EXPECT_EQ(ReadThpMode(dir.File("missing")), ThpMode::kUnavailable);
}

TEST(ThpModeTest, MatchesThisMachine) {
  std::ifstream in(kThpEnabledPath);
  if (!in) GTEST_SKIP() << kThpEnabledPath << " is not readable here";
  std::string text;
  std::getline(in, text);
  const ThpMode mode = ReadThpMode();
  EXPECT_NE(text.find("[" + std::string(ThpModeName(mode)) + "]"), std::string::npos)
      << "sysfs says '" << text << "', ReadThpMode says " << ThpModeName(mode);
}

TEST(HugetlbPoolTest, ReadsCountersFromAFakeSysfsTree) {
  testing::TempDir dir;
  const std::string pool_dir = dir.File("hugepages-2048kB");
  std::filesystem::create_directories(pool_dir);
  WriteFile(pool_dir + "/nr_hugepages", "10\n");
  WriteFile(pool_dir + "/free_hugepages", "6\n");
  WriteFile(pool_dir + "/resv_hugepages", "2\n");
  const HugetlbPool pool = ReadHugetlbPool(kHugePageSize, dir.path());
  EXPECT_TRUE(pool.present);
  EXPECT_EQ(pool.total_pages, 10u);
  EXPECT_EQ(pool.free_pages, 6u);
  EXPECT_EQ(pool.available_pages(), 4u);
  EXPECT_TRUE(pool.CanHold(8 * kMiB));
  EXPECT_TRUE(pool.CanHold(7 * kMiB + 1));     // rounds up to 4 pages
  EXPECT_FALSE(pool.CanHold(8 * kMiB + 1));    // 5 pages

  const HugetlbPool absent = ReadHugetlbPool(kGiB, dir.path());  // no hugepages-1048576kB
  EXPECT_FALSE(absent.present);
  EXPECT_FALSE(absent.CanHold(1));
}

TEST(MapAnonymousTest, HonoursLargeAlignmentAndIsWritable) {
  for (const std::size_t alignment : {std::size_t{0}, 64 * std::size_t{1024}, 2 * kMiB, kGiB}) {
    Result<AnonymousMapping> m = MapAnonymous(3 * kMiB + 5, alignment, /*hugetlb=*/false);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->length(), AlignUp(3 * kMiB + 5, BasePageSize()));
    EXPECT_EQ(Addr(m->data()) % std::max(alignment, BasePageSize()), 0u)
        << "alignment " << alignment;
    testing::FillPattern(m->data(), m->length(), alignment);
    EXPECT_EQ(testing::FirstPatternMismatch(m->data(), m->length(), alignment), -1);
  }
}

TEST(MapAnonymousTest, RejectsBadArguments) {
  Result<AnonymousMapping> odd = MapAnonymous(kMiB, 3 * 4096, false);
  EXPECT_TRUE(odd.status().IsInvalidArgument()) << odd.status().ToString();
  EXPECT_NE(odd.status().message().find("12288"), std::string::npos);
  EXPECT_TRUE(MapAnonymous(0, 0, false).status().IsInvalidArgument());
  EXPECT_TRUE(MapAnonymous(SIZE_MAX - 10, 0, false).status().IsInvalidArgument());
}

TEST(MapAnonymousTest, HugetlbFromAnEmptyPoolFailsWithoutSignal) {
  if (ReadHugetlbPool().CanHold(4 * kMiB)) {
    GTEST_SKIP() << "this machine's hugetlb pool can hold 4 MiB; the empty-pool path is not run";
  }
  Result<AnonymousMapping> m = MapAnonymous(4 * kMiB, 0, /*hugetlb=*/true);
  EXPECT_TRUE(m.status().IsNoSpace()) << m.status().ToString();
}

TEST(PopulateTest, FaultsInEveryPage) {
  Result<AnonymousMapping> m = MapAnonymous(4 * kMiB, 0, /*hugetlb=*/false);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  Result<std::size_t> before = ResidentBytes(m->data(), m->length());
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(*before, 0u);
  ASSERT_TRUE(Populate(m->data(), m->length(), BasePageSize()).ok());
  Result<std::size_t> after = ResidentBytes(m->data(), m->length());
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, m->length());
}

TEST(AnonymousMappingTest, UnmapsOnDestructionAndMovesOwnership) {
  void* addr = nullptr;
  {
    Result<AnonymousMapping> m = MapAnonymous(kMiB, 2 * kMiB, false);
    ASSERT_TRUE(m.ok());
    AnonymousMapping owner = std::move(*m);
    EXPECT_EQ(m->data(), nullptr);
    EXPECT_EQ(m->length(), 0u);
    addr = owner.data();
    EXPECT_TRUE(ResidentBytes(addr, kMiB).ok());
  }
  // mincore fails with ENOMEM on an unmapped range.
  EXPECT_TRUE(ResidentBytes(addr, kMiB).status().IsNoSpace());
}

}  // namespace
}  // namespace cxlkv::os
