// ByteBudget: a cap on bytes that clients make the server hold at once, across its event
// loops: the slots reserved by PUTs still being received, the chunks pinned (and LIST copies
// held) by replies not yet sent. A client that asks for more than is left is refused at once
// (its PUT is read and dropped, its GET answered as a miss) instead of evicting the cache or
// pinning it. A BudgetHold gives its bytes back when it is destroyed, on every path (commit,
// abort, a timed-out or closed connection).
//
// Half of a budget is open to any request; the other half only to a request no larger than
// twice the bytes its connection has already moved in whole transfers (its credit: payloads
// received, chunks sent). Connections that stall from their first request, however many,
// hold at most half, and a client that has been reading and sending keeps the rest.
//
// Thread-safety: ByteBudget's members are thread-safe; a BudgetHold belongs to one thread at a
// time and must not outlive its budget.
#pragma once

#include <atomic>
#include <cstddef>
#include <utility>

namespace cxlkv::serve {

class ByteBudget;

class BudgetHold {
 public:
  BudgetHold() = default;
  ~BudgetHold() { Release(); }
  BudgetHold(BudgetHold&& other) noexcept
      : budget_(std::exchange(other.budget_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  BudgetHold& operator=(BudgetHold&& other) noexcept {
    if (this != &other) {
      Release();
      budget_ = std::exchange(other.budget_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;

  bool held() const { return budget_ != nullptr; }
  std::size_t bytes() const { return bytes_; }
  inline void Release();

 private:
  friend class ByteBudget;
  BudgetHold(ByteBudget* budget, std::size_t bytes) : budget_(budget), bytes_(bytes) {}
  ByteBudget* budget_ = nullptr;
  std::size_t bytes_ = 0;
};

class ByteBudget {
 public:
  explicit ByteBudget(std::size_t cap) : cap_(cap) {}

  // A hold on n bytes when they fit (see above) with what is held already; an empty hold
  // (held() false) when they do not. `credit`: the asking connection's bytes moved so far.
  BudgetHold TryAcquire(std::size_t n, std::size_t credit) {
    std::size_t used = used_.load(std::memory_order_relaxed);
    do {
      if (n > cap_ || used > cap_ - n) return {};
      if (used + n > cap_ / 2 && n / 2 > credit) return {};
    } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
    return BudgetHold(this, n);
  }
  std::size_t used() const { return used_.load(std::memory_order_relaxed); }
  std::size_t cap() const { return cap_; }

 private:
  friend class BudgetHold;
  const std::size_t cap_;
  std::atomic<std::size_t> used_{0};
};

void BudgetHold::Release() {
  if (budget_ == nullptr) return;
  budget_->used_.fetch_sub(bytes_, std::memory_order_relaxed);
  budget_ = nullptr;
  bytes_ = 0;
}

}  // namespace cxlkv::serve
