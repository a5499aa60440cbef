// StoreInternals: the few facts about a Store's insides that components built beside it need
// and the public API does not give: the mapped region of every memory tier (GPU restore
// registers them with the driver) and the store's prefetcher (GPU restore announces the chunks
// it is about to copy). Kept apart from store_impl.h so that such components see nothing else.
//
// Thread-safety: both calls are thread-safe; the tier regions are fixed after Store::Open and
// live as long as the Store.
#pragma once

#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/prefetcher.h"
#include "cxlkv/store.h"

namespace cxlkv::internal {

struct StoreInternals {
  // The region of each mapped tier, fastest first. An unmapped tier (the spill log) has none;
  // as those sit below every mapped tier, entry t is tier t's region.
  static std::vector<const MemoryRegion*> TierRegions(const Store& store);
  // The prefetcher of StoreOptions::prefetch; null when the store was opened without one.
  static Prefetcher* StorePrefetcher(Store& store);
};

}  // namespace cxlkv::internal
