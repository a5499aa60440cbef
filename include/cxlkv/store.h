// Store: the tiered store of KV-cache chunks, what a cache engine calls.
//
// A Store holds chunks (opaque byte strings, written once, read many times) under string keys
// across tiers listed fastest first: DRAM, CXL memory (a NUMA node), /dev/dax, a file. Each tier
// is one mapped region carved into slots by a SlabAllocator. A Put lands in the fastest tier
// whose slots can hold the chunk; when that tier is full, its coldest unpinned chunks are
// demoted (copied to the next tier, the index switched, the old slot freed); the last tier
// drops its coldest. In this version demotion runs synchronously inside Put (the caller pays
// for it); background demotion driven by watermarks comes later.
//
// Keys are opaque (LMCache's "vllm@model@...@hash" strings): 1 to 150 bytes. The index holds an
// XXH3-128 hash of each key plus the full key, compared on every lookup, so a hash collision
// never returns another key's chunk.
//
// Thread-safety: every Store member function is thread-safe. A PinnedChunk is a value owned by
// one thread at a time (move it between threads, do not share it); its bytes may be read from
// any thread while it lives. The Store must outlive every PinnedChunk it handed out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/status.h"

namespace cxlkv {

inline constexpr std::size_t kMaxKeySize = 150;

// Opaque per-chunk metadata (format, dtype, shape as the engine encodes them), stored with the
// chunk in DRAM and returned with its bytes.
struct ChunkMeta {
  static constexpr std::size_t kMaxSize = 64;
  std::array<std::byte, kMaxSize> bytes{};
  std::uint8_t size = 0;

  // InvalidArgument when `data` is longer than kMaxSize.
  static Result<ChunkMeta> From(std::span<const std::byte> data);
  std::span<const std::byte> view() const { return {bytes.data(), size}; }
  friend bool operator==(const ChunkMeta& a, const ChunkMeta& b);
};

// How a tier picks the chunks to evict when it is full.
//   "lru":  least recently put or read first (a Get moves a chunk to the front).
//   "fifo": oldest put (or demotion into the tier) first; reads do not reorder.
struct TierOptions {
  std::string name;                       // used in errors and stats; defaults to "tier<i>"
  std::unique_ptr<MemorySource> source;   // where the tier's bytes live; or, when null:
  std::string source_spec;                // a MemorySource::Parse spec: "dram", "file:/p", ...
  std::size_t capacity = 0;               // bytes mapped for the tier; at least one slab
  std::string eviction = "lru";           // "lru" or "fifo"
};

struct StoreOptions {
  std::vector<TierOptions> tiers;          // fastest first; at least one
  // Chunk sizes to give exact slab classes (e.g. a full 256-token chunk): no byte is wasted
  // on chunks of exactly these sizes. Other sizes get geometric classes (<= 25% waste).
  std::vector<std::size_t> chunk_sizes;
  std::size_t slab_size = std::size_t{4} << 20;  // power of two, 64 KiB .. 32 MiB
};

struct TierStats {
  std::string name;
  std::string source;            // the source's spec
  std::size_t capacity = 0;      // bytes mapped
  std::size_t used_bytes = 0;    // slot bytes held by chunks (slot capacity, not chunk size)
  std::size_t chunks = 0;
  std::uint64_t hits = 0;        // Get and Pin calls served from this tier
  std::uint64_t evictions = 0;   // chunks that left this tier to make room (demoted or dropped)
  std::uint64_t demotions = 0;   // of those, chunks copied into the next tier
  std::uint64_t bytes_in = 0;    // chunk bytes written into the tier (puts and demotions)
  std::uint64_t bytes_out = 0;   // chunk bytes read out of the tier (gets and demotions)
};

struct StoreStats {
  std::vector<TierStats> tiers;
  std::uint64_t misses = 0;           // Get and Pin calls that found no chunk
  std::size_t index_entries = 0;
  // DRAM the index spends per chunk, averaged over the live entries: the 64-byte entry with
  // the full key and metadata stored after it, the hash-table node and the bucket share.
  // malloc's own per-allocation headers and rounding are not counted.
  double index_bytes_per_entry = 0;
  std::string ToString() const;
};

class Store;

// A lease on one chunk: while it lives the chunk is not evicted, demoted or freed and data()
// stays valid (a Remove during the lease takes effect for lookups at once; the slot is freed
// when the lease ends). Move-only; an empty (moved-from) lease has data() == nullptr.
class PinnedChunk {
 public:
  PinnedChunk() = default;
  ~PinnedChunk() { Release(); }
  PinnedChunk(PinnedChunk&& other) noexcept;
  PinnedChunk& operator=(PinnedChunk&& other) noexcept;
  PinnedChunk(const PinnedChunk&) = delete;
  PinnedChunk& operator=(const PinnedChunk&) = delete;

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const ChunkMeta& meta() const { return meta_; }
  std::size_t tier() const { return tier_; }  // index into StoreOptions::tiers
  void Release();                              // ends the lease early

 private:
  friend class Store;
  void* store_ = nullptr;  // Store::Impl
  void* entry_ = nullptr;  // the index entry holding the pin
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t tier_ = 0;
  ChunkMeta meta_;
};

class Store {
 public:
  // Maps every tier and carves it into slots (4 KiB aligned). Errors name the tier: an empty
  // tier list, a zero or sub-slab capacity, an unknown source spec or eviction policy, a
  // failed mapping.
  static Result<std::unique_ptr<Store>> Open(StoreOptions options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Stores `bytes` under `key` (write once: when the key is already stored this is a no-op
  // success and the stored bytes are kept). The chunk is visible to Get only once all of its
  // bytes are written. InvalidArgument for a bad key, an empty chunk, or one larger than every
  // tier's largest slot; NoSpace when every tier is full and nothing can be evicted (all
  // pinned); Busy when a different stored key has the same 128-bit hash (not stored).
  Status Put(std::string_view key, std::span<const std::byte> bytes, const ChunkMeta& meta = {});

  // Copies the chunk into dst and returns its size; `meta`, when given, receives its
  // metadata. NotFound when absent; InvalidArgument when dst is smaller than the chunk. A hit
  // makes the chunk most recent in an LRU tier.
  Result<std::size_t> Get(std::string_view key, std::span<std::byte> dst,
                          ChunkMeta* meta = nullptr);

  // A lease on the chunk's bytes in place (zero-copy). NotFound when absent.
  Result<PinnedChunk> Pin(std::string_view key);

  Result<std::size_t> Size(std::string_view key) const;  // NotFound when absent
  bool Contains(std::string_view key) const;             // no recency or stats change

  // Removes the key at once (Contains is false, a new Put may store it again). The slot is
  // freed now, or when the last lease on the chunk ends if it is pinned. NotFound when absent.
  Status Remove(std::string_view key);

  // How many leading keys are stored, stopping at the first absent one.
  std::size_t LongestPrefix(std::span<const std::string_view> keys) const;

  StoreStats Stats() const;

 private:
  friend class PinnedChunk;
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv
