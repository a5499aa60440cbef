// The prefix-aware eviction policies: "prefix", "prefix-chains" (its chain handling alone,
// without the learned classes) and "prefix-hazard" (its classes' odds from the follow-up
// hazard). docs/replay.md says what each part is worth on the traces.
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
// What the store tells the policy (eviction_policy.h): a request begins with the prompt's
// chain of keys and how many of them are stored (Store::LongestPrefix); the engine then reads
// those (Touch, already counted at BeginRequest) and puts the missing ones in prompt order
// (Admit, Insert). A chunk of the chain after the prefix that is not put before a later one
// (or the request's end) was stored when its turn came: the engine skipped it (present). The
// request ends when the next one begins. Per-key state lives in flat arrays over dense ids the
// policy hands out to every key it sees (the entry's prev link holds a stored chunk's id:
// these policies keep no EntryList), counted in state_bytes; the store's entries stay 48
// bytes. It is bounded: past max(max_keys, twice what the last compaction kept) ids, the
// policy forgets every key that is not stored in its tier, in its LRU shadow, a recent ghost
// or part of the current request, and renumbers the rest (Compact). A forgotten key that comes
// back starts afresh, as a key never seen. The follow-up hazard's units are bounded likewise
// (follow_up_hazard.h).
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "backends/eviction/eviction_policy.h"
#include "backends/eviction/follow_up_hazard.h"
#include "backends/eviction/id_lists.h"
#include "backends/eviction/shadow_lru.h"

namespace cxlkv::internal {
namespace {

// Its parts, each of which can be switched off to measure what it brings.
struct PrefixPolicyOptions {
  // Touch a request's chunks from the prompt's end to its start, so that a chain is evicted
  // from its tail and its head (the part other prompts share) goes last.
  bool tail_first = true;
  // Drop a chunk's cached successors with it (they cannot be hit without it).
  bool drop_orphans = true;
  // Do not store a prompt's last chunk when it is partial (smaller than the largest chunk
  // seen), nor a chunk whose predecessor is not stored: the first is resent extended (another
  // key) by the next turn, the second can never be part of a stored prefix.
  bool skip_unreachable = true;
  // Class chunks by their request's turn in its conversation and the size of its new part,
  // and evict by age scaled with each class's reuse share, learned online; off, the policy is
  // LRU over whole chains.
  bool learned_classes = true;
  // Take each class's odds from the follow-up hazard (follow_up_hazard.h): the chance that a
  // request of the class is followed up within the cache's current eviction age, learned
  // online from the store's clock and counted whether or not the cache held the chunks; and
  // evict by age / odds (expected requests per hit) instead of age / sqrt(reuse share).
  bool hazard_odds = false;
  // With hazard_odds: replay LRU alongside in a shadow of the same room (the most chunk bytes
  // the tier has held) and, every kFadeEvery requests, move the odds' weight (age / p^w, w in
  // [0, 1]) towards 0 (LRU over chains) when the policy hit less than the shadow over them,
  // towards 1 when more.
  bool shadow_lru = false;
};

constexpr std::uint32_t kNil = IdLists::kNil;
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

class PrefixPolicy : public EvictionPolicy {
 public:
  PrefixPolicy(const char* name, const EntryTable& entries, const PrefixPolicyOptions& options,
               const PrefixStateLimits& limits)
      : name_(name),
        entries_(&entries),
        options_(options),
        max_keys_(std::max<std::size_t>(limits.max_keys, 1)),
        compact_at_(max_keys_),
        queues_(kClasses),
        hazard_(kClasses, limits.max_units) {
    hazard_odds_.fill(1);  // until anything is learned: LRU over chains
    odds_weight_.fill(1);
    if (options_.shadow_lru) shadow_ = std::make_unique<ShadowLru>();
  }

  const char* name() const override { return name_; }
  bool wants_requests() const override { return true; }
  bool admits_selectively() const override { return true; }
  bool drops_orphans() const override { return options_.drop_orphans; }

