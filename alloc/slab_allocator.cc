// SlabAllocator: slabs -> spans -> slots, with per-CPU slot caches in front.
//
// Locks, always taken in this order: pool_mu (the free-slab map; spans change owner) ->
// a CPU cache's spin lock -> a class's mutex. The fast path takes one CPU cache's lock, which
// no other thread wants unless it runs on the same CPU; pool_mu is taken only to give a class
// a new span or to take one back.
//
// Every slot a class has handed to a CPU cache counts as used by its span, so a span whose used
// count is 0 has no slot anywhere but in its own free stack: only such spans may change owner.
#include "cxlkv/slab_allocator.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "alloc/size_classes.h"
#include "alloc/spin_lock.h"
#include "util/format.h"

namespace cxlkv {
namespace {

constexpr std::uint32_t kNoSpan = UINT32_MAX;
constexpr std::size_t kMaxCachedSlotsPerClass = 32;

// A run of slabs owned by one class, cut into equal slots. Guarded by its class's mutex.
struct Span {
  std::uint32_t used = 0;                 // slots out of free_slots (users and CPU caches)
  std::vector<std::uint32_t> free_slots;  // slot indices, a stack
  std::size_t partial_index = SIZE_MAX;   // position in its class's partial list, if there
};

struct ClassState {
  std::mutex mu;
  std::vector<std::uint32_t> spans;    // head slabs of all spans held
  std::vector<std::uint32_t> partial;  // spans with at least one free slot
  std::atomic<std::uint64_t> failures{0};
};

// What users hold, counted per CPU cache so the hot path writes only its own cache line. A
// slot allocated on one CPU and freed on another makes both counts drift; their sum is exact.
struct UseCounters {
  std::int64_t live_slots = 0;
  std::int64_t bytes_requested = 0;
  std::uint64_t allocations = 0;
};

struct alignas(64) CpuCache {
  SpinLock mu;
  std::vector<std::vector<std::byte*>> slots;  // free slots per class
  std::vector<UseCounters> counters;           // per class
};

}  // namespace

struct SlabAllocator::Impl {
  const MemoryRegion* region = nullptr;
  SlabAllocatorOptions options;
  SizeClassTable table;
  std::byte* base = nullptr;
  std::size_t slab_size = 0;
  unsigned slab_shift = 0;  // slab_size is a power of two: slab index = offset >> slab_shift
  std::size_t slab_count = 0;
  // A power of two no larger than the smallest slot: distinct slots get distinct live bits.
  unsigned live_bit_shift = 0;

  std::mutex pool_mu;
  std::vector<bool> slab_free;                        // guarded by pool_mu
  std::unique_ptr<std::atomic<std::uint32_t>[]> span_head;  // per slab: head slab or kNoSpan
  // Per head slab: the owning class. Changes only under pool_mu while the span is empty, so a
  // slot that is live pins its span's class.
  std::unique_ptr<std::atomic<std::uint32_t>[]> span_class;
  std::vector<Span> spans;                            // indexed by head slab
  std::unique_ptr<ClassState[]> classes;
  std::vector<std::size_t> cache_limit;               // per class; 0 = not cached
  std::unique_ptr<CpuCache[]> caches;
  std::size_t cache_count = 0;
  std::unique_ptr<std::atomic<std::uint64_t>[]> live_bits;
  std::atomic<std::uint64_t> rebalanced_slabs{0};

  std::byte* SlotAddress(std::uint32_t head, std::uint32_t slot, std::size_t slot_size) const {
    return base + head * slab_size + slot * slot_size;
  }
  // Sets (or clears) the live bit of the slot at ptr; returns whether it was set before.
  bool ExchangeLive(const std::byte* ptr, bool live) {
    const std::size_t bit = static_cast<std::size_t>(ptr - base) >> live_bit_shift;
    const std::uint64_t mask = std::uint64_t{1} << (bit % 64);
    std::atomic<std::uint64_t>& word = live_bits[bit / 64];
    const std::uint64_t old = live ? word.fetch_or(mask, std::memory_order_acq_rel)
                                   : word.fetch_and(~mask, std::memory_order_acq_rel);
    return (old & mask) != 0;
  }

  // The cache of the CPU this thread ran on when it last asked. sched_getcpu is a system call
  // on some kernels, so a thread re-asks only every 64 calls: being on a stale cache costs a
  // little contention for a while, never correctness (each cache has its own lock).
  CpuCache& LocalCache() {
    thread_local unsigned calls = 0;
    thread_local unsigned cpu = 0;
    if (calls++ % 64 == 0) {
      const int now = sched_getcpu();
      cpu = now < 0 ? 0u : static_cast<unsigned>(now);
    }
    return caches[cpu % cache_count];
  }

  // --- class level: c.mu held ---
  std::byte* TakeSlotLocked(std::uint32_t cls) {
    ClassState& c = classes[cls];
    if (c.partial.empty()) return nullptr;
    const std::uint32_t head = c.partial.back();
    Span& span = spans[head];
    const std::uint32_t slot = span.free_slots.back();
    span.free_slots.pop_back();
    ++span.used;
    if (span.free_slots.empty()) {
      c.partial.pop_back();
      span.partial_index = SIZE_MAX;
    }
    return SlotAddress(head, slot, table.at(cls).slot_size);
  }
  // Returns whether the span became empty.
  bool ReturnSlotLocked(std::uint32_t cls, std::byte* ptr) {
    ClassState& c = classes[cls];
    const std::size_t slot_size = table.at(cls).slot_size;
    const std::uint32_t head =
        span_head[static_cast<std::size_t>(ptr - base) >> slab_shift].load(std::memory_order_relaxed);
    Span& span = spans[head];
    // Spans are far below 4 GiB: a 32-bit division is several times cheaper than a 64-bit one.
    const std::uint32_t slot = static_cast<std::uint32_t>(ptr - (base + head * slab_size)) /
                               static_cast<std::uint32_t>(slot_size);
    if (span.free_slots.empty()) {
      span.partial_index = c.partial.size();
      c.partial.push_back(head);
    }
    span.free_slots.push_back(slot);
    --span.used;
    return span.used == 0;
  }
  std::size_t EmptySpansLocked(std::uint32_t cls) {
    std::size_t n = 0;
    for (std::uint32_t head : classes[cls].spans) n += spans[head].used == 0;
    return n;
  }

