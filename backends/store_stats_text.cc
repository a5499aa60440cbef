// StoreStats::ToString: the text rendering of the counters of cxlkv/store_counters.h, a line a
// tier, then the store's, the prefetcher's and one a timed operation.
#include <string>

#include "cxlkv/store.h"
#include "cxlkv/store_counters.h"

namespace cxlkv {

std::string StoreStats::ToString() const {
  std::string out;
  for (const TierStats& t : tiers) {
    // "dram (dram, lru, nt, volatile)": the name, then what the tier is made of.
    std::string name, details;
    for (const TierLabel& label : TierLabels()) {
      const std::string& value = t.*label.field;
      if (label.key == "name") {
        name = value;
      } else if (!value.empty()) {
        details += (details.empty() ? "" : ", ") + value;
      }
    }
    out += CountersLine(name + " (" + details + ")", t);
  }
  out += CountersLine("store", *this);
  out += CountersLine("prefetch", prefetch);
  for (const TimedOperation& op : TimedOperations()) {
    out += CountersLine(std::string(op.name), this->*op.summary);
  }
  return out;
}

}  // namespace cxlkv
