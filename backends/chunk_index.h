// HashIndex: one shard's map from key hash to entry, an open-addressing table of 4-byte slots.
//
// A slot holds the entry's local id (28 bits) and 4 more bits of its hash as a tag, so most
// probes that are not the key are rejected without touching the entry. Linear probing with
// backward-shift deletion (no tombstones); the table doubles past 80% full, so it costs 5 to
// 10 bytes per chunk. There is at most one entry per hash: the store refuses a Put whose hash
// matches another stored key (see Store::Put, Busy).
//
// Thread-safety: none; the shard mutex guards the table.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "backends/entry.h"
#include "backends/key.h"

namespace cxlkv::internal {

class HashIndex {
 public:
  explicit HashIndex(const EntryPool& pool) : pool_(pool) { Reset(kMinCapacity); }

  // The local id stored under h, or kNoLocal.
  std::uint32_t Find(const KeyHash& h) const {
    const std::uint32_t tag = TagOf(h);
    for (std::size_t i = Home(h);; i = (i + 1) & mask_) {
      const std::uint32_t slot = slots_[i];
      if (slot == kEmpty) return kNoLocal;
      if ((slot & kTagMask) == tag && pool_.at(slot >> kTagBits).hash == h) {
        return slot >> kTagBits;
      }
    }
  }

  // Batched lookups hide the two cache misses of a Find (its slot, then its entry) by asking
  // for the lines of many keys before reading any of them: PrefetchSlot for every key, then
  // PrefetchEntry for every key, then Find. Both are hints and change nothing.
  //
  // PrefetchSlot needs no lock: it reads a copy of the table's address and mask kept in
  // atomics. Racing a Grow it may pair a new mask with the old array and name an address past
  // it, which is harmless: a prefetch never faults and reads nothing into the program.
  void PrefetchSlot(const KeyHash& h) const {
    const std::uint32_t* slots = hint_slots_.load(std::memory_order_relaxed);
    const std::size_t mask = hint_mask_.load(std::memory_order_relaxed);
    __builtin_prefetch(slots + (static_cast<std::size_t>(h.lo) & mask));
  }
  // Caller holds the shard mutex: prefetches the entry of the first slot of h's run whose tag
  // matches (almost always the entry Find will compare).
  void PrefetchEntry(const KeyHash& h) const {
    const std::uint32_t tag = TagOf(h);
    for (std::size_t i = Home(h);; i = (i + 1) & mask_) {
      const std::uint32_t slot = slots_[i];
      if (slot == kEmpty) return;
      if ((slot & kTagMask) == tag) {
        // Only the hash: Find compares nothing else, and at 16-byte alignment within 48-byte
        // entries in 64-byte-aligned blocks it never straddles two lines.
        __builtin_prefetch(&pool_.at(slot >> kTagBits).hash);
        return;
      }
    }
  }

  // Adds local under h (the caller checked Find(h) is kNoLocal). False when the table cannot
  // grow (out of memory); nothing is changed then.
  bool Insert(const KeyHash& h, std::uint32_t local) {
    if ((size_ + 1) * 5 > (mask_ + 1) * 4 && !Grow()) return false;
    Place(h, local);
    ++size_;
    return true;
  }

  // Removes the slot holding local under h. Shifts later slots of the probe run back, so runs
  // stay unbroken without tombstones.
  void Erase(const KeyHash& h, std::uint32_t local) {
    std::size_t i = Home(h);
    while (slots_[i] != kEmpty && (slots_[i] >> kTagBits) != local) i = (i + 1) & mask_;
    if (slots_[i] == kEmpty) return;
    --size_;
    for (std::size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      const std::uint32_t slot = slots_[j];
      if (slot == kEmpty) break;
      const std::size_t home = Home(pool_.at(slot >> kTagBits).hash);
      // Move j into the hole at i unless j's home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slot;
        i = j;
      }
    }
    slots_[i] = kEmpty;
  }

  std::size_t size() const { return size_; }
  std::size_t bytes() const { return (mask_ + 1) * sizeof(std::uint32_t); }

  // Calls fn(local) for every entry (the caller must not modify the table from fn).
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (std::size_t i = 0; i <= mask_; ++i) {
      if (slots_[i] != kEmpty) fn(slots_[i] >> kTagBits);
    }
  }

 private:
  static constexpr std::uint32_t kEmpty = 0xFFFFFFFF;
  static constexpr int kTagBits = 32 - kLocalBits;
  static constexpr std::uint32_t kTagMask = (1u << kTagBits) - 1;
  static constexpr std::size_t kMinCapacity = 64;

  // The low word picks the slot; the shard came from the high word's low bits, so the tag
  // comes from other high bits.
  std::size_t Home(const KeyHash& h) const { return static_cast<std::size_t>(h.lo) & mask_; }
  static std::uint32_t TagOf(const KeyHash& h) {
    return static_cast<std::uint32_t>(h.hi >> 32) & kTagMask;
  }

  void Place(const KeyHash& h, std::uint32_t local) {
    std::size_t i = Home(h);
    while (slots_[i] != kEmpty) i = (i + 1) & mask_;
    slots_[i] = (local << kTagBits) | TagOf(h);
  }

  void Reset(std::size_t capacity) {
    slots_.reset(new std::uint32_t[capacity]);
    std::fill_n(slots_.get(), capacity, kEmpty);
    mask_ = capacity - 1;
    PublishHint();
  }

  void PublishHint() {
    hint_slots_.store(slots_.get(), std::memory_order_relaxed);
    hint_mask_.store(mask_, std::memory_order_relaxed);
  }

  bool Grow() {
    const std::size_t old_capacity = mask_ + 1;
    std::unique_ptr<std::uint32_t[]> old(new (std::nothrow) std::uint32_t[2 * old_capacity]);
    if (old == nullptr) return false;
    old.swap(slots_);  // slots_ is the new, larger array; old holds the entries
    std::fill_n(slots_.get(), 2 * old_capacity, kEmpty);
    mask_ = 2 * old_capacity - 1;
    for (std::size_t i = 0; i < old_capacity; ++i) {
      if (old[i] != kEmpty) Place(pool_.at(old[i] >> kTagBits).hash, old[i] >> kTagBits);
    }
    PublishHint();
    return true;
  }

  const EntryPool& pool_;
  std::unique_ptr<std::uint32_t[]> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  // For PrefetchSlot only: slots_ and mask_ as of the last Reset or Grow.
  std::atomic<const std::uint32_t*> hint_slots_{nullptr};
  std::atomic<std::size_t> hint_mask_{0};
};

}  // namespace cxlkv::internal
