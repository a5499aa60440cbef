// SpinLock: a test-and-test-and-set lock for critical sections of a few dozen instructions,
// where a futex-based mutex costs more than the work it guards (the slab allocator's per-CPU
// slot caches). Waiters spin briefly, then yield the CPU: with 2 cores a preempted holder must
// be allowed to run.
//
// Thread-safety: that is its purpose. Meets the Lockable requirements (std::lock_guard works).
#pragma once

#include <atomic>
#include <thread>

namespace cxlkv {

class SpinLock {
 public:
  void lock() {
    for (int spins = 0; !try_lock(); ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) {
          std::this_thread::yield();
          spins = 0;
        } else {
          __builtin_ia32_pause();
        }
      }
    }
  }
  bool try_lock() { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace cxlkv
