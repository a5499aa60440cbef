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
//  - ranks what it keeps by how likely the chain is to come back, learned online. A request
//    that reuses a private chain (beyond the shared prefix) is a later turn of a conversation,
//    and the more turns a conversation has had, the likelier another one is; a request that
//    brings many new chunks at once (a long document) is less likely to be followed up than a
//    short message. So every chunk a request touches beyond its shared prefix goes into the
//    class (turn, size of the request's new part) of that request, and the shared prefix
//    (chunks up to the last one seen followed by several distinct chunks) into a class of its
//    own. Each class is a recency queue; the victim is the queue end with the largest
//    age / sqrt(p), where p is the share of the class's chunks that were hit again (counted
//    online, with a ghost of recently evicted chunks, so that hits an early eviction prevented
//    still count). Nothing is fitted to a trace: p is learned while it runs. The square root
//    keeps a class that looks poor from being starved before it can show otherwise.
#include "tools/cxlkv/replay_prefix_policy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <vector>

#include "tools/cxlkv/replay_hazard.h"
#include "tools/cxlkv/replay_id_list.h"
#include "tools/cxlkv/replay_shadow.h"

namespace cxlkv::cli {
namespace {

// Classes: 0 is the shared prefix; then 4 turns (1, 2, 3, 4 or more) x 6 sizes of the
// request's new part (chunks: 0-1, 2-3, 4-15, 16-63, 64-255, 256 or more).
constexpr std::uint8_t kSharedClass = 0;
constexpr std::uint8_t kTurns = 4;
constexpr std::uint8_t kSizes = 6;
constexpr std::size_t kClasses = 1 + kTurns * kSizes;
constexpr std::uint8_t kNotEvicted = UINT8_MAX;
// A chunk seen followed by this many distinct chunks is a branch point: prompts share what
// leads up to it (a system prompt, a common document) and differ after it. A conversation's
// history branches only where a partial block was resent extended, or a reply regenerated.
constexpr std::uint32_t kBranchSuccessors = 3;
// Counts fade by this factor every kFadeEvery requests (by half in about 8,900 requests), so
// that the shares follow the traffic.
constexpr std::uint64_t kFadeEvery = 256;
constexpr double kFade = 0.98;

std::uint8_t SizeBucket(std::uint32_t new_chunks) {
  if (new_chunks <= 1) return 0;
  if (new_chunks <= 3) return 1;
  if (new_chunks <= 15) return 2;
  if (new_chunks <= 63) return 3;
  if (new_chunks <= 255) return 4;
  return 5;
}

class PrefixPolicy : public SimPolicy {
 public:
  PrefixPolicy(std::size_t chunks, const PrefixPolicyOptions& options)
      : options_(options),
        queues_(kClasses, IdList(chunks)),
        class_(chunks, 1),
        touched_(chunks, 0),
        seen_(chunks, 0),
        successors_(chunks, 0),
        ghost_class_(chunks, kNotEvicted),
        evicted_at_(chunks, 0),
        hazard_(kClasses),
        owner_unit_(chunks, FollowUpHazard::kNoUnit),
        touched_s_(chunks, 0) {
    hazard_odds_.fill(1);  // until anything is learned: LRU over chains
    odds_weight_.fill(1);
    if (options_.shadow_lru_capacity_bytes > 0) {
      shadow_ = std::make_unique<ShadowLru>(chunks, options_.shadow_lru_capacity_bytes);
    }
  }

  void OnRequestBegin(double time_ms) override {
    now_s_ = time_ms / 1000;
    if (options_.hazard_odds) hazard_.Advance(now_s_);
  }

  void OnHit(const ChunkEvent& e) override {
    own_hit_bytes_ += e.bytes;
    if (shadow_) shadow_->SetBytes(e.chunk, e.bytes);
    const std::uint8_t c = class_[e.chunk];
    reused_[c] += 1;
    NoteTurn(e.chunk, c);
    queues_[c].MoveToFront(e.chunk);
    touched_[e.chunk] = clock_;
    touched_s_[e.chunk] = now_s_;
    request_.push_back(e.chunk);
  }

  void OnPresent(const ChunkEvent& e) override {
    if (shadow_) shadow_->SetBytes(e.chunk, e.bytes);
    NoteTurn(e.chunk, class_[e.chunk]);
    request_.push_back(e.chunk);
  }

