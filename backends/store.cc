// The public Store calls: Put, Get, Pin, Remove, lookups and stats. See store_impl.h for the
// locks and their order.
#include "cxlkv/store.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "backends/store_impl.h"
#include "backends/tier_factory.h"
#include "util/format.h"

namespace cxlkv {

using internal::ChunkHeader;
using internal::Entry;
using internal::EntryId;
using internal::KeyHash;
using internal::kNoEntry;
using internal::MappedTier;
using internal::TierBackend;

namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t ElapsedNs(Clock::time_point start) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

}  // namespace

Result<ChunkMeta> ChunkMeta::From(std::span<const std::byte> data) {
  if (data.size() > kMaxSize) {
    return Status::InvalidArgument("chunk metadata of " + std::to_string(data.size()) +
                                   " bytes is longer than " + std::to_string(kMaxSize));
  }
  ChunkMeta m;
  if (!data.empty()) std::memcpy(m.bytes.data(), data.data(), data.size());  // data() may be null
  m.size = static_cast<std::uint8_t>(data.size());
  return m;
}

bool operator==(const ChunkMeta& a, const ChunkMeta& b) {
  return a.size == b.size && std::memcmp(a.bytes.data(), b.bytes.data(), a.size) == 0;
}

// --- Impl: lookup and lifetime ---

Store::Impl::~Impl() {
  // Entries still in the table need no freeing: their slots go with the regions, the entries
  // with the pools.
}

EntryId Store::Impl::FindLocked(const Shard& s, const KeyHash& h, std::string_view key) const {
  const std::uint32_t shard = ShardIndexOf(h);
  const std::uint32_t local = s.index.Find(h);
  if (local == internal::kNoLocal) return kNoEntry;
  const EntryId id = internal::MakeEntryId(shard, local);
  const Entry& e = entries.at(id);
  // In an unmapped tier the key is not in memory: its hash decides here, the read checks it.
  const MappedTier* mapped = tiers[e.tier]->mapped();
  if (mapped != nullptr && mapped->HeaderAt(e.locator)->key_view() != key) {
    return kNoEntry;  // same hash, other key
  }
  return id;
}

bool Store::Impl::ExpiredLocked([[maybe_unused]] const Shard& s, const Entry& e,
                                std::chrono::nanoseconds now) const {
  if (ttl.count() == 0) return false;
  return e.deadline_s != 0 && now >= std::chrono::seconds(e.deadline_s);
}

void Store::Impl::FreeEntryLocked([[maybe_unused]] Shard& s, EntryId id) {
  Entry& e = entries.at(id);
  TierBackend& tier = *tiers[e.tier];
  tier.Release(e.locator, e.size, e.class_id);
  tier.used_bytes.fetch_sub(tier.Charge(e.size));
  tier.chunks.fetch_sub(1);
  entries.pool(internal::ShardOfId(id)).Free(internal::LocalOfId(id));
}

void Store::Impl::RemoveLocked(Shard& s, EntryId id, bool expired) {
  Entry& e = entries.at(id);
  s.index.Erase(e.hash, internal::LocalOfId(id));
  e.removed = 1;
  TierBackend& tier = *tiers[e.tier];
  {
    internal::MutexLock tier_lock(tier.mu);
    tier.PolicyErase(id, e, /*evicted=*/false);
  }
  if (expired) tier.expirations.fetch_add(1);
  if (e.pins.load() == 0) FreeEntryLocked(s, id);
}

void Store::Impl::Unpin(EntryId id) {
  Shard& s = *shards[internal::ShardOfId(id)];
  internal::MutexLock lock(s.mu);
  Entry& e = entries.at(id);
  if (e.pins.fetch_sub(1) == 1 && e.removed) FreeEntryLocked(s, id);
}

Result<Store::Impl::Hit> Store::Impl::PinForRead(std::string_view key, bool may_read) {
  CXLKV_ASSIGN_OR_RETURN(Hit hit, PinEntry(key, may_read));
  if (hit.verify) CXLKV_RETURN_IF_ERROR(VerifyRecovered(hit, key));
  return hit;
}

