#include "cxlkv/slab_allocator.h"

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "cxlkv/memory_source.h"

namespace cxlkv {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = kKiB * kKiB;

std::unique_ptr<MemoryRegion> MapDram(std::size_t size) {
  auto region = MemorySource::Dram(DramOptions{HugePages::kNone, false})->Map(size, 4096);
  EXPECT_TRUE(region.ok()) << region.status().ToString();
  return region.ok() ? std::move(region).value() : nullptr;
}

SlabAllocatorOptions SmallSlabs() {
  SlabAllocatorOptions o;
  o.slab_size = 256 * kKiB;
  o.min_slot_size = 4 * kKiB;
  o.max_slot_size = 2 * kMiB;
  o.exact_sizes = {128 * kKiB};
  o.slot_alignment = 4096;
  return o;
}

// What the allocator should have handed out: live slots by start address.
struct Model {
  std::map<const std::byte*, Allocation> live;
  std::size_t requested = 0;
};

void CheckAgainstModel(const SlabAllocator& allocator, const Model& model) {
  SlabAllocatorStats stats = allocator.Stats();
  std::size_t slots = 0, requested = 0, used = 0;
  for (const SizeClassStats& c : stats.classes) {
    slots += c.slots_used;
    requested += c.bytes_requested;
    used += c.bytes_used;
    EXPECT_LE(c.slots_used, c.slots_total);
  }
  EXPECT_EQ(slots, model.live.size());
  EXPECT_EQ(requested, model.requested);
  std::size_t model_used = 0;
  for (const auto& [p, a] : model.live) model_used += a.capacity;
  EXPECT_EQ(used, model_used);
  const double internal =
      used == 0 ? 0.0 : 1.0 - static_cast<double>(requested) / static_cast<double>(used);
  EXPECT_NEAR(stats.internal_fragmentation, internal, 1e-9);
}

TEST(SlabAllocatorTest, RejectsBadOptionsAndSmallRegions) {
  auto region = MapDram(8 * kMiB);
  SlabAllocatorOptions bad;
  bad.slot_alignment = 48;
  auto a = SlabAllocator::Create(*region, bad);
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(a.status().IsInvalidArgument());
  EXPECT_NE(a.status().message().find("slot_alignment"), std::string::npos);

  SlabAllocatorOptions big;
  big.slab_size = 16 * kMiB;
  auto b = SlabAllocator::Create(*region, big);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("holds no slab"), std::string::npos) << b.status().ToString();
}

TEST(SlabAllocatorTest, ExactSizeWastesNothingAndSlotsAreAligned) {
  auto region = MapDram(8 * kMiB);
  for (std::size_t alignment : {std::size_t{64}, std::size_t{4096}}) {
    SlabAllocatorOptions o = SmallSlabs();
    o.slot_alignment = alignment;
    auto allocator = SlabAllocator::Create(*region, o);
    ASSERT_TRUE(allocator.ok()) << allocator.status().ToString();
    std::vector<Allocation> held;
    for (int i = 0; i < 20; ++i) {
      auto a = (*allocator)->Allocate(128 * kKiB);
      ASSERT_TRUE(a.ok());
      EXPECT_EQ(a->capacity, 128 * kKiB);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a->data) % alignment, 0u);
      held.push_back(*a);
    }
    auto odd = (*allocator)->Allocate(5000);
    ASSERT_TRUE(odd.ok());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(odd->data) % alignment, 0u);
    EXPECT_EQ(odd->capacity % alignment, 0u);
    EXPECT_GE(odd->capacity, 5000u);
    held.push_back(*odd);
    SlabAllocatorStats stats = (*allocator)->Stats();
    const SizeClassStats& exact = stats.classes[held[0].class_id];
    EXPECT_TRUE(exact.exact);
    EXPECT_EQ(exact.bytes_requested, exact.bytes_used);
    for (const Allocation& a : held) ASSERT_TRUE((*allocator)->Free(a).ok());
  }
}

