// SlabAllocator: slabs -> spans -> slots, with per-CPU slot caches in front.
//
// Locks, always taken in this order: pool_mu (the free-slab pool; spans change owner) ->
// CPU cache spin locks (in index order when several are held) -> a class's spin lock. The fast
// path takes one CPU cache's lock, which no other thread wants unless it runs on the same CPU;
// pool_mu is taken only to give a class a span, to take one back, and by Stats.
//
// Every slot a class has handed to a CPU cache counts as used by its span, so a span whose used
// count is 0 has no slot anywhere but in its own free stack: only such spans may change owner.
#include "cxlkv/slab_allocator.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <functional>

#include "alloc/cpu_cache.h"
#include "alloc/size_classes.h"
#include "alloc/slab_pool.h"
#include "alloc/span.h"
#include "alloc/spin_lock.h"
#include "util/format.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv {
namespace {

constexpr std::uint32_t kNoSpan = UINT32_MAX;  // a slab no span holds

// Bytes between the live flags of neighbouring slots: slot_size / 1024, from 1 to 64. A CPU
// cache refills with a run of neighbouring slots, so with one byte per slot two CPUs' flags
// shared a cache line and every Allocate/Free on one evicted the other's (at 128 KiB, 32 slots
// a span: all in one line; 2 threads then ran at 1.2x the 1-thread rate in some runs against
// 2.0x without flags). Spread out, a 16-slot refill covers a line of its own from 4 KiB slots
// up, for at most 1/1024 of the slot's size in DRAM; 256-byte slots keep 1 byte.
constexpr std::size_t LiveFlagStride(std::size_t slot_size) {
  return std::min<std::size_t>(64, std::bit_floor(std::max<std::size_t>(1, slot_size / 1024)));
}

}  // namespace

struct SlabAllocator::Impl {
  const MemoryRegion* region = nullptr;
  SizeClassTable table;
  std::byte* base = nullptr;
  std::size_t slab_size = 0;
  unsigned slab_shift = 0;  // slab_size is a power of two: slab index = offset >> slab_shift
  std::size_t slab_count = 0;

  // A real mutex, unlike the others: a rebalance holds it while it drains every CPU cache and
  // walks every class, and waiters should sleep through that, not spin.
  internal::Mutex pool_mu;
  std::unique_ptr<SlabPool> pool GUARDED_BY(pool_mu);
  // Per slab: the head slab of the span holding it, or kNoSpan. Written under pool_mu.
  std::unique_ptr<std::atomic<std::uint32_t>[]> span_head;
  // Per head slab: the owning class. Changes only under pool_mu while the span is empty, so a
  // slot that is live pins its span's class.
  std::unique_ptr<std::atomic<std::uint32_t>[]> span_class;
  std::vector<Span> spans;  // indexed by head slab
  std::unique_ptr<ClassState[]> classes;
  std::vector<std::size_t> cache_limit;  // per class: slots one CPU may cache; 0 = not cached
  std::unique_ptr<CpuCaches> caches;
  // One flag per slot of every span, 1 while the slot is handed out. Catches double frees and
  // frees of pointers that are not live slots without touching the region. A byte, not a bit,
  // and spread LiveFlagStride bytes apart: threads on different CPUs flip the flags of
  // neighbouring slots, and packed flags put them in one cache line that would bounce between
  // cores on nearly every call. Per span, not per region granule: one flag per slot actually
  // carved (two for a 4 MiB slab of 2 MiB chunks), where a flag per smallest-slot granule of
  // the region would cost 1/256 of a tier's capacity in DRAM once the store carves 256-byte
  // header slots.
  // Per head slab: the flags of the span starting there, published before span_head names the
  // span. Arrays are kept until the allocator goes (in live_arrays), so a stray Free racing
  // with a span changing owner reads stale flags, never freed memory.
  std::unique_ptr<std::atomic<std::atomic<std::uint8_t>*>[]> span_live;
  std::unique_ptr<std::size_t[]> span_live_capacity GUARDED_BY(pool_mu);  // bytes, per head slab
  std::vector<std::unique_ptr<std::atomic<std::uint8_t>[]>> live_arrays GUARDED_BY(pool_mu);
  std::atomic<std::uint64_t> rebalanced_slabs{0};
  // DRAM kept per slot: live flag arrays and free stacks (see SlabAllocatorStats).
  std::atomic<std::size_t> bookkeeping_bytes{0};
  std::function<void(const SlabAllocatorOptions::SpanChange&)> on_span_change;
  bool restoring = false;              // inside RestoreSpan: the span is already on the media
  std::vector<std::uint32_t> restored;  // heads of restored spans until FinishRestore

