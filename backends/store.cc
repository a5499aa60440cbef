// Store: the sharded index over the tiers, and synchronous demotion.
//
// Locks and their order. There are two kinds of mutex:
//   S: Shard::mu, one per index shard (16, picked by the key hash);
//   T: Tier::mu, one per tier (its recency list).
// A thread holds at most one S and at most one T, and takes S before T, never the reverse.
// An evictor that starts from a tier's list therefore copies the candidate's hash under T,
// drops T, then takes S and rechecks that the candidate is still in the map, still in that
// tier and unpinned. The slab allocators have their own locks and call nothing back, so they
// may be called under S. No lock is held while chunk bytes are copied.
//
// Visibility and lifetime. A chunk enters the map only after its bytes are copied, so a Get
// never sees a partial chunk. Readers (Get, Pin) take a pin under S and copy outside it; a
// pinned chunk is never picked for eviction, and a demotion that finds a pin taken during its
// copy gives up (the chunk stays where it was) rather than free a slot being read. Remove takes
// the key out of the map at once; the entry and its slot go when the last pin ends.
#include "cxlkv/store.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include "backends/chunk_index.h"
#include "backends/key.h"
#include "backends/tier.h"
#include "util/format.h"

namespace cxlkv {

using internal::Entry;
using internal::KeyHash;
using internal::Shard;
using internal::Tier;

Result<ChunkMeta> ChunkMeta::From(std::span<const std::byte> data) {
  if (data.size() > kMaxSize) {
    return Status::InvalidArgument("chunk metadata of " + std::to_string(data.size()) +
                                   " bytes is longer than " + std::to_string(kMaxSize));
  }
  ChunkMeta m;
  std::memcpy(m.bytes.data(), data.data(), data.size());
  m.size = static_cast<std::uint8_t>(data.size());
  return m;
}

bool operator==(const ChunkMeta& a, const ChunkMeta& b) {
  return a.size == b.size && std::memcmp(a.bytes.data(), b.bytes.data(), a.size) == 0;
}

std::string StoreStats::ToString() const {
  std::string out;
  for (const TierStats& t : tiers) {
    out += t.name + " (" + t.source + "): " + FormatBytes(t.used_bytes) + " of " +
           FormatBytes(t.capacity) + ", " + std::to_string(t.chunks) + " chunks, hits " +
           std::to_string(t.hits) + ", evictions " + std::to_string(t.evictions) +
           ", demotions " + std::to_string(t.demotions) + ", in " + FormatBytes(t.bytes_in) +
           ", out " + FormatBytes(t.bytes_out) + "\n";
  }
  out += "misses " + std::to_string(misses) + ", index entries " +
         std::to_string(index_entries) + ", " + std::to_string(index_bytes_per_entry) +
         " B of DRAM per entry\n";
  return out;
}

struct Store::Impl {
  static constexpr std::size_t kShards = 16;
  // Bounds the evict-and-retry loop of one allocation, so racing evictors cannot livelock.
  static constexpr int kMaxEvictAttempts = 4096;

  std::vector<std::unique_ptr<Tier>> tiers;
  std::array<Shard, kShards> shards;
  std::atomic<std::uint64_t> misses{0};
  std::atomic<std::size_t> entry_bytes{0};  // heap bytes of live entries (key, meta inline)

  ~Impl() {
    for (Shard& s : shards) {
      for (auto& [hash, e] : s.map) Entry::Destroy(e);
    }
  }

  // The low word picks the hash-table bucket, so the high word picks the shard.
  Shard& ShardOf(const KeyHash& h) { return shards[h.hi % kShards]; }

  // The entry for key under s.mu (held by the caller), or nullptr; a collision is a miss.
  static Entry* Find(Shard& s, const KeyHash& h, std::string_view key) {
    auto it = s.map.find(h);
    if (it == s.map.end() || it->second->key() != key) return nullptr;
    return it->second;
  }

  // Index of the first tier at or after `from` whose slots can hold `size`; tiers.size() if none.
  std::size_t TierFor(std::size_t size, std::size_t from) {
    for (std::size_t t = from; t < tiers.size(); ++t) {
      if (tiers[t]->allocator().max_allocation() >= size) return t;
    }
    return tiers.size();
  }

  void FreeSlot(std::size_t t, const Allocation& a) {
    Status s = tiers[t]->allocator().Free(a);
    if (!s.ok()) {
      // The store handed out this slot itself: a failure means its bookkeeping is broken.
      std::fprintf(stderr, "cxlkv store: freeing a slot of tier %s: %s\n",
                   tiers[t]->name().c_str(), s.ToString().c_str());
      std::abort();
    }
  }