  // --- pool level: pool_mu held ---
  // First fit run of `k` free slabs; slab_count when none.
  std::size_t FindFreeRunLocked(std::size_t k) const {
    std::size_t run = 0;
    for (std::size_t i = 0; i < slab_count; ++i) {
      run = slab_free[i] ? run + 1 : 0;
      if (run == k) return i + 1 - k;
    }
    return slab_count;
  }
  std::size_t LargestFreeRunLocked() const {
    std::size_t run = 0, best = 0;
    for (std::size_t i = 0; i < slab_count; ++i) {
      run = slab_free[i] ? run + 1 : 0;
      best = std::max(best, run);
    }
    return best;
  }
  void GiveSpanLocked(std::uint32_t cls, std::size_t first) {
    const SizeClass& sc = table.at(cls);
    const auto head = static_cast<std::uint32_t>(first);
    Span& span = spans[head];
    span_class[head].store(cls, std::memory_order_release);
    span.used = 0;
    span.free_slots.resize(sc.slots_per_span);
    // Stack order: slot 0 is taken first, so a span fills front to back.
    for (std::size_t i = 0; i < sc.slots_per_span; ++i) {
      span.free_slots[i] = static_cast<std::uint32_t>(sc.slots_per_span - 1 - i);
    }
    for (std::size_t s = first; s < first + sc.slabs_per_span; ++s) {
      slab_free[s] = false;
      span_head[s].store(head, std::memory_order_release);
    }
    ClassState& c = classes[cls];
    std::lock_guard<std::mutex> class_lock(c.mu);
    c.spans.push_back(head);
    span.partial_index = c.partial.size();
    c.partial.push_back(head);
  }
  // Takes every empty span of class `cls` back into the pool, keeping `keep` of them; returns
  // the slabs freed. c.mu held.
  std::size_t ReleaseEmptySpansLocked(std::uint32_t cls, std::size_t keep) {
    ClassState& c = classes[cls];
    const SizeClass& sc = table.at(cls);
    std::size_t kept = 0, freed = 0;
    for (std::size_t i = 0; i < c.spans.size();) {
      const std::uint32_t head = c.spans[i];
      Span& span = spans[head];
      if (span.used != 0 || kept++ < keep) {
        ++i;
        continue;
      }
      // Out of the partial list (an empty span is always in it), then out of the class.
      const std::size_t at = span.partial_index;
      c.partial[at] = c.partial.back();
      spans[c.partial[at]].partial_index = at;
      c.partial.pop_back();
      span.partial_index = SIZE_MAX;
      span.free_slots.clear();
      span.free_slots.shrink_to_fit();
      c.spans[i] = c.spans.back();
      c.spans.pop_back();
      for (std::size_t s = head; s < head + sc.slabs_per_span; ++s) {
        span_head[s].store(kNoSpan, std::memory_order_release);
        slab_free[s] = true;
      }
      freed += sc.slabs_per_span;
    }
    return freed;
  }
  // Puts every cached slot back into its class so that empty spans show as empty.
  void DrainCachesLocked() {
    for (std::size_t i = 0; i < cache_count; ++i) {
      std::lock_guard<SpinLock> cache_lock(caches[i].mu);
      for (std::uint32_t cls = 0; cls < table.classes().size(); ++cls) {
        auto& cached = caches[i].slots[cls];
        if (cached.empty()) continue;
        std::lock_guard<std::mutex> class_lock(classes[cls].mu);
        for (std::byte* p : cached) ReturnSlotLocked(cls, p);
        cached.clear();
      }
    }
  }
  // Gives class `cls` a new span, rebalancing if no free run is left. False when impossible.
  bool GrowClass(std::uint32_t cls) {
    std::lock_guard<std::mutex> pool_lock(pool_mu);
    {
      // Another thread may have grown the class while this one waited for pool_mu.
      std::lock_guard<std::mutex> class_lock(classes[cls].mu);
      if (!classes[cls].partial.empty()) return true;
    }
    const std::size_t k = table.at(cls).slabs_per_span;
    std::size_t first = FindFreeRunLocked(k);
    if (first == slab_count) {
      // Rebalance: empty spans held by any class (behind the CPU caches) go back to the pool.
      // Spans with live chunks cannot move; freeing them is the store's eviction (a later layer).
      DrainCachesLocked();
      for (std::uint32_t other = 0; other < table.classes().size(); ++other) {
        std::lock_guard<std::mutex> class_lock(classes[other].mu);
        if (other == cls && !classes[cls].partial.empty()) return true;
        const std::size_t freed = ReleaseEmptySpansLocked(other, 0);
        if (other != cls) rebalanced_slabs.fetch_add(freed, std::memory_order_relaxed);
      }
      first = FindFreeRunLocked(k);
      if (first == slab_count) return false;
    }
    GiveSpanLocked(cls, first);
    return true;
  }
  // A class keeps at most one empty span (to absorb alloc/free churn); others go back.
  void TrimEmptySpans(std::uint32_t cls) {
    std::lock_guard<std::mutex> pool_lock(pool_mu);
    std::lock_guard<std::mutex> class_lock(classes[cls].mu);
    ReleaseEmptySpansLocked(cls, 1);
  }

  // A slot of class `cls` for a request of `size` bytes, counted as live; nullptr when none.
  std::byte* AllocateSlot(std::uint32_t cls, std::size_t size) {
    CpuCache& cache = LocalCache();
    const std::size_t limit = cache_limit[cls];
    if (limit > 0) {
      std::lock_guard<SpinLock> cache_lock(cache.mu);
      auto& cached = cache.slots[cls];
      if (cached.empty()) {
        // Refill half the cache in one visit to the class.
        std::lock_guard<std::mutex> class_lock(classes[cls].mu);
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
        std::lock_guard<std::mutex> class_lock(classes[cls].mu);
        if (std::byte* p = TakeSlotLocked(cls)) return p;
      }
      if (!GrowClass(cls)) return nullptr;
    }
  }

  static void CountAllocationLocked(CpuCache& cache, std::uint32_t cls, std::size_t size) {
    UseCounters& c = cache.counters[cls];
    ++c.live_slots;
    c.bytes_requested += static_cast<std::int64_t>(size);
    ++c.allocations;
  }

