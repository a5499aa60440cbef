// SlabPool: which slabs of a region no size class holds, and runs of contiguous free ones.
//
// One bit per slab, 64 to a word, so that finding a run for a multi-slab span skips whole
// words of used (or free) slabs at a time: a 1 TiB region of 4 MiB slabs is 4096 words.
// A span given back sets its bits again; neighbouring free runs merge with no extra work.
//
// Thread-safety: none. The slab allocator guards its pool with its allocator-wide mutex.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cxlkv {

class SlabPool {
 public:
  explicit SlabPool(std::size_t slab_count);  // every slab free

  std::size_t slab_count() const { return slab_count_; }
  std::size_t free_slabs() const { return free_slabs_; }
  bool IsFree(std::size_t slab) const { return (words_[slab / 64] >> (slab % 64)) & 1; }

  // First slab of the lowest run of `count` free slabs (first fit, which keeps the high end of
  // the region in long runs); slab_count() when no run is that long.
  std::size_t FindRun(std::size_t count) const;
  // Length of the longest run of free slabs.
  std::size_t LargestRun() const;

  // Marks [first, first+count) held. Every slab in it must be free.
  void Take(std::size_t first, std::size_t count);
  // Marks [first, first+count) free. Every slab in it must be held.
  void Give(std::size_t first, std::size_t count);

 private:
  // Bit i of word w is slab 64*w+i, set when free. Bits past slab_count_ stay 0 (held), so no
  // run crosses the end of the region.
  static constexpr std::uint64_t kAllFreeWord = ~std::uint64_t{0};
  std::vector<std::uint64_t> words_;
  std::size_t slab_count_;
  std::size_t free_slabs_;
};

// Header-only: the allocator is its only user, and each function is a loop over words.
inline SlabPool::SlabPool(std::size_t slab_count)
    : words_((slab_count + 63) / 64, kAllFreeWord),
      slab_count_(slab_count),
      free_slabs_(slab_count) {
  if (slab_count % 64 != 0) words_.back() = (std::uint64_t{1} << (slab_count % 64)) - 1;
}

inline std::size_t SlabPool::FindRun(std::size_t count) const {
  if (count == 0 || count > free_slabs_) return slab_count_;
  std::size_t run = 0;  // free slabs just before the current word
  for (std::size_t w = 0; w < words_.size(); ++w) {
    const std::uint64_t bits = words_[w];
    if (bits == 0) {
      run = 0;
    } else if (bits == kAllFreeWord) {
      if (run + 64 >= count) return w * 64 - run;
      run += 64;
    } else {
      for (std::size_t b = 0; b < 64; ++b) {
        if ((bits >> b) & 1) {
          if (++run == count) return w * 64 + b + 1 - count;
        } else {
          run = 0;
        }
      }
    }
  }
  return slab_count_;
}

inline std::size_t SlabPool::LargestRun() const {
  std::size_t run = 0, longest = 0;
  for (const std::uint64_t bits : words_) {
    if (bits == 0) {
      run = 0;
    } else if (bits == kAllFreeWord) {
      run += 64;
    } else {
      for (std::size_t b = 0; b < 64; ++b) {
        run = ((bits >> b) & 1) ? run + 1 : 0;
        longest = std::max(longest, run);
      }
      continue;
    }
    longest = std::max(longest, run);
  }
  return longest;
}

inline void SlabPool::Take(std::size_t first, std::size_t count) {
  assert(first + count <= slab_count_);
  for (std::size_t s = first; s < first + count; ++s) {
    assert(IsFree(s));
    words_[s / 64] &= ~(std::uint64_t{1} << (s % 64));
  }
  free_slabs_ -= count;
}

inline void SlabPool::Give(std::size_t first, std::size_t count) {
  assert(first + count <= slab_count_);
  for (std::size_t s = first; s < first + count; ++s) {
    assert(!IsFree(s));
    words_[s / 64] |= std::uint64_t{1} << (s % 64);
  }
  free_slabs_ += count;
}

}  // namespace cxlkv