Result<Store::Impl::Hit> Store::Impl::PinEntry(std::string_view key, bool may_read) {
  CXLKV_RETURN_IF_ERROR(internal::ValidateKey(key));
  const KeyHash h = internal::HashKey(key);
  const auto now = ttl.count() != 0 ? Now() : std::chrono::nanoseconds{0};
  Shard& s = ShardOf(h);
  internal::MutexLock lock(s.mu);
  EntryId id = FindLocked(s, h, key);
  if (id != kNoEntry && ExpiredLocked(s, entries.at(id), now)) {
    RemoveLocked(s, id, /*expired=*/true);
    id = kNoEntry;
  }
  if (id == kNoEntry) {
    misses.fetch_add(1, std::memory_order_relaxed);
    return Status::NotFound("no chunk for key " + std::string(key));
  }
  Entry& e = entries.at(id);
  if (!may_read && tiers[e.tier]->mapped() == nullptr) {
    return Status::Busy("chunk " + std::string(key) + " is in tier " + tiers[e.tier]->name() +
                        ", which is read through I/O: pin it where the read may wait");
  }
  e.pins.fetch_add(1);
  if (e.hits < 63) e.hits = static_cast<std::uint8_t>(e.hits + 1);
  TierBackend& tier = *tiers[e.tier];
  Hit hit;
  hit.id = id;
  hit.hash = h;
  hit.size = e.size;
  hit.tier = e.tier;
  hit.locator = e.locator;
  hit.verify = e.unverified;
  const int promote_after = tier.promote_after_hits();
  if (const MappedTier* mapped = tier.mapped()) {
    hit.data = mapped->DataAt(e.locator);
    hit.header = mapped->HeaderAt(e.locator);
    // Asked once: the background thread moves it.
    hit.promote = promote_after != 0 && e.hits == promote_after;
  } else {
    // Every read from then on: the reader brings it up from the bytes it read, when a slot is
    // free (PromoteFromRead), so a read that found none leaves the next one to try.
    hit.promote = promote_after != 0 && e.hits >= promote_after;
  }
  internal::MutexLock tier_lock(tier.mu);
  tier.PolicyTouch(id, e);
  return hit;
}

void Store::Impl::FinishRead(const Hit& hit) {
  TierBackend& tier = *tiers[hit.tier];
  tier.hits.fetch_add(1, std::memory_order_relaxed);
  tier.bytes_out.fetch_add(hit.size, std::memory_order_relaxed);
  // Out of an unmapped tier, the reader promoted it (or not) from the bytes it read.
  if (hit.promote && hit.data != nullptr) RequestPromotion(hit.id, hit.hash);
}

std::optional<Status> Store::Impl::CheckStoredLocked(Shard& s, const KeyHash& h,
                                                     std::string_view key,
                                                     std::chrono::nanoseconds now) {
  const std::uint32_t local = s.index.Find(h);
  if (local == internal::kNoLocal) return std::nullopt;
  const EntryId id = internal::MakeEntryId(ShardIndexOf(h), local);
  const Entry& e = entries.at(id);
  // In an unmapped tier the key is not in memory: its hash stands for it (see FindLocked).
  const MappedTier* mapped = tiers[e.tier]->mapped();
  const std::string_view stored = mapped != nullptr ? mapped->HeaderAt(e.locator)->key_view() : key;
  if (stored != key) {
    return Status::Busy("key " + std::string(key) + " has the same 128-bit hash as stored key " +
                        std::string(stored) + "; not stored");
  }
  if (!ExpiredLocked(s, e, now)) return Status::Ok();
  RemoveLocked(s, id, /*expired=*/true);
  return std::nullopt;
}

