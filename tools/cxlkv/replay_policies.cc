// The simulator's policies by name: the store's own (replay_store_policy.h), LRU with admission
// at the second request, and the offline bound.
#include <algorithm>
#include <array>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "tools/cxlkv/replay_policy.h"
#include "tools/cxlkv/replay_store_policy.h"
#include "tools/cxlkv/replay_workload.h"

namespace cxlkv::cli {
namespace {

// Stores a chunk only from its second request on (tiered caches such as Dynamo's KVBM admit to
// their SSD tier this way), and orders what it stores with the store's LRU. The filter
// remembers every chunk ever requested: exact, which only helps it.
class AdmitSecondPolicy : public SimPolicy {
 public:
  AdmitSecondPolicy(std::unique_ptr<SimPolicy> lru, std::size_t chunks)
      : lru_(std::move(lru)), seen_(chunks, 0) {}
  bool Admit(const ChunkEvent& e) override {
    if (seen_[e.chunk] != 0) return true;
    seen_[e.chunk] = 1;
    return false;
  }
  void OnHit(const ChunkEvent& e) override { lru_->OnHit(e); }
  void OnInsert(const ChunkEvent& e) override { lru_->OnInsert(e); }
  std::uint32_t Victim() override { return lru_->Victim(); }
  void OnRemove(std::uint32_t chunk, bool evicted) override { lru_->OnRemove(chunk, evicted); }

 private:
  std::unique_ptr<SimPolicy> lru_;
  std::vector<std::uint8_t> seen_;
};

// The offline bound: evict the cached chunk whose next use is farthest, and never store a
// chunk that is not used again. Optimal for equal sizes (Belady's MIN, with bypass); chunks here
// differ only in the partial tail of a prompt.
class BeladyPolicy : public SimPolicy {
 public:
  explicit BeladyPolicy(std::size_t chunks) : next_(chunks, kNeverUsedAgain), cached_(chunks, 0) {}
  void OnHit(const ChunkEvent& e) override { Update(e); }
  void OnPresent(const ChunkEvent& e) override { Update(e); }
  bool Admit(const ChunkEvent& e) override { return e.next_use != kNeverUsedAgain; }
  void OnInsert(const ChunkEvent& e) override {
    cached_[e.chunk] = 1;
    Update(e);
  }
  std::uint32_t Victim() override {
    for (;;) {  // skip stale entries: the chunk was used again or left since
      const auto [next, chunk] = heap_.top();
      if (cached_[chunk] != 0 && next_[chunk] == next) return chunk;
      heap_.pop();
    }
  }
  void OnRemove(std::uint32_t chunk, bool /*evicted*/) override { cached_[chunk] = 0; }
  bool EvictsBeforeStoring() const override { return false; }

 private:
  void Update(const ChunkEvent& e) {
    next_[e.chunk] = e.next_use;
    heap_.emplace(e.next_use, e.chunk);
  }
  std::vector<std::uint64_t> next_;
  std::vector<std::uint8_t> cached_;
  std::priority_queue<std::pair<std::uint64_t, std::uint32_t>> heap_;  // farthest on top
};

constexpr std::array<std::string_view, 9> kNames = {
    "lru", "fifo", "lfu", "s3fifo", "lru-admit2", "prefix-chains", "prefix", "prefix-hazard", "belady"};

}  // namespace

std::span<const std::string_view> SimPolicyNames() { return kNames; }

Result<std::unique_ptr<SimPolicy>> MakeSimPolicy(std::string_view name, std::size_t chunks,
                                                 std::uint64_t capacity_bytes,
                                                 SimEntries& entries) {
  if (std::unique_ptr<SimPolicy> store = MakeStoreSimPolicy(name, entries, capacity_bytes)) {
    return store;
  }
  if (name == "lru-admit2") {
    return std::unique_ptr<SimPolicy>(
        new AdmitSecondPolicy(MakeStoreSimPolicy("lru", entries, capacity_bytes), chunks));
  }
  if (name == "belady") return std::unique_ptr<SimPolicy>(new BeladyPolicy(chunks));
  return Status::InvalidArgument("unknown eviction policy \"" + std::string(name) +
                                 "\" (lru, fifo, lfu, s3fifo, lru-admit2, prefix-chains, prefix, prefix-hazard, belady)");
}

}  // namespace cxlkv::cli
