// Store::Impl, recovery: indexing what each tier recovered at open (a durable pool's chunks, the
// log's records), checking a recovered chunk's bytes on its first read (mapped tiers: an
// unmapped one checks every read itself), and the clean shutdown that lets a durable pool's
// next open skip the header scan.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "backends/store_impl.h"
#include "util/log.h"

namespace cxlkv {

using internal::Entry;
using internal::EntryId;
using internal::TierBackend;

void Store::Impl::RecoverTier(std::size_t t) {
  TierBackend& tier = *tiers[t];
  std::vector<internal::TierChunk> chunks = tier.TakeRecovered();
  std::uint32_t deadline = 0;
  if (ttl.count() != 0) {
    // The old deadlines are of another process's clock: each chunk gets a full TTL from now.
    const auto d = std::chrono::ceil<std::chrono::seconds>(Now() + ttl);
    deadline = static_cast<std::uint32_t>(std::max<std::int64_t>(1, d.count()));
  }
  for (const internal::TierChunk& c : chunks) {
    const std::uint32_t shard = ShardIndexOf(c.hash);
    Shard& s = *shards[shard];
    internal::MutexLock lock(s.mu);
    std::uint32_t local = s.index.Find(c.hash);
    if (local != internal::kNoLocal) {
      Entry& e = entries.at(internal::MakeEntryId(shard, local));
      if (e.tier != t) {
        // A faster tier holds the key: that copy is kept, this one given back.
        tier.Release(c.locator, c.size, c.class_id);
        continue;
      }
      // The same key again in this tier: the later copy (a log's newer record) wins.
      tier.Release(e.locator, e.size, e.class_id);
      tier.used_bytes.fetch_sub(tier.Charge(e.size));
      e.locator = c.locator;
      e.size = c.size;
      e.class_id = c.class_id;
      e.unverified = c.unverified ? 1 : 0;
      tier.used_bytes.fetch_add(tier.Charge(e.size));
      continue;
    }
    local = entries.pool(shard).Allocate();
    if (local == internal::kNoLocal || !s.index.Insert(c.hash, local)) {
      if (local != internal::kNoLocal) entries.pool(shard).Free(local);
      // Out of DRAM for the index: given back (a pool frees it on the media too).
      tier.Release(c.locator, c.size, c.class_id);
      continue;
    }
    Entry& e = entries.at(internal::MakeEntryId(shard, local));
    e.hash = c.hash;
    e.locator = c.locator;
    e.size = c.size;
    e.deadline_s = deadline;
    e.class_id = c.class_id;
    e.tier = static_cast<std::uint8_t>(t);
    e.unverified = c.unverified ? 1 : 0;
    tier.used_bytes.fetch_add(tier.Charge(e.size));
    tier.chunks.fetch_add(1);
    ++tier.recovered;
    internal::MutexLock tier_lock(tier.mu);
    tier.PolicyInsert(internal::MakeEntryId(shard, local), e);
  }
}

Status Store::Impl::VerifyRecovered(const Hit& hit, std::string_view key) {
  TierBackend& tier = *tiers[hit.tier];
  const bool intact = Mapped(hit.tier).Intact(hit.locator, hit.size);
  {
    Shard& s = ShardOf(hit.hash);
    internal::MutexLock lock(s.mu);
    Entry& e = entries.at(hit.id);
    if (intact) {
      e.unverified = 0;
      return Status::Ok();
    }
    if (!e.removed) RemoveLocked(s, hit.id, /*expired=*/false);  // freed when our pin ends
  }
  tier.corrupt_dropped.fetch_add(1);
  Unpin(hit.id);
  return Status::Corruption("chunk for key " + std::string(key) + " in tier " + tier.name() +
                            " failed its checksum after recovery; dropped");
}

bool Store::Impl::VerifyClaimed(EntryId id, std::size_t t) {
  TierBackend& tier = *tiers[t];
  Entry& e = entries.at(id);
  const bool intact = Mapped(t).Intact(e.locator, e.size);
  Shard& s = *shards[internal::ShardOfId(id)];
  internal::MutexLock lock(s.mu);
  if (intact) {
    e.unverified = 0;
    return true;
  }
  tier.corrupt_dropped.fetch_add(1);
  if (!e.removed) {
    s.index.Erase(e.hash, internal::LocalOfId(id));
    e.removed = 1;
  }
  if (e.pins.fetch_sub(1) == 1) FreeEntryLocked(s, id);
  return false;
}

void Store::Impl::ClosePools() {
  for (std::size_t t = 0; t < tiers.size(); ++t) {
    TierBackend& tier = *tiers[t];
    std::vector<internal::TierChunk> chunks;
    if (tier.ListsChunksAtClose()) {
      chunks.reserve(tier.chunks.load());
      for (std::uint32_t shard = 0; shard < internal::kShards; ++shard) {
        Shard& s = *shards[shard];
        internal::MutexLock lock(s.mu);
        s.index.ForEach([&](std::uint32_t local) {
          const Entry& e = entries.at(internal::MakeEntryId(shard, local));
          if (e.tier == t) chunks.push_back({e.hash, e.locator, e.size, e.class_id, false});
        });
      }
    }
    const Status st = tier.Close(chunks);
    if (!st.ok()) {
      internal::LogF("cxlkv store: closing tier %s: %s", tier.name().c_str(),
                     st.ToString().c_str());
    }
  }
}

}  // namespace cxlkv