Result<Store::Impl::Slot> Store::Impl::ReserveSlot(std::string_view key, std::size_t size,
                                                  const ChunkMeta& meta) {
  CXLKV_RETURN_IF_ERROR(internal::ValidateKey(key));
  if (size == 0) return Status::InvalidArgument("empty chunk for key " + std::string(key));
  if (meta.size > ChunkMeta::kMaxSize) {
    return Status::InvalidArgument("chunk metadata size " + std::to_string(meta.size) +
                                   " is above " + std::to_string(ChunkMeta::kMaxSize));
  }
  if (size > UINT32_MAX) {
    return Status::InvalidArgument("chunk of " + FormatBytes(size) + " is above 4 GiB");
  }
  Slot slot;
  slot.hash = internal::HashKey(key);
  const auto now = ttl.count() != 0 ? Now() : std::chrono::nanoseconds{0};
  {
    Shard& s = ShardOf(slot.hash);
    internal::MutexLock lock(s.mu);
    if (auto st = CheckStoredLocked(s, slot.hash, key, now)) {
      if (!st->ok()) return *st;
      slot.already_stored = true;
      return slot;
    }
  }

  std::size_t t = TierFor(size, 0, /*mapped_only=*/true);
  if (t < tiers.size() && !AdmitTo(t, slot.hash, size)) {
    slot.already_stored = true;  // declined: the Put succeeds, nothing is stored
    return slot;
  }
  if (t == tiers.size()) {
    std::size_t largest = 0;
    for (const auto& tier : tiers) {
      if (tier->mapped() != nullptr) largest = std::max(largest, tier->max_chunk());
    }
    return Status::InvalidArgument("chunk of " + FormatBytes(size) +
                                   " is larger than the largest slot of every tier (" +
                                   FormatBytes(largest) + ")");
  }
  Result<internal::ChunkSlots> slots = Status::NoSpace("");
  for (; t < tiers.size(); t = TierFor(size, t + 1, /*mapped_only=*/true)) {
    slots = AllocateIn(t, size, /*sync=*/true);
    if (slots.ok()) break;
    if (!slots.status().IsNoSpace()) return slots.status().WithContext("tier " + tiers[t]->name());
  }
  if (!slots.ok()) {
    return Status::NoSpace("every tier is full and holds no unpinned chunk to evict for " +
                           FormatBytes(size));
  }
  slot.tier = t;
  slot.slots = *slots;
  ChunkHeader& header = slot.header;
  header.key_len = static_cast<std::uint8_t>(key.size());
  header.meta_len = meta.size;
  header.data_ref = Mapped(t).DataRef(*slots);
  header.size = static_cast<std::uint32_t>(size);
  if (ttl.count() != 0) {
    // Rounded up to a whole second, so a chunk never expires early.
    const auto deadline = std::chrono::ceil<std::chrono::seconds>(now + ttl);
    header.expires_s = static_cast<std::uint32_t>(std::max<std::int64_t>(1, deadline.count()));
  }
  std::memcpy(header.key, key.data(), key.size());
  std::memcpy(header.meta, meta.bytes.data(), meta.size);
  return slot;
}

Status Store::Impl::PublishSlot(const Slot& slot, bool* published) {
  if (published != nullptr) *published = false;
  const std::string_view key = slot.header.key_view();
  const KeyHash& h = slot.hash;
  const std::size_t size = slot.header.size;
  MappedTier& tier = Mapped(slot.tier);
  Shard& s = ShardOf(h);
  const auto now = ttl.count() != 0 ? Now() : std::chrono::nanoseconds{0};
  bool over_high = false;
  {
    internal::MutexLock lock(s.mu);
    std::optional<Status> stored = CheckStoredLocked(s, h, key, now);
    const std::uint32_t local =
        stored ? internal::kNoLocal : entries.pool(ShardIndexOf(h)).Allocate();
    if (stored || local == internal::kNoLocal || !s.index.Insert(h, local)) {
      // A racing Put of this key (or a colliding one) won, or DRAM ran out.
      if (!stored && local != internal::kNoLocal) {
        entries.pool(ShardIndexOf(h)).Free(local);
      }
      tier.FreeSlots(slot.slots);
      if (stored) return *stored;
      return Status::NoSpace("the index cannot grow (out of DRAM or 2^28 entries in a shard)");
    }
    const EntryId id = internal::MakeEntryId(ShardIndexOf(h), local);
    Entry& e = entries.at(id);
    e.hash = h;
    e.locator = tier.Locator(slot.slots);
    e.size = static_cast<std::uint32_t>(size);
    e.deadline_s = slot.header.expires_s;
    e.class_id = static_cast<std::uint16_t>(slot.slots.data.class_id);
    e.tier = static_cast<std::uint8_t>(slot.tier);
    // Counted before the entry is visible, so a racing Remove never makes them negative.
    const std::size_t charge = tier.Charge(size);
    const std::size_t used = tier.used_bytes.fetch_add(charge) + charge;
    over_high = used > tier.high_bytes();
    tier.chunks.fetch_add(1);
    tier.bytes_in.fetch_add(size, std::memory_order_relaxed);
    internal::MutexLock tier_lock(tier.mu);
    tier.PolicyInsert(id, e);
  }
  if (published != nullptr) *published = true;
  if (over_high) Kick();
  return Status::Ok();
}

