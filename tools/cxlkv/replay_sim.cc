#include "tools/cxlkv/replay_sim.h"

#include <chrono>
#include <memory>
#include <utility>

#include "tools/cxlkv/replay_policy.h"
#include "tools/cxlkv/replay_store_policy.h"

namespace cxlkv::cli {
namespace {

constexpr std::uint8_t kNotCached = UINT8_MAX;

// The successors of each chunk, in compressed rows: children of c are
// child_ids[child_begin[c] .. child_begin[c + 1]).
struct Successors {
  std::vector<std::size_t> child_begin;
  std::vector<std::uint32_t> child_ids;

  explicit Successors(const Workload& w) : child_begin(w.chunks() + 1, 0) {
    for (const std::uint32_t p : w.predecessor) {
      if (p != kNoChunk) ++child_begin[p + 1];
    }
    for (std::size_t c = 0; c < w.chunks(); ++c) child_begin[c + 1] += child_begin[c];
    child_ids.resize(child_begin.back());
    std::vector<std::size_t> fill(child_begin.begin(), child_begin.end() - 1);
    for (std::uint32_t c = 0; c < w.chunks(); ++c) {
      if (w.predecessor[c] != kNoChunk) child_ids[fill[w.predecessor[c]]++] = c;
    }
  }
};

class Simulator {
 public:
  Simulator(const Workload& w, const SimOptions& options)
      : w_(w), options_(options), successors_(w), where_(w.chunks(), kNotCached),
        demotions_(w.chunks(), 0), upcoming_(w.chunks(), kNeverUsedAgain) {}

  Status Init() {
    if (options_.tiers.empty()) return Status::InvalidArgument("no tier to replay into");
    if (options_.tiers.size() >= kNotCached) return Status::InvalidArgument("too many tiers");
    if (options_.bytes_per_token == 0) return Status::InvalidArgument("0 bytes per token");
    CXLKV_ASSIGN_OR_RETURN(entries_, SimEntries::Create(w_.chunks()));
    for (const SimTier& tier : options_.tiers) {
      Result<std::unique_ptr<SimPolicy>> policy =
          MakeSimPolicy(tier.policy, w_.chunks(), tier.capacity_bytes, *entries_);
      if (!policy.ok()) return policy.status().WithContext("tier " + tier.name);
      policies_.push_back(std::move(policy).value());
    }
    used_.assign(options_.tiers.size(), 0);
    result_.tiers.resize(options_.tiers.size());
    return Status::Ok();
  }

  SimResult Run() {
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t r = 0; r < w_.requests(); ++r) {
      Request(w_.timestamp_ms[r], w_.request_begin[r], w_.request_begin[r + 1]);
    }
    result_.requests = w_.requests();
    result_.prompt_tokens = w_.prompt_tokens;
    result_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::move(result_);
  }

 private:
  std::uint64_t Bytes(std::uint32_t chunk) const {
    return std::uint64_t{w_.tokens[chunk]} * options_.bytes_per_token;
  }

  ChunkEvent Event(std::uint32_t chunk, std::size_t /*access*/) const {
    ChunkEvent e;
    e.chunk = chunk;
    e.bytes = Bytes(chunk);
    e.next_use = upcoming_[chunk];
    const std::uint32_t p = w_.predecessor[chunk];
    e.predecessor = p;
    e.predecessor_cached = p == kNoChunk || where_[p] != kNotCached;
    return e;
  }

  void Request(double time_ms, std::size_t begin, std::size_t end) {
    result_.lookups += end - begin;
    // The cached prefix, judged before anything moves.
    std::size_t prefix = begin;
    while (prefix < end && where_[w_.accesses[prefix]] != kNotCached) ++prefix;
    const std::span<const std::uint32_t> chain(w_.accesses.data() + begin, end - begin);
    for (const std::unique_ptr<SimPolicy>& policy : policies_) {
      policy->OnRequestBegin(time_ms, chain, prefix - begin);
    }
    for (std::size_t a = begin; a < end; ++a) upcoming_[w_.accesses[a]] = w_.next_use[a];

    // Count every hit against the tier that held it when the request came, then move chunks
    // (a promotion's evictions may push out a later chunk of the same prefix: it was read).
    for (std::size_t a = begin; a < prefix; ++a) {
      const std::uint32_t chunk = w_.accesses[a];
      SimTierResult& t = result_.tiers[where_[chunk]];
      ++t.hit_chunks;
      t.hit_tokens += w_.tokens[chunk];
      t.bytes_read += Bytes(chunk);
      ++result_.hit_chunks;
      result_.hit_tokens += w_.tokens[chunk];
    }
    for (std::size_t a = begin; a < prefix; ++a) {
      const std::uint32_t chunk = w_.accesses[a];
      const std::uint8_t tier = where_[chunk];
      if (tier == kNotCached) continue;
      if (tier == 0) {
        policies_[0]->OnHit(Event(chunk, a));
      } else {  // promote: out of the lower tier, into tier 0
        Remove(chunk, /*evicted=*/false);
        if (!Store(chunk, 0, a, /*stored_anew=*/false)) Drop(chunk);
      }
    }
    for (std::size_t a = prefix; a < end; ++a) {
      const std::uint32_t chunk = w_.accesses[a];
      const std::uint8_t tier = where_[chunk];
      if (tier != kNotCached) {
        policies_[tier]->OnPresent(Event(chunk, a));
        continue;
      }
      if (!policies_[0]->Admit(Event(chunk, a)) || !Store(chunk, 0, a, /*stored_anew=*/true)) {
        ++result_.not_admitted;
      }
    }
    for (const std::unique_ptr<SimPolicy>& policy : policies_) policy->OnRequestEnd();
  }

