// The prefix-aware policy of the replay simulator. See replay_prefix_policy.cc for how it
// works and docs/replay.md for what each part is worth.
//
// Thread-safety: none, like every SimPolicy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "tools/cxlkv/replay_policy.h"

namespace cxlkv::cli {

// Its parts, each of which can be switched off to measure what it brings.
struct PrefixPolicyOptions {
  // Touch a request's chunks from the prompt's end to its start, so that a chain is evicted
  // from its tail and its head (the part other prompts share) goes last.
  bool tail_first = true;
  // Drop a chunk's cached successors with it (they cannot be hit without it).
  bool drop_orphans = true;
  // Do not store the chunks of a prompt's partial last block, nor a chunk whose predecessor
  // is not cached: the first is resent extended (a new block id) by the next turn, the second
  // can never be part of a cached prefix.
  bool skip_unreachable = true;
  // Class chunks by their request's turn in its conversation and the size of its new part,
  // and evict by age scaled with each class's reuse share, learned online; off, the policy is
  // LRU over whole chains.
  bool learned_classes = true;
  // Take each class's odds from the follow-up hazard (replay_hazard.h): the chance that a
  // request of the class is followed up within the cache's current eviction age, learned
  // online from the trace's timestamps and counted whether or not the cache held the chunks;
  // and evict by age / odds (expected requests per hit) instead of age / sqrt(reuse share).
  bool hazard_odds = false;
  // With hazard_odds and a capacity: replay LRU alongside in a shadow of the same capacity and,
  // every kFadeEvery requests, move the odds' weight (age / p^w, w in [0, 1]) towards 0 (LRU
  // over chains) when the policy hit less than the shadow over them, towards 1 when more.
  std::uint64_t shadow_lru_capacity_bytes = 0;
};

std::unique_ptr<SimPolicy> MakePrefixPolicy(std::size_t chunks,
                                            const PrefixPolicyOptions& options = {});

}  // namespace cxlkv::cli
