// Per-CPU front caches of a SlabAllocator: a few free slots per size class, and the counts of
// what users hold, one set per CPU so that the common Allocate/Free touches one lock and one
// cache line that no other CPU wants.
//
// Thread-safety: a CpuCache's fields are guarded by its own `mu`. CpuCaches::Local() may be
// called from any thread; it picks a cache, it does not lock it.
#pragma once

#include <sched.h>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "alloc/spin_lock.h"

namespace cxlkv {

// What users hold of one class, counted where the call ran. A slot allocated on one CPU and
// freed on another makes both caches' counts drift (one may go negative); their sum is exact.
struct UseCounters {
  std::int64_t live_slots = 0;
  std::int64_t bytes_requested = 0;
  std::uint64_t allocations = 0;
};

// Slots one CPU may cache per class (SlabAllocator::Impl::cache_limit is at most this).
inline constexpr std::size_t kMaxCachedSlotsPerClass = 32;

// A CPU's free slots of one class: a stack with room for the limit plus one (a free pushes
// before it trims back to half). Inline, not a std::vector: a vector's header and buffer are
// separate heap blocks, and two CPUs' blocks side by side in one cache line made every
// Allocate/Free on one CPU evict the other's (128 KiB chunks at 2 threads ran slower than at 1).
class SlotStack {
 public:
  bool empty() const { return n_ == 0; }
  std::size_t size() const { return n_; }
  std::byte* back() const { return slots_[n_ - 1]; }
  void push_back(std::byte* p) {
    assert(n_ < kCapacity);
    slots_[n_++] = p;
  }
  void pop_back() { --n_; }
  void clear() { n_ = 0; }
  std::byte* const* begin() const { return slots_; }
  std::byte* const* end() const { return slots_ + n_; }

 private:
  static constexpr std::size_t kCapacity = kMaxCachedSlotsPerClass + 1;
  std::byte* slots_[kCapacity];
  std::uint32_t n_ = 0;
};

// One class's share of a CPU cache, on lines of its own.
struct alignas(64) ClassCache {
  SlotStack slots;
  UseCounters counters;
};

// Everything a CPU's Allocate/Free writes is in this block or the ClassCache array it owns,
// which no other CPU's block shares a line with (both are 64-byte aligned and sized).
struct alignas(64) CpuCache {
  SpinLock mu;
  std::unique_ptr<ClassCache[]> classes;  // per class
};

class CpuCaches {
 public:
  // One cache per CPU the system has online, each with room for `class_count` classes.
  explicit CpuCaches(std::size_t class_count)
      : count_(std::max(1u, std::thread::hardware_concurrency())),
        caches_(std::make_unique<CpuCache[]>(count_)) {
    for (std::size_t i = 0; i < count_; ++i) {
      caches_[i].classes = std::make_unique<ClassCache[]>(class_count);
    }
  }

  std::size_t size() const { return count_; }
  CpuCache& operator[](std::size_t i) { return caches_[i]; }

  // The cache of the CPU this thread runs on. Asked on every call: glibc >= 2.35 reads the CPU
  // number from the thread's rseq area (about 1 ns; older ones use the vDSO), and a stale
  // answer after a migration would put two threads on one cache: the lock and its lines would
  // then bounce between cores. Being wrong costs time, never correctness (each cache has a lock).
  CpuCache& Local() {
    const int cpu = sched_getcpu();
    return caches_[cpu < 0 ? 0 : static_cast<std::size_t>(cpu) % count_];
  }

 private:
  std::size_t count_;
  std::unique_ptr<CpuCache[]> caches_;
};

}  // namespace cxlkv
