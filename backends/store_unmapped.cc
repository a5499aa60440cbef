// Unmapped tiers in the store (the spill log): moves into them by append, reads out of them,
// promotion back to a mapped tier, and the entries of chunks that left them. See store_impl.h
// for the locks and their order, and tier_backend.h for what such a tier does on its own.
//
// An unmapped tier excludes reads of a place from the freeing of that place (the log: its
// segment lock): Read asks EntryCurrent under that exclusion, and Append calls DropLeft under
// it. So a reader either finds its entry gone (NotFound) or reads a place that cannot be freed
// under it; a failed read then means the medium, and the entry is dropped.
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "backends/store_impl.h"
#include "util/format.h"
#include "util/log.h"

namespace cxlkv {

using internal::ChunkHeader;
using internal::ChunkSlots;
using internal::Entry;
using internal::EntryId;
using internal::MappedTier;
using internal::TierBackend;
using internal::UnmappedTier;

void Store::Impl::DropLeft(std::size_t t, std::span<const internal::TierChunk> gone,
                           std::vector<internal::KeyHash>* left_store) {
  TierBackend& tier = *tiers[t];
  for (const internal::TierChunk& c : gone) {
    Shard& s = ShardOf(c.hash);
    internal::MutexLock lock(s.mu);
    const std::uint32_t local = s.index.Find(c.hash);
    if (local == internal::kNoLocal) continue;
    const EntryId id = internal::MakeEntryId(ShardIndexOf(c.hash), local);
    Entry& e = entries.at(id);
    // Only an entry that still names this place: a promoted or re-stored chunk lives on.
    if (e.tier != t || e.locator != c.locator) continue;
    s.index.Erase(e.hash, local);
    e.removed = 1;
    tier.evictions.fetch_add(1);
    if (drop_orphans) left_store->push_back(e.hash);
    if (e.pins.load() == 0) FreeEntryLocked(s, id);
  }
}

void Store::Impl::MoveAppendClaims(std::span<const AppendClaim> claims) {
  // Grouped by destination, in order: one Append per tier.
  std::vector<bool> done(claims.size(), false);
  for (std::size_t first = 0; first < claims.size(); ++first) {
    if (done[first]) continue;
    const std::size_t to = claims[first].to;
    std::vector<ClaimedChunk> moves;
    for (std::size_t i = first; i < claims.size(); ++i) {
      if (done[i] || claims[i].to != to) continue;
      done[i] = true;
      if (std::optional<ClaimedChunk> claimed = ReadClaimed(claims[i].id)) {
        moves.push_back(*claimed);
      }
    }
    MoveClaimedByAppend(to, moves, /*sync=*/false);
  }
}

void Store::Impl::MoveClaimedByAppend(std::size_t to, std::span<const ClaimedChunk> moves,
                                      bool sync) {
  UnmappedTier& dest = *tiers[to]->unmapped();
  std::vector<UnmappedTier::AppendItem> items(moves.size());
  for (std::size_t i = 0; i < moves.size(); ++i) {
    items[i].key = moves[i].header.key_view();
    items[i].bytes = {moves[i].src, moves[i].size};
    items[i].meta = {moves[i].header.meta, moves[i].header.meta_len};
  }
  // Chunks that left the store during the append (dropped demotions, and the chunks of the
  // segments evicted to make room): their orphans go once the tier's exclusion has ended.
  std::vector<internal::KeyHash> left_store;
  // Each item is settled as soon as its outcome is final: switched to its new place, put back,
  // or dropped.
  auto settled = [&](std::size_t i) {
    const ClaimedChunk& move = moves[i];
    const UnmappedTier::AppendItem& item = items[i];
    const EntryId id = move.id;
    Entry& e = entries.at(id);
    Shard& s = *shards[internal::ShardOfId(id)];
    internal::MutexLock lock(s.mu);
    TierBackend& from = *tiers[e.tier];
    if (e.removed) {
      if (item.status.ok()) dest.Release(item.locator, static_cast<std::uint32_t>(move.size), 0);
      if (e.pins.fetch_sub(1) == 1) FreeEntryLocked(s, id);
      return;
    }
    if (!item.status.ok()) {
      // The tier refused it (full of nothing it can drop, or an I/O error): the demotion is a
      // drop.
      if (!item.status.IsNoSpace()) {
        internal::LogF("cxlkv store: moving a chunk to tier %s failed, dropping it: %s",
                       dest.name().c_str(), item.status.ToString().c_str());
      }
      if (drop_orphans) left_store.push_back(e.hash);
      DropFailedDemotionLocked(s, id, sync);
      return;
    }
    if (e.pins.load() != 1) {
      // A reader pinned it during the append: it stays where it was, the new copy is garbage.
      dest.Release(item.locator, static_cast<std::uint32_t>(move.size), 0);
      e.pins.fetch_sub(1);
      internal::MutexLock tier_lock(from.mu);
      from.PolicyInsert(id, e);
      return;
    }
    SwitchLocked(s, id, to, item.locator, 0);
    e.pins.fetch_sub(1);
    from.bytes_out.fetch_add(move.size, std::memory_order_relaxed);
    from.evictions.fetch_add(1);
    from.demotions.fetch_add(1);
    if (sync) from.sync_evictions.fetch_add(1);
  };
  dest.Append(items, settled, [this, to, &left_store](std::span<const internal::TierChunk> gone) {
    DropLeft(to, gone, &left_store);
  });
  for (const internal::KeyHash& h : left_store) DropOrphans(h);
}

bool Store::Impl::EntryCurrent(const Hit& hit) {
  Shard& s = ShardOf(hit.hash);
  internal::MutexLock lock(s.mu);
  const Entry& e = entries.at(hit.id);
  return !e.removed && e.tier == hit.tier && e.locator == hit.locator;
}

void Store::Impl::ReadUnmapped(std::span<UnmappedGet> gets) {
  std::vector<std::array<std::byte, ChunkMeta::kMaxSize>> metas(gets.size());
  std::vector<bool> done(gets.size(), false);
  std::vector<internal::KeyHash> left_store;  // dropped as unreadable: their orphans go last
  // One Read per tier, each in request order.
  for (std::size_t first = 0; first < gets.size(); ++first) {
    if (done[first]) continue;
    const std::size_t t = gets[first].hit->tier;
    std::vector<UnmappedTier::ReadItem> reads;
    std::vector<std::size_t> of_read;
    for (std::size_t i = first; i < gets.size(); ++i) {
      if (done[i] || gets[i].hit->tier != t) continue;
      done[i] = true;
      UnmappedTier::ReadItem r;
      r.locator = gets[i].hit->locator;
      r.key = gets[i].key;
      r.dst = gets[i].dst;
      r.meta_dst = metas[i];
      reads.push_back(r);
      of_read.push_back(i);
    }
    tiers[t]->unmapped()->Read(reads, [&](std::size_t r) {
      return EntryCurrent(*gets[of_read[r]].hit);
    });
    for (std::size_t r = 0; r < reads.size(); ++r) {
      UnmappedGet& get = gets[of_read[r]];
      const Hit& hit = *get.hit;
      const UnmappedTier::ReadItem& read = reads[r];
      get.status = read.status;
      if (read.stale) continue;  // a miss: the entry left the tier first
      if (get.status.ok() && read.size != hit.size) {
        get.status = Status::Corruption(
            "chunk for key " + std::string(get.key) + " in tier " + tiers[t]->name() + " holds " +
            std::to_string(read.size) + " bytes, the index says " + std::to_string(hit.size));
      }
      if (!get.status.ok()) {
        // Corrupted on the medium: the entry is useless. Dropped unless it has moved on (freed
        // at the caller's Unpin).
        Shard& s = ShardOf(hit.hash);
        internal::MutexLock lock(s.mu);
        Entry& e = entries.at(hit.id);
        if (!e.removed && e.tier == hit.tier && e.locator == hit.locator) {
          s.index.Erase(e.hash, internal::LocalOfId(hit.id));
          e.removed = 1;
          if (get.status.IsCorruption()) tiers[t]->corrupt_dropped.fetch_add(1);
          if (drop_orphans) left_store.push_back(e.hash);
        }
        get.status = get.status.WithContext("reading key " + std::string(get.key) +
                                            " from tier " + tiers[t]->name());
        continue;
      }
      get.meta = ChunkMeta();
      get.meta.size = static_cast<std::uint8_t>(std::min(read.meta_size, ChunkMeta::kMaxSize));
      std::memcpy(get.meta.bytes.data(), metas[of_read[r]].data(), get.meta.size);
      if (hit.promote) PromoteFromRead(hit, get.key, get.dst, get.meta, /*evict=*/false);
      FinishRead(hit);
    }
  }
  for (const internal::KeyHash& h : left_store) DropOrphans(h);
}

bool Store::Impl::PromoteFromRead(const Hit& hit, std::string_view key,
                                  std::span<const std::byte> bytes, const ChunkMeta& meta,
                                  bool evict) {
  const std::size_t to = TierFor(hit.size, 0, /*mapped_only=*/true);
  if (to == tiers.size()) return false;
  MappedTier& dest = Mapped(to);
  Result<ChunkSlots> slots = evict ? AllocateIn(to, hit.size, /*sync=*/true)
                                   : dest.Allocate(hit.size);
  if (!slots.ok()) {
    Kick();  // the background thread makes room for the next one
    return false;
  }
  Shard& s = ShardOf(hit.hash);
  ChunkHeader header;
  {
    internal::MutexLock lock(s.mu);
    header.expires_s = entries.at(hit.id).deadline_s;
  }
  header.key_len = static_cast<std::uint8_t>(key.size());
  header.meta_len = meta.size;
  header.data_ref = dest.DataRef(*slots);
  header.size = static_cast<std::uint32_t>(hit.size);
  std::memcpy(header.key, key.data(), key.size());
  std::memcpy(header.meta, meta.bytes.data(), meta.size);
  const std::span<const std::byte> parts[1] = {bytes};
  dest.Write(*slots, bytes.empty() ? std::span<const std::span<const std::byte>>()
                                   : std::span<const std::span<const std::byte>>(parts),
             header);

  internal::MutexLock lock(s.mu);
  Entry& e = entries.at(hit.id);
  // Our pin is the only one, and the entry still names the place we read.
  if (e.removed || e.tier != hit.tier || e.locator != hit.locator || e.pins.load() != 1) {
    dest.FreeSlots(*slots);
    return false;
  }
  TierBackend& from = *tiers[e.tier];
  SwitchLocked(s, hit.id, to, dest.Locator(*slots),
               static_cast<std::uint16_t>(slots->data.class_id));
  from.promotions.fetch_add(1);
  return true;
}

Result<Store::Impl::Hit> Store::Impl::PinUnmapped(const Hit& hit, std::string_view key) {
  const std::size_t to = TierFor(hit.size, 0, /*mapped_only=*/true);
  if (to == tiers.size()) {
    Unpin(hit.id);
    return Status::Unsupported("chunk of " + FormatBytes(hit.size) + " for key " +
                               std::string(key) + " is in tier " + tiers[hit.tier]->name() +
                               " and larger than every memory tier's slots: it can be read " +
                               "with Get but not pinned");
  }
  // Pin of such a chunk is rare (its readers use Get): read it into a staging buffer and bring
  // it up the way a reader's promotion does, making room if need be.
  std::vector<std::byte> staging(hit.size);
  UnmappedGet get{&hit, key, staging, {}, {}};
  Hit read_hit = hit;
  read_hit.promote = false;  // brought up below, evicting if need be
  get.hit = &read_hit;
  ReadUnmapped({&get, 1});
  if (!get.status.ok() || !PromoteFromRead(hit, key, staging, get.meta, /*evict=*/true)) {
    Unpin(hit.id);
    if (!get.status.ok()) return get.status;
    return Status::Busy("key " + std::string(key) + " changed or found no room while being " +
                        "brought back from tier " + tiers[hit.tier]->name() +
                        " to pin it; retry");
  }
  Shard& s = ShardOf(hit.hash);
  internal::MutexLock lock(s.mu);
  Entry& e = entries.at(hit.id);  // still pinned by us, now in mapped tier `to`
  const MappedTier& tier = Mapped(e.tier);
  Hit pinned = hit;
  pinned.data = tier.DataAt(e.locator);
  pinned.tier = e.tier;
  pinned.locator = e.locator;
  pinned.header = tier.HeaderAt(e.locator);
  pinned.promote = false;
  return pinned;
}

}  // namespace cxlkv
