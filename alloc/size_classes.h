// The table of size classes of a SlabAllocator: which slot size a request gets, and how many
// contiguous slabs a class takes at a time (its span).
//
// Two kinds of class share one sorted table:
//  - exact classes, one per chunk size the caller registered (a full 256-token KV chunk of the
//    served model): a request of that size wastes nothing;
//  - geometric classes from min_slot_size to max_slot_size, each at most growth_factor times
//    the previous (CacheLib uses 1.25), for partial tails and unknown sizes.
// A request takes the smallest class whose slot holds it.
//
// Thread-safety: immutable after Build; safe to share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "cxlkv/slab_allocator.h"
#include "cxlkv/status.h"

namespace cxlkv {

struct SizeClass {
  std::uint32_t id = 0;           // index in the table
  std::size_t slot_size = 0;      // a multiple of the slot alignment
  bool exact = false;
  std::size_t slabs_per_span = 0;
  std::size_t slots_per_span = 0;
};

class SizeClassTable {
 public:
  // Validates the options that shape classes (slab size, alignment, growth factor, bounds,
  // exact sizes) with InvalidArgument errors that name the option and its value.
  static Result<SizeClassTable> Build(const SlabAllocatorOptions& options);

  const std::vector<SizeClass>& classes() const { return classes_; }
  const SizeClass& at(std::uint32_t id) const { return classes_[id]; }
  // The smallest class holding `size`, or -1 when size is 0 or above the largest class.
  int ClassFor(std::size_t size) const;
  std::size_t max_slot_size() const { return classes_.back().slot_size; }
  // The largest slot any class may have, in slabs: spans stay below 4 GiB (64 slabs of at most
  // 32 MiB plus 8 spare), so offsets and slot indices inside a span fit 32 bits.
  static constexpr std::size_t kMaxSlabsPerSlot = 64;
  std::size_t min_slot_size() const { return classes_.front().slot_size; }

  // Slabs per span for a slot size. A slot no larger than a slab gets a one-slab span. A larger
  // one gets k slabs, k from ceil(slot/slab) to 8 more, choosing the k that wastes the smallest
  // share of the span (span bytes not covered by whole slots; ties go to the smaller span).
  // A 5 MiB class on 4 MiB slabs takes 5 slabs: 4 slots, nothing wasted.
  static std::size_t ChooseSlabsPerSpan(std::size_t slot_size, std::size_t slab_size);

 private:
  std::vector<SizeClass> classes_;
  // (request size, class id) of the exact classes: most KV requests are a full chunk, and a
  // short scan of these beats the binary search over all classes.
  std::vector<std::pair<std::size_t, int>> exact_requests_;
};

}  // namespace cxlkv