Status Store::Impl::PutParts(std::string_view key,
                             std::span<const std::span<const std::byte>> parts,
                             const ChunkMeta& meta) {
  const auto start = Clock::now();
  std::size_t size = 0;
  for (auto part : parts) size += part.size();
  CXLKV_ASSIGN_OR_RETURN(Slot slot, ReserveSlot(key, size, meta));
  if (slot.already_stored) return Status::Ok();  // write once
  Mapped(slot.tier).Write(slot.slots, parts, slot.header);
  CXLKV_RETURN_IF_ERROR(PublishSlot(slot));
  put_latency.Record(ElapsedNs(start));
  return Status::Ok();
}

// --- Store ---

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() {
  impl_->StopWorkers();      // completes every submitted operation
  impl_->StopMaintenance();
  impl_->ClosePools();
}

Result<std::unique_ptr<Store>> Store::Open(StoreOptions options) {
  if (options.tiers.empty()) return Status::InvalidArgument("store options list no tier");
  if (options.tiers.size() > 255) {
    return Status::InvalidArgument("store options list " + std::to_string(options.tiers.size()) +
                                   " tiers; at most 255");
  }
  if (options.copy_threads == 0) {
    return Status::InvalidArgument("store option copy_threads must be at least 1");
  }
  if (options.ttl.count() < 0) {
    return Status::InvalidArgument("store option ttl must not be negative");
  }
  if (options.maintenance_interval.count() <= 0) {
    return Status::InvalidArgument("store option maintenance_interval must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->ttl = options.ttl;
  impl->clock = options.clock ? std::move(options.clock) : [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
        Clock::now().time_since_epoch());
  };
  impl->maintenance_interval = options.maintenance_interval;
  CXLKV_ASSIGN_OR_RETURN(impl->tiers, internal::OpenTiers(options, impl->entries));
  for (std::size_t t = 0; t < impl->tiers.size(); ++t) {
    const internal::EvictionPolicy* policy = impl->tiers[t]->policy();
    if (policy != nullptr && policy->wants_requests()) impl->request_tiers.push_back(t);
  }
  impl->drop_orphans =
      impl->tiers[0]->policy() != nullptr && impl->tiers[0]->policy()->drops_orphans();
  // Fastest first: a key a faster tier recovered keeps that copy.
  for (std::size_t t = 0; t < impl->tiers.size(); ++t) impl->RecoverTier(t);
  if (options.prefetch) {
    Result<std::unique_ptr<Prefetcher>> prefetcher = Prefetcher::Create(*options.prefetch);
    if (!prefetcher.ok()) return prefetcher.status().WithContext("starting the prefetcher");
    impl->prefetcher = std::move(prefetcher).value();
  }
  impl->StartWorkers(options.copy_threads, options.copy_thread_cpus);
  if (options.background_thread) impl->StartMaintenance();
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::Put(std::string_view key, std::span<const std::byte> bytes, const ChunkMeta& meta) {
  const std::span<const std::byte> parts[1] = {bytes};
  return impl_->PutParts(key, parts, meta);
}

Status Store::Put(std::string_view key, std::span<const iovec> parts, const ChunkMeta& meta) {
  constexpr std::size_t kInline = 8;
  std::span<const std::byte> inline_parts[kInline];
  std::vector<std::span<const std::byte>> many;
  std::span<std::span<const std::byte>> spans(inline_parts, std::min(parts.size(), kInline));
  if (parts.size() > kInline) {
    many.resize(parts.size());
    spans = many;
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].iov_len != 0 && parts[i].iov_base == nullptr) {
      return Status::InvalidArgument("iovec part " + std::to_string(i) + " has a null base");
    }
    spans[i] = {static_cast<const std::byte*>(parts[i].iov_base), parts[i].iov_len};
  }
  return impl_->PutParts(key, spans, meta);
}

