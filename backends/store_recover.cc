// Store::Impl, durable pools: indexing what a pool recovered at open, checking a recovered
// chunk's bytes on its first read, and the clean shutdown that lets the next open skip the
// header scan.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "backends/store_impl.h"
#include "util/log.h"

namespace cxlkv {

using internal::Entry;
using internal::EntryId;
using internal::Tier;

void Store::Impl::RecoverTier(std::size_t t) {
  Tier& tier = *tiers[t];
  std::vector<internal::PoolChunk> chunks = tier.TakeRecovered();
  std::uint32_t deadline = 0;
  if (ttl.count() != 0) {
    // The old deadlines are of another process's clock: each chunk gets a full TTL from now.
    const auto d = std::chrono::ceil<std::chrono::seconds>(Now() + ttl);
    deadline = static_cast<std::uint32_t>(std::max<std::int64_t>(1, d.count()));
  }
  for (const internal::PoolChunk& c : chunks) {
    const std::uint32_t shard = ShardIndexOf(c.hash);
    Shard& s = *shards[shard];
    std::lock_guard lock(s.mu);
    const std::uint32_t header_ref = tier.HeaderRef(
        Allocation{reinterpret_cast<std::byte*>(c.header), internal::ChunkHeader::kSize});
    std::uint32_t local = s.index.Find(c.hash);
    const bool duplicate = local != internal::kNoLocal;  // a faster tier holds the key
    if (!duplicate) local = entries.pool(shard).Allocate();
    if (duplicate || local == internal::kNoLocal || !s.index.Insert(c.hash, local)) {
      if (!duplicate && local != internal::kNoLocal) entries.pool(shard).Free(local);
      // Out of the pool for good: its header is freed on the media too.
      const internal::SlotRef ref{c.data.data, static_cast<std::uint32_t>(c.data.size),
                                  header_ref,
                                  static_cast<std::uint16_t>(c.data.class_id)};
      tier.Free(ref);
      continue;
    }
    c.header->expires_s = deadline;  // outside the header's check: no re-commit needed
    Entry& e = entries.at(internal::MakeEntryId(shard, local));
    e.hash = c.hash;
    e.data = c.data.data;
    e.size = static_cast<std::uint32_t>(c.data.size);
    e.header = header_ref;
    e.class_id = static_cast<std::uint16_t>(c.data.class_id);
    e.tier = static_cast<std::uint8_t>(t);
    e.unverified = 1;
    tier.used_bytes.fetch_add(tier.SlotBytes(e.size));
    tier.chunks.fetch_add(1);
    ++tier.recovered;
    std::lock_guard tier_lock(tier.mu);
    tier.PolicyInsert(internal::MakeEntryId(shard, local), e);
  }
}

Status Store::Impl::VerifyRecovered(const Hit& hit, std::string_view key) {
  Tier& tier = *tiers[hit.tier];
  const bool intact = tier.DataIntact(hit.data, hit.size, *hit.header);
  {
    Shard& s = ShardOf(hit.hash);
    std::lock_guard lock(s.mu);
    Entry& e = entries.at(hit.id);
    if (intact) {
      e.unverified = 0;
      return Status::Ok();
    }
    if (!e.removed) RemoveLocked(hit.id, /*expired=*/false);  // freed when our pin ends
  }
  tier.corrupt_dropped.fetch_add(1);
  Unpin(hit.id);
  return Status::Corruption("chunk for key " + std::string(key) + " in tier " + tier.name() +
                            " failed its checksum after recovery; dropped");
}

bool Store::Impl::VerifyClaimed(EntryId id, std::size_t t) {
  Tier& tier = *tiers[t];
  Entry& e = entries.at(id);
  const bool intact = tier.DataIntact(e.data, e.size, *tier.header(e.header));
  Shard& s = *shards[internal::ShardOfId(id)];
  std::lock_guard lock(s.mu);
  if (intact) {
    e.unverified = 0;
    return true;
  }
  tier.corrupt_dropped.fetch_add(1);
  if (!e.removed) {
    s.index.Erase(e.hash, internal::LocalOfId(id));
    e.removed = 1;
  }
  if (e.pins.fetch_sub(1) == 1) FreeEntryLocked(id);
  return false;
}

void Store::Impl::ClosePools() {
  for (std::size_t t = 0; t < tiers.size(); ++t) {
    Tier& tier = *tiers[t];
    if (tier.pool() == nullptr) continue;
    std::vector<internal::SnapshotRecord> records;
    records.reserve(tier.chunks.load());
    for (std::uint32_t shard = 0; shard < internal::kShards; ++shard) {
      Shard& s = *shards[shard];
      std::lock_guard lock(s.mu);
      s.index.ForEach([&](std::uint32_t local) {
        const Entry& e = entries.at(internal::MakeEntryId(shard, local));
        if (e.tier != t) return;
        internal::SnapshotRecord r;
        r.hash_lo = e.hash.lo;
        r.hash_hi = e.hash.hi;
        r.header_ref = e.header;
        r.data_ref = tier.DataRef(e.data);
        r.size = e.size;
        records.push_back(r);
      });
    }
    const Status st = tier.ClosePool(records);
    if (!st.ok()) {
      internal::LogF("cxlkv store: closing the pool of tier %s: %s", tier.name().c_str(),
                     st.ToString().c_str());
    }
  }
}

}  // namespace cxlkv