  std::byte* SlotAddress(std::uint32_t head, std::uint32_t slot, std::size_t slot_size) const {
    return base + head * slab_size + slot * slot_size;
  }
  // A slot just taken is this thread's alone (and pins its span): a plain store marks it (a
  // locked exchange would cost as much as the rest of the fast path).
  void MarkLive(const std::byte* ptr, std::size_t slot_size) {
    const auto offset = static_cast<std::size_t>(ptr - base);
    const std::uint32_t head = span_head[offset >> slab_shift].load(std::memory_order_acquire);
    const auto slot = static_cast<std::uint32_t>(offset - head * slab_size) /
                      static_cast<std::uint32_t>(slot_size);
    span_live[head].load(std::memory_order_acquire)[slot * LiveFlagStride(slot_size)].store(
        1, std::memory_order_release);
  }
  // Clears the flag of slot `slot` of the span at `head`; false when it was not set (a double
  // free, or a span that never had flags). An exchange, so that of two threads freeing one
  // slot at once only one goes on.
  bool ClearLive(std::uint32_t head, std::uint32_t slot, std::size_t slot_size) {
    std::atomic<std::uint8_t>* flags = span_live[head].load(std::memory_order_acquire);
    return flags != nullptr &&
           flags[slot * LiveFlagStride(slot_size)].exchange(0, std::memory_order_acq_rel) != 0;
  }

  // --- class level: the class's lock held ---
  std::byte* TakeSlotLocked(std::uint32_t cls) {
    ClassState& c = classes[cls];
    if (c.partial.heads.empty()) return nullptr;
    const std::uint32_t head = c.partial.heads.back();
    Span& span = spans[head];
    std::uint32_t slot;
    if (!span.free_slots.empty()) {  // reuse what was given back first: its lines are warm
      slot = span.free_slots.back();
      span.free_slots.pop_back();
    } else {
      slot = span.carved++;
    }
    if (span.used++ == 0) c.empty.Remove(spans, head);
    if (!span.has_free_slot()) c.partial.Remove(spans, head);
    return SlotAddress(head, slot, table.at(cls).slot_size);
  }
  // Returns whether the span became empty.
  bool ReturnSlotLocked(std::uint32_t cls, std::byte* ptr) {
    ClassState& c = classes[cls];
    const std::size_t slot_size = table.at(cls).slot_size;
    const std::uint32_t head = span_head[static_cast<std::size_t>(ptr - base) >> slab_shift].load(
        std::memory_order_relaxed);
    Span& span = spans[head];
    // Spans are below 4 GiB: a 32-bit division is several times cheaper than a 64-bit one.
    const std::uint32_t slot = static_cast<std::uint32_t>(ptr - (base + head * slab_size)) /
                               static_cast<std::uint32_t>(slot_size);
    if (!span.has_free_slot()) c.partial.Add(spans, head);
    PushFreeSlot(span, slot);
    if (--span.used != 0) return false;
    c.empty.Add(spans, head);
    return true;
  }

  // The free stack's DRAM, counted as it grows and shrinks (Stats reads it without locks).
  void PushFreeSlot(Span& span, std::uint32_t slot) {
    const std::size_t before = span.free_slots.capacity();
    span.free_slots.push_back(slot);
    if (span.free_slots.capacity() != before) {
      bookkeeping_bytes.fetch_add((span.free_slots.capacity() - before) * sizeof(std::uint32_t),
                                  std::memory_order_relaxed);
    }
  }
  void DropFreeStack(Span& span) {
    bookkeeping_bytes.fetch_sub(span.free_slots.capacity() * sizeof(std::uint32_t),
                                std::memory_order_relaxed);
    std::vector<std::uint32_t>().swap(span.free_slots);
  }

