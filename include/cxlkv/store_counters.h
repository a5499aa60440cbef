// Every number in StoreStats, described once: its key, the words text uses for it, its
// Prometheus name and type, its unit and its help; and VisitCounters, which hands a renderer
// each counter of a stats struct with its value. Every renderer walks these tables:
// StoreStats::ToString, `cxlkv serve`'s /metrics, Python's Store.stats() and `cxlkv demo
// --json`. So a counter added to StoreStats is shown everywhere by adding one row here
// (backends/store_counters.cc), and a test that walks the rows checks that every renderer shows
// every counter. `cxlkv serve` describes its own counters with rows of the same kind
// (server/metrics.h).
//
// Thread-safety: the tables are immutable after static initialization; every function here
// is thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "cxlkv/prefetcher.h"
#include "cxlkv/store.h"

namespace cxlkv {

enum class CounterType {
  kCounter,   // only grows while the store is open
  kGauge,     // says what is now
  kQuantile,  // a latency quantile (labels `quantile="0.5"`): with the others, a summary
};

// What a value measures; renderers format (text) or convert (Prometheus: seconds) by it.
enum class CounterUnit { kCount, kBytes, kSeconds, kNanoseconds, kRatio, kFlag };

struct CounterInfo {
  std::string_view key;     // snake_case: the key in Python's stats() and in JSON reports
  std::string_view text;    // the words ToString prints before the value
  std::string_view metric;  // the Prometheus metric family
  CounterType type;
  CounterUnit unit;
  std::string_view help;    // one line, for Prometheus' HELP (a family's first row's)
  // Prometheus labels of this row's sample, `quantile="0.5"`: rows of one family differ by them.
  std::string_view labels = {};
};

// A counter's value as the stats struct holds it.
using CounterValue = std::variant<std::uint64_t, double, bool>;

// One row: a counter and how to read it from the struct that holds it (Stats is TierStats,
// StoreStats for the store-wide numbers, PrefetchStats or LatencySummary).
template <typename Stats>
struct Counter {
  CounterInfo info;
  CounterValue (*read)(const Stats&);
};

// A row's reader for a field, widened to the CounterValue alternative of its kind:
// Counter<TierStats>{{...}, ReadField<&TierStats::hits>}.
template <typename T>
struct MemberOf;
template <typename C, typename V>
struct MemberOf<V C::*> {
  using Class = C;
};
template <auto Field>
CounterValue ReadField(const typename MemberOf<decltype(Field)>::Class& stats) {
  const auto value = stats.*Field;
  using V = std::remove_cvref_t<decltype(value)>;
  if constexpr (std::is_same_v<V, bool>) {
    return value;
  } else if constexpr (std::is_floating_point_v<V>) {
    return static_cast<double>(value);
  } else {
    return static_cast<std::uint64_t>(value);
  }
}

// The rows of each part of StoreStats, in the order renderers show them. The tier rows are
// shown once per tier, the latency rows once per TimedOperations() entry; Counters<StoreStats>
// holds the store-wide numbers only (not the tiers', prefetch's or latencies').
template <typename Stats>
std::span<const Counter<Stats>> Counters();
template <>
std::span<const Counter<TierStats>> Counters<TierStats>();
template <>
std::span<const Counter<StoreStats>> Counters<StoreStats>();
template <>
std::span<const Counter<PrefetchStats>> Counters<PrefetchStats>();
template <>
std::span<const Counter<LatencySummary>> Counters<LatencySummary>();

// The strings that say what a tier is (name, source, eviction, copy, durability): Prometheus
// shows them as labels of cxlkv_tier_info, text in the tier line's head.
struct TierLabel {
  std::string_view key;
  std::string TierStats::*field;
};
std::span<const TierLabel> TierLabels();

// StoreStats' latency summaries.
struct TimedOperation {
  std::string_view name;  // "put": Prometheus' op label and text's line head
  std::string_view key;   // "put_latency": the key in Python and JSON
  LatencySummary StoreStats::*summary;
};
std::span<const TimedOperation> TimedOperations();

// Calls f(const CounterInfo&, value) for every row of Counters<Stats>(), value being the
// alternative of CounterValue the row reads (std::uint64_t, double or bool).
template <typename Stats, typename F>
void VisitCounters(const Stats& stats, F&& f) {
  for (const Counter<Stats>& c : Counters<Stats>()) {
    std::visit([&](auto value) { f(c.info, value); }, c.read(stats));
  }
}

// "hits 22", "used 1.5 GiB", "p99 4095 ns", "from snapshot yes": how ToString shows a counter.
std::string FormatCounter(const CounterInfo& info, CounterValue value);

// "head: hits 22, used 1.5 GiB\n": a text line of every row of Counters<Stats>().
template <typename Stats>
std::string CountersLine(std::string_view head, const Stats& stats) {
  std::string out(head);
  out += ':';
  const char* separator = " ";
  VisitCounters(stats, [&](const CounterInfo& info, auto value) {
    out += separator + FormatCounter(info, value);
    separator = ", ";
  });
  return out + "\n";
}

}  // namespace cxlkv
