// Per-CPU front caches of a SlabAllocator: a few free slots per size class, and the counts of
// what users hold, one set per CPU so that the common Allocate/Free touches one lock and one
// cache line that no other CPU wants.
//
// Thread-safety: a CpuCache's fields are guarded by its own `mu`. CpuCaches::Local() may be
// called from any thread; it picks a cache, it does not lock it.
#pragma once

#include <sched.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "alloc/spin_lock.h"

namespace cxlkv {

// What users hold of one class, counted where the call ran. A slot allocated on one CPU and
// freed on another makes both caches' counts drift (one may go negative); their sum is exact.
struct UseCounters {
  std::int64_t live_slots = 0;
  std::int64_t bytes_requested = 0;
  std::uint64_t allocations = 0;
};

struct alignas(64) CpuCache {
  SpinLock mu;
  std::vector<std::vector<std::byte*>> slots;  // free slots per class, a stack each
  std::vector<UseCounters> counters;           // per class
};

class CpuCaches {
 public:
  // One cache per CPU the system has online, each with room for `class_count` classes.
  explicit CpuCaches(std::size_t class_count)
      : count_(std::max(1u, std::thread::hardware_concurrency())),
        caches_(std::make_unique<CpuCache[]>(count_)) {
    for (std::size_t i = 0; i < count_; ++i) {
      caches_[i].slots.resize(class_count);
      caches_[i].counters.resize(class_count);
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