  // --- pool level: pool_mu held ---
  void GiveSpanLocked(std::uint32_t cls, std::size_t first) REQUIRES(pool_mu) {
    const SizeClass& sc = table.at(cls);
    const auto head = static_cast<std::uint32_t>(first);
    // The durable pool records the span before any slot of it can hold a chunk.
    if (on_span_change && !restoring) {
      on_span_change({first, sc.slabs_per_span, sc.slot_size});
    }
    pool->Take(first, sc.slabs_per_span);
    Span& span = spans[head];
    // The span's flags: all 0, as every slot of a span that changes owner is free. A larger
    // array replaces the head's old one, which stays allocated (see span_live). Published
    // before the class, so that a Free that sees the new class indexes a large enough array.
    const std::size_t flag_bytes = sc.slots_per_span * LiveFlagStride(sc.slot_size);
    if (span_live_capacity[head] < flag_bytes) {
      live_arrays.push_back(std::make_unique<std::atomic<std::uint8_t>[]>(flag_bytes));
      span_live[head].store(live_arrays.back().get(), std::memory_order_release);
      span_live_capacity[head] = flag_bytes;
      bookkeeping_bytes.fetch_add(flag_bytes, std::memory_order_relaxed);
    }
    span_class[head].store(cls, std::memory_order_release);
    span.used = 0;
    span.carved = 0;  // a span fills front to back
    span.slots = static_cast<std::uint32_t>(sc.slots_per_span);
    DropFreeStack(span);
    for (std::size_t s = first; s < first + sc.slabs_per_span; ++s) {
      span_head[s].store(head, std::memory_order_release);
    }
    ClassState& c = classes[cls];
    std::lock_guard<SpinLock> class_lock(c.mu);
    ++c.span_count;
    c.partial.Add(spans, head);
    c.empty.Add(spans, head);
  }
  // Gives every empty span of class `cls` back to the pool but `keep` of them; returns the
  // slabs freed. The class's lock held too.
  std::size_t ReleaseEmptySpansLocked(std::uint32_t cls, std::size_t keep) REQUIRES(pool_mu) {
    ClassState& c = classes[cls];
    const SizeClass& sc = table.at(cls);
    std::size_t freed = 0;
    while (c.empty.heads.size() > keep) {
      const std::uint32_t head = c.empty.heads.back();
      c.empty.Remove(spans, head);
      c.partial.Remove(spans, head);  // an empty span always has free slots
      Span& span = spans[head];
      DropFreeStack(span);
      span.carved = 0;
      --c.span_count;
      for (std::size_t s = head; s < head + sc.slabs_per_span; ++s) {
        span_head[s].store(kNoSpan, std::memory_order_release);
      }
      pool->Give(head, sc.slabs_per_span);
      if (on_span_change) on_span_change({head, sc.slabs_per_span, 0});
      freed += sc.slabs_per_span;
    }
    return freed;
  }
  // Puts every cached slot back into its class so that empty spans show as empty.
  void DrainCachesLocked() REQUIRES(pool_mu) {
    for (std::size_t i = 0; i < caches->size(); ++i) {
      CpuCache& cache = (*caches)[i];
      std::lock_guard<SpinLock> cache_lock(cache.mu);
      for (std::uint32_t cls = 0; cls < table.classes().size(); ++cls) {
        auto& cached = cache.classes[cls].slots;
        if (cached.empty()) continue;
        std::lock_guard<SpinLock> class_lock(classes[cls].mu);
        for (std::byte* p : cached) ReturnSlotLocked(cls, p);
        cached.clear();
      }
    }
  }
  // Gives class `cls` a new span, rebalancing if no free run is left. False when impossible.
  bool GrowClass(std::uint32_t cls) {
    internal::MutexLock pool_lock(pool_mu);
    {
      // Another thread may have grown the class while this one waited for pool_mu.
      std::lock_guard<SpinLock> class_lock(classes[cls].mu);
      if (!classes[cls].partial.heads.empty()) return true;
    }
    const std::size_t k = table.at(cls).slabs_per_span;
    std::size_t first = pool->FindRun(k);
    if (first == slab_count) {
      // Rebalance: the empty spans every class holds (some only behind the CPU caches) go back
      // to the pool. Spans with live chunks cannot move: emptying them means evicting chunks,
      // which is the store's decision (a later layer), not the allocator's.
      DrainCachesLocked();
      for (std::uint32_t other = 0; other < table.classes().size(); ++other) {
        std::lock_guard<SpinLock> class_lock(classes[other].mu);
        if (other == cls && !classes[cls].partial.heads.empty()) return true;  // drain refilled it
        const std::size_t freed = ReleaseEmptySpansLocked(other, 0);
        if (other != cls) rebalanced_slabs.fetch_add(freed, std::memory_order_relaxed);
      }
      first = pool->FindRun(k);
      if (first == slab_count) return false;
    }
    GiveSpanLocked(cls, first);
    return true;
  }
  // A class keeps at most one empty span (to absorb alloc/free churn); the others go back.
  void TrimEmptySpans(std::uint32_t cls) {
    internal::MutexLock pool_lock(pool_mu);
    std::lock_guard<SpinLock> class_lock(classes[cls].mu);
    ReleaseEmptySpansLocked(cls, 1);
  }

