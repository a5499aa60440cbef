// The prefix-aware policy.
//
// The chunks of a prompt form a chain: a chunk is worth something only while every chunk
// before it is cached, and the head of a chain is shared by more prompts than its tail (the
// system prompt by all, a conversation's history by its later turns). Plain LRU gets this
// backwards: an engine reads and stores a prompt from its start, so the head is the least
// recent chunk of its own request and goes first, leaving a tail nobody can use.
//
// The policy:
//  - keeps chains whole: a request's chunks are touched again from its end to its start when
//    the request ends, so eviction takes chains from the tail; a dropped chunk takes its cached
//    successors with it; a chunk whose predecessor is not cached is not stored;
//  - does not store the chunks of a prompt's partial last block: the next turn of a
//    conversation resends those tokens extended, as a new block, so they are reused only by an
//    identical prompt;
//  - protects reuse it has seen: chunks sit in one recency queue per hit count (0, 1, 2, 3,
//    4 or more), and the victim is the queue end with the largest age / sqrt(p), where p is
//    the share of chunks that reached that hit count and were hit again (counted online, with
//    a ghost of recently evicted chunks so that hits a too-early eviction prevented still
//    count). Nothing in it is fitted to a trace: the weights are learned while it runs.
#include "tools/cxlkv/replay_prefix_policy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "tools/cxlkv/replay_id_list.h"

namespace cxlkv::cli {
namespace {

constexpr std::uint8_t kClasses = 5;  // hit counts 0..3, and 4 or more
constexpr std::uint8_t kNotEvicted = UINT8_MAX;

class PrefixPolicy : public SimPolicy {
 public:
  PrefixPolicy(std::size_t chunks, const PrefixPolicyOptions& options)
      : options_(options),
        queues_{IdList(chunks), IdList(chunks), IdList(chunks), IdList(chunks), IdList(chunks)},
        hits_(chunks, 0),
        touched_(chunks, 0),
        ghost_class_(chunks, kNotEvicted),
        evicted_at_(chunks, 0) {}

  void OnHit(const ChunkEvent& e) override {
    const std::uint8_t from = Class(e.chunk);
    ++reused_[from];
    hits_[e.chunk] = static_cast<std::uint8_t>(std::min<int>(hits_[e.chunk] + 1, 255));
    const std::uint8_t to = Class(e.chunk);
    if (to != from) ++reached_[to];
    queues_[from].Unlink(e.chunk);
    Touch(e.chunk);
  }

  void OnPresent(const ChunkEvent& e) override {
    if (options_.tail_first) request_.push_back(e.chunk);
  }

  bool Admit(const ChunkEvent& e) override {
    // Learn from the ghost first: a chunk asked for again soon after it was evicted counts
    // as reuse of the class it was evicted from.
    const std::uint8_t ghost = ghost_class_[e.chunk];
    if (ghost != kNotEvicted) {
      ghost_class_[e.chunk] = kNotEvicted;
      if (evictions_ - evicted_at_[e.chunk] <= std::max<std::uint64_t>(cached_, 1)) {
        ++reused_[ghost];
      }
    }
    if (!options_.skip_unreachable) return true;
    return !e.in_partial_last_block && e.predecessor_cached;
  }

  void OnInsert(const ChunkEvent& e) override {
    hits_[e.chunk] = 0;
    ++reached_[0];
    ++cached_;
    Touch(e.chunk);
  }

  std::uint32_t Victim() override {
    std::uint32_t victim = IdList::kNil;
    double worst = -1;
    for (std::uint8_t c = 0; c < kClasses; ++c) {
      if (queues_[c].empty()) continue;
      const std::uint32_t oldest = queues_[c].back();
      const double age = static_cast<double>(clock_ - touched_[oldest] + 1);
      const double score = options_.frequency_classes ? age / std::sqrt(ReuseShare(c)) : age;
      if (score > worst) {
        worst = score;
        victim = oldest;
      }
    }
    ghost_class_[victim] = Class(victim);
    evicted_at_[victim] = ++evictions_;
    return victim;
  }

  void OnRemove(std::uint32_t chunk) override {
    IdList& queue = queues_[Class(chunk)];
    if (!queue.contains(chunk)) return;
    queue.Unlink(chunk);
    --cached_;
  }

  void OnRequestEnd() override {
    if (options_.tail_first) {
      // From the prompt's end to its start: the head ends up the most recent.
      ++clock_;
      for (auto it = request_.rbegin(); it != request_.rend(); ++it) {
        IdList& queue = queues_[Class(*it)];
        if (queue.contains(*it)) {
          queue.MoveToFront(*it);
          touched_[*it] = clock_;
        }
      }
      request_.clear();
    }
    ++clock_;
  }

  bool DropsOrphans() const override { return options_.drop_orphans; }

 private:
  std::uint8_t Class(std::uint32_t chunk) const {
    return static_cast<std::uint8_t>(std::min<int>(hits_[chunk], kClasses - 1));
  }

  // Laplace-smoothed: a class with no history counts as even odds.
  double ReuseShare(std::uint8_t c) const {
    return (static_cast<double>(reused_[c]) + 1) / (static_cast<double>(reached_[c]) + 2);
  }

  void Touch(std::uint32_t chunk) {
    queues_[Class(chunk)].PushFront(chunk);
    touched_[chunk] = clock_;
    if (options_.tail_first) request_.push_back(chunk);
  }

  PrefixPolicyOptions options_;
  std::array<IdList, kClasses> queues_;
  std::vector<std::uint8_t> hits_;      // hits while cached since it was stored
  std::vector<std::uint64_t> touched_;  // clock_ at its last touch
  std::vector<std::uint8_t> ghost_class_;
  std::vector<std::uint64_t> evicted_at_;
  std::vector<std::uint32_t> request_;  // chunks touched by the current request, in order
  std::array<std::uint64_t, kClasses> reached_{};  // chunks that entered each class
  std::array<std::uint64_t, kClasses> reused_{};   // ... and were hit again from it
  std::uint64_t clock_ = 0;  // advances per request
  std::uint64_t evictions_ = 0;
  std::uint64_t cached_ = 0;
};

}  // namespace

std::unique_ptr<SimPolicy> MakePrefixPolicy(std::size_t chunks,
                                            const PrefixPolicyOptions& options) {
  return std::make_unique<PrefixPolicy>(chunks, options);
}

}  // namespace cxlkv::cli