TEST(SlabAllocatorTest, RejectsZeroAndOversizeRequests) {
  auto region = MapDram(4 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  EXPECT_TRUE((*allocator)->Allocate(0).status().IsInvalidArgument());
  Status too_big = (*allocator)->Allocate(3 * kMiB).status();
  EXPECT_TRUE(too_big.IsInvalidArgument());
  EXPECT_NE(too_big.message().find("2.0 MiB"), std::string::npos) << too_big.ToString();
  EXPECT_EQ((*allocator)->SlotSizeFor(3 * kMiB), 0u);
  EXPECT_EQ((*allocator)->max_allocation(), 2 * kMiB);
}

// Random allocations and frees against a model: slots never overlap, stay in the region, hold
// their size, and the statistics agree with the model. Running out is NoSpace, and once all is
// freed every slab can be had again.
TEST(SlabAllocatorTest, RandomizedAgainstModel) {
  auto region = MapDram(16 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  SlabAllocator& slab = **allocator;
  std::mt19937_64 rng(42);
  Model model;
  int no_space = 0;
  for (int step = 0; step < 20000; ++step) {
    const bool allocate = model.live.empty() || rng() % 100 < 55;
    if (allocate) {
      std::size_t size;
      switch (rng() % 3) {
        case 0: size = 128 * kKiB; break;
        case 1: size = 1 + rng() % (256 * kKiB); break;
        default: size = 1 + rng() % (2 * kMiB); break;
      }
      Result<Allocation> a = slab.Allocate(size);
      if (!a.ok()) {
        ASSERT_TRUE(a.status().IsNoSpace()) << a.status().ToString();
        ++no_space;
        continue;
      }
      ASSERT_GE(a->capacity, size);
      ASSERT_EQ(a->size, size);
      ASSERT_GE(a->data, region->data());
      ASSERT_LE(a->data + a->capacity, region->data() + region->size());
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(a->data) % 4096, 0u);
      // No overlap with the neighbours in address order.
      auto next = model.live.lower_bound(a->data);
      if (next != model.live.end()) {
        ASSERT_LE(a->data + a->capacity, next->first);
      }
      if (next != model.live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second.capacity, a->data);
      }
      model.live[a->data] = *a;
      model.requested += size;
    } else {
      auto it = model.live.begin();
      std::advance(it, static_cast<long>(rng() % model.live.size()));
      ASSERT_TRUE(slab.Free(it->second).ok());
      model.requested -= it->second.size;
      model.live.erase(it);
    }
    if (step % 1000 == 0) CheckAgainstModel(slab, model);
  }
  EXPECT_GT(no_space, 0) << "the workload should have filled the 16 MiB region";
  CheckAgainstModel(slab, model);
  for (auto& [p, a] : model.live) ASSERT_TRUE(slab.Free(a).ok());
  model.live.clear();
  model.requested = 0;
  CheckAgainstModel(slab, model);
  // Everything back: the largest class fills the region again (after rebalancing).
  std::vector<Allocation> big;
  while (true) {
    Result<Allocation> a = slab.Allocate(2 * kMiB);
    if (!a.ok()) {
      EXPECT_TRUE(a.status().IsNoSpace());
      break;
    }
    big.push_back(*a);
  }
  EXPECT_EQ(big.size(), 8u);
  for (const Allocation& a : big) ASSERT_TRUE(slab.Free(a).ok());
}