  static void CountAllocationLocked(CpuCache& cache, std::uint32_t cls, std::size_t size) {
    UseCounters& c = cache.classes[cls].counters;
    ++c.live_slots;
    c.bytes_requested += static_cast<std::int64_t>(size);
    ++c.allocations;
  }

  // A slot of class `cls` for a request of `size` bytes, counted as live; nullptr when none.
  std::byte* AllocateSlot(std::uint32_t cls, std::size_t size) {
    CpuCache& cache = caches->Local();
    const std::size_t limit = cache_limit[cls];
    if (limit > 0) {
      std::lock_guard<SpinLock> cache_lock(cache.mu);
      auto& cached = cache.classes[cls].slots;
      if (cached.empty()) {
        // Refill half the cache in one visit to the class.
        std::lock_guard<SpinLock> class_lock(classes[cls].mu);
        for (std::size_t i = 0; i < (limit + 1) / 2; ++i) {
          std::byte* p = TakeSlotLocked(cls);
          if (p == nullptr) break;
          cached.push_back(p);
        }
      }
      if (!cached.empty()) {
        std::byte* p = cached.back();
        cached.pop_back();
        CountAllocationLocked(cache, cls, size);
        return p;
      }
    }
    std::byte* p = TakeOrGrow(cls);
    if (p != nullptr) {
      std::lock_guard<SpinLock> cache_lock(cache.mu);
      CountAllocationLocked(cache, cls, size);
    }
    return p;
  }

  // Takes a slot from the class, growing it by a span when it has none. Other threads may
  // take the new span's slots first; each GrowClass adds a span, so this ends when a slot is
  // had or the pool is truly out of room.
  std::byte* TakeOrGrow(std::uint32_t cls) {
    while (true) {
      {
        std::lock_guard<SpinLock> class_lock(classes[cls].mu);
        if (std::byte* p = TakeSlotLocked(cls)) return p;
      }
      if (!GrowClass(cls)) return nullptr;
    }
  }

  void FreeSlot(std::uint32_t cls, std::byte* p, std::size_t size) {
    CpuCache& cache = caches->Local();
    const std::size_t limit = cache_limit[cls];
    ClassState& state = classes[cls];
    bool trim = false;
    {
      std::lock_guard<SpinLock> cache_lock(cache.mu);
      UseCounters& c = cache.classes[cls].counters;
      --c.live_slots;
      c.bytes_requested -= static_cast<std::int64_t>(size);
      if (limit > 0) {
        auto& cached = cache.classes[cls].slots;
        cached.push_back(p);
        if (cached.size() <= limit) return;
        // Overflow: half the cache goes back to the class in one visit.
        std::lock_guard<SpinLock> class_lock(state.mu);
        while (cached.size() > limit / 2) {
          trim |= ReturnSlotLocked(cls, cached.back());
          cached.pop_back();
        }
        trim = trim && state.empty.heads.size() > 1;
      }
    }
    if (limit == 0) {  // an uncached class: straight back, without holding the CPU cache
      std::lock_guard<SpinLock> class_lock(state.mu);
      trim = ReturnSlotLocked(cls, p) && state.empty.heads.size() > 1;
    }
    if (trim) TrimEmptySpans(cls);
  }

