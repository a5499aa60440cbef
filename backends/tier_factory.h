// The tier factory: the TierBackends a store's options describe, fastest first. Each of
// StoreOptions::tiers is a memory tier unless its source_spec names a registered kind; the spill
// log, when SpillOptions has a path, is one more tier of kind log below them (SpillOptions is
// sugar for that entry).
//
// Thread-safety: RegisterTierKind is meant for static initializers (before main, one thread);
// OpenTiers may run on any thread once they are done.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "backends/tier_backend.h"
#include "cxlkv/store.h"

namespace cxlkv::internal {

// Where a tier sits in the store, for its opener.
struct TierPlace {
  std::size_t index = 0;
  std::size_t count = 0;  // StoreOptions::tiers
  const std::vector<std::size_t>* chunk_sizes = nullptr;
  std::size_t slab_size = 0;
  const EntryTable* entries = nullptr;
};
// Opens one tier of a kind. Errors are left without tier context; the factory adds it.
using TierOpener = Result<std::unique_ptr<TierBackend>> (*)(TierOptions& options,
                                                             const TierPlace& place);

// Makes a kind of tier openable: a TierOptions whose source_spec is `kind` or starts with
// "kind:" opens with `open`. Returns true, for use in a static initializer.
bool RegisterTierKind(std::string_view kind, TierOpener open);

// Opens every tier `options` lists, fastest first (it takes their sources). InvalidArgument when
// a mapped tier is listed below an unmapped one.
Result<std::vector<std::unique_ptr<TierBackend>>> OpenTiers(StoreOptions& options,
                                                            const EntryTable& entries);

}  // namespace cxlkv::internal