TEST(SlabAllocatorTest, ExhaustionIsNoSpaceNamingTheRegion) {
  auto region = MapDram(2 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  std::vector<Allocation> held;
  Status last;
  for (int i = 0; i < 1000; ++i) {
    Result<Allocation> a = (*allocator)->Allocate(128 * kKiB);
    if (!a.ok()) {
      last = a.status();
      break;
    }
    held.push_back(*a);
  }
  ASSERT_TRUE(last.IsNoSpace());
  EXPECT_NE(last.message().find("2.0 MiB"), std::string::npos) << last.ToString();
  EXPECT_NE(last.message().find("8 of 8 slabs"), std::string::npos) << last.ToString();
  EXPECT_EQ(held.size(), 8u * 2);  // two 128 KiB slots per 256 KiB slab
  EXPECT_GT((*allocator)->Stats().classes[held[0].class_id].failures, 0u);
  for (const Allocation& a : held) ASSERT_TRUE((*allocator)->Free(a).ok());
}

// A region filled with one class, then freed, must serve another class in full: its slabs move.
TEST(SlabAllocatorTest, RebalancingMovesEmptySlabsToAStarvingClass) {
  auto region = MapDram(8 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  SlabAllocator& slab = **allocator;
  std::vector<Allocation> small;
  while (true) {
    Result<Allocation> a = slab.Allocate(16 * kKiB);
    if (!a.ok()) break;
    small.push_back(*a);
  }
  ASSERT_EQ(small.size(), 32u * 16);
  // Keep one small slot alive: its slab cannot move.
  for (std::size_t i = 1; i < small.size(); ++i) ASSERT_TRUE(slab.Free(small[i]).ok());
  std::vector<Allocation> large;
  while (true) {
    Result<Allocation> a = slab.Allocate(128 * kKiB);
    if (!a.ok()) break;
    large.push_back(*a);
  }
  EXPECT_EQ(large.size(), 31u * 2);  // every slab but the one holding the small slot
  SlabAllocatorStats stats = slab.Stats();
  EXPECT_GT(stats.rebalanced_slabs, 0u);
  EXPECT_EQ(stats.slabs_free, 0u);
  for (const Allocation& a : large) ASSERT_TRUE(slab.Free(a).ok());
  ASSERT_TRUE(slab.Free(small[0]).ok());
}

TEST(SlabAllocatorTest, DoubleFreeAndForeignPointersChangeNothing) {
  auto region = MapDram(4 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  SlabAllocator& slab = **allocator;
  Allocation a = *slab.Allocate(128 * kKiB);
  Allocation b = *slab.Allocate(128 * kKiB);
  ASSERT_TRUE(slab.Free(a).ok());
  Status twice = slab.Free(a);
  EXPECT_TRUE(twice.IsInvalidArgument());
  EXPECT_NE(twice.message().find("double free"), std::string::npos) << twice.ToString();

  std::byte outside[64];
  Allocation foreign{outside, 64, 4096, 0};
  EXPECT_TRUE(slab.Free(foreign).IsInvalidArgument());
  Allocation inside = b;
  inside.data += 4096;  // inside a slot, not its start
  EXPECT_TRUE(slab.Free(inside).IsInvalidArgument());
  Allocation wrong_class = b;
  wrong_class.class_id = 0;
  EXPECT_TRUE(slab.Free(wrong_class).IsInvalidArgument());
  Allocation unused_slab{region->data() + 3 * 256 * kKiB, 10, 4096, 0};
  EXPECT_TRUE(slab.Free(unused_slab).IsInvalidArgument());

  // b is still live and accounted once; a's slot is reusable exactly once.
  SlabAllocatorStats stats = slab.Stats();
  EXPECT_EQ(stats.classes[b.class_id].slots_used, 1u);
  EXPECT_EQ(stats.classes[b.class_id].bytes_requested, 128 * kKiB);
  Allocation c = *slab.Allocate(128 * kKiB);
  Allocation d = *slab.Allocate(128 * kKiB);
  EXPECT_NE(c.data, d.data);
  EXPECT_NE(c.data, b.data);
  EXPECT_NE(d.data, b.data);
  for (const Allocation& x : {b, c, d}) ASSERT_TRUE(slab.Free(x).ok());
}

TEST(SlabAllocatorTest, ChunksLargerThanASlabSpanSeveralSlabs) {
  auto region = MapDram(128 * kMiB);
  SlabAllocatorOptions o;  // 4 MiB slabs
  o.exact_sizes = {32 * kMiB};
  o.slot_alignment = 4096;
  auto allocator = SlabAllocator::Create(*region, o);
  ASSERT_TRUE(allocator.ok());
  SlabAllocator& slab = **allocator;
  std::vector<Allocation> chunks;
  for (int i = 0; i < 4; ++i) {
    Result<Allocation> a = slab.Allocate(32 * kMiB);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->capacity, 32 * kMiB);
    chunks.push_back(*a);
  }
  EXPECT_TRUE(slab.Allocate(32 * kMiB).status().IsNoSpace());
  // Free the 1st and 3rd: 16 slabs free in two runs of 8; a 64 MiB class cannot use them.
  ASSERT_TRUE(slab.Free(chunks[0]).ok());
  ASSERT_TRUE(slab.Free(chunks[2]).ok());
  // Keeping one empty span per class is allowed; a rebalance is what releases it.
  Result<Allocation> huge = slab.Allocate(64 * kMiB);
  EXPECT_TRUE(huge.status().IsNoSpace()) << huge.status().ToString();
  SlabAllocatorStats stats = slab.Stats();
  EXPECT_EQ(stats.slabs_free, 16u);
  EXPECT_EQ(stats.largest_free_run, 8u);
  EXPECT_NEAR(stats.external_fragmentation, 0.5, 1e-9);
  ASSERT_TRUE(slab.Free(chunks[1]).ok());
  huge = slab.Allocate(64 * kMiB);
  ASSERT_TRUE(huge.ok()) << huge.status().ToString();
  ASSERT_TRUE(slab.Free(*huge).ok());
  ASSERT_TRUE(slab.Free(chunks[3]).ok());
}

TEST(SlabAllocatorTest, StatsPrintATable) {
  auto region = MapDram(4 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  Allocation a = *(*allocator)->Allocate(128 * kKiB);
  const std::string table = (*allocator)->Stats().ToString();
  EXPECT_NE(table.find("128.0 KiB"), std::string::npos) << table;
  EXPECT_NE(table.find("16 slabs of 256.0 KiB"), std::string::npos) << table;
  ASSERT_TRUE((*allocator)->Free(a).ok());
}

}  // namespace
}  // namespace cxlkv
