// SlabAllocator recovery for durable pools: reserved_slabs, on_span_change, and
// RestoreSpan/ClaimSlot/FinishRestore, which lay a previous allocator's spans and live slots
// back over the same region.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "alloc/heap_region_for_tests.h"
#include "cxlkv/slab_allocator.h"

namespace cxlkv {
namespace {

using testing::HeapRegion;

constexpr std::size_t kSlab = std::size_t{64} << 10;
constexpr std::size_t kSlabs = 16;

// As a durable tier asks for them: 256-byte slots and steps, one leading reserved slab.
// Classes: 256, 512, 768, 1024 (exact), ..., 64 KiB (exact, one slot a slab) and 96 KiB
// (exact, spans of 3 slabs).
SlabAllocatorOptions Options(std::vector<SlabAllocatorOptions::SpanChange>* changes = nullptr) {
  SlabAllocatorOptions o;
  o.slab_size = kSlab;
  o.slot_alignment = 256;
  o.min_slot_size = 256;
  o.max_slot_size = 16 * kSlab;
  o.exact_sizes = {1024, 65536, 98304};
  o.reserved_slabs = 1;
  o.per_cpu_cache_bytes = 0;  // every Allocate and Free goes straight to its class
  if (changes != nullptr) {
    o.on_span_change = [changes](const SlabAllocatorOptions::SpanChange& c) {
      changes->push_back(c);
    };
  }
  return o;
}

struct Fixture {
  std::unique_ptr<HeapRegion> region = HeapRegion::Make(kSlabs * kSlab);
  std::vector<SlabAllocatorOptions::SpanChange> changes;
  std::unique_ptr<SlabAllocator> alloc;

  Fixture() {
    auto a = SlabAllocator::Create(*region, Options(&changes));
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    alloc = std::move(a).value();
  }
  std::byte* Slot(std::size_t slab, std::size_t index, std::size_t slot_size) const {
    return region->data() + slab * kSlab + index * slot_size;
  }
  std::size_t SlabOf(const std::byte* p) const {
    return static_cast<std::size_t>(p - region->data()) / kSlab;
  }
  std::size_t Used(std::size_t slot_size) const {
    for (const SizeClassStats& c : alloc->Stats().classes) {
      if (c.slot_size == slot_size) return c.slots_used;
    }
    ADD_FAILURE() << "no class of " << slot_size;
    return 0;
  }
};

TEST(SlabAllocatorRestore, ClaimedSlotsStayOutOfLaterAllocations) {
  Fixture f;
  ASSERT_TRUE(f.alloc->RestoreSpan(2, 1024).ok());
  ASSERT_TRUE(f.alloc->RestoreSpan(3, 256).ok());
  const std::set<std::byte*> claimed = {f.Slot(2, 0, 1024), f.Slot(2, 5, 1024),
                                        f.Slot(2, 63, 1024)};
  std::vector<Allocation> live;
  for (std::byte* p : claimed) {
    Result<Allocation> a = f.alloc->ClaimSlot(p, 1000);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->data, p);
    EXPECT_EQ(a->capacity, 1024u);
    live.push_back(*a);
  }
  ASSERT_TRUE(f.alloc->ClaimSlot(f.Slot(3, 7, 256), 256).ok());
  f.alloc->FinishRestore();
  EXPECT_EQ(f.Used(1024), 3u);
  EXPECT_EQ(f.Used(256), 1u);
  EXPECT_TRUE(f.changes.empty()) << "restored spans are on the media already";

  // The 61 free slots of the restored span come first, none of them a claimed one.
  std::set<std::byte*> handed;
  for (int i = 0; i < 61; ++i) {
    Result<Allocation> a = f.alloc->Allocate(1000);
    ASSERT_TRUE(a.ok()) << i << ": " << a.status().ToString();
    EXPECT_EQ(f.SlabOf(a->data), 2u) << i;
    EXPECT_EQ(claimed.count(a->data), 0u) << i;
    EXPECT_TRUE(handed.insert(a->data).second) << i;
  }
  // Then a new span, which the pool is told about before any slot of it is used.
  Result<Allocation> next = f.alloc->Allocate(1000);
  ASSERT_TRUE(next.ok());
  const std::size_t slab = f.SlabOf(next->data);
  EXPECT_TRUE(slab != 0 && slab != 2 && slab != 3) << slab;
  ASSERT_EQ(f.changes.size(), 1u);
  EXPECT_EQ(f.changes[0].first_slab, slab);
  EXPECT_EQ(f.changes[0].slabs, 1u);
  EXPECT_EQ(f.changes[0].slot_size, 1024u);

