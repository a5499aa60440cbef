#include "tests/store_stats_sample.h"

#include <cstdint>
#include <string>

namespace cxlkv::testing {

StoreStats DistinctStoreStats() {
  std::uint64_t next = 1000;
  auto n = [&] { return next += next / 4 + 7; };
  auto d = [&] { return static_cast<double>(n()) + 0.5; };
  StoreStats st;
  PrefetchStats& p = st.prefetch;
  p.streams = n();
  p.pages_touched = n();
  p.slow_touches = n();
  p.touch_ns = n();
  p.max_ahead_seen = n();
  p.wakeups = n();
  p.probes = n();
  p.inflight_limit = static_cast<unsigned>(n());
  p.inflight_limit_max = static_cast<unsigned>(n());
  p.run_pages = static_cast<unsigned>(n());
  p.miss_ns = n();
  for (const char* name : {"dram", "spill"}) {
    TierStats t;
    t.name = name;
    t.source = std::string("source-") + name;
    t.eviction = "lru";
    t.copy = "nt";
    t.durability = "persist-on-put";
    t.capacity = n();
    t.used_bytes = n();
    t.chunks = n();
    t.hits = n();
    t.evictions = n();
    t.demotions = n();
    t.sync_evictions = n();
    t.promotions = n();
    t.expirations = n();
    t.bytes_in = n();
    t.bytes_out = n();
    t.recovered = n();
    t.corrupt_dropped = n();
    t.read_errors = n();
    t.recovery_seconds = d() / 1e6;
    t.recovered_from_snapshot = true;
    st.tiers.push_back(std::move(t));
  }
  st.spill_write_amplification = d() / 1e6;
  st.misses = n();
  st.index_entries = n();
  st.index_bytes_per_entry = d();
  st.policy_bytes = n();
  for (const TimedOperation& op : TimedOperations()) {
    LatencySummary& l = st.*op.summary;
    l.count = n();
    l.mean_ns = d();
    l.p50_ns = n();
    l.p90_ns = n();
    l.p99_ns = n();
    l.p999_ns = n();
    l.max_ns = n();
  }
  return st;
}

void ForEachCounter(
    const StoreStats& stats,
    const std::function<void(const CounterPlace&, const CounterInfo&, CounterValue)>& f) {
  for (std::size_t i = 0; i < stats.tiers.size(); ++i) {
    const CounterPlace place{.tier = static_cast<int>(i)};
    VisitCounters(stats.tiers[i], [&](const CounterInfo& info, auto v) { f(place, info, v); });
  }
  VisitCounters(stats, [&](const CounterInfo& info, auto v) { f(CounterPlace{}, info, v); });
  const CounterPlace prefetch{.prefetch = true};
  VisitCounters(stats.prefetch, [&](const CounterInfo& info, auto v) { f(prefetch, info, v); });
  for (const TimedOperation& op : TimedOperations()) {
    const CounterPlace place{.op = &op};
    VisitCounters(stats.*op.summary, [&](const CounterInfo& info, auto v) { f(place, info, v); });
  }
}

}  // namespace cxlkv::testing
