#include "tools/cxlkv/replay_store_policy.h"

#include <utility>
#include <vector>

#include "backends/eviction/eviction_policy.h"

namespace cxlkv::cli {

Result<std::unique_ptr<SimEntries>> SimEntries::Create(std::size_t chunks) {
  if (chunks >= internal::kLocalMask - 1024) {
    return Status::InvalidArgument("the workload has more chunks than the simulator's index holds");
  }
  std::unique_ptr<SimEntries> entries(new SimEntries());
  entries->table_ = std::make_unique<internal::EntryTable>();
  internal::EntryPool& pool = entries->table_->pool(0);
  for (std::size_t c = 0; c < chunks; ++c) {
    // A fresh pool hands out slots 0, 1, 2, ...: chunk c gets slot c.
    if (pool.Allocate() != c) return Status::NoSpace("the simulator's index: out of memory");
  }
  return entries;
}

void SimEntries::Reset(std::uint32_t chunk, std::uint64_t bytes) {
  internal::Entry& e = at(chunk);
  e.freq = 0;
  e.queue = internal::Entry::kNotListed;
  e.prev = e.next = internal::kNoEntry;
  e.size = static_cast<std::uint32_t>(bytes);
  e.hash = HashOf(chunk);  // S3-FIFO's ghost and the prefix policies know chunks by it
}

namespace {

// Drives a store policy as TierBackend::Policy{Insert,Touch,Erase} do, and its request hooks as
// Store::LongestPrefix, Put and eviction do.
class StorePolicyAdapter : public SimPolicy {
 public:
  StorePolicyAdapter(std::unique_ptr<internal::EvictionPolicy> policy, SimEntries& entries)
      : policy_(std::move(policy)), entries_(entries) {}

  void OnRequestBegin(double time_ms, std::span<const std::uint32_t> chain,
                      std::size_t prefix) override {
    if (!policy_->wants_requests()) return;
    chain_.clear();
    for (const std::uint32_t chunk : chain) chain_.push_back(SimEntries::HashOf(chunk));
    policy_->BeginRequest(chain_, prefix, TraceSeconds(time_ms));
  }
  bool Admit(const ChunkEvent& event) override {
    // The store looks up ChainPredecessor's key; a chunk's predecessor in the chain is the
    // workload's (keys are prefix-chained), so the simulator's own answer is the same.
    if (!policy_->admits_selectively()) return true;
    return policy_->Admit(SimEntries::HashOf(event.chunk), event.bytes, event.predecessor_cached);
  }
  bool DropsOrphans() const override { return policy_->drops_orphans(); }
  void OnHit(const ChunkEvent& event) override {
    policy_->Touch(SimEntries::Id(event.chunk), entries_.at(event.chunk));
  }
  void OnInsert(const ChunkEvent& event) override {
    internal::Entry& e = entries_.at(event.chunk);
    if (event.stored_anew) entries_.Reset(event.chunk, event.bytes);
    e.queue = 0;
    policy_->Insert(SimEntries::Id(event.chunk), e);
  }
  std::uint32_t Victim() override {
    return internal::LocalOfId(policy_->Victim());
  }
  void OnRemove(std::uint32_t chunk, bool evicted) override {
    internal::Entry& e = entries_.at(chunk);
    policy_->Erase(SimEntries::Id(chunk), e, evicted);
    e.queue = internal::Entry::kNotListed;
  }

 private:
  std::unique_ptr<internal::EvictionPolicy> policy_;
  SimEntries& entries_;
  std::vector<internal::KeyHash> chain_;
};

}  // namespace

std::unique_ptr<SimPolicy> MakeStoreSimPolicy(std::string_view name, SimEntries& entries,
                                              std::uint64_t capacity_bytes) {
  Result<std::unique_ptr<internal::EvictionPolicy>> policy =
      internal::EvictionPolicy::Create(name, entries.table(), capacity_bytes);
  if (!policy.ok()) return nullptr;
  return std::make_unique<StorePolicyAdapter>(std::move(policy).value(), entries);
}

}  // namespace cxlkv::cli
