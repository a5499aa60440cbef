// The replay simulator: a Workload through tiers of given capacities, each with its own
// eviction policy, holding chunk ids and sizes only (no bytes), for fast capacity sweeps.
//
// Per request, as LMCache drives its storage: the leading run of cached chunks is the hit
// (read from the tier that holds each; a chunk found in a lower tier moves to tier 0), and
// the chunks after it that are not cached are offered to tier 0. A chunk evicted from a tier
// is demoted to the next one when that tier admits it (always, or from its second demotion
// on), and dropped from the last. A hit after a miss in the same request is no hit.
// Each policy is told every request's timestamp before its chunks (OnRequestBegin).
//
// Thread-safety: Simulate is a pure function of its arguments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cxlkv/status.h"
#include "tools/cxlkv/replay_workload.h"

namespace cxlkv::cli {

// Which demoted chunks a lower tier takes.
enum class DemotionAdmission : std::uint8_t {
  kAlways,
  kSecond,  // only a chunk demoted (evicted above) for at least the second time
};

struct SimTier {
  std::string name;
  std::uint64_t capacity_bytes = 0;
  std::string policy = "lru";
  DemotionAdmission admission = DemotionAdmission::kAlways;  // ignored for tier 0
};

struct SimOptions {
  std::uint64_t bytes_per_token = 0;
  std::vector<SimTier> tiers;  // tier 0 first; at least one
};

struct SimTierResult {
  std::uint64_t hit_chunks = 0;
  std::uint64_t hit_tokens = 0;
  std::uint64_t bytes_read = 0;     // hits served
  std::uint64_t bytes_written = 0;  // stores, demotions and promotions into it
  std::uint64_t evictions = 0;      // chunks that left it to make room (demoted or dropped)
  std::uint64_t demoted_in = 0;     // chunks it took from the tier above
  std::uint64_t peak_bytes = 0;
};

struct SimResult {
  std::uint64_t requests = 0;
  std::uint64_t prompt_tokens = 0;
  std::uint64_t hit_tokens = 0;  // tokens of cached prefixes: prefill the engine skips
  std::uint64_t lookups = 0;     // chunks of all prompts
  std::uint64_t hit_chunks = 0;
  std::uint64_t not_admitted = 0;  // missing chunks tier 0 chose not to store
  std::uint64_t dropped_orphans = 0;
  std::vector<SimTierResult> tiers;
  double seconds = 0;  // wall time of the replay itself

  double HitRatio() const {
    return prompt_tokens == 0 ? 0 : static_cast<double>(hit_tokens) /
                                        static_cast<double>(prompt_tokens);
  }
};

// InvalidArgument for no tiers, a zero bytes_per_token or an unknown policy.
Result<SimResult> Simulate(const Workload& workload, const SimOptions& options);

// The hit ratio (tokens) of a cache that never evicts: the trace's own reuse.
double UnboundedHitRatio(const Workload& workload);

}  // namespace cxlkv::cli