  // A claimed slot is an ordinary allocation: it frees, once.
  EXPECT_TRUE(f.alloc->Free(live[0]).ok());
  EXPECT_TRUE(f.alloc->Free(live[0]).IsInvalidArgument());
}

TEST(SlabAllocatorRestore, BadClaimsAreRefusedAndChangeNothing) {
  Fixture f;
  ASSERT_TRUE(f.alloc->RestoreSpan(2, 1024).ok());
  std::byte* slot = f.Slot(2, 4, 1024);
  ASSERT_TRUE(f.alloc->ClaimSlot(slot, 1024).ok());
  EXPECT_TRUE(f.alloc->ClaimSlot(slot, 1024).status().IsInvalidArgument());       // twice
  EXPECT_TRUE(f.alloc->ClaimSlot(slot + 256, 512).status().IsInvalidArgument());  // mid-slot
  EXPECT_TRUE(f.alloc->ClaimSlot(f.Slot(5, 0, 1024), 512).status().IsInvalidArgument());  // no span
  EXPECT_TRUE(f.alloc->ClaimSlot(f.Slot(0, 0, 1024), 512).status().IsInvalidArgument());  // reserved
  EXPECT_TRUE(f.alloc->ClaimSlot(f.Slot(kSlabs, 0, 1024), 512).status().IsInvalidArgument());
  EXPECT_TRUE(f.alloc->ClaimSlot(f.Slot(2, 8, 1024), 0).status().IsInvalidArgument());
  EXPECT_TRUE(f.alloc->ClaimSlot(f.Slot(2, 8, 1024), 1025).status().IsInvalidArgument());
  f.alloc->FinishRestore();
  EXPECT_EQ(f.Used(1024), 1u);

  // Every other slot of the span is free, and the claimed one is never handed out.
  for (int i = 0; i < 63; ++i) {
    Result<Allocation> a = f.alloc->Allocate(1024);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(f.SlabOf(a->data), 2u);
    EXPECT_NE(a->data, slot);
  }
  EXPECT_EQ(f.Used(1024), 64u);
}

TEST(SlabAllocatorRestore, BadSpansAreRefusedAndChangeNothing) {
  Fixture f;
  ASSERT_TRUE(f.alloc->RestoreSpan(4, 98304).ok());  // slabs 4, 5, 6
  ASSERT_TRUE(f.alloc->RestoreSpan(8, 256).ok());
  const SlabAllocatorStats before = f.alloc->Stats();
  EXPECT_EQ(before.slabs_free, kSlabs - 1 - 4);

  EXPECT_TRUE(f.alloc->RestoreSpan(2, 1000).IsInvalidArgument());      // no class of 1000 B
  EXPECT_TRUE(f.alloc->RestoreSpan(2, 64 << 20).IsInvalidArgument());  // above every class
  EXPECT_TRUE(f.alloc->RestoreSpan(0, 256).IsInvalidArgument());       // reserved
  EXPECT_TRUE(f.alloc->RestoreSpan(8, 1024).IsInvalidArgument());      // the same slab
  EXPECT_TRUE(f.alloc->RestoreSpan(6, 256).IsInvalidArgument());       // inside a span
  EXPECT_TRUE(f.alloc->RestoreSpan(2, 98304).IsInvalidArgument());     // 2..4 overlaps 4
  EXPECT_TRUE(f.alloc->RestoreSpan(14, 98304).IsInvalidArgument());    // 14..16 past the end
  EXPECT_TRUE(f.alloc->RestoreSpan(kSlabs, 256).IsInvalidArgument());
  f.alloc->FinishRestore();

  const SlabAllocatorStats after = f.alloc->Stats();
  EXPECT_EQ(after.slabs_free, before.slabs_free);
  for (const SizeClassStats& c : after.classes) {
    const std::size_t expect = c.slot_size == 98304 ? 3 : c.slot_size == 256 ? 1 : 0;
    EXPECT_EQ(c.slabs, expect) << c.slot_size;
  }
  // The refused runs are still free. The restored 96 KiB span's two slots come first; the
  // next span of that class takes the first free run, 1..3; a 1 KiB span then takes slab 7.
  for (int i = 0; i < 2; ++i) {
    Result<Allocation> a = f.alloc->Allocate(98304);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->data, f.Slot(4, static_cast<std::size_t>(i), 98304));
  }
  EXPECT_TRUE(f.changes.empty());
  Result<Allocation> big = f.alloc->Allocate(98304);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(f.SlabOf(big->data), 1u);
  Result<Allocation> small = f.alloc->Allocate(1024);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(f.SlabOf(small->data), 7u);
  ASSERT_EQ(f.changes.size(), 2u);
  EXPECT_EQ(f.changes[0].first_slab, 1u);
  EXPECT_EQ(f.changes[0].slabs, 3u);
  EXPECT_EQ(f.changes[1].first_slab, 7u);
}