  void Place(std::uint32_t chunk, std::uint8_t tier, std::size_t access, bool stored_anew) {
    where_[chunk] = tier;
    used_[tier] += Bytes(chunk);
    SimTierResult& t = result_.tiers[tier];
    t.bytes_written += Bytes(chunk);
    t.peak_bytes = std::max(t.peak_bytes, used_[tier]);
    ChunkEvent event = Event(chunk, access);
    event.stored_anew = stored_anew;
    policies_[tier]->OnInsert(event);
  }

  void Remove(std::uint32_t chunk, bool evicted) {
    const std::uint8_t tier = where_[chunk];
    policies_[tier]->OnRemove(chunk, evicted);
    used_[tier] -= Bytes(chunk);
    where_[chunk] = kNotCached;
  }

  // Evicts from the tier until `bytes` more fit, as the store does before it stores a chunk
  // (so a policy never sees the incoming chunk as a candidate). False when they never fit.
  bool MakeRoom(std::uint8_t tier, std::uint64_t bytes) {
    const std::uint64_t capacity = options_.tiers[tier].capacity_bytes;
    if (bytes > capacity) return false;
    while (used_[tier] + bytes > capacity) {
      const std::uint32_t victim = policies_[tier]->Victim();
      Remove(victim, /*evicted=*/true);
      ++result_.tiers[tier].evictions;
      const auto below = static_cast<std::uint8_t>(tier + 1);
      if (below < options_.tiers.size() && Demotable(victim, below) &&
          Store(victim, below, SIZE_MAX, /*stored_anew=*/false)) {
        ++result_.tiers[below].demoted_in;
      } else {
        Drop(victim);
      }
    }
    return true;
  }

  // Stores a chunk in a tier, making room before or after as its policy does. False (nothing
  // stored) when the chunk is larger than the tier.
  bool Store(std::uint32_t chunk, std::uint8_t tier, std::size_t access, bool stored_anew) {
    if (Bytes(chunk) > options_.tiers[tier].capacity_bytes) return false;
    if (policies_[tier]->EvictsBeforeStoring()) {
      MakeRoom(tier, Bytes(chunk));
      Place(chunk, tier, access, stored_anew);
    } else {
      Place(chunk, tier, access, stored_anew);
      MakeRoom(tier, 0);
    }
    return true;
  }

  bool Demotable(std::uint32_t chunk, std::uint8_t tier) {
    if (demotions_[chunk] < UINT8_MAX) ++demotions_[chunk];
    if (options_.tiers[tier].admission == DemotionAdmission::kSecond) return demotions_[chunk] >= 2;
    return true;
  }

  // The chunk left the store; with a policy that asks for it, its cached successors go too.
  void Drop(std::uint32_t chunk) {
    if (!policies_[0]->DropsOrphans()) return;
    std::vector<std::uint32_t> stack = {chunk};
    while (!stack.empty()) {
      const std::uint32_t c = stack.back();
      stack.pop_back();
      for (std::size_t i = successors_.child_begin[c]; i < successors_.child_begin[c + 1]; ++i) {
        const std::uint32_t child = successors_.child_ids[i];
        if (where_[child] == kNotCached) continue;
        Remove(child, /*evicted=*/false);
        ++result_.dropped_orphans;
        stack.push_back(child);
      }
    }
  }

  const Workload& w_;
  const SimOptions& options_;
  Successors successors_;
  std::unique_ptr<SimEntries> entries_;  // before policies_: they point into it
  std::vector<std::unique_ptr<SimPolicy>> policies_;
  std::vector<std::uint8_t> where_;      // the tier holding each chunk, or kNotCached
  std::vector<std::uint8_t> demotions_;  // times each chunk was evicted from a tier
  std::vector<std::uint64_t> upcoming_;  // each chunk's next access after the current one
  std::vector<std::uint64_t> used_;      // bytes per tier
  SimResult result_;
};

}  // namespace

Result<SimResult> Simulate(const Workload& workload, const SimOptions& options) {
  Simulator simulator(workload, options);
  CXLKV_RETURN_IF_ERROR(simulator.Init());
  return simulator.Run();
}

double UnboundedHitRatio(const Workload& workload) {
  std::vector<std::uint8_t> seen(workload.chunks(), 0);
  std::uint64_t hit = 0;
  for (std::size_t r = 0; r < workload.requests(); ++r) {
    const std::size_t begin = workload.request_begin[r];
    const std::size_t end = workload.request_begin[r + 1];
    std::size_t a = begin;
    while (a < end && seen[workload.accesses[a]] != 0) hit += workload.tokens[workload.accesses[a++]];
    for (a = begin; a < end; ++a) seen[workload.accesses[a]] = 1;
  }
  return workload.prompt_tokens == 0
             ? 0
             : static_cast<double>(hit) / static_cast<double>(workload.prompt_tokens);
}

}  // namespace cxlkv::cli
