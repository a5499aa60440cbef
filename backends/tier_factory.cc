#include "backends/tier_factory.h"

#include <map>
#include <string>
#include <utility>

#include "backends/log_tier.h"
#include "backends/memory_tier.h"

namespace cxlkv::internal {
namespace {

// The kinds StoreOptions::tiers may name by their source_spec, beside memory.
std::map<std::string, TierOpener, std::less<>>& Kinds() {
  static std::map<std::string, TierOpener, std::less<>> kinds;
  return kinds;
}

TierOpener OpenerFor(const TierOptions& options) {
  if (options.source == nullptr) {
    const std::string_view spec = options.source_spec;
    const auto kind = Kinds().find(spec.substr(0, spec.find(':')));
    if (kind != Kinds().end()) return kind->second;
  }
  return &MemoryTier::Open;
}

}  // namespace

bool RegisterTierKind(std::string_view kind, TierOpener open) {
  Kinds()[std::string(kind)] = open;
  return true;
}

Result<std::vector<std::unique_ptr<TierBackend>>> OpenTiers(StoreOptions& options,
                                                            const EntryTable& entries) {
  std::vector<std::unique_ptr<TierBackend>> tiers;
  const std::size_t count = options.tiers.size();
  for (std::size_t i = 0; i < count; ++i) {
    TierOptions& t = options.tiers[i];
    const std::string label = t.name.empty() ? "tier" + std::to_string(i) : t.name;
    const TierPlace place{i, count, &options.chunk_sizes, options.slab_size, &entries};
    Result<std::unique_ptr<TierBackend>> tier = OpenerFor(t)(t, place);
    if (!tier.ok()) return tier.status().WithContext("opening tier " + label);
    // An unmapped tier makes room on its own and never demotes: nothing below it would fill.
    if ((*tier)->mapped() != nullptr && !tiers.empty() && tiers.back()->mapped() == nullptr) {
      return Status::InvalidArgument("tier " + label + " is mapped memory below tier " +
                                     tiers.back()->name() + ", which is not; list it above");
    }
    tiers.push_back(std::move(tier).value());
  }
  if (!options.spill.path.empty()) {  // a tier of kind log
    Result<std::unique_ptr<TierBackend>> log = LogTier::Open(options.spill);
    if (!log.ok()) return log.status().WithContext("opening the spill tier");
    tiers.push_back(std::move(log).value());
  }
  return tiers;
}

}  // namespace cxlkv::internal