  std::size_t state_bytes() const override {
    const std::size_t per_key = sizeof(KeyHash) + sizeof(EntryId) + 5 * sizeof(std::uint32_t) +
                                3 * sizeof(std::uint8_t) + 3 * sizeof(std::uint64_t) +
                                sizeof(FollowUpHazard::UnitId) + sizeof(double);
    // The map: a node (key, id, next pointer, cached hash) and a bucket pointer per key.
    const std::size_t map = ids_.size() * (sizeof(KeyHash) + 4 * sizeof(void*)) +
                            ids_.bucket_count() * sizeof(void*);
    return hash_of_.capacity() * per_key + map + queues_.bytes() +
           (shadow_ ? shadow_->bytes() : 0) + hazard_.units() * 24 +
           (chain_.capacity() + request_.capacity()) * sizeof(std::uint32_t);
  }

  void BeginRequest(std::span<const KeyHash> chain, std::size_t prefix, double now_s) override {
    if (in_request_) EndRequest();
    now_s_ = now_s;
    if (options_.hazard_odds) hazard_.Advance(now_s_);
    ++request_no_;
    in_request_ = true;
    chain_.clear();
    for (const KeyHash& h : chain) {
      const std::uint32_t id = IdOf(h);
      if (!chain_.empty() && pred_[id] == kNil && chain_.back() != id) Link(chain_.back(), id);
      chain_.push_back(id);
    }
    prefix = std::min(prefix, chain_.size());
    for (std::size_t i = 0; i < prefix; ++i) {
      if (queues_.listed(chain_[i])) {
        Hit(chain_[i]);
      } else {
        Present(chain_[i]);  // stored in another tier
      }
    }
    cursor_ = prefix;
  }

  std::optional<KeyHash> ChainPredecessor(const KeyHash& h) const override {
    const std::size_t pos = Find(h);
    if (pos == SIZE_MAX || pos == 0) return std::nullopt;
    return hash_of_[chain_[pos - 1]];
  }

  bool Admit(const KeyHash& h, std::size_t size, bool predecessor_stored) override {
    const std::size_t pos = Find(h);
    const auto bytes = static_cast<std::uint32_t>(size);
    const bool partial = bytes < max_bytes_;
    max_bytes_ = std::max(max_bytes_, bytes);
    if (pos == SIZE_MAX) return true;  // a put outside the current request's chain
    while (cursor_ < pos) Present(chain_[cursor_++]);  // skipped by the engine: stored
    cursor_ = pos + 1;
    const std::uint32_t id = chain_[pos];
    bytes_[id] = bytes;
    if (shadow_) shadow_->SetBytes(id, bytes);
    request_.push_back(id);
    ++new_chunks_;
    if (seen_[id] == 0) {
      const std::uint32_t p = pos > 0 ? chain_[pos - 1] : kNil;
      if (p != kNil && successors_[p] < UINT32_MAX) ++successors_[p];
    } else {  // seen before, stored or not: it still tells the conversation's turn
      NoteTurn(id, static_cast<std::uint8_t>(seen_[id] - 1));
    }
    // A chunk asked for again not long after it was evicted: reuse its class would have had.
    const std::uint8_t ghost = ghost_class_[id];
    if (ghost != kNotEvicted) {
      ghost_class_[id] = kNotEvicted;
      if (evictions_ - evicted_at_[id] <= std::max<std::uint64_t>(cached_, 1)) {
        reused_[ghost] += 1;
      }
    }
    const bool last = pos + 1 == chain_.size();
    return !(options_.skip_unreachable && ((last && partial) || !predecessor_stored));
  }

  void Insert(EntryId entry, Entry& e) override {
    const std::uint32_t id = IdOf(e.hash);
    e.prev = id;  // unused otherwise: these policies link through their own lists
    entry_of_[id] = entry;
    bytes_[id] = e.size;
    max_bytes_ = std::max(max_bytes_, e.size);
    class_[id] = ClassOfRequest();  // provisional: the request's size is known at its end
    ++cached_;
    held_bytes_ += e.size;
    peak_held_bytes_ = std::max(peak_held_bytes_, held_bytes_);
    queues_.PushFront(class_[id], id);
    touched_[id] = clock_;
    touched_s_[id] = now_s_;
  }

  void Touch(EntryId /*entry*/, Entry& e) override {
    const std::uint32_t id = e.prev;
    if (in_request_ && hit_in_request_[id] == request_no_) return;  // counted at BeginRequest
    // A read outside a request's prefix: recency only.
    queues_.MoveToFront(class_[id], id);
    touched_[id] = clock_;
    touched_s_[id] = now_s_;
  }

