// The classic policies (LRU, FIFO, LFU, S3-FIFO), LRU with admission at the second request, and
// the offline bound. The prefix-aware policy has its own file.
#include <algorithm>
#include <array>
#include <queue>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tools/cxlkv/replay_id_list.h"
#include "tools/cxlkv/replay_policy.h"
#include "tools/cxlkv/replay_prefix_policy.h"
#include "tools/cxlkv/replay_workload.h"

namespace cxlkv::cli {
namespace {

// Hits move a chunk to the front; the victim is the back.
class LruPolicy : public SimPolicy {
 public:
  explicit LruPolicy(std::size_t chunks) : list_(chunks) {}
  void OnHit(const ChunkEvent& e) override { list_.MoveToFront(e.chunk); }
  void OnInsert(const ChunkEvent& e) override { list_.PushFront(e.chunk); }
  std::uint32_t Victim() override { return list_.back(); }
  void OnRemove(std::uint32_t chunk) override { list_.Unlink(chunk); }

 private:
  IdList list_;
};

// Insertion order only.
class FifoPolicy : public SimPolicy {
 public:
  explicit FifoPolicy(std::size_t chunks) : list_(chunks) {}
  void OnHit(const ChunkEvent&) override {}
  void OnInsert(const ChunkEvent& e) override { list_.PushFront(e.chunk); }
  std::uint32_t Victim() override { return list_.back(); }
  void OnRemove(std::uint32_t chunk) override { list_.Unlink(chunk); }

 private:
  IdList list_;
};

// Least hits while cached; the least recent among equals (in-cache LFU, as the store's).
class LfuPolicy : public SimPolicy {
 public:
  explicit LfuPolicy(std::size_t chunks) : hits_(chunks, 0), touched_(chunks, 0) {}
  void OnHit(const ChunkEvent& e) override {
    order_.erase(Key(e.chunk));
    ++hits_[e.chunk];
    touched_[e.chunk] = ++clock_;
    order_.insert(Key(e.chunk));
  }
  void OnInsert(const ChunkEvent& e) override {
    hits_[e.chunk] = 0;
    touched_[e.chunk] = ++clock_;
    order_.insert(Key(e.chunk));
  }
  std::uint32_t Victim() override { return std::get<2>(*order_.begin()); }
  void OnRemove(std::uint32_t chunk) override { order_.erase(Key(chunk)); }

 private:
  using OrderKey = std::tuple<std::uint32_t, std::uint64_t, std::uint32_t>;
  OrderKey Key(std::uint32_t chunk) const { return {hits_[chunk], touched_[chunk], chunk}; }
  std::vector<std::uint32_t> hits_;
  std::vector<std::uint64_t> touched_;
  std::uint64_t clock_ = 0;
  std::set<OrderKey> order_;
};

// S3-FIFO (Yang et al., SOSP'23) by bytes: new chunks enter a small FIFO (10% of the tier);
// those hit there move to the main FIFO when they reach its end, the others leave and are
// remembered in a ghost FIFO; a chunk found in the ghost goes straight to main. Main
// reinserts a chunk with hits left (a 2-bit counter) instead of evicting it.
class S3FifoPolicy : public SimPolicy {
 public:
  S3FifoPolicy(std::size_t chunks, std::uint64_t capacity_bytes)
      : small_(chunks), main_(chunks), ghost_(chunks), freq_(chunks, 0), bytes_(chunks, 0),
        small_target_(capacity_bytes / 10) {}
  void OnHit(const ChunkEvent& e) override {
    freq_[e.chunk] = static_cast<std::uint8_t>(std::min(3, freq_[e.chunk] + 1));
  }
  void OnInsert(const ChunkEvent& e) override {
    bytes_[e.chunk] = e.bytes;
    freq_[e.chunk] = 0;
    if (ghost_.contains(e.chunk)) {
      ghost_.Unlink(e.chunk);
      main_.PushFront(e.chunk);
      main_bytes_ += e.bytes;
    } else {
      small_.PushFront(e.chunk);
      small_bytes_ += e.bytes;
    }
  }
  std::uint32_t Victim() override {
    for (;;) {
      if (!small_.empty() && (small_bytes_ > small_target_ || main_.empty())) {
        const std::uint32_t c = small_.back();
        if (freq_[c] == 0) {
          RememberInGhost(c);
          return c;
        }
        small_.Unlink(c);
        small_bytes_ -= bytes_[c];
        freq_[c] = 0;
        main_.PushFront(c);
        main_bytes_ += bytes_[c];
        continue;
      }
      const std::uint32_t c = main_.back();
      if (freq_[c] == 0) return c;
      --freq_[c];
      main_.MoveToFront(c);
    }
  }
  void OnRemove(std::uint32_t chunk) override {
    if (small_.contains(chunk)) {
      small_.Unlink(chunk);
      small_bytes_ -= bytes_[chunk];
    } else if (main_.contains(chunk)) {
      main_.Unlink(chunk);
      main_bytes_ -= bytes_[chunk];
    }
  }