Result<std::size_t> Store::Get(std::string_view key, std::span<std::byte> dst, ChunkMeta* meta) {
  const auto start = Clock::now();
  Impl& im = *impl_;
  CXLKV_ASSIGN_OR_RETURN(Impl::Hit hit, im.PinForRead(key));
  if (dst.size() < hit.size) {
    im.Unpin(hit.id);
    return Status::InvalidArgument("buffer of " + FormatBytes(dst.size()) +
                                   " is smaller than the chunk of " + FormatBytes(hit.size) +
                                   " for key " + std::string(key));
  }
  if (hit.data == nullptr) {  // an unmapped tier: read by I/O
    Impl::UnmappedGet get{&hit, key, dst.first(hit.size), {}, {}};
    im.ReadUnmapped({&get, 1});
    if (get.status.ok() && meta != nullptr) *meta = get.meta;
    im.Unpin(hit.id);
    im.get_latency.Record(ElapsedNs(start));
    if (!get.status.ok()) return get.status;
    return hit.size;
  }
  // Plain memcpy out: the caller reads what it asked for next, so the bytes should land in
  // its cache (streaming stores pay off only on the way into a tier).
  std::memcpy(dst.data(), hit.data, hit.size);
  if (meta != nullptr) *meta = hit.header->chunk_meta();
  im.Unpin(hit.id);
  im.FinishRead(hit);
  im.get_latency.Record(ElapsedNs(start));
  return hit.size;
}

Result<PinnedChunk> Store::Pin(std::string_view key) { return PinChunk(key, true); }

Result<PinnedChunk> Store::PinWithoutIo(std::string_view key) { return PinChunk(key, false); }

Result<PinnedChunk> Store::PinChunk(std::string_view key, bool may_read) {
  Impl& im = *impl_;
  CXLKV_ASSIGN_OR_RETURN(Impl::Hit hit, im.PinForRead(key, may_read));
  if (hit.data == nullptr) {  // a lease needs stable bytes: bring it into a mapped tier
    CXLKV_ASSIGN_OR_RETURN(hit, im.PinUnmapped(hit, key));  // counts the read it made
  }
  PinnedChunk p;
  p.store_ = &im;
  p.entry_ = hit.id;
  p.data_ = hit.data;
  p.size_ = hit.size;
  p.tier_ = hit.tier;
  p.meta_ = hit.header->chunk_meta();
  im.FinishRead(hit);
  return p;
}

Result<std::size_t> Store::Size(std::string_view key) const {
  CXLKV_RETURN_IF_ERROR(internal::ValidateKey(key));
  Impl& im = *impl_;
  const KeyHash h = internal::HashKey(key);
  const auto now = im.ttl.count() != 0 ? im.Now() : std::chrono::nanoseconds{0};
  Impl::Shard& s = im.ShardOf(h);
  internal::MutexLock lock(s.mu);
  // Decided by the 128-bit hash alone: no bytes are returned, so a collision (which Put refuses
  // to create) could only make a lookup say yes where the Get that follows says NotFound; not
  // reading the key from the tier keeps lookups to the index's own memory.
  const std::uint32_t local = s.index.Find(h);
  const EntryId id = local == internal::kNoLocal ? kNoEntry
                                                 : internal::MakeEntryId(Impl::ShardIndexOf(h), local);
  if (id == kNoEntry || im.ExpiredLocked(s, im.entries.at(id), now)) {
    return Status::NotFound("no chunk for key " + std::string(key));
  }
  return std::size_t{im.entries.at(id).size};
}

bool Store::Contains(std::string_view key) const { return Size(key).ok(); }