  Status NoSpace(std::size_t size, const SizeClass& sc) {
    std::size_t free_slabs;
    {
      internal::MutexLock pool_lock(pool_mu);
      free_slabs = pool->free_slabs();
    }
    return Status::NoSpace("slab allocator: no free slot of " + FormatBytes(size) + " (class " +
                           FormatBytes(sc.slot_size) + ", spans of " +
                           std::to_string(sc.slabs_per_span) + " slabs) in a " +
                           FormatBytes(region->size()) + " region (" + region->info().ToString() +
                           "): " + std::to_string(slab_count - free_slabs) + " of " +
                           std::to_string(slab_count) + " slabs in use");
  }
};

SlabAllocator::SlabAllocator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SlabAllocator::~SlabAllocator() = default;

Result<std::unique_ptr<SlabAllocator>> SlabAllocator::Create(const MemoryRegion& region,
                                                             SlabAllocatorOptions options) {
  CXLKV_ASSIGN_OR_RETURN(SizeClassTable table, SizeClassTable::Build(options));
  // Slots are aligned because slabs start at region.data() + i * slab_size and slot sizes are
  // multiples of the alignment: the region's start must be aligned too.
  if (reinterpret_cast<std::uintptr_t>(region.data()) % options.slot_alignment != 0) {
    return Status::InvalidArgument(
        "slab allocator: region " + region.info().ToString() + " starts at an address not " +
        "aligned to slot_alignment " + FormatBytes(options.slot_alignment));
  }
  const std::size_t slab_count = region.size() / options.slab_size;
  if (slab_count == 0) {
    return Status::InvalidArgument("slab allocator: region of " + FormatBytes(region.size()) +
                                   " (" + region.info().ToString() + ") holds no slab of " +
                                   FormatBytes(options.slab_size));
  }
  if (slab_count >= kNoSpan) {
    return Status::InvalidArgument("slab allocator: " + std::to_string(slab_count) +
                                   " slabs are too many; use a larger slab_size");
  }
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.region = &region;
  m.base = region.data();
  m.slab_size = options.slab_size;
  m.slab_shift = static_cast<unsigned>(__builtin_ctzll(options.slab_size));
  m.slab_count = slab_count;
  if (options.reserved_slabs >= slab_count) {
    return Status::InvalidArgument("slab allocator: " + std::to_string(options.reserved_slabs) +
                                   " reserved slabs leave none of the " +
                                   std::to_string(slab_count) + " in the region");
  }
  // The pool's fields are written under pool_mu here too, although no other thread can see
  // the allocator yet: so the analysis checks every access the same way.
  internal::MutexLock pool_lock(m.pool_mu);
  m.pool = std::make_unique<SlabPool>(slab_count);
  if (options.reserved_slabs > 0) m.pool->Take(0, options.reserved_slabs);
  m.on_span_change = std::move(options.on_span_change);
  m.span_head = std::make_unique<std::atomic<std::uint32_t>[]>(slab_count);
  m.span_class = std::make_unique<std::atomic<std::uint32_t>[]>(slab_count);
  for (std::size_t i = 0; i < slab_count; ++i) m.span_head[i].store(kNoSpan);
  m.spans.resize(slab_count);
  const std::size_t class_count = table.classes().size();
  m.classes = std::make_unique<ClassState[]>(class_count);
  for (const SizeClass& c : table.classes()) {
    m.cache_limit.push_back(
        std::min(kMaxCachedSlotsPerClass, options.per_cpu_cache_bytes / c.slot_size));
  }
  m.caches = std::make_unique<CpuCaches>(class_count);
  m.span_live = std::make_unique<std::atomic<std::atomic<std::uint8_t>*>[]>(slab_count);
  m.span_live_capacity = std::make_unique<std::size_t[]>(slab_count);
  m.table = std::move(table);
  return std::unique_ptr<SlabAllocator>(new SlabAllocator(std::move(impl)));
}

