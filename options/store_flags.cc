#include "options/store_flags.h"

#include <vector>

#include "options/store_schema.h"

namespace cxlkv::options {
namespace {

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// The leading positional items as the keys they set, then KEY=VALUE items.
Result<std::vector<NamedValue>> Items(const std::string& flag, const std::string& value,
                                      std::span<const std::string_view> positional,
                                      const std::string& usage) {
  const std::string where = flag + " " + value;
  const std::vector<std::string> parts = SplitCommas(value);
  if (parts.size() < positional.size()) {
    return Status::InvalidArgument(where + ": expected " + usage);
  }
  std::vector<NamedValue> values;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i < positional.size()) {
      const std::string key(positional[i]);
      values.push_back({key, {parts[i]}, where + ": " + key});
      continue;
    }
    if (parts[i].find('=') == std::string::npos && flag == "--tier") {
      // A bare word after a tier's capacity: its durability or eviction policy.
      const std::string key = IsDurability(parts[i]) ? "durability" : "eviction";
      values.push_back({key, {parts[i]}, where + ": " + key});
      continue;
    }
    CXLKV_ASSIGN_OR_RETURN(NamedValue kv, ParseKeyValue(parts[i], where));
    values.push_back(std::move(kv));
  }
  return values;
}

}  // namespace

Status ApplyTierFlag(const std::string& flag, TierOptions& tier) {
  static constexpr std::string_view kPositional[] = {"source", "capacity"};
  CXLKV_ASSIGN_OR_RETURN(
      const std::vector<NamedValue> values,
      Items("--tier", flag, kPositional, "SPEC,CAPACITY[,EVICTION][,DURABILITY][,KEY=VALUE...]"));
  return Apply(TierSchema(), values, "--tier " + flag + ": ", tier);
}

Status ApplySpillFlag(const std::string& flag, StoreOptions& options) {
  static constexpr std::string_view kPositional[] = {"path", "capacity"};
  CXLKV_ASSIGN_OR_RETURN(const std::vector<NamedValue> values,
                         Items("--spill", flag, kPositional, "PATH,CAPACITY[,KEY=VALUE...]"));
  return Apply(SpillSchema(), values, "--spill " + flag + ": ", options.spill);
}

Status ApplyStoreFlag(const std::string& flag, StoreOptions& options) {
  CXLKV_ASSIGN_OR_RETURN(const NamedValue kv, ParseKeyValue(flag, "--store " + flag));
  return Apply(StoreSchema(), std::span(&kv, 1), "", options);
}

}  // namespace cxlkv::options
