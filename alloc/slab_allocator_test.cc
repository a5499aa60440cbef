#include "cxlkv/slab_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "alloc/heap_region_for_tests.h"

namespace cxlkv {
namespace {

using testing::HeapRegion;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = kKiB * kKiB;

std::unique_ptr<HeapRegion> MapRegion(std::size_t size) {
  auto region = HeapRegion::Make(size);
  EXPECT_NE(region, nullptr) << "mmap of " << size << " B failed";
  return region;
}

// 256 KiB slabs so that small regions hold many; one exact class of 128 KiB (two per slab).
SlabAllocatorOptions SmallSlabs() {
  SlabAllocatorOptions o;
  o.slab_size = 256 * kKiB;
  o.min_slot_size = 4 * kKiB;
  o.max_slot_size = 2 * kMiB;
  o.exact_sizes = {128 * kKiB};
  o.slot_alignment = 4096;
  return o;
}

std::size_t HeldSlabs(const SlabAllocatorStats& stats) {
  std::size_t held = 0;
  for (const SizeClassStats& c : stats.classes) held += c.slabs;
  return held;
}

// What the allocator should have handed out: live slots by start address.
struct Model {
  std::map<const std::byte*, Allocation> live;
  std::size_t requested = 0;
};

void CheckAgainstModel(const SlabAllocator& allocator, const Model& model) {
  SlabAllocatorStats stats = allocator.Stats();
  std::size_t slots = 0, requested = 0, used = 0;
  std::map<std::uint32_t, std::size_t> model_slots;
  for (const auto& [p, a] : model.live) ++model_slots[a.class_id];
  for (const SizeClassStats& c : stats.classes) {
    slots += c.slots_used;
    requested += c.bytes_requested;
    used += c.bytes_used;
    EXPECT_EQ(c.slots_used, model_slots[c.class_id]) << "class " << c.slot_size;
    EXPECT_LE(c.slots_used, c.slots_total);
    EXPECT_EQ(c.bytes_used, c.slots_used * c.slot_size);
    EXPECT_EQ(c.bytes_free, (c.slots_total - c.slots_used) * c.slot_size);
    EXPECT_EQ(c.slabs % c.slabs_per_span, 0u);
  }
  EXPECT_EQ(slots, model.live.size());
  EXPECT_EQ(requested, model.requested);
  std::size_t model_used = 0;
  for (const auto& [p, a] : model.live) model_used += a.capacity;
  EXPECT_EQ(used, model_used);
  const double internal =
      used == 0 ? 0.0 : 1.0 - static_cast<double>(requested) / static_cast<double>(used);
  EXPECT_NEAR(stats.internal_fragmentation, internal, 1e-9);
  EXPECT_EQ(HeldSlabs(stats) + stats.slabs_free, stats.slabs_total);
  EXPECT_LE(stats.largest_free_run, stats.slabs_free);
}

TEST(SlabAllocatorTest, RejectsBadOptionsAndRegions) {
  auto region = MapRegion(8 * kMiB);
  SlabAllocatorOptions bad;
  bad.slot_alignment = 48;
  auto a = SlabAllocator::Create(*region, bad);
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(a.status().IsInvalidArgument());
  EXPECT_NE(a.status().message().find("slot_alignment 48"), std::string::npos)
      << a.status().ToString();

  SlabAllocatorOptions big;
  big.slab_size = 16 * kMiB;  // the region is smaller than one slab
  auto b = SlabAllocator::Create(*region, big);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(b.status().IsInvalidArgument());
  EXPECT_NE(b.status().message().find("holds no slab of 16.0 MiB"), std::string::npos)
      << b.status().ToString();

  // A region starting 64 B past a page: fine for 64-byte slots, not for 4 KiB ones.
  auto shifted = HeapRegion::Make(8 * kMiB, 64);
  ASSERT_NE(shifted, nullptr);
  SlabAllocatorOptions o = SmallSlabs();
  o.slot_alignment = 64;
  EXPECT_TRUE(SlabAllocator::Create(*shifted, o).ok());
  o.slot_alignment = 4096;
  auto c = SlabAllocator::Create(*shifted, o);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.status().IsInvalidArgument());
  EXPECT_NE(c.status().message().find("slot_alignment 4.0 KiB"), std::string::npos)
      << c.status().ToString();
}

TEST(SlabAllocatorTest, ExactSizeWastesNothingAndSlotsAreAligned) {
  for (std::size_t alignment : {std::size_t{64}, std::size_t{4096}}) {
    // Start the region on the alignment but no more, so that page alignment hides nothing.
    auto region = HeapRegion::Make(32 * kMiB, alignment == 64 ? 64 : 0);
    ASSERT_NE(region, nullptr);
    SlabAllocatorOptions o = SmallSlabs();
    o.slot_alignment = alignment;
    o.min_slot_size = 64;
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
    SlabAllocatorStats exact_only = (*allocator)->Stats();
    EXPECT_EQ(exact_only.internal_fragmentation, 0.0);
    for (std::size_t size : {std::size_t{1}, std::size_t{65}, std::size_t{5000},
                             std::size_t{100 * kKiB + 3}, std::size_t{kMiB + 1}}) {
      for (int i = 0; i < 5; ++i) {
        auto a = (*allocator)->Allocate(size);
        ASSERT_TRUE(a.ok()) << a.status().ToString();
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a->data) % alignment, 0u) << size;
        EXPECT_EQ(a->capacity % alignment, 0u);
        EXPECT_GE(a->capacity, size);
        EXPECT_EQ(a->capacity, (*allocator)->SlotSizeFor(size));
        held.push_back(*a);
      }
    }
    SlabAllocatorStats stats = (*allocator)->Stats();
    const SizeClassStats& exact = stats.classes[held[0].class_id];
    EXPECT_TRUE(exact.exact);
    EXPECT_EQ(exact.bytes_requested, exact.bytes_used);
    EXPECT_EQ(exact.bytes_requested, 20 * 128 * kKiB);
    EXPECT_GT(stats.internal_fragmentation, 0.0);  // the odd sizes waste some
    for (const Allocation& a : held) ASSERT_TRUE((*allocator)->Free(a).ok());
  }
}