  // Frees an entry no one can reach any more (out of the map and list, unpinned).
  void FreeEntry(Entry* e) {
    Tier& tier = *tiers[e->tier];
    FreeSlot(e->tier, e->alloc());
    tier.used_bytes.fetch_sub(e->capacity);
    tier.chunks.fetch_sub(1);
    entry_bytes.fetch_sub(e->heap_bytes());
    Entry::Destroy(e);
  }

  void Unpin(Entry* e) {
    Shard& s = ShardOf(e->hash);
    bool free_now = false;
    {
      std::lock_guard lock(s.mu);
      free_now = e->pins.fetch_sub(1) == 1 && e->removed;
    }
    if (free_now) FreeEntry(e);
  }

  // A slot of `size` in tier t, evicting tier t's coldest chunks while it is full.
  Result<Allocation> AllocateIn(std::size_t t, std::size_t size) {
    for (int attempt = 0; attempt < kMaxEvictAttempts; ++attempt) {
      Result<Allocation> a = tiers[t]->allocator().Allocate(size);
      if (a.ok() || !a.status().IsNoSpace()) return a;
      if (!EvictOne(t)) break;
    }
    return Status::NoSpace("tier " + tiers[t]->name() + " is full and no chunk in it can be " +
                           "evicted for " + FormatBytes(size));
  }

  // Takes e (pinned by the caller, out of every list) out of the index and frees it.
  // Caller holds lock on s.mu; releases it.
  void Drop(Shard& s, std::unique_lock<std::mutex>& lock, Entry* e) {
    s.map.erase(e->hash);
    e->removed = true;
    tiers[e->tier]->evictions.fetch_add(1);
    const bool free_now = e->pins.fetch_sub(1) == 1;
    lock.unlock();
    if (free_now) FreeEntry(e);
  }

  // Moves tier t's coldest unpinned chunk to the next tier that can hold it, or drops it when
  // there is none or that tier cannot make room. False when tier t holds no unpinned chunk;
  // true when it made progress or lost a race (the caller retries).
  bool EvictOne(std::size_t t) {
    Tier& from = *tiers[t];
    Entry* e = nullptr;
    KeyHash hash;
    {
      std::lock_guard lock(from.mu);
      e = from.ColdestUnpinned();
      if (e == nullptr) return false;
      hash = e->hash;
    }
    Shard& s = ShardOf(hash);
    std::unique_lock lock(s.mu);
    auto it = s.map.find(hash);
    // The pointer is only compared until the map shows it is still live.
    if (it == s.map.end() || it->second != e || e->tier != t || e->pins.load() != 0) {
      return true;
    }
    e->pins.fetch_add(1);  // claims the chunk: no other evictor picks it, Remove defers
    {
      std::lock_guard tier_lock(from.mu);
      from.Unlink(e);
    }
    const std::size_t to = TierFor(e->size, t + 1);
    if (to == tiers.size()) {
      Drop(s, lock, e);
      return true;
    }
    const Allocation src = e->alloc();
    lock.unlock();

    Result<Allocation> dst = AllocateIn(to, src.size);
    if (dst.ok()) {
      tiers[to]->region().CopyAndPersist(dst->data, src.data, src.size);
      from.bytes_out.fetch_add(src.size);
    }

    lock.lock();
    if (e->removed || e->pins.load() != 1) {
      // Removed, or a reader pinned it during the copy: it stays (or goes) as it is.
      if (dst.ok()) FreeSlot(to, *dst);
      const bool free_now = e->pins.fetch_sub(1) == 1 && e->removed;
      if (!e->removed) {
        std::lock_guard tier_lock(from.mu);
        from.PushFront(e);
      }
      lock.unlock();
      if (free_now) FreeEntry(e);
      return true;
    }
    if (!dst.ok()) {
      Drop(s, lock, e);  // every tier below is full of pinned chunks
      return true;
    }
    // The switch: from here readers find the chunk in its new slot.
    e->set_alloc(*dst);
    e->tier = static_cast<std::uint8_t>(to);
    {
      std::lock_guard tier_lock(tiers[to]->mu);
      tiers[to]->PushFront(e);
    }
    e->pins.fetch_sub(1);
    lock.unlock();
    FreeSlot(t, src);
    from.used_bytes.fetch_sub(src.capacity);
    from.chunks.fetch_sub(1);
    from.evictions.fetch_add(1);
    from.demotions.fetch_add(1);
    tiers[to]->used_bytes.fetch_add(dst->capacity);
    tiers[to]->chunks.fetch_add(1);
    tiers[to]->bytes_in.fetch_add(src.size);
    return true;
  }

