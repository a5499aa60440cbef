// The slab allocator's span bookkeeping: a span (a run of slabs one size class owns, cut into
// equal slots), and the per-class lists that find a span with a free slot, or an empty one
// that may go back to the pool, in O(1).
//
// All of it lives in DRAM, never in the region the slots are in.
//
// Thread-safety: a Span and the lists of a ClassState are guarded by that class's `mu`.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "alloc/spin_lock.h"

namespace cxlkv {

inline constexpr std::uint32_t kNotListed = UINT32_MAX;  // a span absent from a SpanList

// A run of slabs owned by one class, cut into equal slots. Guarded by its class's lock.
//
// Slots are carved lazily: those at and above `carved` have never been handed out, and only
// slots given back go on the free stack. A span that fills once and stays full (a cache at
// capacity) so keeps no per-slot stack at all, where a stack of every slot would cost 4 bytes
// per slot for as long as the span lives.
struct Span {
  std::uint32_t used = 0;                    // slots handed out (users, CPU caches)
  std::uint32_t carved = 0;                  // slots [0, carved) have been handed out once
  std::uint32_t slots = 0;                   // slots in the span
  std::uint32_t partial_index = kNotListed;  // position in its class's partial list
  std::uint32_t empty_index = kNotListed;    // position in its class's empty list
  std::vector<std::uint32_t> free_slots;     // slot indices below carved, given back: a stack

  bool has_free_slot() const { return !free_slots.empty() || carved < slots; }
};

// A list of span heads that can drop any member in O(1): each span remembers its position.
// `index` picks the field of Span that holds it (partial_index or empty_index).
template <std::uint32_t Span::*index>
struct SpanList {
  std::vector<std::uint32_t> heads;
  void Add(std::vector<Span>& spans, std::uint32_t head) {
    spans[head].*index = static_cast<std::uint32_t>(heads.size());
    heads.push_back(head);
  }
  void Remove(std::vector<Span>& spans, std::uint32_t head) {
    const std::uint32_t at = spans[head].*index;
    heads[at] = heads.back();
    spans[heads[at]].*index = at;
    heads.pop_back();
    spans[head].*index = kNotListed;
  }
};

// A size class's spans. The lock is a spin lock: a critical section under it moves a slot, a
// batch of at most 32 or a span (all of a class's empty spans in a rebalance, which is rare),
// and a futex-based mutex handing over between cores costs microseconds where classes with
// no CPU cache (the largest) take it on every call.
struct alignas(64) ClassState {  // a line of its own: other classes' locks are taken by other CPUs
  SpinLock mu;
  std::size_t span_count = 0;
  SpanList<&Span::partial_index> partial;  // spans with a free slot (empty ones included)
  SpanList<&Span::empty_index> empty;      // spans with no slot out: the ones that may move
  std::atomic<std::uint64_t> failures{0};
};

}  // namespace cxlkv
