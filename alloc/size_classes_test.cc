#include "alloc/size_classes.h"

#include <gtest/gtest.h>

namespace cxlkv {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

TEST(SizeClassTableTest, GeometricClassesGrowByAtMostTheFactor) {
  SlabAllocatorOptions o;
  o.min_slot_size = 4096;
  o.growth_factor = 1.25;
  o.slot_alignment = 64;
  auto table = SizeClassTable::Build(o);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  const auto& classes = table->classes();
  ASSERT_GT(classes.size(), 10u);
  EXPECT_EQ(classes.front().slot_size, 4096u);
  EXPECT_EQ(classes.back().slot_size, 16 * o.slab_size);
  for (std::size_t i = 1; i < classes.size(); ++i) {
    const double ratio = static_cast<double>(classes[i].slot_size) /
                         static_cast<double>(classes[i - 1].slot_size);
    EXPECT_GT(classes[i].slot_size, classes[i - 1].slot_size);
    EXPECT_LE(ratio, 1.25 + 1e-9) << classes[i - 1].slot_size << " -> " << classes[i].slot_size;
    EXPECT_EQ(classes[i].slot_size % 64, 0u);
    EXPECT_EQ(classes[i].id, i);
  }
}

TEST(SizeClassTableTest, ExactSizesGetTheirOwnClass) {
  SlabAllocatorOptions o;
  o.slot_alignment = 4096;
  o.exact_sizes = {32 * kMiB, 128 * 1024, 3 * kMiB + 100};
  auto table = SizeClassTable::Build(o);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  for (std::size_t size : {32 * kMiB, std::size_t{128} * 1024}) {
    const int cls = table->ClassFor(size);
    ASSERT_GE(cls, 0);
    EXPECT_EQ(table->at(static_cast<std::uint32_t>(cls)).slot_size, size);
    EXPECT_TRUE(table->at(static_cast<std::uint32_t>(cls)).exact);
  }
  // A size that is not a multiple of the alignment rounds up to it.
  const int odd = table->ClassFor(3 * kMiB + 100);
  EXPECT_EQ(table->at(static_cast<std::uint32_t>(odd)).slot_size, 3 * kMiB + 4096);
  // One byte more than an exact class falls to the next class.
  EXPECT_GT(table->at(static_cast<std::uint32_t>(table->ClassFor(128 * 1024 + 1))).slot_size,
            128u * 1024);
}

TEST(SizeClassTableTest, ClassForPicksTheSmallestThatFits) {
  auto table = SizeClassTable::Build(SlabAllocatorOptions{});
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->ClassFor(0), -1);
  EXPECT_EQ(table->ClassFor(table->max_slot_size() + 1), -1);
  for (std::size_t size : {std::size_t{1}, std::size_t{4096}, std::size_t{4097}, 5 * kMiB}) {
    const int cls = table->ClassFor(size);
    ASSERT_GE(cls, 0);
    EXPECT_GE(table->at(static_cast<std::uint32_t>(cls)).slot_size, size);
    if (cls > 0) {
      EXPECT_LT(table->at(static_cast<std::uint32_t>(cls - 1)).slot_size, size);
    }
  }
}

TEST(SizeClassTableTest, SpansWasteTheLeast) {
  // 5 MiB slots on 4 MiB slabs: 2 slabs would waste 3 MiB of 8, 3 slabs 2 MiB of 12; 4 slabs
  // waste 1 MiB of 16 (within the 1/8 allowed).
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(5 * kMiB, 4 * kMiB), 4u);
  // 216 KiB tails fit a single slab well enough (5% waste).
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(216 * 1024, 4 * kMiB), 1u);
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(32 * kMiB, 4 * kMiB), 8u);
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(128 * 1024, 4 * kMiB), 1u);
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(3 * kMiB, 4 * kMiB), 3u);
  auto table = SizeClassTable::Build(SlabAllocatorOptions{});
  ASSERT_TRUE(table.ok());
  for (const SizeClass& c : table->classes()) {
    EXPECT_GE(c.slots_per_span, 1u);
    const std::size_t span = c.slabs_per_span * (4 * kMiB);
    EXPECT_LE(c.slots_per_span * c.slot_size, span);
    EXPECT_LE(span - c.slots_per_span * c.slot_size, span / 8) << c.slot_size;
  }
}

TEST(SizeClassTableTest, BadOptionsNameTheOption) {
  struct Case {
    SlabAllocatorOptions options;
    const char* names;
  };
  std::vector<Case> cases(6);
  cases[0].options.slot_alignment = 100;
  cases[0].names = "slot_alignment";
  cases[1].options.slab_size = 4096;
  cases[1].names = "slab_size";
  cases[2].options.growth_factor = 1.0;
  cases[2].names = "growth_factor";
  cases[3].options.growth_factor = 3.0;
  cases[3].names = "growth_factor";
  cases[4].options.min_slot_size = 8 * kMiB;
  cases[4].options.max_slot_size = kMiB;
  cases[4].names = "min_slot_size";
  cases[5].options.exact_sizes = {0};
  cases[5].names = "exact_sizes";
  for (const Case& c : cases) {
    auto table = SizeClassTable::Build(c.options);
    ASSERT_FALSE(table.ok()) << c.names;
    EXPECT_TRUE(table.status().IsInvalidArgument());
    EXPECT_NE(table.status().message().find(c.names), std::string::npos)
        << table.status().ToString();
  }
}

}  // namespace
}  // namespace cxlkv
