// The background thread: promotions asked for by readers, demotion of tiers above their high
// watermark down to their low one, and the TTL sweep. Puts and reads only post requests and
// wake it; Maintain() runs the same pass in the caller's thread.
#include <utility>
#include <vector>

#include "backends/store_impl.h"
#include "util/cpu.h"

namespace cxlkv {

using internal::Entry;
using internal::EntryId;
using internal::KeyHash;

namespace {
// The sweep reads every entry's header, so the thread runs it at most this often.
constexpr std::chrono::seconds kSweepPeriod{1};
// A bound on queued promotions: readers never wait, and a burst beyond it is simply skipped.
constexpr std::size_t kMaxQueuedPromotions = 4096;
}  // namespace

void Store::Impl::StartMaintenance() {
  maintenance_thread = std::thread([this] {
    NameThisThread("cxlkv-maint");
    internal::MutexLock lock(maintenance_mu);
    while (!stopping) {
      // Until kicked, stopping, or a whole interval has passed.
      const auto deadline = std::chrono::steady_clock::now() + maintenance_interval;
      while (!kicked && !stopping && maintenance_cv.WaitUntil(maintenance_mu, deadline)) {
      }
      if (stopping) break;
      kicked = false;
      lock.Unlock();
      RunMaintenancePass(/*sweep=*/false);
      lock.Lock();
    }
  });
}

void Store::Impl::StopMaintenance() {
  {
    internal::MutexLock lock(maintenance_mu);
    stopping = true;
  }
  maintenance_cv.SignalAll();
  if (maintenance_thread.joinable()) maintenance_thread.join();
}

void Store::Impl::Kick() {
  {
    internal::MutexLock lock(maintenance_mu);
    kicked = true;
  }
  maintenance_cv.Signal();
}

void Store::Impl::RequestPromotion(EntryId id, KeyHash hash) {
  {
    internal::MutexLock lock(maintenance_mu);
    if (promotions.size() >= kMaxQueuedPromotions) return;
    promotions.emplace_back(id, hash);
    kicked = true;
  }
  maintenance_cv.Signal();
}

void Store::Impl::RunMaintenancePass(bool sweep) {
  internal::MutexLock pass(pass_mu);
  std::deque<std::pair<EntryId, KeyHash>> todo;
  {
    internal::MutexLock lock(maintenance_mu);
    todo.swap(promotions);
  }
  for (const auto& [id, hash] : todo) Promote(id, hash);

  // Top down, so what a tier demotes is seen by the tier below in the same pass. Chunks bound
  // for an unmapped tier are claimed a batch at a time and appended together (one Append:
  // their writes overlap); their bytes count as gone from the tier while they wait. A tier
  // that makes room on its own has no watermark and is never above it.
  std::vector<AppendClaim> batch;
  for (std::size_t t = 0; t < tiers.size(); ++t) {
    internal::TierBackend& tier = *tiers[t];
    if (tier.used_bytes.load() <= tier.high_bytes()) continue;
    std::size_t claimed_bytes = 0;
    auto flush = [&] {
      if (batch.empty()) return;
      MoveAppendClaims(batch);
      batch.clear();
      claimed_bytes = 0;
    };
    // Bounded: each round evicts one chunk or finds a race; a tier of pinned chunks stops it.
    for (std::size_t rounds = tier.chunks.load() + 16; rounds > 0; --rounds) {
      if (tier.used_bytes.load() <= tier.low_bytes() + claimed_bytes) break;
      const std::size_t before = batch.size();
      if (!EvictOne(t, /*sync=*/false, &batch)) break;
      if (batch.size() > before) claimed_bytes += tier.Charge(batch.back().size);
      if (batch.size() >= internal::UnmappedTier::kAppendBatchChunks ||
          claimed_bytes >= internal::UnmappedTier::kAppendBatchBytes) {
        flush();
      }
    }
    flush();
  }

  if (ttl.count() != 0) {
    const auto now = Now();
    if (sweep || now - last_sweep >= kSweepPeriod) {
      last_sweep = now;
      SweepExpired();
    }
  }
}

void Store::Impl::SweepExpired() {
  const auto now = Now();
  std::vector<std::uint32_t> expired;
  for (std::uint32_t i = 0; i < internal::kShards; ++i) {
    Shard& s = *shards[i];
    internal::MutexLock lock(s.mu);
    expired.clear();
    s.index.ForEach([&](std::uint32_t local) {
      s.mu.AssertHeld();  // run by ForEach, under the lock above
      if (ExpiredLocked(s, entries.pool(i).at(local), now)) expired.push_back(local);
    });
    for (std::uint32_t local : expired) RemoveLocked(s, internal::MakeEntryId(i, local), true);
  }
}

}  // namespace cxlkv
