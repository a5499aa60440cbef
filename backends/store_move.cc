// Making room: eviction, demotion and promotion of chunks between tiers. See store_impl.h for
// the locks and their order.
//
// A move copies the chunk (bytes and header) into slots of the destination tier with no lock
// held, then switches the entry under its shard mutex, then frees the old slots. The mover
// holds one pin for the whole move: no evictor picks the chunk twice, a Remove defers the
// free, and a reader that pins it meanwhile makes the mover give up (the reader may be
// reading the old slot). Moves start in a mapped tier (only their chunks are picked by the
// store's policies or promoted by it); into a mapped tier they copy into its slots, into an
// unmapped one they append (store_unmapped.cc).
#include <algorithm>
#include <cstring>

#include "backends/store_impl.h"
#include "util/format.h"

namespace cxlkv {

using internal::ChunkHeader;
using internal::ChunkSlots;
using internal::Entry;
using internal::EntryId;
using internal::KeyHash;
using internal::kNoEntry;
using internal::MappedTier;
using internal::TierBackend;

std::size_t Store::Impl::TierFor(std::size_t size, std::size_t from, bool mapped_only) const {
  for (std::size_t t = from; t < tiers.size(); ++t) {
    if (mapped_only && tiers[t]->mapped() == nullptr) continue;
    if (tiers[t]->max_chunk() >= size) return t;
  }
  return tiers.size();
}

Result<ChunkSlots> Store::Impl::AllocateIn(std::size_t t, std::size_t size, bool sync) {
  for (int attempt = 0; attempt < kMaxEvictAttempts; ++attempt) {
    Result<ChunkSlots> slots = Mapped(t).Allocate(size);
    if (slots.ok() || !slots.status().IsNoSpace()) return slots;
    if (!EvictOne(t, sync)) break;
  }
  return Status::NoSpace("tier " + tiers[t]->name() + " is full and no chunk in it can be " +
                         "evicted for " + FormatBytes(size));
}

bool Store::Impl::EvictOne(std::size_t t, bool sync, std::vector<AppendClaim>* claims) {
  TierBackend& from = *tiers[t];
  EntryId id = kNoEntry;
  KeyHash hash;
  {
    internal::MutexLock lock(from.mu);
    id = from.PolicyVictim();
    if (id == kNoEntry) return false;
    hash = entries.at(id).hash;
  }
  Shard& s = ShardOf(hash);
  internal::MutexLock lock(s.mu);
  // The id is only trusted once the table shows it still holds this chunk, in this tier.
  if (internal::ShardOfId(id) != ShardIndexOf(hash) ||
      s.index.Find(hash) != internal::LocalOfId(id)) {
    return true;
  }
  Entry& e = entries.at(id);
  // In the table and unpinned means listed in its policy: only a claim (a pin) or a removal
  // (out of the table) takes an entry out of its policy.
  if (e.tier != t || e.pins.load() != 0) return true;

  const bool expired =
      ExpiredLocked(s, e, ttl.count() != 0 ? Now() : std::chrono::nanoseconds{0});
  const std::size_t to = expired ? tiers.size() : TierFor(e.size, t + 1, /*mapped_only=*/false);
  if (to == tiers.size()) {  // no tier below takes it, or it expired
    from.evictions.fetch_add(1);
    if (sync) from.sync_evictions.fetch_add(1);
    s.index.Erase(hash, internal::LocalOfId(id));
    e.removed = 1;
    {
      internal::MutexLock tier_lock(from.mu);
      from.PolicyErase(id, e, /*evicted=*/true);
    }
    if (expired) from.expirations.fetch_add(1);
    FreeEntryLocked(s, id);
    lock.Unlock();
    DropOrphans(hash);
    return true;
  }
  e.pins.fetch_add(1);  // the claim
  {
    internal::MutexLock tier_lock(from.mu);
    from.PolicyErase(id, e, /*evicted=*/true);
  }
  const std::size_t size = e.size;
  lock.Unlock();
  if (claims != nullptr && tiers[to]->mapped() == nullptr) {
    claims->push_back({id, size, to});
    return true;
  }
  MoveClaimed(id, to, /*demotion=*/true, sync);
  return true;
}

std::optional<Store::Impl::ClaimedChunk> Store::Impl::ReadClaimed(EntryId id) {
  Entry& e = entries.at(id);
  ClaimedChunk c{id, 0, {}, nullptr, 0};
  bool unverified;
  {
    Shard& s = *shards[internal::ShardOfId(id)];
    internal::MutexLock lock(s.mu);
    unverified = e.unverified;
    c.tier = e.tier;
    const MappedTier& tier = Mapped(c.tier);
    c.src = tier.DataAt(e.locator);
    c.size = e.size;
    std::memcpy(&c.header, tier.HeaderAt(e.locator), sizeof(c.header));
  }
  if (unverified && !VerifyClaimed(id, c.tier)) return std::nullopt;
  return c;
}

void Store::Impl::MoveClaimed(EntryId id, std::size_t to, bool demotion, bool sync) {
  Entry& e = entries.at(id);
  Shard& s = *shards[internal::ShardOfId(id)];
  std::optional<ClaimedChunk> claimed = ReadClaimed(id);
  if (!claimed) return;  // never copy corrupt bytes onward
  if (tiers[to]->mapped() == nullptr) {
    MoveClaimedByAppend(to, {&*claimed, 1}, sync);
    return;
  }
  ChunkHeader& header = claimed->header;
  const std::byte* src = claimed->src;
  const std::size_t size = claimed->size;
  TierBackend& from = *tiers[claimed->tier];
  MappedTier& dest = Mapped(to);

  Result<ChunkSlots> dst = AllocateIn(to, size, /*sync=*/false);
  if (dst.ok()) {
    header.data_ref = dest.DataRef(*dst);
    const std::span<const std::byte> parts[1] = {{src, size}};
    dest.Write(*dst, parts, header);
  }

  internal::MutexLock lock(s.mu);
  if (e.removed || e.pins.load() != 1 || !dst.ok()) {
    if (dst.ok()) dest.FreeSlots(*dst);
    if (e.removed) {
      if (e.pins.fetch_sub(1) == 1) FreeEntryLocked(s, id);
      return;
    }
    if (!dst.ok() && demotion) {
      // Every tier below is full of pinned chunks: the demotion becomes a drop, and the
      // chunk's orphans go with it.
      const KeyHash hash = e.hash;
      DropFailedDemotionLocked(s, id, sync);
      lock.Unlock();
      DropOrphans(hash);
      return;
    }
    // A reader pinned it during the copy, or no room above: it stays where it was.
    e.pins.fetch_sub(1);
    internal::MutexLock tier_lock(from.mu);
    from.PolicyInsert(id, e);
    return;
  }
  // The switch: from here readers find the chunk in its new slots.
  SwitchLocked(s, id, to, dest.Locator(*dst), static_cast<std::uint16_t>(dst->data.class_id));
  e.pins.fetch_sub(1);
  from.bytes_out.fetch_add(size, std::memory_order_relaxed);
  if (demotion) {
    from.evictions.fetch_add(1);
    from.demotions.fetch_add(1);
    if (sync) from.sync_evictions.fetch_add(1);
  } else {
    from.promotions.fetch_add(1);
  }
}

void Store::Impl::DropFailedDemotionLocked(Shard& s, EntryId id, bool sync) {
  Entry& e = entries.at(id);
  TierBackend& from = *tiers[e.tier];
  from.evictions.fetch_add(1);
  if (sync) from.sync_evictions.fetch_add(1);
  s.index.Erase(e.hash, internal::LocalOfId(id));
  e.removed = 1;
  if (e.pins.fetch_sub(1) == 1) FreeEntryLocked(s, id);
}

void Store::Impl::SwitchLocked([[maybe_unused]] Shard& s, EntryId id, std::size_t to,
                               std::uint64_t locator, std::uint16_t class_id) {
  Entry& e = entries.at(id);
  TierBackend& from = *tiers[e.tier];
  TierBackend& dest = *tiers[to];
  const std::uint64_t old_locator = e.locator;
  const std::uint16_t old_class = e.class_id;
  e.locator = locator;
  e.class_id = class_id;
  e.tier = static_cast<std::uint8_t>(to);
  e.hits = 0;
  dest.used_bytes.fetch_add(dest.Charge(e.size));
  dest.chunks.fetch_add(1);
  dest.bytes_in.fetch_add(e.size, std::memory_order_relaxed);
  {
    internal::MutexLock tier_lock(dest.mu);
    dest.PolicyInsert(id, e);
  }
  from.Release(old_locator, e.size, old_class);
  from.used_bytes.fetch_sub(from.Charge(e.size));
  from.chunks.fetch_sub(1);
}

void Store::Impl::Promote(EntryId id, KeyHash hash) {
  Shard& s = ShardOf(hash);
  std::size_t to;
  {
    internal::MutexLock lock(s.mu);
    if (internal::ShardOfId(id) != ShardIndexOf(hash) ||
        s.index.Find(hash) != internal::LocalOfId(id)) {
      return;  // removed (and maybe reused) since the request
    }
    Entry& e = entries.at(id);
    // Moved to an unmapped tier since: the next reader brings it back.
    if (tiers[e.tier]->mapped() == nullptr) return;
    to = TierFor(e.size, 0, /*mapped_only=*/true);
    // Already at the top it can reach, or pinned (a reader may be in the old slot, or a move
    // is under way).
    if (to >= e.tier || e.pins.load() != 0) return;
    e.pins.fetch_add(1);
    TierBackend& from = *tiers[e.tier];
    internal::MutexLock tier_lock(from.mu);
    from.PolicyErase(id, e, /*evicted=*/false);
  }
  MoveClaimed(id, to, /*demotion=*/false, /*sync=*/false);
}

}  // namespace cxlkv