TEST(SlabAllocatorRestore, SpanChangesForNewAndReleasedSpans) {
  Fixture f;
  f.alloc->FinishRestore();  // nothing restored: a formatted pool
  // Two spans of 64 KiB slots (one slot each), then both emptied: a class keeps one empty
  // span and gives the other back.
  Result<Allocation> a = f.alloc->Allocate(65536);
  Result<Allocation> b = f.alloc->Allocate(65536);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(f.changes.size(), 2u);
  for (const auto& c : f.changes) {
    EXPECT_EQ(c.slabs, 1u);
    EXPECT_EQ(c.slot_size, 65536u);
  }
  EXPECT_NE(f.changes[0].first_slab, f.changes[1].first_slab);
  ASSERT_TRUE(f.alloc->Free(*a).ok());
  EXPECT_EQ(f.changes.size(), 2u);  // one empty span is kept
  ASSERT_TRUE(f.alloc->Free(*b).ok());
  ASSERT_EQ(f.changes.size(), 3u);
  EXPECT_EQ(f.changes[2].slot_size, 0u);  // released
  EXPECT_EQ(f.changes[2].slabs, 1u);
  EXPECT_TRUE(f.changes[2].first_slab == f.changes[0].first_slab ||
              f.changes[2].first_slab == f.changes[1].first_slab);
}

TEST(SlabAllocatorRestore, ReservedSlabsAreNeverHandedOut) {
  std::unique_ptr<HeapRegion> region = HeapRegion::Make(kSlabs * kSlab);
  SlabAllocatorOptions o = Options();
  o.reserved_slabs = 3;
  std::vector<SlabAllocatorOptions::SpanChange> changes;
  o.on_span_change = [&](const SlabAllocatorOptions::SpanChange& c) { changes.push_back(c); };
  auto alloc = SlabAllocator::Create(*region, o);
  ASSERT_TRUE(alloc.ok());
  // Fill the region with a mix of sizes, rebalancing as classes run dry, until NoSpace.
  const std::size_t sizes[] = {256, 1000, 98304, 20000, 4096};
  std::size_t n = 0;
  for (int round = 0; round < 100000; ++round) {
    Result<Allocation> a = (*alloc)->Allocate(sizes[round % 5]);
    if (!a.ok()) {
      EXPECT_TRUE(a.status().IsNoSpace()) << a.status().ToString();
      if (round % 5 == 4) break;  // the smallest sizes were refused too
      continue;
    }
    ++n;
    EXPECT_GE(a->data, region->data() + 3 * kSlab);
    EXPECT_LE(a->data + a->capacity, region->data() + kSlabs * kSlab);
  }
  EXPECT_GE(n, 25u);  // five rounds of the mix at least: 13 slabs hold more
  EXPECT_EQ((*alloc)->Stats().slabs_free, 0u);
  for (const auto& c : changes) EXPECT_GE(c.first_slab, 3u);
  // A pool as large as its reservation is refused.
  o.reserved_slabs = kSlabs;
  EXPECT_TRUE(SlabAllocator::Create(*region, o).status().IsInvalidArgument());
}

}  // namespace
}  // namespace cxlkv