  void FreeSlot(std::uint32_t cls, std::byte* p, std::size_t size) {
    CpuCache& cache = LocalCache();
    const std::size_t limit = cache_limit[cls];
    {
      std::lock_guard<SpinLock> cache_lock(cache.mu);
      UseCounters& c = cache.counters[cls];
      --c.live_slots;
      c.bytes_requested -= static_cast<std::int64_t>(size);
      if (limit > 0) {
        auto& cached = cache.slots[cls];
        cached.push_back(p);
        if (cached.size() <= limit) return;
        // Overflow: hand half back to the class in one visit. Spans this empties stay with
        // the class until a rebalance; the cache already bounds what a class keeps.
        std::lock_guard<std::mutex> class_lock(classes[cls].mu);
        while (cached.size() > limit / 2) {
          ReturnSlotLocked(cls, cached.back());
          cached.pop_back();
        }
        return;
      }
    }
    bool trim;
    {
      std::lock_guard<std::mutex> class_lock(classes[cls].mu);
      trim = ReturnSlotLocked(cls, p) && EmptySpansLocked(cls) > 1;
    }
    if (trim) TrimEmptySpans(cls);
  }
};

SlabAllocator::SlabAllocator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SlabAllocator::~SlabAllocator() = default;

Result<std::unique_ptr<SlabAllocator>> SlabAllocator::Create(const MemoryRegion& region,
                                                             SlabAllocatorOptions options) {
  CXLKV_ASSIGN_OR_RETURN(SizeClassTable table, SizeClassTable::Build(options));
  if (reinterpret_cast<std::uintptr_t>(region.data()) % options.slot_alignment != 0) {
    return Status::InvalidArgument("slab allocator: region " + region.info().ToString() +
                                   " does not start on the slot alignment " +
                                   FormatBytes(options.slot_alignment));
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
  impl->region = &region;
  impl->options = options;
  impl->base = region.data();
  impl->slab_size = options.slab_size;
  impl->slab_shift = static_cast<unsigned>(__builtin_ctzll(options.slab_size));
  impl->slab_count = slab_count;
  impl->live_bit_shift = 63u - static_cast<unsigned>(__builtin_clzll(table.min_slot_size()));
  impl->slab_free.assign(slab_count, true);
  impl->span_head = std::make_unique<std::atomic<std::uint32_t>[]>(slab_count);
  impl->span_class = std::make_unique<std::atomic<std::uint32_t>[]>(slab_count);
  for (std::size_t i = 0; i < slab_count; ++i) impl->span_head[i].store(kNoSpan);
  impl->spans.resize(slab_count);
  const std::size_t class_count = table.classes().size();
  impl->classes = std::make_unique<ClassState[]>(class_count);
  for (const SizeClass& c : table.classes()) {
    impl->cache_limit.push_back(
        std::min(kMaxCachedSlotsPerClass, options.per_cpu_cache_bytes / c.slot_size));
  }
  impl->cache_count = std::max(1u, std::thread::hardware_concurrency());
  impl->caches = std::make_unique<CpuCache[]>(impl->cache_count);
  for (std::size_t i = 0; i < impl->cache_count; ++i) {
    impl->caches[i].slots.resize(class_count);
    impl->caches[i].counters.resize(class_count);
  }
  const std::size_t bits = (slab_count * options.slab_size) >> impl->live_bit_shift;
  impl->live_bits = std::make_unique<std::atomic<std::uint64_t>[]>((bits + 63) / 64);
  impl->table = std::move(table);
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
  ClassState& c = impl_->classes[id];
  std::byte* p = impl_->AllocateSlot(id, size);
  if (p == nullptr) {
    c.failures.fetch_add(1, std::memory_order_relaxed);
    std::size_t free_slabs;
    {
      std::lock_guard<std::mutex> pool_lock(impl_->pool_mu);
      free_slabs = static_cast<std::size_t>(
          std::count(impl_->slab_free.begin(), impl_->slab_free.end(), true));
    }
    return Status::NoSpace("slab allocator: no free slot of " + FormatBytes(size) + " (class " +
                           FormatBytes(sc.slot_size) + ", spans of " +
                           std::to_string(sc.slabs_per_span) + " slabs) in " +
                           FormatBytes(impl_->region->size()) + " " +
                           impl_->region->info().ToString() + ": " +
                           std::to_string(impl_->slab_count - free_slabs) + " of " +
                           std::to_string(impl_->slab_count) + " slabs in use");
  }
  impl_->ExchangeLive(p, true);
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
  if (a.data < m.base || a.data >= m.base + m.slab_count * m.slab_size) {
    return foreign("not in this allocator's region");
  }
  const std::size_t offset = static_cast<std::size_t>(a.data - m.base);
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
  if (!m.ExchangeLive(a.data, false)) return foreign("already free (double free)");
  m.FreeSlot(a.class_id, a.data, a.size);
  return Status::Ok();
}

std::size_t SlabAllocator::SlotSizeFor(std::size_t size) const {
  const int cls = impl_->table.ClassFor(size);
  return cls < 0 ? 0 : impl_->table.at(static_cast<std::uint32_t>(cls)).slot_size;
}

std::size_t SlabAllocator::max_allocation() const { return impl_->table.max_slot_size(); }
const MemoryRegion& SlabAllocator::region() const { return *impl_->region; }

SlabAllocatorStats SlabAllocator::Stats() const {
  Impl& m = *impl_;
  SlabAllocatorStats s;
  s.region_bytes = m.region->size();
  s.slab_size = m.slab_size;
  s.slabs_total = m.slab_count;
  s.rebalanced_slabs = m.rebalanced_slabs.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> pool_lock(m.pool_mu);
  s.slabs_free = static_cast<std::size_t>(std::count(m.slab_free.begin(), m.slab_free.end(), true));
  s.largest_free_run = m.LargestFreeRunLocked();
  std::size_t requested = 0, used = 0;
  for (const SizeClass& sc : m.table.classes()) {
    ClassState& c = m.classes[sc.id];
    SizeClassStats cs;
    cs.class_id = sc.id;
    cs.slot_size = sc.slot_size;
    cs.exact = sc.exact;
    cs.slabs_per_span = sc.slabs_per_span;
    {
      std::lock_guard<std::mutex> class_lock(c.mu);
      cs.slabs = c.spans.size() * sc.slabs_per_span;
      cs.slots_total = c.spans.size() * sc.slots_per_span;
    }
    UseCounters use;
    for (std::size_t i = 0; i < m.cache_count; ++i) {
      std::lock_guard<SpinLock> cache_lock(m.caches[i].mu);
      use.live_slots += m.caches[i].counters[sc.id].live_slots;
      use.bytes_requested += m.caches[i].counters[sc.id].bytes_requested;
      use.allocations += m.caches[i].counters[sc.id].allocations;
    }
    cs.slots_used = static_cast<std::size_t>(use.live_slots);
    cs.bytes_requested = static_cast<std::size_t>(use.bytes_requested);
    cs.allocations = use.allocations;
    cs.bytes_used = cs.slots_used * sc.slot_size;
    cs.bytes_free = (cs.slots_total - std::min(cs.slots_total, cs.slots_used)) * sc.slot_size;
    cs.failures = c.failures.load(std::memory_order_relaxed);
    requested += cs.bytes_requested;
    used += cs.bytes_used;
    s.classes.push_back(cs);
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
  std::snprintf(line, sizeof(line), "  %-11s %5s %6s %8s %10s %10s %10s %8s\n", "class", "exact",
                "slabs", "used", "requested", "free", "allocs", "nospace");
  out += line;
  for (const SizeClassStats& c : classes) {
    if (c.slabs == 0 && c.allocations == 0) continue;
    std::snprintf(line, sizeof(line), "  %-11s %5s %6zu %8zu %10s %10s %10llu %8llu\n",
                  FormatBytes(c.slot_size).c_str(), c.exact ? "yes" : "", c.slabs, c.slots_used,
                  FormatBytes(c.bytes_requested).c_str(), FormatBytes(c.bytes_free).c_str(),
                  static_cast<unsigned long long>(c.allocations),
                  static_cast<unsigned long long>(c.failures));
    out += line;
  }
  return out;
}

}  // namespace cxlkv