std::size_t Store::ContainsBatch(std::span<const std::string_view> keys,
                                 std::span<bool> found) const {
  Impl& im = *impl_;
  const std::size_t n = std::min(keys.size(), found.size());
  const auto now = im.ttl.count() != 0 ? im.Now() : std::chrono::nanoseconds{0};
  // Groups of 64: the slot and entry lines of a group (2 to 3 per key) fit in L1 with room to
  // spare, and 64 keys spread over the 16 shards let each shard's lock be taken twice a group
  // rather than twice a key.
  constexpr std::size_t kGroup = 64;
  KeyHash hashes[kGroup];
  bool valid[kGroup];
  std::uint8_t order[kGroup];                      // group positions, sorted by shard
  std::uint8_t shard_begin[internal::kShards + 1];  // order[shard_begin[s], shard_begin[s+1])
  // The keys' bytes may be cold too (a caller's strings, scattered on its heap): a group's are
  // all asked for before the first is hashed. By plain loads of one byte per line, not
  // prefetch instructions: on this project's VM (AMD EPYC) prefetches of lines scattered over
  // ~80 MB of 4 KiB pages overlapped far less than loads did (bench_store's cold-key
  // ContainsBatch ran 1.5-2.5x faster with loads; docs/benchmarks.md). Only the key's own
  // bytes are read. (Asking for the next group's while this one's slots and entries are on
  // their way was slower: it queues behind them.)
  auto fetch_keys = [&](std::size_t from) {
    unsigned char sum = 0;
    for (std::size_t i = from; i < std::min(from + kGroup, n); ++i) {
      const std::string_view key = keys[i];
      const std::size_t size = std::min(key.size(), kMaxKeySize);
      if (size == 0) continue;
      const auto* p = reinterpret_cast<const unsigned char*>(key.data());
      sum ^= p[0];
      for (std::size_t at = 64 - (reinterpret_cast<std::uintptr_t>(p) & 63); at < size; at += 64) {
        sum ^= p[at];
      }
    }
    asm volatile("" : : "r"(sum));  // keeps the loads: their value is not needed
  };
  std::size_t hits = 0;
  for (std::size_t base = 0; base < n; base += kGroup) {
    const std::size_t g = std::min(kGroup, n - base);
    std::uint8_t count[internal::kShards] = {};
    fetch_keys(base);
    for (std::size_t i = 0; i < g; ++i) {
      const std::string_view key = keys[base + i];
      found[base + i] = false;
      valid[i] = internal::ValidateKey(key).ok();
      if (!valid[i]) continue;
      hashes[i] = internal::HashKey(key);
      ++count[Impl::ShardIndexOf(hashes[i])];
      im.ShardOf(hashes[i]).PrefetchSlot(hashes[i]);
    }
    shard_begin[0] = 0;
    for (std::uint32_t s = 0; s < internal::kShards; ++s) {
      shard_begin[s + 1] = static_cast<std::uint8_t>(shard_begin[s] + count[s]);
    }
    std::uint8_t next[internal::kShards];
    std::copy_n(shard_begin, internal::kShards, next);
    for (std::size_t i = 0; i < g; ++i) {
      if (!valid[i]) continue;
      order[next[Impl::ShardIndexOf(hashes[i])]++] = static_cast<std::uint8_t>(i);
    }
    // Second pass: the slots have arrived (or are on their way); ask for the entries.
    for (std::uint32_t s = 0; s < internal::kShards; ++s) {
      if (shard_begin[s] == shard_begin[s + 1]) continue;
      Impl::Shard& shard = *im.shards[s];
      internal::MutexLock lock(shard.mu);
      for (std::size_t k = shard_begin[s]; k < shard_begin[s + 1]; ++k) {
        shard.index.PrefetchEntry(hashes[order[k]]);
      }
    }
    // Third pass: the lookups themselves, exactly as Size does them.
    for (std::uint32_t s = 0; s < internal::kShards; ++s) {
      if (shard_begin[s] == shard_begin[s + 1]) continue;
      Impl::Shard& shard = *im.shards[s];
      internal::MutexLock lock(shard.mu);
      for (std::size_t k = shard_begin[s]; k < shard_begin[s + 1]; ++k) {
        const std::size_t i = order[k];
        const std::uint32_t local = shard.index.Find(hashes[i]);
        if (local == internal::kNoLocal) continue;
        if (im.ExpiredLocked(shard, im.entries.at(internal::MakeEntryId(s, local)), now)) continue;
        found[base + i] = true;
        ++hits;
      }
    }
  }
  return hits;
}

Status Store::Remove(std::string_view key) {
  CXLKV_RETURN_IF_ERROR(internal::ValidateKey(key));
  Impl& im = *impl_;
  const KeyHash h = internal::HashKey(key);
  Impl::Shard& s = im.ShardOf(h);
  internal::MutexLock lock(s.mu);
  const EntryId id = im.FindLocked(s, h, key);
  if (id == kNoEntry) return Status::NotFound("no chunk for key " + std::string(key));
  im.RemoveLocked(s, id, /*expired=*/false);
  return Status::Ok();
}

std::size_t Store::LongestPrefix(std::span<const std::string_view> keys) const {
  // Windows of 16 keys looked up together: a long prefix costs overlapped misses, and a short
  // one wastes at most 15 lookups.
  constexpr std::size_t kWindow = 16;
  bool found[kWindow];
  std::size_t prefix = keys.size();
  for (std::size_t base = 0; base < keys.size() && prefix == keys.size(); base += kWindow) {
    const std::size_t w = std::min(kWindow, keys.size() - base);
    ContainsBatch(keys.subspan(base, w), std::span<bool>(found, w));
    for (std::size_t i = 0; i < w; ++i) {
      if (!found[i]) {
        prefix = base + i;
        break;
      }
    }
  }
  if (!impl_->request_tiers.empty()) impl_->BeginRequest(keys, prefix);
  return prefix;
}

