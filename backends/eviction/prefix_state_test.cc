// The prefix policies' state is bounded: past max_keys ids a policy forgets the keys nothing
// needs and renumbers the rest (prefix.cc, Compact), and the follow-up hazard drops its oldest
// units (follow_up_hazard.h). Forgetting must not change a decision about anything it keeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "backends/entry.h"
#include "backends/eviction/eviction_policy.h"
#include "backends/eviction/follow_up_hazard.h"

namespace cxlkv::internal {
namespace {

KeyHash HashOf(std::uint32_t key) { return {(std::uint64_t{key} + 1) * 0x9E3779B97F4A7C15ull, key}; }

// One tier of `capacity` chunks driven as the store drives it: a request's chain and stored
// prefix (BeginRequest), reads of the prefix (Touch), puts of the rest in prompt order
// (Admit, then Victim/Erase until there is room, then Insert), and a dropped chunk's stored
// successors removed with it (ChildrenOf).
class Tier {
 public:
  Tier(const char* policy, std::size_t capacity, PrefixStateLimits limits)
      : policy_(MakePrefixPolicy(policy, table_, limits)), capacity_(capacity) {}

  EvictionPolicy& policy() { return *policy_; }
  const std::vector<std::uint32_t>& dropped() const { return dropped_; }
  std::vector<std::uint32_t> Stored() const {
    std::vector<std::uint32_t> keys;
    for (const auto& [key, entry] : stored_) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  void Request(const std::vector<std::uint32_t>& chain, double now_s) {
    std::vector<KeyHash> hashes;
    for (const std::uint32_t k : chain) hashes.push_back(HashOf(k));
    std::size_t prefix = 0;
    while (prefix < chain.size() && stored_.count(chain[prefix]) != 0) ++prefix;
    policy_->BeginRequest(hashes, prefix, now_s);
    for (std::size_t i = 0; i < prefix; ++i) {
      const EntryId id = stored_.at(chain[i]);
      policy_->Touch(id, table_.at(id));
    }
    for (std::size_t i = prefix; i < chain.size(); ++i) {
      if (stored_.count(chain[i]) != 0) continue;
      const bool predecessor_stored = i == 0 || stored_.count(chain[i - 1]) != 0;
      if (!policy_->Admit(hashes[i], 1024, predecessor_stored)) continue;
      while (stored_.size() >= capacity_) {
        const EntryId victim = policy_->Victim();
        ASSERT_NE(victim, kNoEntry);
        Drop(static_cast<std::uint32_t>(table_.at(victim).hash.hi), true);
      }
      const std::uint32_t local = table_.pool(0).Allocate();
      ASSERT_NE(local, kNoLocal);
      const EntryId id = MakeEntryId(0, local);
      Entry& e = table_.at(id);
      e.hash = hashes[i];
      e.size = 1024;
      e.queue = 0;
      policy_->Insert(id, e);
      stored_[chain[i]] = id;
    }
  }

 private:
  void Drop(std::uint32_t key, bool evicted) {
    const EntryId id = stored_.at(key);
    policy_->Erase(id, table_.at(id), evicted);
    stored_.erase(key);
    table_.pool(0).Free(LocalOfId(id));
    dropped_.push_back(key);
    if (!policy_->drops_orphans()) return;
    std::vector<KeyHash> children;
    policy_->ChildrenOf(HashOf(key), &children);
    for (const KeyHash& c : children) {
      const auto child = static_cast<std::uint32_t>(c.hi);
      if (stored_.count(child) != 0) Drop(child, false);
    }
  }

  EntryTable table_;
  std::unique_ptr<EvictionPolicy> policy_;
  std::size_t capacity_;
  std::unordered_map<std::uint32_t, EntryId> stored_;
  std::vector<std::uint32_t> dropped_;
};

// Every request: a 2-chunk shared prefix, then 3 chunks of its own that never come back, so
// what the bounded policy forgets (chunks long evicted) no request asks about again: it must
// evict exactly what the unbounded one does, while its state stays small.
TEST(PrefixStateTest, ForgettingKeysNobodyNeedsChangesNoDecision) {
  for (const char* name : {"prefix-chains", "prefix", "prefix-hazard"}) {
    SCOPED_TRACE(name);
    Tier bounded(name, 24, PrefixStateLimits{64, std::size_t{1} << 21});
    Tier unbounded(name, 24, PrefixStateLimits{});
    std::size_t bounded_peak = 0;
    for (std::uint32_t r = 0; r < 3000; ++r) {
      const std::vector<std::uint32_t> chain = {0, 1, 2 + 3 * r, 3 + 3 * r, 4 + 3 * r};
      bounded.Request(chain, r * 0.5);
      unbounded.Request(chain, r * 0.5);
      if (r >= 100) bounded_peak = std::max(bounded_peak, bounded.policy().state_bytes());
    }
    ASSERT_GT(unbounded.dropped().size(), 8000u);
    EXPECT_EQ(bounded.dropped(), unbounded.dropped());
    EXPECT_EQ(bounded.Stored(), unbounded.Stored());
    // 9,002 keys seen; the bounded policy holds at most a few hundred ids' worth.
    EXPECT_LT(bounded_peak * 10, unbounded.policy().state_bytes())
        << bounded_peak << " vs " << unbounded.policy().state_bytes();
  }
}

// Units past max_units: the oldest half is dropped; a follow-up of a dropped unit is not
// counted, one of a kept unit is.
TEST(PrefixStateTest, HazardUnitsAreBounded) {
  FollowUpHazard h(1, 8);
  std::vector<FollowUpHazard::UnitId> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(h.AddUnit(i, 0));
  EXPECT_LE(h.units(), 8u);
  for (std::size_t i = 1; i < ids.size(); ++i) EXPECT_EQ(ids[i], ids[i - 1] + 1);  // never reused
  h.FollowUp(ids[0], 100.2);  // dropped long ago: ignored
  h.Refresh();
  EXPECT_EQ(h.Hazard(0, 0), 0);
  h.FollowUp(ids.back(), 99.5);  // kept: counted in bucket 0 ([0, 1) s)
  h.Refresh();
  EXPECT_GT(h.Hazard(0, 0), 0);
}

}  // namespace
}  // namespace cxlkv::internal
