// A StoreStats for the renderers' tests (text, Prometheus, Python, JSON), and a walk over
// every counter in it as cxlkv/store_counters.h describes them.
#pragma once

#include <functional>

#include "cxlkv/store.h"
#include "cxlkv/store_counters.h"

namespace cxlkv::testing {

// Two tiers, "dram" and "spill", and every counter non-zero and unlike every other (each a
// quarter larger than the one before), so that a renderer that leaves a counter out, or shows
// one under another's name, fails its test. A counter added to the tables but not here is
// zero: StoreCountersTest.SampleFillsEveryCounter says so.
StoreStats DistinctStoreStats();

// Where a counter sits in StoreStats.
struct CounterPlace {
  int tier = -1;                       // its index in tiers; -1: not a tier's
  bool prefetch = false;               // in StoreStats::prefetch
  const TimedOperation* op = nullptr;  // in this operation's latency summary
};

// Calls f for every counter of stats: the tiers', the store's, the prefetcher's, the latencies'.
void ForEachCounter(
    const StoreStats& stats,
    const std::function<void(const CounterPlace&, const CounterInfo&, CounterValue)>& f);

}  // namespace cxlkv::testing
