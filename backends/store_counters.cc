// The rows of include/cxlkv/store_counters.h: one per number in StoreStats. Prometheus names
// that existed before the tables are kept as they were (docs/serve.md lists them).
#include "cxlkv/store_counters.h"

#include <cstdio>

#include "util/format.h"

namespace cxlkv {
namespace {

constexpr CounterType kCounter = CounterType::kCounter;
constexpr CounterType kGauge = CounterType::kGauge;
constexpr CounterType kQuantile = CounterType::kQuantile;
constexpr CounterUnit kCount = CounterUnit::kCount;
constexpr CounterUnit kBytes = CounterUnit::kBytes;
constexpr CounterUnit kSeconds = CounterUnit::kSeconds;
constexpr CounterUnit kNs = CounterUnit::kNanoseconds;
constexpr CounterUnit kRatio = CounterUnit::kRatio;
constexpr CounterUnit kFlag = CounterUnit::kFlag;

using T = TierStats;
constexpr Counter<TierStats> kTierCounters[] = {
    {{"used_bytes", "used", "cxlkv_tier_used_bytes", kGauge, kBytes,
      "slot bytes held by chunks and their headers"}, ReadField<&T::used_bytes>},
    {{"capacity", "capacity", "cxlkv_tier_capacity_bytes", kGauge, kBytes,
      "bytes mapped for the tier"}, ReadField<&T::capacity>},
    {{"chunks", "chunks", "cxlkv_tier_chunks", kGauge, kCount,
      "chunks held by the tier"}, ReadField<&T::chunks>},
    {{"hits", "hits", "cxlkv_tier_hits_total", kCounter, kCount,
      "reads served from the tier"}, ReadField<&T::hits>},
    {{"evictions", "evictions", "cxlkv_tier_evictions_total", kCounter, kCount,
      "chunks that left the tier to make room"}, ReadField<&T::evictions>},
    {{"demotions", "demoted", "cxlkv_tier_demotions_total", kCounter, kCount,
      "evicted chunks copied into a lower tier"}, ReadField<&T::demotions>},
    {{"sync_evictions", "evicted in puts", "cxlkv_tier_sync_evictions_total", kCounter, kCount,
      "evictions done inside a put, which waited for them"}, ReadField<&T::sync_evictions>},
    {{"promotions", "promoted", "cxlkv_tier_promotions_total", kCounter, kCount,
      "chunks moved up to the first tier"}, ReadField<&T::promotions>},
    {{"expirations", "expired", "cxlkv_tier_expirations_total", kCounter, kCount,
      "chunks freed when their TTL passed"}, ReadField<&T::expirations>},
    {{"bytes_in", "in", "cxlkv_tier_bytes_in_total", kCounter, kBytes,
      "chunk bytes written into the tier"}, ReadField<&T::bytes_in>},
    {{"bytes_out", "out", "cxlkv_tier_bytes_out_total", kCounter, kBytes,
      "chunk bytes read out of the tier"}, ReadField<&T::bytes_out>},
    {{"recovered", "recovered", "cxlkv_tier_recovered_chunks", kGauge, kCount,
      "chunks a durable tier or the spill log found when the store opened (warm restart)"},
     ReadField<&T::recovered>},
    {{"recovery_seconds", "recovery", "cxlkv_tier_recovery_seconds", kGauge, kSeconds,
      "time the tier took to open and recover"}, ReadField<&T::recovery_seconds>},
    {{"recovered_from_snapshot", "from snapshot", "cxlkv_tier_recovered_from_snapshot",
      kGauge, kFlag, "1 when the tier's pool was rebuilt from the snapshot of a clean close"},
     ReadField<&T::recovered_from_snapshot>},
    {{"corrupt_dropped", "corrupt dropped", "cxlkv_tier_corrupt_dropped_total", kCounter, kCount,
      "chunks dropped because their bytes, header or record on the media were damaged"},
     ReadField<&T::corrupt_dropped>},
    {{"read_errors", "read errors", "cxlkv_tier_read_errors_total", kCounter, kCount,
      "reads of the spill tier that failed: a damaged record, or its segment evicted"},
     ReadField<&T::read_errors>},
};

using S = StoreStats;
constexpr Counter<StoreStats> kStoreCounters[] = {
    {{"misses", "misses", "cxlkv_store_misses_total", kCounter, kCount,
      "store reads that found no chunk"}, ReadField<&S::misses>},
    {{"index_entries", "index entries", "cxlkv_store_index_entries", kGauge, kCount,
      "chunks in the store's index"}, ReadField<&S::index_entries>},
    {{"index_bytes_per_entry", "DRAM per entry", "cxlkv_store_index_bytes_per_entry", kGauge,
      kBytes, "DRAM the index spends per chunk: entries, hash tables, slab bookkeeping"},
     ReadField<&S::index_bytes_per_entry>},
    {{"policy_bytes", "policy DRAM", "cxlkv_store_policy_bytes", kGauge, kBytes,
      "DRAM held by the eviction policies' own state (the S3-FIFO ghost list)"},
     ReadField<&S::policy_bytes>},
    {{"spill_write_amplification", "spill write amplification",
      "cxlkv_spill_write_amplification", kGauge, kRatio,
      "device bytes the spill log wrote per chunk byte spilled"},
     ReadField<&S::spill_write_amplification>},
};

using P = PrefetchStats;
constexpr Counter<PrefetchStats> kPrefetchCounters[] = {
    {{"streams", "streams", "cxlkv_prefetch_streams_total", kCounter, kCount,
      "batched gets announced to the prefetcher"}, ReadField<&P::streams>},
    {{"pages_touched", "pages touched", "cxlkv_prefetch_pages_touched_total", kCounter, kCount,
      "pages the prefetch threads touched"}, ReadField<&P::pages_touched>},
    {{"slow_touches", "slow touches", "cxlkv_prefetch_slow_touches_total", kCounter, kCount,
      "touches slower than a resident page can be: misses"}, ReadField<&P::slow_touches>},
    {{"touch_ns", "touch time", "cxlkv_prefetch_touch_seconds_total", kCounter, kNs,
      "time spent touching, summed over touches"}, ReadField<&P::touch_ns>},
    {{"max_ahead_seen", "furthest ahead", "cxlkv_prefetch_max_ahead_bytes", kGauge, kBytes,
      "the largest distance claimed ahead of a reader"}, ReadField<&P::max_ahead_seen>},
    {{"wakeups", "wakeups", "cxlkv_prefetch_wakeups_total", kCounter, kCount,
      "prefetch threads woken to work"}, ReadField<&P::wakeups>},
    {{"probes", "probes", "cxlkv_prefetch_probes_total", kCounter, kCount,
      "run-length probes made"}, ReadField<&P::probes>},
    {{"inflight_limit", "misses in flight", "cxlkv_prefetch_inflight_limit", kGauge, kCount,
      "prefetch threads allowed to touch at once (misses in flight)"},
     ReadField<&P::inflight_limit>},
    {{"inflight_limit_max", "max misses in flight", "cxlkv_prefetch_inflight_limit_max", kGauge,
      kCount, "the largest the in-flight limit has been"}, ReadField<&P::inflight_limit_max>},
    {{"run_pages", "run pages", "cxlkv_prefetch_run_pages", kGauge, kCount,
      "the device's run length: pages one miss brings"}, ReadField<&P::run_pages>},
    {{"miss_ns", "miss latency", "cxlkv_prefetch_miss_seconds", kGauge, kNs,
      "recent mean latency of a slow touch"}, ReadField<&P::miss_ns>},
};

using L = LatencySummary;
constexpr Counter<LatencySummary> kLatencyCounters[] = {
    {{"count", "ops", "cxlkv_store_operations_total", kCounter, kCount,
      "store operations timed"}, ReadField<&L::count>},
    {{"mean_ns", "mean", "cxlkv_store_latency_mean_seconds", kGauge, kNs,
      "mean store operation latency"}, ReadField<&L::mean_ns>},
    {{"p50_ns", "p50", "cxlkv_store_latency_seconds", kQuantile, kNs,
      "store operation latency (within 12.5%)",
      "quantile=\"0.5\""}, ReadField<&L::p50_ns>},
    {{"p90_ns", "p90", "cxlkv_store_latency_seconds", kQuantile, kNs,
      "store operation latency (within 12.5%)",
      "quantile=\"0.9\""}, ReadField<&L::p90_ns>},
    {{"p99_ns", "p99", "cxlkv_store_latency_seconds", kQuantile, kNs,
      "store operation latency (within 12.5%)",
      "quantile=\"0.99\""}, ReadField<&L::p99_ns>},
    {{"p999_ns", "p99.9", "cxlkv_store_latency_seconds", kQuantile, kNs,
      "store operation latency (within 12.5%)",
      "quantile=\"0.999\""}, ReadField<&L::p999_ns>},
    {{"max_ns", "max", "cxlkv_store_latency_max_seconds", kGauge, kNs,
      "the slowest store operation"}, ReadField<&L::max_ns>},
};

constexpr TierLabel kTierLabels[] = {
    {"name", &TierStats::name},         {"source", &TierStats::source},
    {"eviction", &TierStats::eviction}, {"copy", &TierStats::copy},
    {"durability", &TierStats::durability},
};

constexpr TimedOperation kTimedOperations[] = {
    {"put", "put_latency", &StoreStats::put_latency},
    {"get", "get_latency", &StoreStats::get_latency},
    {"batch_get", "batch_get_latency", &StoreStats::batch_get_latency},
};

}  // namespace

template <>
std::span<const Counter<TierStats>> Counters<TierStats>() {
  return kTierCounters;
}
template <>
std::span<const Counter<StoreStats>> Counters<StoreStats>() {
  return kStoreCounters;
}
template <>
std::span<const Counter<PrefetchStats>> Counters<PrefetchStats>() {
  return kPrefetchCounters;
}
template <>
std::span<const Counter<LatencySummary>> Counters<LatencySummary>() {
  return kLatencyCounters;
}
std::span<const TierLabel> TierLabels() { return kTierLabels; }
std::span<const TimedOperation> TimedOperations() { return kTimedOperations; }

std::string FormatCounter(const CounterInfo& info, CounterValue value) {
  char buf[64];
  if (const bool* flag = std::get_if<bool>(&value)) {
    std::snprintf(buf, sizeof(buf), "%s", *flag ? "yes" : "no");
  } else if (const double* d = std::get_if<double>(&value)) {
    switch (info.unit) {
      case CounterUnit::kBytes: std::snprintf(buf, sizeof(buf), "%.1f B", *d); break;
      case CounterUnit::kSeconds: std::snprintf(buf, sizeof(buf), "%.3f s", *d); break;
      case CounterUnit::kNanoseconds: std::snprintf(buf, sizeof(buf), "%.0f ns", *d); break;
      default: std::snprintf(buf, sizeof(buf), "%.2f", *d); break;
    }
  } else {
    const std::uint64_t n = std::get<std::uint64_t>(value);
    switch (info.unit) {
      case CounterUnit::kBytes: return std::string(info.text) + " " + FormatBytes(n);
      case CounterUnit::kNanoseconds:
        std::snprintf(buf, sizeof(buf), "%llu ns", static_cast<unsigned long long>(n));
        break;
      default: std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(n)); break;
    }
  }
  return std::string(info.text) + " " + buf;
}

}  // namespace cxlkv