TEST(SlabAllocatorTest, RejectsZeroAndOversizeRequests) {
  auto region = MapRegion(4 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  Status zero = (*allocator)->Allocate(0).status();
  EXPECT_TRUE(zero.IsInvalidArgument());
  Status too_big = (*allocator)->Allocate(3 * kMiB).status();
  EXPECT_TRUE(too_big.IsInvalidArgument());
  EXPECT_NE(too_big.message().find("3145728 B"), std::string::npos) << too_big.ToString();
  EXPECT_NE(too_big.message().find("2.0 MiB"), std::string::npos) << too_big.ToString();
  EXPECT_EQ((*allocator)->SlotSizeFor(3 * kMiB), 0u);
  EXPECT_EQ((*allocator)->SlotSizeFor(0), 0u);
  EXPECT_EQ((*allocator)->max_allocation(), 2 * kMiB);
  EXPECT_TRUE((*allocator)->Allocate(2 * kMiB).ok());  // the largest class itself is fine
  EXPECT_EQ(&(*allocator)->region(), region.get());
}

// Random allocations and frees against a model: slots never overlap, stay in the region, hold
// their size, and the statistics agree with the model. Running out is NoSpace, and once all is
// freed every slab can be had again.
TEST(SlabAllocatorTest, RandomizedAgainstModel) {
  auto region = MapRegion(16 * kMiB);
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
    if (step % 500 == 0) CheckAgainstModel(slab, model);
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
  SlabAllocatorStats full = slab.Stats();
  EXPECT_EQ(full.slabs_free, 0u);
  EXPECT_EQ(full.classes[big[0].class_id].slabs, full.slabs_total);
  for (const Allocation& a : big) ASSERT_TRUE(slab.Free(a).ok());
}

TEST(SlabAllocatorTest, ExhaustionIsNoSpaceNamingSizeClassAndRegion) {
  auto region = MapRegion(2 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  std::vector<Allocation> held;
  Status last;
  for (int i = 0; i < 1000; ++i) {
    Result<Allocation> a = (*allocator)->Allocate(120 * kKiB);  // the exact 128 KiB class
    if (!a.ok()) {
      last = a.status();
      break;
    }
    held.push_back(*a);
  }
  ASSERT_TRUE(last.IsNoSpace()) << last.ToString();
  for (const char* word : {"120.0 KiB", "class 128.0 KiB", "2.0 MiB region", "8 of 8 slabs"}) {
    EXPECT_NE(last.message().find(word), std::string::npos) << last.ToString() << " lacks " << word;
  }
  EXPECT_EQ(held.size(), 8u * 2);  // two 128 KiB slots per 256 KiB slab
  EXPECT_EQ((*allocator)->Stats().classes[held[0].class_id].failures, 1u);
  // Still NoSpace, and nothing else broke: a free makes room for exactly one more.
  EXPECT_TRUE((*allocator)->Allocate(128 * kKiB).status().IsNoSpace());
  ASSERT_TRUE((*allocator)->Free(held.back()).ok());
  held.pop_back();
  auto again = (*allocator)->Allocate(128 * kKiB);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  held.push_back(*again);
  for (const Allocation& a : held) ASSERT_TRUE((*allocator)->Free(a).ok());
}

// A class keeps at most one wholly empty span; the others go back to the pool as they empty,
// also when the slots come back through a CPU cache.
TEST(SlabAllocatorTest, EmptySpansGoBackToThePool) {
  const std::size_t cpus = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t cache_bytes : {std::size_t{0}, 64 * kKiB}) {
    SlabAllocatorOptions o = SmallSlabs();
    o.per_cpu_cache_bytes = cache_bytes;  // 64 KiB: 4 slots of 16 KiB per CPU
    // Enough slabs that the bound below says something even with many CPUs.
    const std::size_t slabs = std::max<std::size_t>(64, 8 * (1 + cpus * 4));
    auto region = MapRegion(slabs * o.slab_size);
    auto allocator = SlabAllocator::Create(*region, o);
    ASSERT_TRUE(allocator.ok());
    std::vector<Allocation> held;
    while (true) {
      Result<Allocation> a = (*allocator)->Allocate(16 * kKiB);
      if (!a.ok()) break;
      held.push_back(*a);
    }
    ASSERT_EQ(held.size(), slabs * 16);
    EXPECT_EQ((*allocator)->Stats().slabs_free, 0u);
    for (const Allocation& a : held) ASSERT_TRUE((*allocator)->Free(a).ok());
    SlabAllocatorStats stats = (*allocator)->Stats();
    // Without a cache exactly one empty slab stays; with one, also what cached slots pin.
    const std::size_t allowed = cache_bytes == 0 ? 1 : 1 + cpus * 4;
    EXPECT_LE(HeldSlabs(stats), allowed) << stats.ToString();
    EXPECT_GE(HeldSlabs(stats), 1u) << stats.ToString();
    EXPECT_EQ(stats.classes[held[0].class_id].slots_used, 0u);
  }
}

// A region filled with one class, then freed, must serve another class in full: its slabs move.
TEST(SlabAllocatorTest, RebalancingMovesEmptySlabsToAStarvingClass) {
  auto region = MapRegion(8 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  SlabAllocator& slab = **allocator;
  auto fill = [&](std::size_t size) {
    std::vector<Allocation> held;
    while (true) {
      Result<Allocation> a = slab.Allocate(size);
      if (!a.ok()) {
        EXPECT_TRUE(a.status().IsNoSpace()) << a.status().ToString();
        return held;
      }
      held.push_back(*a);
    }
  };
  // Class A (16 KiB) takes the whole region, then frees it all; class B (128 KiB) gets all of
  // it, including the empty span A kept and any A slots parked in CPU caches.
  std::vector<Allocation> small = fill(16 * kKiB);
  ASSERT_EQ(small.size(), 32u * 16);
  for (const Allocation& a : small) ASSERT_TRUE(slab.Free(a).ok());
  ASSERT_GT(slab.Stats().classes[small[0].class_id].slabs, 0u) << "A should keep a span";
  std::vector<Allocation> large = fill(128 * kKiB);
  EXPECT_EQ(large.size(), 32u * 2);
  SlabAllocatorStats stats = slab.Stats();
  EXPECT_GT(stats.rebalanced_slabs, 0u);
  EXPECT_EQ(stats.slabs_free, 0u);
  EXPECT_EQ(stats.classes[small[0].class_id].slabs, 0u);
  EXPECT_EQ(stats.classes[large[0].class_id].slabs, 32u);
  for (const Allocation& a : large) ASSERT_TRUE(slab.Free(a).ok());

  // Again with one A slot kept alive: its slab cannot move, B gets every other one.
  const std::uint64_t rebalanced_before = stats.rebalanced_slabs;
  small = fill(16 * kKiB);
  ASSERT_EQ(small.size(), 32u * 16);
  for (std::size_t i = 1; i < small.size(); ++i) ASSERT_TRUE(slab.Free(small[i]).ok());
  large = fill(128 * kKiB);
  EXPECT_EQ(large.size(), 31u * 2);
  stats = slab.Stats();
  EXPECT_GT(stats.rebalanced_slabs, rebalanced_before);
  EXPECT_EQ(stats.classes[small[0].class_id].slabs, 1u);
  EXPECT_EQ(stats.classes[small[0].class_id].slots_used, 1u);
  for (const Allocation& a : large) ASSERT_TRUE(slab.Free(a).ok());
  ASSERT_TRUE(slab.Free(small[0]).ok());
}

TEST(SlabAllocatorTest, DoubleFreeAndForeignPointersChangeNothing) {
  auto region = MapRegion(4 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  SlabAllocator& slab = **allocator;
  Allocation a = *slab.Allocate(128 * kKiB);
  Allocation b = *slab.Allocate(128 * kKiB);
  ASSERT_TRUE(slab.Free(a).ok());
  const std::string before = slab.Stats().ToString();

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
  Allocation bad_class = b;
  bad_class.class_id = 100000;
  EXPECT_TRUE(slab.Free(bad_class).IsInvalidArgument());
  Allocation oversize = b;
  oversize.size = 128 * kKiB + 1;
  EXPECT_TRUE(slab.Free(oversize).IsInvalidArgument());
  Allocation unused_slab{region->data() + 3 * 256 * kKiB, 10, 4096, 0};
  EXPECT_TRUE(slab.Free(unused_slab).IsInvalidArgument());
  Allocation past_end{region->data() + region->size(), 10, 4096, 0};
  EXPECT_TRUE(slab.Free(past_end).IsInvalidArgument());
  Allocation null_data{};
  EXPECT_TRUE(slab.Free(null_data).IsInvalidArgument());

  // Nothing changed: b is still live and accounted once; a's slot is reusable exactly once.
  EXPECT_EQ(slab.Stats().ToString(), before);
  SlabAllocatorStats stats = slab.Stats();
  EXPECT_EQ(stats.classes[b.class_id].slots_used, 1u);
  EXPECT_EQ(stats.classes[b.class_id].bytes_requested, 128 * kKiB);
  Allocation c = *slab.Allocate(128 * kKiB);
  Allocation d = *slab.Allocate(128 * kKiB);
  EXPECT_NE(c.data, d.data);
  EXPECT_NE(c.data, b.data);
  EXPECT_NE(d.data, b.data);
  for (const Allocation& x : {b, c, d}) ASSERT_TRUE(slab.Free(x).ok());
  EXPECT_EQ(slab.Stats().classes[b.class_id].slots_used, 0u);
}

TEST(SlabAllocatorTest, ChunksLargerThanASlabSpanSeveralSlabs) {
  auto region = MapRegion(128 * kMiB);
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
    // Whole 32 MiB chunks are writable end to end (the span is contiguous).
    a->data[0] = std::byte{1};
    a->data[a->capacity - 1] = std::byte{2};
    chunks.push_back(*a);
  }
  EXPECT_EQ(slab.Stats().classes[chunks[0].class_id].slabs_per_span, 8u);
  EXPECT_TRUE(slab.Allocate(32 * kMiB).status().IsNoSpace());
  // Free the 1st and 3rd: 16 slabs free in two runs of 8, scattered; a 64 MiB class (a span
  // of 16 slabs) cannot use them even after the rebalance gives back the kept empty span.
  ASSERT_TRUE(slab.Free(chunks[0]).ok());
  ASSERT_TRUE(slab.Free(chunks[2]).ok());
  Result<Allocation> huge = slab.Allocate(64 * kMiB);
  EXPECT_TRUE(huge.status().IsNoSpace()) << huge.status().ToString();
  SlabAllocatorStats stats = slab.Stats();
  EXPECT_EQ(stats.slabs_free, 16u);
  EXPECT_EQ(stats.largest_free_run, 8u);
  EXPECT_NEAR(stats.external_fragmentation, 0.5, 1e-9);
  // Freeing the chunk between two free runs joins them into one of 24 slabs.
  ASSERT_TRUE(slab.Free(chunks[1]).ok());
  huge = slab.Allocate(64 * kMiB);
  ASSERT_TRUE(huge.ok()) << huge.status().ToString();
  ASSERT_TRUE(slab.Free(*huge).ok());
  ASSERT_TRUE(slab.Free(chunks[3]).ok());
  stats = slab.Stats();
  EXPECT_EQ(stats.slabs_free + HeldSlabs(stats), 32u);
}

TEST(SlabAllocatorTest, FiveMiBChunksWasteNothing) {
  auto region = MapRegion(40 * kMiB);  // 10 slabs of 4 MiB: two spans of 5 slabs
  SlabAllocatorOptions o;
  o.exact_sizes = {5 * kMiB};
  auto allocator = SlabAllocator::Create(*region, o);
  ASSERT_TRUE(allocator.ok());
  std::vector<Allocation> held;
  while (true) {
    Result<Allocation> a = (*allocator)->Allocate(5 * kMiB);
    if (!a.ok()) break;
    held.push_back(*a);
  }
  EXPECT_EQ(held.size(), 8u);  // all 40 MiB used
  SlabAllocatorStats stats = (*allocator)->Stats();
  EXPECT_EQ(stats.slabs_free, 0u);
  EXPECT_EQ(stats.internal_fragmentation, 0.0);
  EXPECT_EQ(stats.classes[held[0].class_id].slabs_per_span, 5u);
  for (const Allocation& a : held) ASSERT_TRUE((*allocator)->Free(a).ok());
}

// Slots are carved lazily: a span filled once keeps one live flag per slot and no free
// stack; slots given back cost a 4-byte stack entry; and over fill, free and refill no slot is
// lost or handed out twice.
TEST(SlabAllocatorTest, BookkeepingIsAFlagPerCarvedSlotAndAStackEntryPerFreedOne) {
  auto region = MapRegion(2 * kMiB);
  ASSERT_NE(region, nullptr);
  SlabAllocatorOptions o = SmallSlabs();
  o.exact_sizes = {};
  auto allocator = SlabAllocator::Create(*region, o);
  ASSERT_TRUE(allocator.ok()) << allocator.status().ToString();
  SlabAllocator& a = **allocator;
  EXPECT_EQ(a.slot_bookkeeping_bytes(), 0u);
  auto fill = [&](std::vector<Allocation>& out) {
    for (;;) {
      auto slot = a.Allocate(4 * kKiB);
      if (!slot.ok()) {
        EXPECT_TRUE(slot.status().IsNoSpace()) << slot.status().ToString();
        return;
      }
      out.push_back(*slot);
    }
  };
  std::vector<Allocation> first;
  fill(first);
  ASSERT_GT(first.size(), 0u);
  const SlabAllocatorStats full = a.Stats();
  const SizeClassStats& cls = full.classes[first[0].class_id];
  EXPECT_EQ(cls.slots_used, first.size());
  EXPECT_EQ(cls.slots_used, cls.slots_total);
  // Flags only, no stack: 4 bytes a 4 KiB slot (flags are slot_size / 1024 bytes apart).
  EXPECT_EQ(full.slot_bookkeeping_bytes, 4 * cls.slots_total);
  EXPECT_EQ(a.slot_bookkeeping_bytes(), full.slot_bookkeeping_bytes);
  // Half given back: at most the CPU caches' share stays off the spans' stacks.
  for (std::size_t i = 0; i < first.size(); i += 2) ASSERT_TRUE(a.Free(first[i]).ok());
  const std::size_t freed = (first.size() + 1) / 2;
  EXPECT_GE(a.slot_bookkeeping_bytes(), 4 * cls.slots_total + 4 * (freed - std::min<std::size_t>(
                                                                        freed, 32)));
  for (std::size_t i = 1; i < first.size(); i += 2) ASSERT_TRUE(a.Free(first[i]).ok());
  std::vector<Allocation> second;
  fill(second);
  auto starts = [](const std::vector<Allocation>& v) {
    std::vector<const std::byte*> p;
    for (const Allocation& x : v) p.push_back(x.data);
    std::sort(p.begin(), p.end());
    return p;
  };
  EXPECT_EQ(starts(second), starts(first));  // every slot again, none twice
  for (const Allocation& x : second) ASSERT_TRUE(a.Free(x).ok());
}

TEST(SlabAllocatorTest, StatsPrintATable) {
  auto region = MapRegion(4 * kMiB);
  auto allocator = SlabAllocator::Create(*region, SmallSlabs());
  ASSERT_TRUE(allocator.ok());
  Allocation a = *(*allocator)->Allocate(128 * kKiB);
  const std::string table = (*allocator)->Stats().ToString();
  EXPECT_NE(table.find("16 slabs of 256.0 KiB, 15 free"), std::string::npos) << table;
  EXPECT_NE(table.find("128.0 KiB"), std::string::npos) << table;
  EXPECT_NE(table.find("yes"), std::string::npos) << table;  // the exact class
  // Only classes that hold slabs or served allocations: the header, a summary and one class.
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 3) << table;
  ASSERT_TRUE((*allocator)->Free(a).ok());
}

}  // namespace
}  // namespace cxlkv