void Store::Impl::BeginRequest(std::span<const std::string_view> keys, std::size_t prefix) {
  std::vector<KeyHash> chain;
  chain.reserve(keys.size());
  for (const std::string_view key : keys) {
    if (!internal::ValidateKey(key).ok()) break;  // the chain ends at a key that cannot be stored
    chain.push_back(internal::HashKey(key));
  }
  const double now_s = std::chrono::duration<double>(Now()).count();
  for (const std::size_t t : request_tiers) {
    internal::MutexLock lock(tiers[t]->mu);
    tiers[t]->policy()->BeginRequest(chain, std::min(prefix, chain.size()), now_s);
  }
}

bool Store::Impl::AdmitTo(std::size_t t, const KeyHash& h, std::size_t size) {
  internal::EvictionPolicy* policy = tiers[t]->policy();
  if (policy == nullptr || !policy->admits_selectively()) return true;
  std::optional<KeyHash> predecessor;
  {
    internal::MutexLock lock(tiers[t]->mu);
    predecessor = policy->ChainPredecessor(h);
  }
  bool predecessor_stored = true;
  if (predecessor) {  // as Contains decides: by the hash (S alone, never with T)
    Shard& s = ShardOf(*predecessor);
    internal::MutexLock lock(s.mu);
    predecessor_stored = s.index.Find(*predecessor) != internal::kNoLocal;
  }
  internal::MutexLock lock(tiers[t]->mu);
  return policy->Admit(h, size, predecessor_stored);
}

void Store::Impl::DropOrphans(const KeyHash& h) {
  if (!drop_orphans) return;
  internal::TierBackend& first = *tiers[0];
  std::vector<KeyHash> stack = {h};
  std::vector<KeyHash> children;
  while (!stack.empty()) {
    const KeyHash parent = stack.back();
    stack.pop_back();
    children.clear();
    {
      internal::MutexLock lock(first.mu);
      first.policy()->ChildrenOf(parent, &children);
    }
    for (const KeyHash& child : children) {
      Shard& s = ShardOf(child);
      internal::MutexLock lock(s.mu);
      const std::uint32_t local = s.index.Find(child);
      if (local == internal::kNoLocal) continue;  // not stored: its successors cannot be either
      RemoveLocked(s, internal::MakeEntryId(ShardIndexOf(child), local), /*expired=*/false);
      stack.push_back(child);
    }
  }
}

void Store::Maintain() { impl_->RunMaintenancePass(/*sweep=*/true); }

void Store::Sync() {
  for (const auto& t : impl_->tiers) t->Sync();
}

StoreStats Store::Stats() const {
  Impl& im = *impl_;
  StoreStats st;
  if (im.prefetcher) st.prefetch = im.prefetcher->Stats();
  for (const auto& t : im.tiers) t->AddStats(st);
  st.misses = im.misses.load();
  std::size_t index_bytes = 0;
  for (std::uint32_t i = 0; i < internal::kShards; ++i) {
    Impl::Shard& shard = *im.shards[i];
    internal::MutexLock lock(shard.mu);
    st.index_entries += shard.index.size();
    index_bytes += shard.index.bytes() + im.entries.pool(i).touched_bytes();
  }
  for (const auto& t : im.tiers) index_bytes += t->bookkeeping_bytes();
  if (st.index_entries > 0) {
    st.index_bytes_per_entry =
        static_cast<double>(index_bytes) / static_cast<double>(st.index_entries);
  }
  st.put_latency = im.put_latency.Summary();
  st.get_latency = im.get_latency.Summary();
  st.batch_get_latency = im.batch_get_latency.Summary();
  return st;
}

// --- PinnedChunk ---

PinnedChunk::PinnedChunk(PinnedChunk&& other) noexcept { *this = std::move(other); }

PinnedChunk& PinnedChunk::operator=(PinnedChunk&& other) noexcept {
  if (this != &other) {
    Release();
    store_ = std::exchange(other.store_, nullptr);
    entry_ = std::exchange(other.entry_, kNoEntry);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    tier_ = other.tier_;
    meta_ = other.meta_;
  }
  return *this;
}

void PinnedChunk::Release() {
  if (store_ == nullptr) return;
  static_cast<Store::Impl*>(store_)->Unpin(entry_);
  store_ = nullptr;
  entry_ = kNoEntry;
  data_ = nullptr;
  size_ = 0;
}

}  // namespace cxlkv