 private:
  void RememberInGhost(std::uint32_t chunk) {
    ghost_.PushFront(chunk);
    // As many ids as main holds chunks (the paper's ghost: the size of main, in objects).
    while (ghost_.size() > std::max<std::size_t>(1, main_.size())) ghost_.Unlink(ghost_.back());
  }
  IdList small_;
  IdList main_;
  IdList ghost_;
  std::vector<std::uint8_t> freq_;
  std::vector<std::uint64_t> bytes_;
  std::uint64_t small_target_;
  std::uint64_t small_bytes_ = 0;
  std::uint64_t main_bytes_ = 0;
};

// LRU behind a frequency filter: a chunk is stored from its second request on (tiered caches
// such as Dynamo's KVBM admit to their SSD tier this way). The filter remembers every chunk
// ever requested: exact, which only helps it.
class LruAdmitSecondPolicy : public LruPolicy {
 public:
  explicit LruAdmitSecondPolicy(std::size_t chunks) : LruPolicy(chunks), seen_(chunks, 0) {}
  bool Admit(const ChunkEvent& e) override {
    if (seen_[e.chunk] != 0) return true;
    seen_[e.chunk] = 1;
    return false;
  }

 private:
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
  void OnRemove(std::uint32_t chunk) override { cached_[chunk] = 0; }

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
                                                 std::uint64_t capacity_bytes) {
  if (name == "lru") return std::unique_ptr<SimPolicy>(new LruPolicy(chunks));
  if (name == "fifo") return std::unique_ptr<SimPolicy>(new FifoPolicy(chunks));
  if (name == "lfu") return std::unique_ptr<SimPolicy>(new LfuPolicy(chunks));
  if (name == "s3fifo") {
    return std::unique_ptr<SimPolicy>(new S3FifoPolicy(chunks, capacity_bytes));
  }
  if (name == "lru-admit2") return std::unique_ptr<SimPolicy>(new LruAdmitSecondPolicy(chunks));
  if (name == "prefix") return MakePrefixPolicy(chunks);
  if (name == "prefix-chains") {  // its chain handling alone, without the learned classes
    PrefixPolicyOptions options;
    options.learned_classes = false;
    return MakePrefixPolicy(chunks, options);
  }
  if (name == "prefix-hazard") {  // its classes' odds from the follow-up hazard
    PrefixPolicyOptions options;
    options.hazard_odds = true;
    options.shadow_lru_capacity_bytes = capacity_bytes;
    return MakePrefixPolicy(chunks, options);
  }
  if (name == "belady") return std::unique_ptr<SimPolicy>(new BeladyPolicy(chunks));
  return Status::InvalidArgument("unknown eviction policy \"" + std::string(name) +
                                 "\" (lru, fifo, lfu, s3fifo, lru-admit2, prefix-chains, prefix, prefix-hazard, belady)");
}

}  // namespace cxlkv::cli
