#include "backends/store_internals.h"

#include "backends/store_impl.h"

namespace cxlkv::internal {

std::vector<const MemoryRegion*> StoreInternals::TierRegions(const Store& store) {
  std::vector<const MemoryRegion*> regions;
  for (const auto& t : store.impl_->tiers) {
    if (t->mapped() != nullptr) regions.push_back(&t->mapped()->region());
  }
  return regions;
}

Prefetcher* StoreInternals::StorePrefetcher(Store& store) { return store.impl_->prefetcher.get(); }

}  // namespace cxlkv::internal
