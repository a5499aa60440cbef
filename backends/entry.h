// Entry: what the DRAM index keeps per stored chunk, 48 bytes; and the pool entries live in.
//
// The full key and the metadata are not here: they sit in a 256-byte header beside the chunk
// in its tier (backends/chunk_header.h), so the index costs the same for a 20-byte key as for
// a 150-byte one and stays within its 64-byte-per-chunk budget.
//
// Entries are named by a 32-bit EntryId (4 bits of shard, 28 of slot in that shard's pool), so
// the eviction lists link entries with 4-byte ids instead of 8-byte pointers.
//
// Thread-safety: fields marked "shard" are guarded by the mutex of the entry's index shard,
// fields marked "tier" by the mutex of the tier the entry is in (see the lock order at the top
// of backends/store_impl.h). EntryPool::Allocate/Free need the shard mutex; EntryPool::at may
// be called without any lock for an id that was handed out (blocks never move or go away).
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>

#include "backends/key.h"

namespace cxlkv::internal {

using EntryId = std::uint32_t;
inline constexpr EntryId kNoEntry = 0xFFFFFFFF;
inline constexpr int kShardBits = 4;
inline constexpr std::uint32_t kShards = 1u << kShardBits;
inline constexpr int kLocalBits = 32 - kShardBits;
inline constexpr std::uint32_t kLocalMask = (1u << kLocalBits) - 1;
inline constexpr std::uint32_t kNoLocal = kLocalMask;  // never a valid slot

inline EntryId MakeEntryId(std::uint32_t shard, std::uint32_t local) {
  return (shard << kLocalBits) | local;
}
inline std::uint32_t ShardOfId(EntryId id) { return id >> kLocalBits; }
inline std::uint32_t LocalOfId(EntryId id) { return id & kLocalMask; }

struct Entry {
  static constexpr std::uint8_t kNotListed = 0xFF;

  KeyHash hash;                  // shard (set when the entry is created)
  // shard: where the chunk's tier keeps it, in that tier's own terms (backends/tier_backend.h):
  // a memory tier's data and header slots, the log's record location. Only the tier reads it.
  std::uint64_t locator = 0;
  std::uint32_t size = 0;        // shard: chunk bytes
  // shard: the TTL deadline in whole seconds of the store's clock, 0 for none; kept here for
  // every tier, so an expiry check never reads the chunk's header.
  std::uint32_t deadline_s = 0;
  EntryId prev = kNoEntry;       // tier: eviction list links
  EntryId next = kNoEntry;       // tier; also the pool's free-list link while the entry is free
  // Leases, readers mid-copy and a move in progress each hold one. Written under the shard
  // mutex; an evictor also reads it without one, as a hint it rechecks.
  std::atomic<std::uint16_t> pins{0};
  std::uint16_t class_id = 0;    // shard: the data slot's size class (tiers with slots only)
  std::uint8_t tier = 0;         // shard
  // All shard: reads since the chunk entered this tier (saturating at 63); whether it is out of
  // the index, to be freed when the last pin ends; and whether its bytes still need checking
  // against their checksum (recovered from a durable pool, not yet read). One byte: the
  // budget is tight.
  std::uint8_t hits : 6 = 0;
  std::uint8_t removed : 1 = 0;
  std::uint8_t unverified : 1 = 0;
  std::uint8_t freq = 0;         // tier: the eviction policy's counter
  std::uint8_t queue = kNotListed;  // tier: which of the policy's lists holds it, or none

};
static_assert(sizeof(Entry) == 48, "the index budget is 64 bytes per chunk, tables included");
static_assert(offsetof(Entry, hash) == 0 && sizeof(KeyHash) == 16,
              "HashIndex::PrefetchEntry relies on the hash never straddling two lines");

// Entries of one shard, in blocks that double in size (256, 512, ... entries) so a small store
// holds little and a large one needs no reallocation: an entry never moves. Raw block memory is
// constructed one entry at a time on first use, so untouched pages are never faulted in.
class EntryPool {
 public:
  EntryPool() = default;
  ~EntryPool() {
    for (auto& block : blocks_) {
      Entry* b = block.load(std::memory_order_relaxed);
      if (b != nullptr) ::operator delete(b, std::align_val_t{64});
    }
  }
  EntryPool(const EntryPool&) = delete;
  EntryPool& operator=(const EntryPool&) = delete;

  // A fresh (value-initialised) entry's slot, or kNoLocal when the pool is exhausted (2^28
  // entries) or a block cannot be allocated. Caller holds the shard mutex.
  std::uint32_t Allocate() {
    std::uint32_t local = free_head_;
    if (local != kNoLocal) {
      free_head_ = at(local).next;
      ++live_;
      new (&at(local)) Entry();
      return local;
    }
    if (next_unused_ >= kCapacity) return kNoLocal;
    local = next_unused_;
    const auto [block, offset] = Locate(local);
    if (offset == 0) {
      void* mem = ::operator new(BlockEntries(block) * sizeof(Entry), std::align_val_t{64},
                                 std::nothrow);
      if (mem == nullptr) return kNoLocal;
      blocks_[block].store(static_cast<Entry*>(mem), std::memory_order_release);
    }
    ++next_unused_;
    ++live_;
    new (&at(local)) Entry();
    return local;
  }

  // Caller holds the shard mutex; the entry is unreachable (out of the table and every list).
  void Free(std::uint32_t local) {
    at(local).next = free_head_;
    free_head_ = local;
    --live_;
  }

  Entry& at(std::uint32_t local) const {
    const auto [block, offset] = Locate(local);
    return blocks_[block].load(std::memory_order_acquire)[offset];
  }

  std::size_t live() const { return live_; }  // caller holds the shard mutex
  // DRAM in entries ever handed out (live or on the free list); caller holds the shard mutex.
  std::size_t touched_bytes() const { return std::size_t{next_unused_} * sizeof(Entry); }

 private:
  static constexpr int kFirstBlockBits = 8;
  static constexpr int kBlocks = kLocalBits - kFirstBlockBits;
  static constexpr std::uint32_t kFirst = 1u << kFirstBlockBits;
  static constexpr std::uint32_t kCapacity = (1u << kLocalBits) - kFirst - 1;

  static std::size_t BlockEntries(int block) { return std::size_t{kFirst} << block; }
  // Block b holds slots [2^(b+8) - 256, 2^(b+9) - 256).
  static std::pair<int, std::uint32_t> Locate(std::uint32_t local) {
    const std::uint32_t x = local + kFirst;
    const int block = static_cast<int>(std::bit_width(x)) - 1 - kFirstBlockBits;
    return {block, x - (kFirst << block)};
  }

  std::atomic<Entry*> blocks_[kBlocks] = {};
  std::uint32_t next_unused_ = 0;
  std::uint32_t free_head_ = kNoLocal;
  std::size_t live_ = 0;
};

// Resolves any EntryId to its entry, for code that walks lists across shards.
class EntryTable {
 public:
  EntryPool& pool(std::uint32_t shard) { return pools_[shard]; }
  Entry& at(EntryId id) const { return pools_[ShardOfId(id)].at(LocalOfId(id)); }

 private:
  EntryPool pools_[kShards];
};

}  // namespace cxlkv::internal
