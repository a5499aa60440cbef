// The two tables a SlabAllocator is built on: its size classes and its pool of free slabs.
#include "alloc/size_classes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "alloc/slab_pool.h"

namespace cxlkv {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = kKiB * kKiB;

double SpanWaste(std::size_t slot, std::size_t slabs, std::size_t slab) {
  const std::size_t span = slabs * slab;
  return static_cast<double>(span % slot) / static_cast<double>(span);
}

TEST(SizeClassTableTest, GeometricClassesGrowByAtMostTheFactor) {
  for (std::size_t alignment : {std::size_t{64}, std::size_t{4096}}) {
    SlabAllocatorOptions o;
    o.min_slot_size = 4096;
    o.growth_factor = 1.25;
    o.slot_alignment = alignment;
    auto table = SizeClassTable::Build(o);
    ASSERT_TRUE(table.ok()) << table.status().ToString();
    const auto& classes = table->classes();
    ASSERT_GT(classes.size(), 10u);
    EXPECT_EQ(classes.front().slot_size, 4096u);
    EXPECT_EQ(classes.back().slot_size, 16 * o.slab_size);  // max_slot_size 0: 16 slabs
    for (std::size_t i = 1; i < classes.size(); ++i) {
      const std::size_t prev = classes[i - 1].slot_size, cur = classes[i].slot_size;
      EXPECT_GT(cur, prev);
      EXPECT_EQ(cur % alignment, 0u);
      EXPECT_EQ(classes[i].id, i);
      // Within the factor, unless the factor is less than one alignment step (4 KiB -> 8 KiB
      // with 4 KiB alignment): no aligned size lies in between.
      if (cur != prev + alignment) {
        EXPECT_LE(static_cast<double>(cur), 1.25 * static_cast<double>(prev) + 1e-6)
            << prev << " -> " << cur;
      }
    }
  }
}

TEST(SizeClassTableTest, FactorAndBoundsAreHonoured) {
  SlabAllocatorOptions o;
  o.min_slot_size = 100 * kKiB;  // not a multiple of the alignment: rounds up
  o.max_slot_size = 3 * kMiB;
  o.growth_factor = 1.1;
  o.slot_alignment = 4096;
  auto table = SizeClassTable::Build(o);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->min_slot_size(), 100 * kKiB);
  EXPECT_EQ(table->max_slot_size(), 3 * kMiB);
  const auto& classes = table->classes();
  for (std::size_t i = 1; i < classes.size(); ++i) {
    EXPECT_LE(static_cast<double>(classes[i].slot_size),
              1.1 * static_cast<double>(classes[i - 1].slot_size) + 1e-6);
  }
  // Factor 2 gives few classes; factor 1.1 many more.
  o.growth_factor = 2.0;
  auto coarse = SizeClassTable::Build(o);
  ASSERT_TRUE(coarse.ok());
  EXPECT_LT(coarse->classes().size() * 4, classes.size());
}

TEST(SizeClassTableTest, ExactSizesGetTheirOwnClass) {
  SlabAllocatorOptions o;
  o.slot_alignment = 4096;
  o.exact_sizes = {32 * kMiB, 128 * kKiB, 3 * kMiB + 100, 1000};
  auto table = SizeClassTable::Build(o);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  for (std::size_t size : {32 * kMiB, 128 * kKiB}) {
    const int cls = table->ClassFor(size);
    ASSERT_GE(cls, 0);
    EXPECT_EQ(table->at(static_cast<std::uint32_t>(cls)).slot_size, size);
    EXPECT_TRUE(table->at(static_cast<std::uint32_t>(cls)).exact);
  }
  // A size that is not a multiple of the alignment rounds up to it.
  const int odd = table->ClassFor(3 * kMiB + 100);
  EXPECT_EQ(table->at(static_cast<std::uint32_t>(odd)).slot_size, 3 * kMiB + 4096);
  EXPECT_TRUE(table->at(static_cast<std::uint32_t>(odd)).exact);
  // An exact size below min_slot_size still gets its class, and it is the smallest.
  EXPECT_EQ(table->ClassFor(1000), 0);
  EXPECT_TRUE(table->at(0).exact);
  // One byte more than an exact class falls to the next class.
  EXPECT_GT(table->at(static_cast<std::uint32_t>(table->ClassFor(128 * kKiB + 1))).slot_size,
            128 * kKiB);
  // The table stays sorted with the exact classes merged in.
  for (std::size_t i = 1; i < table->classes().size(); ++i) {
    EXPECT_LT(table->classes()[i - 1].slot_size, table->classes()[i].slot_size);
  }
}

