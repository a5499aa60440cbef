// LFU: one list per read count (0..255, saturating), each in recency order, and a bitmap of
// the non-empty ones, so Victim finds the lowest count in a few word scans. A chunk keeps its
// count when it moves between LFU tiers: what was read often stays valued after a demotion.
// There is no ageing: a chunk read 255 times long ago outlives newer ones; use s3fifo or lru
// where popularity shifts.
#include <array>
#include <bit>
#include <cstdint>
#include <memory>
#include <vector>

#include "backends/eviction/entry_list.h"
#include "backends/eviction/eviction_policy.h"

namespace cxlkv::internal {
namespace {

class LfuPolicy : public EvictionPolicy {
 public:
  explicit LfuPolicy(const EntryTable& entries) {
    lists_.reserve(kCounts);
    for (int i = 0; i < kCounts; ++i) lists_.emplace_back(entries);
  }

  void Insert(EntryId id, Entry& e) override { Add(id, e); }

  void Touch(EntryId id, Entry& e) override {
    if (e.freq == kCounts - 1) {
      lists_[e.freq].MoveToFront(id, e);
      return;
    }
    Remove(id, e);
    ++e.freq;
    Add(id, e);
  }

  void Erase(EntryId id, Entry& e, bool /*evicted*/) override { Remove(id, e); }

  EntryId Victim() override {
    for (std::size_t w = 0; w < nonempty_.size(); ++w) {
      for (std::uint64_t bits = nonempty_[w]; bits != 0; bits &= bits - 1) {
        const auto count = w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
        const EntryId id = lists_[count].BackmostUnpinned();
        if (id != kNoEntry) return id;
      }
    }
    return kNoEntry;
  }

  const char* name() const override { return "lfu"; }

 private:
  static constexpr int kCounts = 256;

  void Add(EntryId id, Entry& e) {
    lists_[e.freq].PushFront(id, e);
    nonempty_[e.freq / 64] |= std::uint64_t{1} << (e.freq % 64);
  }
  void Remove(EntryId id, Entry& e) {
    lists_[e.freq].Unlink(id, e);
    if (lists_[e.freq].empty()) nonempty_[e.freq / 64] &= ~(std::uint64_t{1} << (e.freq % 64));
  }

  std::vector<EntryList> lists_;  // by read count
  std::array<std::uint64_t, kCounts / 64> nonempty_{};
};

}  // namespace

std::unique_ptr<EvictionPolicy> MakeLfuPolicy(const EntryTable& entries) {
  return std::make_unique<LfuPolicy>(entries);
}

}  // namespace cxlkv::internal
