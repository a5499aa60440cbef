// The chunk index: entries (one per stored chunk) in hash-sharded maps.
//
// An entry lives on the heap, so leases and evictors can hold a pointer to it across lock
// releases; it is deleted only when it is out of the map, out of its tier's list and unpinned.
//
// Thread-safety: each Shard's mutex guards its map and, for the entries in it (or removed from
// it but still pinned), the fields marked "shard" below. Fields marked "tier" are guarded by the
// mutex of the tier the entry is in. See the lock order at the top of store.cc.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <string_view>
#include <unordered_map>

#include "backends/key.h"
#include "cxlkv/slab_allocator.h"
#include "cxlkv/store.h"

namespace cxlkv::internal {

// 64 bytes, followed in the same heap block by the key bytes and then the metadata bytes: one
// allocation per chunk. Sizes are 32-bit because no slot exceeds 16 slabs of at most 32 MiB.
struct Entry {
  KeyHash hash;                      // immutable
  Entry* prev = nullptr;             // tier: recency list, towards the most recent
  Entry* next = nullptr;             // tier: towards the least recent
  std::byte* data = nullptr;         // shard: the slot holding the bytes (data, sizes, class)
  std::uint32_t size = 0;            // shard
  std::uint32_t capacity = 0;        // shard
  std::uint32_t class_id = 0;        // shard
  // Written under the shard mutex; also read without it as an evictor's hint (rechecked).
  // A demotion in progress holds one pin, so a chunk being copied is never picked twice.
  std::atomic<std::uint32_t> pins{0};
  std::uint8_t tier = 0;             // shard: index of the tier holding the slot
  std::uint8_t key_len = 0;          // immutable
  std::uint8_t meta_len = 0;         // immutable
  bool removed = false;              // shard: out of the map, freed when the last pin ends
  bool in_list = false;              // tier: linked in tier `tier`'s recency list

  // A new entry holding a copy of key (at most kMaxKeySize bytes) and meta; Destroy frees it.
  static Entry* Create(const KeyHash& hash, std::string_view key, const ChunkMeta& meta) {
    void* mem = ::operator new(sizeof(Entry) + key.size() + meta.size);
    Entry* e = new (mem) Entry();
    e->hash = hash;
    e->key_len = static_cast<std::uint8_t>(key.size());
    e->meta_len = meta.size;
    std::memcpy(e->tail(), key.data(), key.size());
    std::memcpy(e->tail() + key.size(), meta.bytes.data(), meta.size);
    return e;
  }
  static void Destroy(Entry* e) {
    e->~Entry();
    ::operator delete(e);
  }

  Allocation alloc() const { return Allocation{data, size, capacity, class_id}; }
  void set_alloc(const Allocation& a) {
    data = a.data;
    size = static_cast<std::uint32_t>(a.size);
    capacity = static_cast<std::uint32_t>(a.capacity);
    class_id = a.class_id;
  }
  std::string_view key() const { return {reinterpret_cast<const char*>(tail()), key_len}; }
  ChunkMeta meta() const {
    ChunkMeta m;
    std::memcpy(m.bytes.data(), tail() + key_len, meta_len);
    m.size = meta_len;
    return m;
  }
  std::size_t heap_bytes() const { return sizeof(Entry) + key_len + meta_len; }

 private:
  Entry() = default;
  std::byte* tail() { return reinterpret_cast<std::byte*>(this + 1); }
  const std::byte* tail() const { return reinterpret_cast<const std::byte*>(this + 1); }
};
static_assert(sizeof(Entry) == 64, "the index entry is meant to fill one cache line");

struct Shard {
  std::mutex mu;
  std::unordered_map<KeyHash, Entry*, KeyHashHasher> map;  // guarded by mu
};

// Bytes a std::unordered_map node of this map takes: the next pointer and the value pair
// (libstdc++ caches no hash code for a noexcept hasher).
inline constexpr std::size_t kIndexNodeBytes =
    sizeof(void*) + sizeof(std::pair<const KeyHash, Entry*>);

}  // namespace cxlkv::internal