Result<Allocation> SlabAllocator::Allocate(std::size_t size) {
  const int cls = impl_->table.ClassFor(size);
  if (cls < 0) {
    return Status::InvalidArgument("slab allocator: cannot allocate " + std::to_string(size) +
                                   " B: sizes go from 1 B to " +
                                   FormatBytes(impl_->table.max_slot_size()));
  }
  const auto id = static_cast<std::uint32_t>(cls);
  const SizeClass& sc = impl_->table.at(id);
  std::byte* p = impl_->AllocateSlot(id, size);
  if (p == nullptr) {
    impl_->classes[id].failures.fetch_add(1, std::memory_order_relaxed);
    return impl_->NoSpace(size, sc);
  }
  impl_->MarkLive(p, sc.slot_size);
  return Allocation{p, size, sc.slot_size, id};
}

Status SlabAllocator::Free(const Allocation& a) {
  Impl& m = *impl_;
  auto foreign = [&](const char* why) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "slab allocator: cannot free %p (%zu B): %s",
                  static_cast<void*>(a.data), a.size, why);
    return Status::InvalidArgument(buf);
  };
  // Compared as integers: ordering pointers into different objects is unspecified in C++.
  const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(a.data);
  const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(m.base);
  if (address < base || address - base >= m.slab_count * m.slab_size) {
    return foreign("not in this allocator's region");
  }
  const std::size_t offset = address - base;
  const std::uint32_t head = m.span_head[offset >> m.slab_shift].load(std::memory_order_acquire);
  if (head == kNoSpan) return foreign("its slab holds no slots");
  if (a.class_id >= m.table.classes().size()) return foreign("unknown size class");
  const SizeClass& sc = m.table.at(a.class_id);
  const auto in_span = static_cast<std::uint32_t>(offset - head * m.slab_size);
  const auto slot_size = static_cast<std::uint32_t>(sc.slot_size);
  if (in_span % slot_size != 0 || in_span / slot_size >= sc.slots_per_span ||
      a.size > sc.slot_size) {
    return foreign("not the start of a slot of its size class");
  }
  // A live slot pins its span's class, so these checks are exact for any slot that was handed
  // out; for a stray pointer racing with a span changing owner they are best effort.
  if (m.span_class[head].load(std::memory_order_acquire) != a.class_id) {
    return foreign("its slab belongs to another size class");
  }
  if (!m.ClearLive(head, in_span / slot_size, slot_size)) {
    return foreign("already free (double free)");
  }
  m.FreeSlot(a.class_id, a.data, a.size);
  return Status::Ok();
}

Status SlabAllocator::RestoreSpan(std::size_t first_slab, std::size_t slot_size) {
  Impl& m = *impl_;
  const int cls = m.table.ClassFor(slot_size);
  if (cls < 0 || m.table.at(static_cast<std::uint32_t>(cls)).slot_size != slot_size) {
    return Status::InvalidArgument("slab allocator: no size class has slots of " +
                                   std::to_string(slot_size) + " B");
  }
  const SizeClass& sc = m.table.at(static_cast<std::uint32_t>(cls));
  internal::MutexLock pool_lock(m.pool_mu);
  if (first_slab >= m.slab_count || sc.slabs_per_span > m.slab_count - first_slab) {
    return Status::InvalidArgument("slab allocator: a span of " +
                                   std::to_string(sc.slabs_per_span) + " slabs at slab " +
                                   std::to_string(first_slab) + " ends past the region's " +
                                   std::to_string(m.slab_count));
  }
  for (std::size_t s = first_slab; s < first_slab + sc.slabs_per_span; ++s) {
    if (!m.pool->IsFree(s)) {
      return Status::InvalidArgument("slab allocator: slab " + std::to_string(s) +
                                     " of a restored span is reserved or in another span");
    }
  }
  m.restoring = true;
  m.GiveSpanLocked(static_cast<std::uint32_t>(cls), first_slab);
  m.restoring = false;
  m.restored.push_back(static_cast<std::uint32_t>(first_slab));
  return Status::Ok();
}