  // For Get and Pin: validates the key, looks it up and pins it, making it most recent in an
  // LRU tier. NotFound (counted as a miss) when absent.
  Result<Entry*> PinForRead(std::string_view key) {
    CXLKV_RETURN_IF_ERROR(internal::ValidateKey(key));
    const KeyHash h = internal::HashKey(key);
    Shard& s = ShardOf(h);
    std::lock_guard lock(s.mu);
    Entry* e = Find(s, h, key);
    if (e == nullptr) {
      misses.fetch_add(1);
      return Status::NotFound("no chunk for key " + std::string(key));
    }
    e->pins.fetch_add(1);
    Tier& tier = *tiers[e->tier];
    std::lock_guard tier_lock(tier.mu);
    tier.OnHit(e);
    return e;
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(StoreOptions options) {
  if (options.tiers.empty()) return Status::InvalidArgument("store options list no tier");
  if (options.tiers.size() > 255) {
    return Status::InvalidArgument("store options list " + std::to_string(options.tiers.size()) +
                                   " tiers; at most 255");
  }
  auto impl = std::make_unique<Impl>();
  for (std::size_t i = 0; i < options.tiers.size(); ++i) {
    const std::string label = options.tiers[i].name.empty() ? "tier" + std::to_string(i)
                                                            : options.tiers[i].name;
    Result<std::unique_ptr<Tier>> tier = Tier::Open(std::move(options.tiers[i]), i,
                                                    options.chunk_sizes, options.slab_size);
    if (!tier.ok()) return tier.status().WithContext("opening tier " + label);
    impl->tiers.push_back(std::move(tier).value());
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::Put(std::string_view key, std::span<const std::byte> bytes, const ChunkMeta& meta) {
  CXLKV_RETURN_IF_ERROR(internal::ValidateKey(key));
  if (bytes.empty()) return Status::InvalidArgument("empty chunk for key " + std::string(key));
  if (meta.size > ChunkMeta::kMaxSize) {
    return Status::InvalidArgument("chunk metadata size " + std::to_string(meta.size) +
                                   " is above " + std::to_string(ChunkMeta::kMaxSize));
  }
  Impl& im = *impl_;
  const KeyHash h = internal::HashKey(key);
  Shard& s = im.ShardOf(h);
  auto check_stored = [&]() -> std::optional<Status> {
    auto it = s.map.find(h);
    if (it == s.map.end()) return std::nullopt;
    if (it->second->key() == key) return Status::Ok();  // write once
    return Status::Busy("key " + std::string(key) + " has the same 128-bit hash as stored key " +
                        std::string(it->second->key()) + "; not stored");
  };
  {
    std::lock_guard lock(s.mu);
    if (auto st = check_stored()) return *st;
  }

  std::size_t t = im.TierFor(bytes.size(), 0);
  if (t == im.tiers.size()) {
    std::size_t largest = 0;
    for (const auto& tier : im.tiers) largest = std::max(largest, tier->allocator().max_allocation());
    return Status::InvalidArgument("chunk of " + FormatBytes(bytes.size()) +
                                   " is larger than the largest slot of every tier (" +
                                   FormatBytes(largest) + ")");
  }
  Result<Allocation> slot = Status::NoSpace("");
  for (; t < im.tiers.size(); t = im.TierFor(bytes.size(), t + 1)) {
    slot = im.AllocateIn(t, bytes.size());
    if (slot.ok()) break;
    if (!slot.status().IsNoSpace()) return slot.status().WithContext("tier " + im.tiers[t]->name());
  }
  if (!slot.ok()) {
    return Status::NoSpace("every tier is full and holds no unpinned chunk to evict for " +
                           FormatBytes(bytes.size()));
  }
  Tier& tier = *im.tiers[t];
  tier.region().CopyAndPersist(slot->data, bytes.data(), bytes.size());

  Entry* e = Entry::Create(h, key, meta);
  e->set_alloc(*slot);
  e->tier = static_cast<std::uint8_t>(t);
  {
    std::lock_guard lock(s.mu);
    if (auto st = check_stored()) {  // a racing Put of this key (or a colliding one) won
      im.FreeSlot(t, *slot);
      Entry::Destroy(e);
      return *st;
    }
    // Counted before the entry is visible, so a racing Remove never makes them negative.
    tier.used_bytes.fetch_add(slot->capacity);
    tier.chunks.fetch_add(1);
    tier.bytes_in.fetch_add(bytes.size());
    im.entry_bytes.fetch_add(e->heap_bytes());
    s.map.emplace(h, e);
    std::lock_guard tier_lock(tier.mu);
    tier.PushFront(e);
  }
  return Status::Ok();
}

Result<std::size_t> Store::Get(std::string_view key, std::span<std::byte> dst, ChunkMeta* meta) {
  Impl& im = *impl_;
  CXLKV_ASSIGN_OR_RETURN(Entry* e, im.PinForRead(key));
  // Pinned: alloc and tier do not change until Unpin, so they may be read without the lock.
  const Allocation a = e->alloc();
  Tier& tier = *im.tiers[e->tier];
  if (dst.size() < a.size) {
    im.Unpin(e);
    return Status::InvalidArgument("buffer of " + FormatBytes(dst.size()) +
                                   " is smaller than the chunk of " + FormatBytes(a.size) +
                                   " for key " + std::string(key));
  }
  std::memcpy(dst.data(), a.data, a.size);
  if (meta != nullptr) *meta = e->meta();
  tier.hits.fetch_add(1);
  tier.bytes_out.fetch_add(a.size);
  im.Unpin(e);
  return a.size;
}

Result<PinnedChunk> Store::Pin(std::string_view key) {
  Impl& im = *impl_;
  CXLKV_ASSIGN_OR_RETURN(Entry* e, im.PinForRead(key));
  PinnedChunk p;
  p.store_ = &im;
  p.entry_ = e;
  p.data_ = e->data;
  p.size_ = e->size;
  p.tier_ = e->tier;
  p.meta_ = e->meta();
  im.tiers[e->tier]->hits.fetch_add(1);
  return p;
}

Result<std::size_t> Store::Size(std::string_view key) const {
  CXLKV_RETURN_IF_ERROR(internal::ValidateKey(key));
  const KeyHash h = internal::HashKey(key);
  Shard& s = impl_->ShardOf(h);
  std::lock_guard lock(s.mu);
  Entry* e = Impl::Find(s, h, key);
  if (e == nullptr) return Status::NotFound("no chunk for key " + std::string(key));
  return std::size_t{e->size};
}

bool Store::Contains(std::string_view key) const { return Size(key).ok(); }

Status Store::Remove(std::string_view key) {
  CXLKV_RETURN_IF_ERROR(internal::ValidateKey(key));
  Impl& im = *impl_;
  const KeyHash h = internal::HashKey(key);
  Shard& s = im.ShardOf(h);
  Entry* e = nullptr;
  bool free_now = false;
  {
    std::lock_guard lock(s.mu);
    e = Impl::Find(s, h, key);
    if (e == nullptr) return Status::NotFound("no chunk for key " + std::string(key));
    s.map.erase(h);
    e->removed = true;
    free_now = e->pins.load() == 0;
    Tier& tier = *im.tiers[e->tier];
    std::lock_guard tier_lock(tier.mu);
    tier.Unlink(e);
  }
  if (free_now) im.FreeEntry(e);
  return Status::Ok();
}

std::size_t Store::LongestPrefix(std::span<const std::string_view> keys) const {
  std::size_t n = 0;
  while (n < keys.size() && Contains(keys[n])) ++n;
  return n;
}

StoreStats Store::Stats() const {
  Impl& im = *impl_;
  StoreStats st;
  for (const auto& t : im.tiers) {
    TierStats ts;
    ts.name = t->name();
    ts.source = t->source_spec();
    ts.capacity = t->capacity();
    ts.used_bytes = t->used_bytes.load();
    ts.chunks = t->chunks.load();
    ts.hits = t->hits.load();
    ts.evictions = t->evictions.load();
    ts.demotions = t->demotions.load();
    ts.bytes_in = t->bytes_in.load();
    ts.bytes_out = t->bytes_out.load();
    st.tiers.push_back(std::move(ts));
  }
  st.misses = im.misses.load();
  std::size_t buckets = 0;
  for (Shard& s : im.shards) {
    std::lock_guard lock(s.mu);
    st.index_entries += s.map.size();
    buckets += s.map.bucket_count();
  }
  if (st.index_entries > 0) {
    const double n = static_cast<double>(st.index_entries);
    st.index_bytes_per_entry =
        static_cast<double>(internal::kIndexNodeBytes) +
        static_cast<double>(buckets * sizeof(void*)) / n +
        static_cast<double>(im.entry_bytes.load()) / n;
  }
  return st;
}

PinnedChunk::PinnedChunk(PinnedChunk&& other) noexcept { *this = std::move(other); }

PinnedChunk& PinnedChunk::operator=(PinnedChunk&& other) noexcept {
  if (this != &other) {
    Release();
    store_ = std::exchange(other.store_, nullptr);
    entry_ = std::exchange(other.entry_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    tier_ = other.tier_;
    meta_ = other.meta_;
  }
  return *this;
}

void PinnedChunk::Release() {
  if (entry_ == nullptr) return;
  static_cast<Store::Impl*>(store_)->Unpin(static_cast<Entry*>(entry_));
  store_ = entry_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

}  // namespace cxlkv
