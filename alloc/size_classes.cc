#include "alloc/size_classes.h"

#include <algorithm>
#include <string>

#include "util/format.h"

namespace cxlkv {
namespace {

constexpr std::size_t kMinSlabSize = std::size_t{64} << 10;
// With kMaxSlabsPerSlot, spans stay below 4 GiB: slot arithmetic inside a span fits 32 bits.
constexpr std::size_t kMaxSlabSize = std::size_t{32} << 20;
// How many slabs beyond the fewest a span may take to waste less. Every class in use holds at
// least one partly used span, so wider spans strand more capacity per class; 8 is enough to
// reach zero waste for the common chunk sizes (5 MiB on 4 MiB slabs needs 5 slabs).
constexpr std::size_t kMaxSpanExtraSlabs = 8;

std::size_t AlignDown(std::size_t x, std::size_t alignment) { return x / alignment * alignment; }

}  // namespace

std::size_t SizeClassTable::ChooseSlabsPerSpan(std::size_t slot_size, std::size_t slab_size) {
  if (slot_size <= slab_size) return 1;
  const std::size_t fewest = (slot_size + slab_size - 1) / slab_size;
  std::size_t best = fewest;
  double least = 1.0;
  for (std::size_t k = fewest; k <= fewest + kMaxSpanExtraSlabs; ++k) {
    const std::size_t span = k * slab_size;
    // The share of the span lost, not the bytes: a wider span may lose a few more bytes and
    // still hand out more of itself.
    const double waste = static_cast<double>(span % slot_size) / static_cast<double>(span);
    if (waste < least) {
      least = waste;
      best = k;
    }
    if (waste == 0) break;
  }
  return best;
}

Result<SizeClassTable> SizeClassTable::Build(const SlabAllocatorOptions& o) {
  auto invalid = [](const std::string& what) {
    return Status::InvalidArgument("slab allocator option " + what);
  };
  if (o.slot_alignment < 64 || !IsPowerOfTwo(o.slot_alignment)) {
    return invalid("slot_alignment " + std::to_string(o.slot_alignment) +
                   " must be a power of two >= 64");
  }
  if (o.slab_size < kMinSlabSize || o.slab_size > kMaxSlabSize || !IsPowerOfTwo(o.slab_size) ||
      o.slab_size < o.slot_alignment) {
    return invalid("slab_size " + FormatBytes(o.slab_size) + " must be a power of two from " +
                   FormatBytes(kMinSlabSize) + " to " + FormatBytes(kMaxSlabSize) +
                   " and at least slot_alignment " + FormatBytes(o.slot_alignment));
  }
  if (!(o.growth_factor > 1.0 && o.growth_factor <= 2.0)) {
    return invalid("growth_factor " + std::to_string(o.growth_factor) + " must be in (1, 2]");
  }
  const std::size_t max_slot = o.max_slot_size == 0 ? 16 * o.slab_size : o.max_slot_size;
  const std::size_t min_slot = AlignUp(std::max<std::size_t>(o.min_slot_size, 1),
                                       o.slot_alignment);
  const std::size_t largest_slot = kMaxSlabsPerSlot * o.slab_size;
  if (max_slot > largest_slot) {
    return invalid("max_slot_size " + FormatBytes(o.max_slot_size) + " is above " +
                   std::to_string(kMaxSlabsPerSlot) + " slabs of " + FormatBytes(o.slab_size));
  }
  if (min_slot > max_slot) {
    return invalid("min_slot_size " + FormatBytes(o.min_slot_size) + " is above max_slot_size " +
                   FormatBytes(max_slot));
  }

  SizeClassTable table;
  // Geometric classes: each the previous times the factor, rounded down to the alignment, but
  // always at least one alignment step larger (small sizes grow by more than the factor).
  std::vector<SizeClass> geometric;
  for (std::size_t size = min_slot;;) {
    geometric.push_back(SizeClass{0, size, false, 0, 0});
    if (size >= max_slot) break;
    const auto grown = static_cast<std::size_t>(static_cast<double>(size) * o.growth_factor);
    std::size_t next = std::max(AlignDown(grown, o.slot_alignment), size + o.slot_alignment);
    size = std::min(next, AlignUp(max_slot, o.slot_alignment));
  }
  std::vector<SizeClass> all = geometric;
  for (std::size_t exact : o.exact_sizes) {
    if (exact == 0) return invalid("exact_sizes contains 0");
    const std::size_t slot = AlignUp(exact, o.slot_alignment);
    if (slot > largest_slot) {
      return invalid("exact_sizes entry " + FormatBytes(exact) + " is above " +
                     std::to_string(kMaxSlabsPerSlot) + " slabs of " + FormatBytes(o.slab_size));
    }
    auto same = std::find_if(all.begin(), all.end(),
                             [&](const SizeClass& c) { return c.slot_size == slot; });
    if (same != all.end()) {
      same->exact = true;
    } else {
      all.push_back(SizeClass{0, slot, true, 0, 0});
    }
  }
  std::sort(all.begin(), all.end(),
            [](const SizeClass& a, const SizeClass& b) { return a.slot_size < b.slot_size; });
  for (std::size_t i = 0; i < all.size(); ++i) {
    all[i].id = static_cast<std::uint32_t>(i);
    all[i].slabs_per_span = ChooseSlabsPerSpan(all[i].slot_size, o.slab_size);
    all[i].slots_per_span = all[i].slabs_per_span * o.slab_size / all[i].slot_size;
  }
  table.classes_ = std::move(all);
  for (std::size_t exact : o.exact_sizes) {
    table.exact_requests_.emplace_back(exact, table.ClassFor(exact));
  }
  return table;
}

int SizeClassTable::ClassFor(std::size_t size) const {
  for (const auto& [request, id] : exact_requests_) {
    if (size == request) return id;
  }
  if (size == 0) return -1;
  auto it = std::lower_bound(classes_.begin(), classes_.end(), size,
                             [](const SizeClass& c, std::size_t s) { return c.slot_size < s; });
  return it == classes_.end() ? -1 : static_cast<int>(it - classes_.begin());
}

}  // namespace cxlkv