TEST(SizeClassTableTest, ClassForPicksTheSmallestThatFits) {
  SlabAllocatorOptions o;
  o.exact_sizes = {5 * kMiB + 12345};
  auto table = SizeClassTable::Build(o);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->ClassFor(0), -1);
  EXPECT_EQ(table->ClassFor(table->max_slot_size() + 1), -1);
  EXPECT_GE(table->ClassFor(table->max_slot_size()), 0);
  for (std::size_t size : {std::size_t{1}, 4 * kKiB, 4 * kKiB + 1, 5 * kMiB, 5 * kMiB + 12345,
                           5 * kMiB + 12346, 63 * kMiB + 1}) {
    const int cls = table->ClassFor(size);
    ASSERT_GE(cls, 0) << size;
    EXPECT_GE(table->at(static_cast<std::uint32_t>(cls)).slot_size, size);
    if (cls > 0) {
      EXPECT_LT(table->at(static_cast<std::uint32_t>(cls - 1)).slot_size, size);
    }
  }
}

TEST(SizeClassTableTest, SpansWasteTheLeast) {
  const std::size_t slab = 4 * kMiB;
  // 5 MiB slots: 2 slabs waste 3 MiB of 8, 3 slabs 2 of 12, 4 slabs 1 of 16, 5 slabs nothing.
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(5 * kMiB, slab), 5u);
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(32 * kMiB, slab), 8u);
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(6 * kMiB, slab), 3u);
  // A slot no larger than a slab takes one slab, whatever it wastes.
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(3 * kMiB, slab), 1u);
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(216 * kKiB, slab), 1u);
  EXPECT_EQ(SizeClassTable::ChooseSlabsPerSpan(slab, slab), 1u);

  // Every class of a real table: the rule above, checked against every alternative.
  SlabAllocatorOptions o;
  o.slot_alignment = 4096;
  o.exact_sizes = {5 * kMiB, 32 * kMiB, 128 * kKiB};
  o.max_slot_size = 64 * kMiB;
  auto table = SizeClassTable::Build(o);
  ASSERT_TRUE(table.ok());
  for (const SizeClass& c : table->classes()) {
    EXPECT_GE(c.slots_per_span, 1u);
    EXPECT_EQ(c.slots_per_span, c.slabs_per_span * slab / c.slot_size) << c.slot_size;
    if (c.slot_size <= slab) {
      EXPECT_EQ(c.slabs_per_span, 1u) << c.slot_size;
      continue;
    }
    const std::size_t fewest = (c.slot_size + slab - 1) / slab;
    ASSERT_GE(c.slabs_per_span, fewest);
    ASSERT_LE(c.slabs_per_span, fewest + 8);
    const double chosen = SpanWaste(c.slot_size, c.slabs_per_span, slab);
    for (std::size_t k = fewest; k <= fewest + 8; ++k) {
      EXPECT_LE(chosen, SpanWaste(c.slot_size, k, slab) + 1e-12)
          << c.slot_size << ": " << c.slabs_per_span << " slabs chosen, " << k << " waste less";
    }
  }
  const int five = table->ClassFor(5 * kMiB);
  EXPECT_EQ(table->at(static_cast<std::uint32_t>(five)).slabs_per_span, 5u);
  EXPECT_EQ(table->at(static_cast<std::uint32_t>(five)).slots_per_span, 4u);
}

TEST(SizeClassTableTest, BadOptionsNameTheOptionAndValue) {
  struct Case {
    SlabAllocatorOptions options;
    std::vector<std::string> words;  // in the message
  };
  std::vector<Case> cases(10);
  cases[0].options.slot_alignment = 100;
  cases[0].words = {"slot_alignment", "100"};
  cases[1].options.slot_alignment = 32;
  cases[1].words = {"slot_alignment", "32"};
  cases[2].options.slab_size = 32 * kKiB;
  cases[2].words = {"slab_size", "32.0 KiB"};
  cases[3].options.slab_size = 3 * kMiB;  // not a power of two
  cases[3].words = {"slab_size", "3.0 MiB"};
  cases[4].options.growth_factor = 1.0;
  cases[4].words = {"growth_factor", "1.0"};
  cases[5].options.growth_factor = 3.0;
  cases[5].words = {"growth_factor", "3.0"};
  cases[6].options.min_slot_size = 8 * kMiB;
  cases[6].options.max_slot_size = kMiB;
  cases[6].words = {"min_slot_size", "8.0 MiB"};
  cases[7].options.exact_sizes = {0};
  cases[7].words = {"exact_sizes", "0"};
  cases[8].options.exact_sizes = {257 * kMiB};  // above 64 slabs of 4 MiB
  cases[8].words = {"exact_sizes", "257.0 MiB"};
  cases[9].options.max_slot_size = 512 * kMiB;
  cases[9].words = {"max_slot_size", "512.0 MiB"};
  for (const Case& c : cases) {
    auto table = SizeClassTable::Build(c.options);
    ASSERT_FALSE(table.ok()) << c.words[0];
    EXPECT_TRUE(table.status().IsInvalidArgument());
    for (const std::string& word : c.words) {
      EXPECT_NE(table.status().message().find(word), std::string::npos)
          << table.status().ToString() << " lacks " << word;
    }
  }
  // The largest sizes still allowed.
  SlabAllocatorOptions edge;
  edge.exact_sizes = {256 * kMiB};
  edge.max_slot_size = 256 * kMiB;
  EXPECT_TRUE(SizeClassTable::Build(edge).ok());
}