  bool Admit(const ChunkEvent& e) override {
    if (shadow_) shadow_->SetBytes(e.chunk, e.bytes);
    request_.push_back(e.chunk);
    ++new_chunks_;
    if (seen_[e.chunk] == 0) {
      if (e.predecessor != UINT32_MAX && successors_[e.predecessor] < UINT32_MAX) {
        ++successors_[e.predecessor];
      }
    } else {  // seen before, stored or not: it still tells the conversation's turn
      NoteTurn(e.chunk, static_cast<std::uint8_t>(seen_[e.chunk] - 1));
    }
    // A chunk asked for again not long after it was evicted: reuse its class would have had.
    const std::uint8_t ghost = ghost_class_[e.chunk];
    if (ghost != kNotEvicted) {
      ghost_class_[e.chunk] = kNotEvicted;
      if (evictions_ - evicted_at_[e.chunk] <= std::max<std::uint64_t>(cached_, 1)) {
        reused_[ghost] += 1;
      }
    }
    if (options_.skip_unreachable && (e.in_partial_last_block || !e.predecessor_cached)) {
      return false;
    }
    return true;
  }

  void OnInsert(const ChunkEvent& e) override {
    class_[e.chunk] = ClassOfRequest();  // provisional: the request's size is known at its end
    ++cached_;
    queues_[class_[e.chunk]].PushFront(e.chunk);
    touched_[e.chunk] = clock_;
    touched_s_[e.chunk] = now_s_;
  }

  std::uint32_t Victim() override {
    // Each queue's end is its class's oldest chunk; of those, the one with the largest age
    // for its class's odds (the oldest, as LRU, when the classes are off). With the hazard's
    // odds p, age / p is the number of requests the chunk has waited per hit it is expected
    // to bring.
    std::uint32_t victim = IdList::kNil;
    double worst = -1;
    for (std::size_t c = 0; c < kClasses; ++c) {
      if (queues_[c].empty()) continue;
      const std::uint32_t oldest = queues_[c].back();
      const double age = static_cast<double>(clock_ - touched_[oldest] + 1);
      double score = age;
      if (options_.hazard_odds) {
        score = age / odds_weight_[c];
      } else if (options_.learned_classes) {
        score = age / std::sqrt(ReuseShare(c));
      }
      if (score > worst) {
        worst = score;
        victim = oldest;
      }
    }
    // The eviction age in seconds, averaged over the last thousand or so victims: how long the
    // cache keeps a chunk, so how far ahead a follow-up is worth anything.
    const double age_s = now_s_ - touched_s_[victim];
    horizon_s_ = evictions_ == 0 ? age_s : horizon_s_ + (age_s - horizon_s_) / 1024;
    ghost_class_[victim] = class_[victim];
    evicted_at_[victim] = ++evictions_;
    return victim;
  }

  void OnRemove(std::uint32_t chunk, bool /*evicted*/) override {
    IdList& queue = queues_[class_[chunk]];
    if (!queue.contains(chunk)) return;
    queue.Unlink(chunk);
    --cached_;
  }

  void OnRequestEnd() override {
    const std::uint8_t request_class = ClassOfRequest();
    ++clock_;
    // From the prompt's end to its start, so that the head ends up the most recent; each
    // chunk into this request's class (the shared prefix into the shared class).
    for (std::size_t i = request_.size(); i-- > 0;) {
      const std::uint32_t chunk = request_[i];
      const std::uint8_t to = i < shared_chunks_ ? kSharedClass : request_class;
      seen_[chunk] = static_cast<std::uint8_t>(to + 1);
      IdList& from = queues_[class_[chunk]];
      if (!from.contains(chunk)) continue;
      reached_[to] += 1;
      if (!options_.tail_first && to == class_[chunk]) continue;
      from.Unlink(chunk);
      class_[chunk] = to;
      queues_[to].PushFront(chunk);
      touched_[chunk] = clock_;
      touched_s_[chunk] = now_s_;
    }
    if (options_.hazard_odds) NoteFollowUps(request_class);
    if (shadow_) shadow_hit_bytes_ += shadow_->Request(request_);
    request_.clear();
    shared_chunks_ = 0;
    deepest_turn_ = 0;
    new_chunks_ = 0;
    if (clock_ % kFadeEvery == 0) {
      for (double& r : reached_) r *= kFade;
      for (double& r : reused_) r *= kFade;
      hazard_.Fade(kFade);
      if (shadow_) {
        odds_power_ = NextOddsPower(odds_power_, own_hit_bytes_, shadow_hit_bytes_);
        own_hit_bytes_ = 0;
        shadow_hit_bytes_ = 0;
      }
    }
  }

  bool DropsOrphans() const override { return options_.drop_orphans; }