Result<Allocation> SlabAllocator::ClaimSlot(std::byte* slot, std::size_t size) {
  Impl& m = *impl_;
  const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(slot);
  const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(m.base);
  auto refuse = [&](const char* why) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "slab allocator: cannot claim %p (%zu B): %s",
                  static_cast<void*>(slot), size, why);
    return Status::InvalidArgument(buf);
  };
  if (address < base || address - base >= m.slab_count * m.slab_size) {
    return refuse("not in this allocator's region");
  }
  const std::size_t offset = address - base;
  const std::uint32_t head = m.span_head[offset >> m.slab_shift].load(std::memory_order_acquire);
  if (head == kNoSpan) return refuse("its slab holds no restored span");
  const std::uint32_t cls = m.span_class[head].load(std::memory_order_acquire);
  const SizeClass& sc = m.table.at(cls);
  const auto in_span = static_cast<std::uint32_t>(offset - head * m.slab_size);
  const auto slot_size = static_cast<std::uint32_t>(sc.slot_size);
  if (in_span % slot_size != 0 || in_span / slot_size >= sc.slots_per_span) {
    return refuse("not the start of a slot");
  }
  if (size == 0 || size > sc.slot_size) return refuse("the size does not fit the slot");
  std::atomic<std::uint8_t>* flags = m.span_live[head].load(std::memory_order_acquire);
  if (flags[in_span / slot_size * LiveFlagStride(slot_size)].exchange(
          1, std::memory_order_acq_rel) != 0) {
    return refuse("claimed twice");
  }
  CpuCache& cache = m.caches->Local();
  {
    std::lock_guard<SpinLock> cache_lock(cache.mu);
    Impl::CountAllocationLocked(cache, cls, size);
  }
  return Allocation{slot, size, sc.slot_size, cls};
}

void SlabAllocator::FinishRestore() {
  Impl& m = *impl_;
  internal::MutexLock pool_lock(m.pool_mu);
  for (const std::uint32_t head : m.restored) {
    const std::uint32_t cls = m.span_class[head].load(std::memory_order_relaxed);
    const SizeClass& sc = m.table.at(cls);
    ClassState& c = m.classes[cls];
    std::lock_guard<SpinLock> class_lock(c.mu);
    Span& span = m.spans[head];
    const std::atomic<std::uint8_t>* flags = m.span_live[head].load(std::memory_order_relaxed);
    const std::size_t stride = LiveFlagStride(sc.slot_size);
    auto live = [&](std::uint32_t i) { return flags[i * stride].load(std::memory_order_relaxed); };
    // Slots past the last live one stay uncarved; the free ones below it go on the stack,
    // the lowest on top.
    std::uint32_t carved = 0;
    for (std::uint32_t i = 0; i < sc.slots_per_span; ++i) {
      if (live(i) != 0) carved = i + 1;
    }
    m.DropFreeStack(span);
    span.used = 0;
    for (std::uint32_t i = carved; i-- > 0;) {
      if (live(i) == 0) {
        m.PushFreeSlot(span, i);
      } else {
        ++span.used;
      }
    }
    span.carved = carved;
    if (span.used != 0) c.empty.Remove(m.spans, head);
    if (!span.has_free_slot()) c.partial.Remove(m.spans, head);
  }
  m.restored.clear();
  m.restored.shrink_to_fit();
}

std::size_t SlabAllocator::SlotSizeFor(std::size_t size) const {
  const int cls = impl_->table.ClassFor(size);
  return cls < 0 ? 0 : impl_->table.at(static_cast<std::uint32_t>(cls)).slot_size;
}

std::size_t SlabAllocator::max_allocation() const { return impl_->table.max_slot_size(); }
const MemoryRegion& SlabAllocator::region() const { return *impl_->region; }

std::size_t SlabAllocator::slot_bookkeeping_bytes() const {
  return impl_->bookkeeping_bytes.load(std::memory_order_relaxed);
}