// --- The free-slab pool underneath: its word-at-a-time run search against a plain scan. ---

std::size_t NaiveFindRun(const std::vector<bool>& free, std::size_t count) {
  std::size_t run = 0;
  for (std::size_t i = 0; i < free.size(); ++i) {
    run = free[i] ? run + 1 : 0;
    if (count > 0 && run == count) return i + 1 - count;
  }
  return free.size();
}

std::size_t NaiveLargestRun(const std::vector<bool>& free) {
  std::size_t run = 0, longest = 0;
  for (bool f : free) {
    run = f ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return longest;
}

TEST(SlabPoolTest, RunsAcrossWordsAndTheRegionEnd) {
  SlabPool pool(130);  // two full words and two slabs
  EXPECT_EQ(pool.free_slabs(), 130u);
  EXPECT_EQ(pool.FindRun(130), 0u);
  EXPECT_EQ(pool.FindRun(131), 130u);  // none: no run reaches past the end
  EXPECT_EQ(pool.LargestRun(), 130u);
  pool.Take(0, 60);
  pool.Take(70, 10);
  EXPECT_EQ(pool.free_slabs(), 60u);
  EXPECT_EQ(pool.FindRun(10), 60u);   // 60..69 crosses the first word boundary
  EXPECT_EQ(pool.FindRun(11), 80u);
  EXPECT_EQ(pool.FindRun(50), 80u);   // 80..129: the rest of word 1 and all of word 2
  EXPECT_EQ(pool.FindRun(51), 130u);
  EXPECT_EQ(pool.LargestRun(), 50u);
  pool.Give(70, 10);  // joins 60..129 into one run
  EXPECT_EQ(pool.FindRun(70), 60u);
  EXPECT_EQ(pool.LargestRun(), 70u);
  EXPECT_FALSE(pool.IsFree(59));
  EXPECT_TRUE(pool.IsFree(60));
  EXPECT_TRUE(pool.IsFree(129));
}

TEST(SlabPoolTest, RandomTakesAndGivesMatchAPlainScan) {
  std::mt19937_64 rng(7);
  for (std::size_t slabs : {std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{200},
                            std::size_t{1000}}) {
    SlabPool pool(slabs);
    std::vector<bool> model(slabs, true);
    std::vector<std::pair<std::size_t, std::size_t>> taken;  // (first, count)
    for (int step = 0; step < 3000; ++step) {
      const std::size_t count = 1 + rng() % std::min<std::size_t>(slabs, 80);
      ASSERT_EQ(pool.FindRun(count), NaiveFindRun(model, count)) << slabs << " " << count;
      ASSERT_EQ(pool.LargestRun(), NaiveLargestRun(model));
      const std::size_t first = pool.FindRun(count);
      if (first != slabs && (taken.empty() || rng() % 2 == 0)) {
        pool.Take(first, count);
        for (std::size_t i = first; i < first + count; ++i) model[i] = false;
        taken.emplace_back(first, count);
      } else if (!taken.empty()) {
        const std::size_t i = rng() % taken.size();
        pool.Give(taken[i].first, taken[i].second);
        for (std::size_t s = taken[i].first; s < taken[i].first + taken[i].second; ++s) {
          model[s] = true;
        }
        taken[i] = taken.back();
        taken.pop_back();
      }
      ASSERT_EQ(pool.free_slabs(),
                static_cast<std::size_t>(std::count(model.begin(), model.end(), true)));
    }
  }
}

}  // namespace
}  // namespace cxlkv
