// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP'23).
//
// Three queues: small (S, ~10% of the tier's bytes) takes new chunks; main (M) takes chunks
// read while in S; ghost (G) remembers the hashes of chunks evicted from S without a read, so a
// chunk that comes back soon goes straight to M. A read only bumps a 2-bit counter (no list
// move, so reads are cheap). Eviction takes from S while S is over its share: the tail goes to
// M if it was read, else out (and into G). From M, a tail with a nonzero counter is reinserted
// at the front with the counter decremented; one with zero goes out.
//
// Pinned chunks are passed over in place. The ghost is approximate: a ring of 64-bit hash
// fingerprints, as many as the tier holds chunks, with a flat set to look them up; a
// fingerprint re-added before its old ring slot is overwritten may be forgotten early.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "backends/eviction/entry_list.h"
#include "backends/eviction/eviction_policy.h"

namespace cxlkv::internal {
namespace {

// Open-addressing set of nonzero 64-bit fingerprints with backward-shift deletion.
class FingerprintSet {
 public:
  bool Contains(std::uint64_t fp) const { return Slot(fp) != kMissing; }
  void Insert(std::uint64_t fp) {
    if (Contains(fp)) return;
    if ((size_ + 1) * 2 > slots_.size()) Rehash(std::max<std::size_t>(64, slots_.size() * 2));
    std::size_t i = fp & (slots_.size() - 1);
    while (slots_[i] != 0) i = (i + 1) & (slots_.size() - 1);
    slots_[i] = fp;
    ++size_;
  }
  void Erase(std::uint64_t fp) {
    std::size_t i = Slot(fp);
    if (i == kMissing) return;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t j = (i + 1) & mask; slots_[j] != 0; j = (j + 1) & mask) {
      const std::size_t home = slots_[j] & mask;
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = 0;
    --size_;
  }
  std::size_t bytes() const { return slots_.size() * sizeof(std::uint64_t); }

 private:
  static constexpr std::size_t kMissing = ~std::size_t{0};
  std::size_t Slot(std::uint64_t fp) const {
    if (slots_.empty()) return kMissing;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = fp & mask; slots_[i] != 0; i = (i + 1) & mask) {
      if (slots_[i] == fp) return i;
    }
    return kMissing;
  }
  void Rehash(std::size_t capacity) {
    std::vector<std::uint64_t> old(capacity, 0);
    old.swap(slots_);
    size_ = 0;
    for (std::uint64_t fp : old) {
      if (fp != 0) Insert(fp);
    }
  }
  std::vector<std::uint64_t> slots_;
  std::size_t size_ = 0;
};

class S3FifoPolicy : public EvictionPolicy {
 public:
  S3FifoPolicy(const EntryTable& entries, std::size_t capacity_bytes)
      : small_(entries), main_(entries), small_target_bytes_(capacity_bytes / 10) {}

  void Insert(EntryId id, Entry& e) override {
    e.freq = 0;
    const std::uint64_t fp = Fingerprint(e);
    if (ghost_.Contains(fp)) {
      ghost_.Erase(fp);
      e.queue = kMain;
      main_.PushFront(id, e);
    } else {
      e.queue = kSmall;
      small_.PushFront(id, e);
    }
  }

  void Touch(EntryId /*id*/, Entry& e) override {
    if (e.freq < kMaxFreq) ++e.freq;
  }

  void Erase(EntryId id, Entry& e, bool evicted) override {
    if (e.queue == kSmall) {
      small_.Unlink(id, e);
      if (evicted) Remember(Fingerprint(e));
    } else {
      main_.Unlink(id, e);
    }
  }

  EntryId Victim() override {
    // Each step either returns or moves one unpinned chunk (S to M, or a second chance in M,
    // which lowers its counter), so the walk ends; the bound covers chunks passed over pinned.
    std::size_t budget = 4 * (small_.count() + main_.count()) + 8;
    EntryId s = small_.back();
    EntryId m = main_.back();
    while (budget-- > 0) {
      const bool from_small =
          s != kNoEntry && (small_.bytes() > small_target_bytes_ || main_.empty());
      if (from_small) {
        Entry& e = small_.at(s);
        const EntryId prev = small_.PrevOf(s);
        if (e.pins.load(std::memory_order_relaxed) != 0) {
          s = prev;
          continue;
        }
        if (e.freq == 0) return s;
        small_.Unlink(s, e);
        e.freq = 0;
        e.queue = kMain;
        main_.PushFront(s, e);
        s = prev;
        continue;
      }
      if (m == kNoEntry) {
        if (main_.empty()) return kNoEntry;  // and S holds only pinned chunks
        m = main_.back();                    // wrapped past the front: go round again
      }
      Entry& e = main_.at(m);
      const EntryId prev = main_.PrevOf(m);
      if (e.pins.load(std::memory_order_relaxed) == 0) {
        if (e.freq == 0) return m;
        --e.freq;
        main_.MoveToFront(m, e);
      }
      m = prev;
    }
    // Everything left has been given its chances: fall back to the coldest unpinned.
    EntryId id = small_.BackmostUnpinned();
    return id != kNoEntry ? id : main_.BackmostUnpinned();
  }

  const char* name() const override { return "s3fifo"; }
  std::size_t state_bytes() const override {
    return ring_.capacity() * sizeof(std::uint64_t) + ghost_.bytes();
  }

 private:
  static constexpr std::uint8_t kSmall = 0;
  static constexpr std::uint8_t kMain = 1;
  static constexpr std::uint8_t kMaxFreq = 3;

  static std::uint64_t Fingerprint(const Entry& e) { return e.hash.lo | 1; }  // never 0

  // Adds fp to the ghost, forgetting the oldest once it holds as many as the tier has chunks.
  void Remember(std::uint64_t fp) {
    const std::size_t limit = std::max<std::size_t>(64, small_.count() + main_.count());
    if (ring_.size() < limit) {
      ring_.push_back(fp);
    } else {
      if (ring_next_ >= ring_.size()) ring_next_ = 0;
      ghost_.Erase(ring_[ring_next_]);
      ring_[ring_next_++] = fp;
    }
    ghost_.Insert(fp);
  }

  EntryList small_;
  EntryList main_;
  const std::size_t small_target_bytes_;
  FingerprintSet ghost_;
  std::vector<std::uint64_t> ring_;
  std::size_t ring_next_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> MakeS3FifoPolicy(const EntryTable& entries,
                                                 std::size_t capacity_bytes) {
  return std::make_unique<S3FifoPolicy>(entries, capacity_bytes);
}

}  // namespace cxlkv::internal