SlabAllocatorStats SlabAllocator::Stats() const {
  Impl& m = *impl_;
  SlabAllocatorStats s;
  s.region_bytes = m.region->size();
  s.slab_size = m.slab_size;
  s.slabs_total = m.slab_count;
  s.rebalanced_slabs = m.rebalanced_slabs.load(std::memory_order_relaxed);
  s.slot_bookkeeping_bytes = m.bookkeeping_bytes.load(std::memory_order_relaxed);
  // pool_mu keeps spans where they are; holding every CPU cache at once makes the use counts
  // one consistent snapshot (a slot freed on one CPU and allocated on another in between
  // would otherwise be counted twice or not at all).
  internal::MutexLock pool_lock(m.pool_mu);
  s.slabs_free = m.pool->free_slabs();
  s.largest_free_run = m.pool->LargestRun();
  for (const SizeClass& sc : m.table.classes()) {
    SizeClassStats cs;
    cs.class_id = sc.id;
    cs.slot_size = sc.slot_size;
    cs.exact = sc.exact;
    cs.slabs_per_span = sc.slabs_per_span;
    ClassState& c = m.classes[sc.id];
    {
      std::lock_guard<SpinLock> class_lock(c.mu);
      cs.slabs = c.span_count * sc.slabs_per_span;
      cs.slots_total = c.span_count * sc.slots_per_span;
    }
    cs.failures = c.failures.load(std::memory_order_relaxed);
    s.classes.push_back(cs);
  }
  std::vector<UseCounters> use(m.table.classes().size());
  for (std::size_t i = 0; i < m.caches->size(); ++i) (*m.caches)[i].mu.lock();
  for (std::size_t i = 0; i < m.caches->size(); ++i) {
    for (std::size_t cls = 0; cls < use.size(); ++cls) {
      const UseCounters& part = (*m.caches)[i].classes[cls].counters;
      use[cls].live_slots += part.live_slots;
      use[cls].bytes_requested += part.bytes_requested;
      use[cls].allocations += part.allocations;
    }
  }
  for (std::size_t i = m.caches->size(); i-- > 0;) (*m.caches)[i].mu.unlock();

  std::size_t requested = 0, used = 0;
  for (SizeClassStats& cs : s.classes) {
    const UseCounters& u = use[cs.class_id];
    cs.slots_used = static_cast<std::size_t>(u.live_slots);
    cs.bytes_requested = static_cast<std::size_t>(u.bytes_requested);
    cs.allocations = u.allocations;
    cs.bytes_used = cs.slots_used * cs.slot_size;
    // Slots in CPU caches count as free: any allocation of the class can have them.
    cs.bytes_free = (cs.slots_total - cs.slots_used) * cs.slot_size;
    requested += cs.bytes_requested;
    used += cs.bytes_used;
  }
  s.internal_fragmentation =
      used == 0 ? 0.0 : 1.0 - static_cast<double>(requested) / static_cast<double>(used);
  s.external_fragmentation =
      s.slabs_free == 0 ? 0.0
                        : 1.0 - static_cast<double>(s.largest_free_run) /
                                    static_cast<double>(s.slabs_free);
  return s;
}

std::string SlabAllocatorStats::ToString() const {
  char line[200];
  std::snprintf(line, sizeof(line),
                "%zu slabs of %s, %zu free (largest free run %zu), internal fragmentation "
                "%.1f%%, external %.1f%%, %llu slabs rebalanced\n",
                slabs_total, FormatBytes(slab_size).c_str(), slabs_free, largest_free_run,
                100.0 * internal_fragmentation, 100.0 * external_fragmentation,
                static_cast<unsigned long long>(rebalanced_slabs));
  std::string out = line;
  std::snprintf(line, sizeof(line), "  %-11s %5s %6s %5s %8s %10s %10s %10s %8s\n", "class",
                "exact", "slabs", "span", "used", "requested", "free", "allocs", "nospace");
  out += line;
  for (const SizeClassStats& c : classes) {
    if (c.slabs == 0 && c.allocations == 0) continue;
    std::snprintf(line, sizeof(line), "  %-11s %5s %6zu %5zu %8zu %10s %10s %10llu %8llu\n",
                  FormatBytes(c.slot_size).c_str(), c.exact ? "yes" : "", c.slabs,
                  c.slabs_per_span, c.slots_used, FormatBytes(c.bytes_requested).c_str(),
                  FormatBytes(c.bytes_free).c_str(),
                  static_cast<unsigned long long>(c.allocations),
                  static_cast<unsigned long long>(c.failures));
    out += line;
  }
  return out;
}

}  // namespace cxlkv