  void Erase(EntryId /*entry*/, Entry& e, bool /*evicted*/) override {
    const std::uint32_t id = e.prev;
    if (!queues_.listed(id)) return;
    queues_.Unlink(id);
    --cached_;
    held_bytes_ -= bytes_[id];
  }

  EntryId Victim() override {
    // Each queue's oldest unpinned chunk; of those, the one with the largest age for its
    // class's odds (the oldest, as LRU, when the classes are off). With the hazard's odds p,
    // age / p is the number of requests the chunk has waited per hit it is expected to bring.
    std::uint32_t victim = kNil;
    double worst = -1;
    for (std::size_t c = 0; c < kClasses; ++c) {
      std::uint32_t oldest = queues_.back(c);
      while (oldest != kNil &&
             entries_->at(entry_of_[oldest]).pins.load(std::memory_order_relaxed) != 0) {
        oldest = queues_.towards_front(oldest);
      }
      if (oldest == kNil) continue;
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
    if (victim == kNil) return kNoEntry;
    // The eviction age in seconds, averaged over the last thousand or so victims: how long the
    // cache keeps a chunk, so how far ahead a follow-up is worth anything.
    const double age_s = now_s_ - touched_s_[victim];
    horizon_s_ = evictions_ == 0 ? age_s : horizon_s_ + (age_s - horizon_s_) / 1024;
    ghost_class_[victim] = class_[victim];
    evicted_at_[victim] = ++evictions_;
    return entry_of_[victim];
  }

  void ChildrenOf(const KeyHash& h, std::vector<KeyHash>* out) const override {
    const auto it = ids_.find(h);
    if (it == ids_.end()) return;
    for (std::uint32_t c = first_child_[it->second]; c != kNil; c = next_sibling_[c]) {
      out->push_back(hash_of_[c]);
    }
  }

 private:
  // The dense id of a key, handed out at its first sight (after a compaction, when the ids
  // have reached its threshold).
  std::uint32_t IdOf(const KeyHash& h) {
    if (hash_of_.size() >= compact_at_ && ids_.find(h) == ids_.end()) Compact();
    const auto [it, inserted] = ids_.try_emplace(h, static_cast<std::uint32_t>(hash_of_.size()));
    if (inserted) {
      hash_of_.push_back(h);
      entry_of_.push_back(kNoEntry);
      bytes_.push_back(0);
      pred_.push_back(kNil);
      first_child_.push_back(kNil);
      next_sibling_.push_back(kNil);
      class_.push_back(1);
      touched_.push_back(0);
      seen_.push_back(0);
      successors_.push_back(0);
      ghost_class_.push_back(kNotEvicted);
      evicted_at_.push_back(0);
      owner_unit_.push_back(FollowUpHazard::kNoUnit);
      touched_s_.push_back(0);
      hit_in_request_.push_back(0);
      queues_.Grow(hash_of_.size());
    }
    return it->second;
  }

  // Forgets the keys nothing needs any more and renumbers the others, keeping their order in
  // every queue: what is stored in this tier (its entry's prev link is updated), what the LRU
  // shadow holds, a ghost still within Admit's window, and the current request's keys. O(ids);
  // the next one comes when the ids have doubled from what this one kept, or at max_keys_.
  void Compact() {
    const std::size_t n = hash_of_.size();
    std::vector<std::uint32_t> new_of(n, kNil);
    std::vector<std::uint32_t> kept;  // old ids, by new id
    const auto keep = [&](std::uint32_t id) {
      if (new_of[id] != kNil) return;
      new_of[id] = static_cast<std::uint32_t>(kept.size());
      kept.push_back(id);
    };
    const std::uint64_t ghost_window = std::max<std::uint64_t>(cached_, 1);
    for (std::uint32_t id = 0; id < n; ++id) {
      const bool recent_ghost =
          ghost_class_[id] != kNotEvicted && evictions_ - evicted_at_[id] <= ghost_window;
      if (queues_.listed(id) || (shadow_ && shadow_->contains(id)) || recent_ghost) keep(id);
    }
    for (const std::uint32_t id : chain_) keep(id);
    for (const std::uint32_t id : request_) keep(id);

    const auto gather = [&](auto& v) {
      std::remove_reference_t<decltype(v)> out;
      out.reserve(kept.size());
      for (const std::uint32_t old : kept) out.push_back(v[old]);
      v.swap(out);
    };
    for (const std::uint32_t old : kept) {  // while entry_of_ still has the old numbering
      if (queues_.listed(old)) entries_->at(entry_of_[old]).prev = new_of[old];
    }
    queues_ = queues_.Remapped(new_of, kept.size());
    if (shadow_) shadow_->Remap(new_of, kept.size());
    gather(hash_of_);
    gather(entry_of_);
    gather(bytes_);
    gather(pred_);
    gather(class_);
    gather(touched_);
    gather(seen_);
    gather(successors_);
    gather(ghost_class_);
    gather(evicted_at_);
    gather(owner_unit_);
    gather(touched_s_);
    gather(hit_in_request_);
    // Chains between kept keys stay linked; a link to a forgotten key is learned again.
    first_child_.assign(kept.size(), kNil);
    next_sibling_.assign(kept.size(), kNil);
    for (std::uint32_t id = 0; id < kept.size(); ++id) {
      const std::uint32_t parent = pred_[id] == kNil ? kNil : new_of[pred_[id]];
      pred_[id] = kNil;
      if (parent != kNil) Link(parent, id);
    }
    for (std::uint32_t& id : chain_) id = new_of[id];
    for (std::uint32_t& id : request_) id = new_of[id];
    ids_.clear();
    for (std::uint32_t id = 0; id < kept.size(); ++id) ids_.emplace(hash_of_[id], id);
    compact_at_ = std::max(max_keys_, 2 * kept.size());
    ++compactions_;
  }

  // A key's first predecessor is its predecessor: keys are prefix-chained, so a chunk follows
  // the same chunk in every prompt that holds it.
  void Link(std::uint32_t parent, std::uint32_t child) {
    pred_[child] = parent;
    next_sibling_[child] = first_child_[parent];
    first_child_[parent] = child;
  }

  // The position of h in the current chain at or after the cursor; SIZE_MAX if none.
  std::size_t Find(const KeyHash& h) const {
    const auto it = ids_.find(h);
    if (!in_request_ || it == ids_.end()) return SIZE_MAX;
    for (std::size_t i = cursor_; i < chain_.size(); ++i) {
      if (chain_[i] == it->second) return i;
    }
    return SIZE_MAX;
  }

  // A chunk of the prompt's stored prefix, in this tier.
  void Hit(std::uint32_t id) {
    own_hit_bytes_ += bytes_[id];
    if (shadow_) shadow_->SetBytes(id, bytes_[id]);
    const std::uint8_t c = class_[id];
    reused_[c] += 1;
    NoteTurn(id, c);
    queues_.MoveToFront(c, id);
    touched_[id] = clock_;
    touched_s_[id] = now_s_;
    hit_in_request_[id] = request_no_;
    request_.push_back(id);
  }

  // A stored chunk the engine does not read (after the prompt's first miss: a hit after a miss
  // is no hit) and does not store again.
  void Present(std::uint32_t id) {
    if (shadow_) shadow_->SetBytes(id, bytes_[id]);
    NoteTurn(id, class_[id]);
    request_.push_back(id);
  }

  void EndRequest() {
    while (cursor_ < chain_.size()) Present(chain_[cursor_++]);
    in_request_ = false;
    const std::uint8_t request_class = ClassOfRequest();
    ++clock_;
    // From the prompt's end to its start, so that the head ends up the most recent; each
    // chunk into this request's class (the shared prefix into the shared class).
    for (std::size_t i = request_.size(); i-- > 0;) {
      const std::uint32_t id = request_[i];
      const std::uint8_t to = i < shared_chunks_ ? kSharedClass : request_class;
      seen_[id] = static_cast<std::uint8_t>(to + 1);
      if (!queues_.listed(id)) continue;
      reached_[to] += 1;
      if (!options_.tail_first && to == class_[id]) continue;
      class_[id] = to;
      queues_.MoveToFront(to, id);
      touched_[id] = clock_;
      touched_s_[id] = now_s_;
    }
    if (options_.hazard_odds) NoteFollowUps(request_class);
    if (shadow_) shadow_hit_bytes_ += shadow_->Request(request_, peak_held_bytes_);
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

  // At a request's end: it follows up the requests that last held its chunks; then it becomes
  // their holder, its shared prefix and its private part as two units.
  void NoteFollowUps(std::uint8_t request_class) {
    for (const std::uint32_t id : request_) {
      if (owner_unit_[id] != FollowUpHazard::kNoUnit) hazard_.FollowUp(owner_unit_[id], now_s_);
    }
    const FollowUpHazard::UnitId shared =
        shared_chunks_ > 0 ? hazard_.AddUnit(now_s_, kSharedClass) : FollowUpHazard::kNoUnit;
    const FollowUpHazard::UnitId own = hazard_.AddUnit(now_s_, request_class);
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
  void NoteTurn(std::uint32_t id, std::uint8_t c) {
    if (successors_[id] >= kBranchSuccessors) {
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

  const char* name_;
  const EntryTable* entries_;
  PrefixPolicyOptions options_;
  std::size_t max_keys_;    // ids before the first compaction
  std::size_t compact_at_;  // ids at which the next one runs
  std::uint64_t compactions_ = 0;
  std::unordered_map<KeyHash, std::uint32_t, KeyHashHasher> ids_;  // every key seen
  // Per dense id.
  std::vector<KeyHash> hash_of_;
  std::vector<EntryId> entry_of_;           // its entry while stored in this tier
  std::vector<std::uint32_t> bytes_;        // its size, once known
  std::vector<std::uint32_t> pred_;         // the key before it in its chains, or kNil
  std::vector<std::uint32_t> first_child_;  // the keys after it, linked through next_sibling_
  std::vector<std::uint32_t> next_sibling_;
  std::vector<std::uint8_t> class_;         // of each cached chunk
  std::vector<std::uint64_t> touched_;      // clock_ at its last touch
  std::vector<std::uint8_t> seen_;          // 1 + its class when a request last held it; 0: never
  std::vector<std::uint32_t> successors_;   // distinct chunks seen right after it
  std::vector<std::uint8_t> ghost_class_;   // class it was evicted from, until asked for again
  std::vector<std::uint64_t> evicted_at_;   // evictions_ when it was evicted
  std::vector<FollowUpHazard::UnitId> owner_unit_;  // the unit of the request that last held it
  std::vector<double> touched_s_;           // time of its last touch, seconds
  std::vector<std::uint64_t> hit_in_request_;  // request_no_ of the request that read it
  IdLists queues_;                          // one per class, most recent at the front
  // The current request.
  bool in_request_ = false;
  std::uint64_t request_no_ = 0;
  std::vector<std::uint32_t> chain_;       // its keys, in prompt order
  std::size_t cursor_ = 0;                 // ... of which those before it are accounted for
  std::vector<std::uint32_t> request_;     // its chunks as accounted, in prompt order
  std::size_t shared_chunks_ = 0;          // ... of which the leading ones are shared
  std::uint8_t deepest_turn_ = 0;          // the latest turn among its private chunks seen
  std::uint32_t new_chunks_ = 0;           // ... and how many of its chunks were missing
  std::uint32_t max_bytes_ = 0;            // the largest chunk seen: smaller ones are partial
  std::array<double, kClasses> reached_{};  // chunks that entered each class (fading)
  std::array<double, kClasses> reused_{};   // ... and were hit in it
  std::uint64_t clock_ = 0;                 // requests so far
  std::uint64_t evictions_ = 0;
  std::uint64_t cached_ = 0;
  std::uint64_t held_bytes_ = 0;            // chunk bytes listed now
  std::uint64_t peak_held_bytes_ = 0;       // ... and the most so far: the shadow's room
  FollowUpHazard hazard_;
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

std::unique_ptr<EvictionPolicy> MakePrefixPolicy(std::string_view name, const EntryTable& entries,
                                                 const PrefixStateLimits& limits) {
  PrefixPolicyOptions options;
  if (name == "prefix") return std::make_unique<PrefixPolicy>("prefix", entries, options, limits);
  if (name == "prefix-chains") {
    options.learned_classes = false;
    return std::make_unique<PrefixPolicy>("prefix-chains", entries, options, limits);
  }
  if (name == "prefix-hazard") {
    options.hazard_odds = true;
    options.shadow_lru = true;
    return std::make_unique<PrefixPolicy>("prefix-hazard", entries, options, limits);
  }
  return nullptr;
}

}  // namespace cxlkv::internal
