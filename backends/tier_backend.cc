#include "backends/tier_backend.h"

#include <utility>


namespace cxlkv::internal {

void TierBackend::AddStats(StoreStats& stats) {
  TierStats ts;
  ts.name = name_;
  ts.used_bytes = used_bytes.load();
  ts.chunks = chunks.load();
  ts.hits = hits.load();
  ts.evictions = evictions.load();
  ts.demotions = demotions.load();
  ts.sync_evictions = sync_evictions.load();
  ts.promotions = promotions.load();
  ts.expirations = expirations.load();
  ts.bytes_in = bytes_in.load();
  ts.bytes_out = bytes_out.load();
  ts.recovered = recovered;
  ts.corrupt_dropped = corrupt_dropped.load();
  if (policy_ != nullptr) {
    MutexLock lock(mu);
    ts.eviction = policy_->name();
    stats.policy_bytes += policy_->state_bytes();
  }
  Describe(ts, stats);
  stats.tiers.push_back(std::move(ts));
}

void TierBackend::PolicyInsert(EntryId id, Entry& e) {
  if (policy_ == nullptr) return;
  e.queue = 0;
  policy_->Insert(id, e);
}

void TierBackend::PolicyTouch(EntryId id, Entry& e) {
  if (policy_ != nullptr && e.queue != Entry::kNotListed) policy_->Touch(id, e);
}

void TierBackend::PolicyErase(EntryId id, Entry& e, bool evicted) {
  if (policy_ == nullptr || e.queue == Entry::kNotListed) return;
  policy_->Erase(id, e, evicted);
  e.queue = Entry::kNotListed;
}

}  // namespace cxlkv::internal