 private:
  // At a request's end: it follows up the requests that last held its chunks; then it becomes
  // their holder, its shared prefix and its private part as two units.
  void NoteFollowUps(std::uint8_t request_class) {
    for (const std::uint32_t chunk : request_) {
      if (owner_unit_[chunk] != FollowUpHazard::kNoUnit) hazard_.FollowUp(owner_unit_[chunk], now_s_);
    }
    const std::uint32_t shared =
        shared_chunks_ > 0 ? hazard_.AddUnit(now_s_, kSharedClass) : FollowUpHazard::kNoUnit;
    const std::uint32_t own = hazard_.AddUnit(now_s_, request_class);
    for (std::size_t i = 0; i < request_.size(); ++i) {
      owner_unit_[request_[i]] = i < shared_chunks_ ? shared : own;
    }
    hazard_.Refresh();
    // Floored: a class never seen followed up is not evicted at once, whatever its age.
    for (std::size_t c = 0; c < kClasses; ++c) {
      hazard_odds_[c] = std::max(hazard_.ReturnWithin(c, 0, horizon_s_), 1e-3);
      odds_weight_[c] = std::pow(hazard_odds_[c], odds_power_);
    }
  }

  static std::uint8_t TurnOf(std::uint8_t c) {
    if (c == kSharedClass) return 0;
    return static_cast<std::uint8_t>((c - 1) / kSizes + 1);
  }

  // A chunk of the current request, in prompt order, that was seen before in class c.
  void NoteTurn(std::uint32_t chunk, std::uint8_t c) {
    if (successors_[chunk] >= kBranchSuccessors) {
      shared_chunks_ = request_.size() + 1;  // it and everything before it are shared
      deepest_turn_ = 0;
    } else if (c != kSharedClass) {
      deepest_turn_ = std::max(deepest_turn_, TurnOf(c));
    }
  }

  // The current request's class as far as its chunks so far show.
  std::uint8_t ClassOfRequest() const {
    if (!options_.learned_classes) return 1;
    const int turn = std::min<int>(deepest_turn_ + 1, kTurns);
    return static_cast<std::uint8_t>(1 + (turn - 1) * kSizes + SizeBucket(new_chunks_));
  }

  // Laplace-smoothed: a class with no history counts as even odds.
  double ReuseShare(std::size_t c) const { return (reused_[c] + 1) / (reached_[c] + 2); }

  PrefixPolicyOptions options_;
  std::vector<IdList> queues_;             // one per class, most recent at the front
  std::vector<std::uint8_t> class_;        // of each cached chunk
  std::vector<std::uint64_t> touched_;     // clock_ at its last touch
  std::vector<std::uint8_t> seen_;         // 1 + its class when a request last held it; 0: never
  std::vector<std::uint32_t> successors_;  // distinct chunks seen right after it
  std::vector<std::uint8_t> ghost_class_;  // class it was evicted from, until asked for again
  std::vector<std::uint64_t> evicted_at_;  // evictions_ when it was evicted
  std::vector<std::uint32_t> request_;     // the current request's chunks, in prompt order
  std::size_t shared_chunks_ = 0;          // ... of which the leading ones are shared
  std::uint8_t deepest_turn_ = 0;          // the latest turn among its private chunks seen
  std::uint32_t new_chunks_ = 0;           // ... and how many of its chunks were missing
  std::array<double, kClasses> reached_{};  // chunks that entered each class (fading)
  std::array<double, kClasses> reused_{};   // ... and were hit in it
  std::uint64_t clock_ = 0;                 // requests so far
  std::uint64_t evictions_ = 0;
  std::uint64_t cached_ = 0;
  FollowUpHazard hazard_;
  std::vector<std::uint32_t> owner_unit_;  // the unit of the request that last held it
  std::vector<double> touched_s_;          // time of its last touch, seconds
  double now_s_ = 0;
  double horizon_s_ = 0;  // mean idle time of recent victims: how long a chunk stays
  std::array<double, kClasses> hazard_odds_{};  // from NoteFollowUps
  std::array<double, kClasses> odds_weight_{};  // hazard_odds_ ^ odds_power_
  double odds_power_ = 1;
  std::unique_ptr<ShadowLru> shadow_;     // LRU in the same room, to compare with
  std::uint64_t shadow_hit_bytes_ = 0;    // since the last adjustment
  std::uint64_t own_hit_bytes_ = 0;
};

}  // namespace

std::unique_ptr<SimPolicy> MakePrefixPolicy(std::size_t chunks,
                                            const PrefixPolicyOptions& options) {
  return std::make_unique<PrefixPolicy>(chunks, options);
}

}  // namespace cxlkv::cli
