// The spill tier in the store: demotion into the log, reads out of it, promotion back to
// memory, segment eviction and recovery. See store_impl.h for the locks and their order, and
// spill_tier.h for how a spilled chunk is recorded in its index entry.
//
// Segment eviction holds SpillTier::segments alone while the log frees the segment and while it
// drops the entries that still name records of that segment. A reader holds it shared from
// before it checks that its (pinned) entry still names its record until its read is done. So
// a reader either sees its entry dropped (a miss: NotFound) or reads a segment that cannot be
// evicted under it; Corruption then means the medium, not a race. Lock order: segments before
// any shard mutex.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "backends/store_impl.h"
#include "util/format.h"
#include "util/log.h"

namespace cxlkv {

using internal::ChunkHeader;
using internal::ChunkRead;
using internal::ChunkSlots;
using internal::Entry;
using internal::EntryId;
using internal::KeyHash;
using internal::kNoEntry;
using internal::Tier;

namespace {
// Bounds the evict-and-retry loop of one spill move (a batch of appends).
constexpr int kMaxSegmentEvictions = 64;
}  // namespace

bool Store::Impl::EvictSpillSegment() {
  std::unique_lock segments_lock(spill->segments);
  Result<std::vector<internal::SegmentChunk>> gone = spill->log->EvictOldestSegment();
  if (!gone.ok()) return false;
  for (const internal::SegmentChunk& c : *gone) {
    Shard& s = ShardOf(c.key_hash);
    std::lock_guard lock(s.mu);
    const std::uint32_t local = s.index.Find(c.key_hash);
    if (local == internal::kNoLocal) continue;
    const EntryId id = internal::MakeEntryId(ShardIndexOf(c.key_hash), local);
    Entry& e = entries.at(id);
    // Only an entry that still names this record: a promoted or re-stored chunk lives on.
    if (!IsSpilled(e) || e.location != c.location) continue;
    s.index.Erase(e.hash, local);
    e.removed = 1;
    spill->evictions.fetch_add(1);
    if (e.pins.load() == 0) FreeEntryLocked(id);
  }
  return true;
}

void Store::Impl::MoveClaimedToSpillBatch(std::span<const SpillClaim> claims) {
  std::vector<ClaimedChunk> moves;
  moves.reserve(claims.size());
  for (const SpillClaim& c : claims) {
    if (std::optional<ClaimedChunk> claimed = ReadClaimed(c.id)) moves.push_back(*claimed);
  }
  MoveClaimedToSpill(moves, /*sync=*/false);
}

void Store::Impl::MoveClaimedToSpill(std::span<const ClaimedChunk> moves, bool sync) {
  std::vector<iovec> parts(moves.size());
  std::vector<internal::SegmentLog::AppendItem> items(moves.size());
  for (std::size_t i = 0; i < moves.size(); ++i) {
    parts[i] = {const_cast<std::byte*>(moves[i].src), moves[i].size};
    items[i].key = moves[i].header.key_view();
    items[i].parts = std::span(&parts[i], 1);
    items[i].meta = {moves[i].header.meta, moves[i].header.meta_len};
  }
  // Each round's results are settled before a segment is evicted for the next: an appended
  // record must be in the index when its segment goes (EvictSpillSegment drops the entries
  // that name it), never switched to afterwards.
  std::vector<std::size_t> pending(moves.size());
  for (std::size_t i = 0; i < moves.size(); ++i) pending[i] = i;
  for (int attempt = 0; !pending.empty(); ++attempt) {
    std::vector<internal::SegmentLog::AppendItem> round;
    for (std::size_t i : pending) round.push_back(items[i]);
    (void)spill->log->AppendBatch(round);  // each item has its own status
    std::vector<std::size_t> again;
    for (std::size_t r = 0; r < round.size(); ++r) {
      const std::size_t i = pending[r];
      if (round[r].status.IsNoSpace() && attempt + 1 < kMaxSegmentEvictions) {
        again.push_back(i);
        continue;
      }
      FinishMoveToSpill(moves[i],
                        round[r].status.ok() ? Result<std::uint64_t>(round[r].location)
                                             : Result<std::uint64_t>(round[r].status),
                        sync);
    }
    pending.swap(again);
    if (!pending.empty() && !EvictSpillSegment()) {
      for (std::size_t i : pending) {
        FinishMoveToSpill(moves[i],
                          Status::NoSpace("the spill tier is full and has nothing to evict"),
                          sync);
      }
      break;
    }
  }
}

void Store::Impl::FinishMoveToSpill(const ClaimedChunk& move,
                                    const Result<std::uint64_t>& location, bool sync) {
  const EntryId id = move.id;
  const std::size_t size = move.size;
  Entry& e = entries.at(id);
  Shard& s = *shards[internal::ShardOfId(id)];
  std::lock_guard lock(s.mu);
  Tier& from = *tiers[e.tier];
  if (e.removed) {
    if (e.pins.fetch_sub(1) == 1) FreeEntryLocked(id);
    return;  // its record becomes garbage in its segment
  }
  if (!location.ok()) {
    // The log refused it (full of nothing evictable, or an I/O error): the demotion is a drop.
    if (!location.status().IsNoSpace()) {
      internal::LogF("cxlkv store: spilling a chunk failed, dropping it: %s",
                     location.status().ToString().c_str());
    }
    from.evictions.fetch_add(1);
    if (sync) from.sync_evictions.fetch_add(1);
    s.index.Erase(e.hash, internal::LocalOfId(id));
    e.removed = 1;
    if (e.pins.fetch_sub(1) == 1) FreeEntryLocked(id);
    return;
  }
  if (e.pins.load() != 1) {
    // A reader pinned it during the append: it stays in memory, the record is garbage.
    e.pins.fetch_sub(1);
    std::lock_guard tier_lock(from.mu);
    from.PolicyInsert(id, e);
    return;
  }
  const internal::SlotRef old{e.data, e.size, e.header, e.class_id};
  e.location = *location;
  e.header = move.header.expires_s;
  e.class_id = 0;
  e.tier = static_cast<std::uint8_t>(SpillIndex());
  e.hits = 0;
  e.pins.fetch_sub(1);
  spill->used_bytes.fetch_add(size);
  spill->chunks.fetch_add(1);
  spill->bytes_in.fetch_add(size, std::memory_order_relaxed);
  from.Free(old);
  from.used_bytes.fetch_sub(from.SlotBytes(size));
  from.chunks.fetch_sub(1);
  from.bytes_out.fetch_add(size, std::memory_order_relaxed);
  from.evictions.fetch_add(1);
  from.demotions.fetch_add(1);
  if (sync) from.sync_evictions.fetch_add(1);
}

Result<std::size_t> Store::Impl::ReadSpilled(const Hit& hit, std::string_view key,
                                             std::span<std::byte> dst, ChunkMeta* meta) {
  std::array<std::byte, ChunkMeta::kMaxSize> meta_bytes;
  ChunkRead read;
  read.location = hit.location;
  read.key = key;
  read.dst = dst.first(hit.size);
  read.meta_dst = meta_bytes;
  {
    std::shared_lock lock(spill->segments);
    if (!SpilledEntryCurrent(hit)) {
      return Status::NotFound("chunk for key " + std::string(key) +
                              " left the spill tier before it could be read");
    }
    (void)spill->log->ReadBatch(std::span(&read, 1));  // the status is read.status
  }
  if (read.status.ok() && read.size != hit.size) {
    read.status = Status::Corruption("spilled chunk for key " + std::string(key) + " holds " +
                                     std::to_string(read.size) + " bytes, the index says " +
                                     std::to_string(hit.size));
  }
  if (!read.status.ok()) {
    DropSpilledAfterFailedRead(hit, read.status);
    return read.status.WithContext("reading key " + std::string(key) + " from the spill tier");
  }
  if (meta != nullptr) {
    *meta = ChunkMeta();
    meta->size = static_cast<std::uint8_t>(std::min(read.meta_size, ChunkMeta::kMaxSize));
    std::memcpy(meta->bytes.data(), meta_bytes.data(), meta->size);
  }
  return hit.size;
}

bool Store::Impl::SpilledEntryCurrent(const Hit& hit) {
  Shard& s = ShardOf(hit.hash);
  std::lock_guard lock(s.mu);
  const Entry& e = entries.at(hit.id);
  return !e.removed && IsSpilled(e) && e.location == hit.location;
}

void Store::Impl::DropSpilledAfterFailedRead(const Hit& hit, const Status& why) {
  spill->read_errors.fetch_add(1);
  // Corrupted on the medium, or its segment evicted since the lookup: the entry is useless
  // either way. Drop it unless it has moved on.
  Shard& s = ShardOf(hit.hash);
  std::lock_guard lock(s.mu);
  Entry& e = entries.at(hit.id);
  if (!e.removed && IsSpilled(e) && e.location == hit.location) {
    s.index.Erase(e.hash, internal::LocalOfId(hit.id));
    e.removed = 1;  // freed by the caller's Unpin
    if (why.IsCorruption()) spill->corrupt_dropped.fetch_add(1);
  }
}

bool Store::Impl::PromoteSpilled(const Hit& hit, std::string_view key,
                                 std::span<const std::byte> bytes, const ChunkMeta& meta,
                                 bool evict) {
  const std::size_t to = TierFor(hit.size, 0);
  if (to == tiers.size()) return false;
  Tier& dest = *tiers[to];
  Result<ChunkSlots> slots = evict ? AllocateIn(to, hit.size, /*sync=*/true)
                                   : dest.Allocate(hit.size);
  if (!slots.ok()) {
    Kick();  // the background thread makes room for the next one
    return false;
  }
  Shard& s = ShardOf(hit.hash);
  ChunkHeader header;
  {
    std::lock_guard lock(s.mu);
    header.expires_s = entries.at(hit.id).header;
  }
  header.key_len = static_cast<std::uint8_t>(key.size());
  header.meta_len = meta.size;
  header.data_ref = dest.DataRef(slots->data.data);
  header.size = static_cast<std::uint32_t>(hit.size);
  std::memcpy(header.key, key.data(), key.size());
  std::memcpy(header.meta, meta.bytes.data(), meta.size);
  const std::span<const std::byte> parts[1] = {bytes};
  dest.Write(*slots, bytes.empty() ? std::span<const std::span<const std::byte>>()
                                   : std::span<const std::span<const std::byte>>(parts),
             header);

  std::lock_guard lock(s.mu);
  Entry& e = entries.at(hit.id);
  // Our pin is the only one, and the entry still names the record we read.
  if (e.removed || !IsSpilled(e) || e.location != hit.location || e.pins.load() != 1) {
    dest.FreeSlots(*slots);
    return false;
  }
  e.data = slots->data.data;
  e.header = dest.HeaderRef(slots->header);
  e.class_id = static_cast<std::uint16_t>(slots->data.class_id);
  e.tier = static_cast<std::uint8_t>(to);
  e.hits = 0;
  dest.used_bytes.fetch_add(dest.SlotBytes(hit.size));
  dest.chunks.fetch_add(1);
  dest.bytes_in.fetch_add(hit.size, std::memory_order_relaxed);
  {
    std::lock_guard tier_lock(dest.mu);
    dest.PolicyInsert(hit.id, e);
  }
  spill->used_bytes.fetch_sub(hit.size);
  spill->chunks.fetch_sub(1);
  spill->promotions.fetch_add(1);
  return true;
}

Result<Store::Impl::Hit> Store::Impl::PinSpilled(const Hit& hit, std::string_view key) {
  const std::size_t to = TierFor(hit.size, 0);
  if (to == tiers.size()) {
    Unpin(hit.id);
    return Status::Unsupported("chunk of " + FormatBytes(hit.size) + " for key " +
                               std::string(key) + " is spilled and larger than every memory " +
                               "tier's slots: it can be read with Get but not pinned");
  }
  // Pin of a spilled chunk is rare (readers of spilled chunks use Get): read it into a staging
  // buffer and bring it up the way a reader's promotion does, making room if need be.
  std::vector<std::byte> staging(hit.size);
  ChunkMeta meta;
  Result<std::size_t> n = ReadSpilled(hit, key, staging, &meta);
  if (!n.ok() || !PromoteSpilled(hit, key, staging, meta, /*evict=*/true)) {
    Unpin(hit.id);
    if (!n.ok()) return n.status();
    return Status::Busy("spilled key " + std::string(key) +
                        " changed or found no room while being brought back to pin it; retry");
  }
  Shard& s = ShardOf(hit.hash);
  std::lock_guard lock(s.mu);
  Entry& e = entries.at(hit.id);  // still pinned by us, now in memory tier `to`
  Tier& tier = *tiers[e.tier];
  Hit pinned = hit;
  pinned.spilled = false;
  pinned.data = e.data;
  pinned.tier = e.tier;
  pinned.header = tier.header(e.header);
  pinned.promote = false;
  return pinned;
}

void Store::Impl::RecoverSpilled(const internal::SegmentChunk& c) {
  const std::uint32_t shard = ShardIndexOf(c.key_hash);
  Shard& s = *shards[shard];
  std::lock_guard lock(s.mu);
  std::uint32_t local = s.index.Find(c.key_hash);
  if (local != internal::kNoLocal) {
    // The same key again, later in the log: the newer copy wins. A copy a durable memory
    // tier recovered is kept instead (it is the faster one).
    Entry& e = entries.at(internal::MakeEntryId(shard, local));
    if (!IsSpilled(e)) return;
    spill->used_bytes.fetch_sub(e.size);
    e.location = c.location;
    e.size = static_cast<std::uint32_t>(c.size);
    spill->used_bytes.fetch_add(e.size);
    return;
  }
  local = entries.pool(shard).Allocate();
  if (local == internal::kNoLocal || !s.index.Insert(c.key_hash, local)) {
    if (local != internal::kNoLocal) entries.pool(shard).Free(local);
    return;  // out of DRAM for the index: the chunk stays unreachable until its segment goes
  }
  Entry& e = entries.at(internal::MakeEntryId(shard, local));
  e.hash = c.key_hash;
  e.location = c.location;
  e.size = static_cast<std::uint32_t>(c.size);
  e.tier = static_cast<std::uint8_t>(SpillIndex());
  if (ttl.count() != 0) {
    // The log keeps no deadline: a recovered chunk gets a full TTL from now.
    const auto deadline = std::chrono::ceil<std::chrono::seconds>(Now() + ttl);
    e.header = static_cast<std::uint32_t>(std::max<std::int64_t>(1, deadline.count()));
  }
  spill->used_bytes.fetch_add(e.size);
  spill->chunks.fetch_add(1);
}

}  // namespace cxlkv
