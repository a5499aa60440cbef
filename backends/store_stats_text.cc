// StoreStats::ToString: the text rendering of the counters of cxlkv/store_counters.h, a line a
// tier, then the store's, the prefetcher's and one a timed operation.
#include <string>

#include "cxlkv/store.h"
#include "cxlkv/store_counters.h"

namespace cxlkv {
namespace {

// "head: a 1, b 2\n" from the rows of Counters<Stats>().
template <typename Stats>
std::string Line(std::string head, const Stats& stats) {
  std::string out = std::move(head) + ":";
  const char* separator = " ";
  VisitCounters(stats, [&](const CounterInfo& info, auto value) {
    out += separator + FormatCounter(info, value);
    separator = ", ";
  });
  return out + "\n";
}

}  // namespace

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
    out += Line(name + " (" + details + ")", t);
  }
  out += Line("store", *this);
  out += Line("prefetch", prefetch);
  for (const TimedOperation& op : TimedOperations()) {
    out += Line(std::string(op.name), this->*op.summary);
  }
  return out;
}

}  // namespace cxlkv
