// The registration planner and the map that splits a chunk's copy at registration pieces.
#include "backends/gpu/host_ranges.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace cxlkv::internal {
namespace {

constexpr std::size_t kPage = 4096;

std::byte* At(std::uintptr_t a) { return reinterpret_cast<std::byte*>(a); }

TEST(PlanRegistration, CutsIntoPageAlignedPiecesOfAtMostMax) {
  const std::uintptr_t base = 0x7f0000000000;
  auto pieces = PlanRegistration(At(base), 10 * kPage + 100, 3 * kPage + 5, kPage);
  ASSERT_TRUE(pieces.ok()) << pieces.status().ToString();
  // 11 pages (the tail rounded up) in pieces of 3 pages (max rounded down to whole pages).
  ASSERT_EQ(pieces->size(), 4u);
  std::uintptr_t expect = base;
  std::size_t total = 0;
  for (const HostPiece& p : *pieces) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p.base), expect);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p.base) % kPage, 0u);
    EXPECT_EQ(p.size % kPage, 0u);
    EXPECT_LE(p.size, 3 * kPage);
    EXPECT_GT(p.size, 0u);
    expect += p.size;
    total += p.size;
  }
  EXPECT_EQ(total, 11 * kPage);
  EXPECT_EQ(pieces->back().size, 2 * kPage);
}

TEST(PlanRegistration, UnalignedStartIsRoundedDownAndCovered) {
  const std::uintptr_t base = 0x10000 + 123;
  auto pieces = PlanRegistration(At(base), 2 * kPage, 1 << 30, kPage);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 1u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>((*pieces)[0].base), 0x10000u);
  EXPECT_EQ((*pieces)[0].size, 3 * kPage);  // [0x10000, 0x13000) covers base .. base + 8 KiB
}

TEST(PlanRegistration, OnePieceWhenTheRegionFits) {
  auto pieces = PlanRegistration(At(0x200000), std::size_t{64} << 20, std::size_t{1} << 30,
                                 std::size_t{2} << 20);
  ASSERT_TRUE(pieces.ok());
  ASSERT_EQ(pieces->size(), 1u);
  EXPECT_EQ((*pieces)[0].size, std::size_t{64} << 20);
}

TEST(PlanRegistration, LargeRegionManyPieces) {
  const std::size_t gib = std::size_t{1} << 30;
  auto pieces = PlanRegistration(At(0x40000000), 40 * gib + kPage, gib, kPage);
  ASSERT_TRUE(pieces.ok());
  EXPECT_EQ(pieces->size(), 41u);
  EXPECT_EQ(pieces->back().size, kPage);
}

TEST(PlanRegistration, RejectsBadArguments) {
  EXPECT_TRUE(PlanRegistration(At(0x1000), kPage, kPage, 3000).status().IsInvalidArgument());
  EXPECT_TRUE(PlanRegistration(At(0x1000), kPage, kPage, 0).status().IsInvalidArgument());
  EXPECT_TRUE(PlanRegistration(At(0x1000), 0, kPage, kPage).status().IsInvalidArgument());
  auto small = PlanRegistration(At(0x1000), kPage, kPage - 1, kPage);
  EXPECT_TRUE(small.status().IsInvalidArgument());
  EXPECT_NE(small.status().message().find("smaller than a page"), std::string::npos);
}

class HostRangeMapTest : public ::testing::Test {
 protected:
  // Pieces of 4 pages at 0x100000: registered, refused, registered; then a gap of 4 pages and
  // one more registered piece.
  void SetUp() override {
    map_.Add({At(kBase + 8 * kPage), 4 * kPage}, true);  // added out of order on purpose
    map_.Add({At(kBase), 4 * kPage}, true);
    map_.Add({At(kBase + 4 * kPage), 4 * kPage}, false);
    map_.Add({At(kBase + 16 * kPage), 4 * kPage}, true);
    map_.Finish();
  }
  static constexpr std::uintptr_t kBase = 0x100000;
  HostRangeMap map_;
};

TEST_F(HostRangeMapTest, InsideOnePiece) {
  auto s = map_.Split(At(kBase + 100), kPage);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].offset, 0u);
  EXPECT_EQ(s[0].length, kPage);
  EXPECT_TRUE(s[0].registered);
}

TEST_F(HostRangeMapTest, SplitsAtEveryBoundaryAndCoversTheRange) {
  // From the middle of piece 0 to the middle of piece 4 (past the gap).
  const std::uintptr_t start = kBase + 2 * kPage;
  const std::size_t len = 16 * kPage;  // ends at kBase + 18 pages
  auto s = map_.Split(At(start), len);
  ASSERT_EQ(s.size(), 5u);
  const struct { std::size_t offset, length; bool registered; } want[] = {
      {0, 2 * kPage, true},            // rest of piece 0
      {2 * kPage, 4 * kPage, false},   // piece 1, refused
      {6 * kPage, 4 * kPage, true},    // piece 2
      {10 * kPage, 4 * kPage, false},  // the gap
      {14 * kPage, 2 * kPage, true},   // start of piece 4
  };
  std::size_t covered = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i].offset, want[i].offset) << i;
    EXPECT_EQ(s[i].length, want[i].length) << i;
    EXPECT_EQ(s[i].registered, want[i].registered) << i;
    covered += s[i].length;
  }
  EXPECT_EQ(covered, len);
}

TEST_F(HostRangeMapTest, AdjacentRegisteredPiecesStaySeparate) {
  HostRangeMap m;
  m.Add({At(kBase), kPage}, true);
  m.Add({At(kBase + kPage), kPage}, true);
  m.Add({At(kBase + 2 * kPage), kPage}, false);
  m.Add({At(kBase + 3 * kPage), kPage}, false);
  m.Finish();
  auto s = m.Split(At(kBase), 4 * kPage);
  ASSERT_EQ(s.size(), 3u);  // two DMAs, then one staged run over both refused pieces
  EXPECT_EQ(s[0].length, kPage);
  EXPECT_EQ(s[1].length, kPage);
  EXPECT_FALSE(s[2].registered);
  EXPECT_EQ(s[2].length, 2 * kPage);
}

TEST_F(HostRangeMapTest, OutsideEveryPieceIsStaged) {
  auto s = map_.Split(At(0x1000), 100);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_FALSE(s[0].registered);
  EXPECT_EQ(s[0].length, 100u);
  auto after = map_.Split(At(kBase + 30 * kPage), kPage);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_FALSE(after[0].registered);
  EXPECT_TRUE(map_.Split(At(kBase), 0).empty());
}

}  // namespace
}  // namespace cxlkv::internal
