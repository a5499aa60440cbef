#include "cxlkv/store_counters.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <variant>

#include "tests/store_stats_sample.h"

namespace cxlkv {
namespace {

using testing::CounterPlace;
using testing::DistinctStoreStats;
using testing::ForEachCounter;

// Rows a renderer can rely on: every key, text and metric given; keys unique where they share
// a dict; metric names Prometheus accepts (a counter's ends in _total), each family used by
// one row, except a summary's quantiles.
template <typename Stats>
void ExpectWellFormed(const char* what) {
  SCOPED_TRACE(what);
  std::set<std::string_view> keys;
  std::map<std::string_view, int> rows_of_metric;
  for (const Counter<Stats>& c : Counters<Stats>()) {
    const CounterInfo& i = c.info;
    EXPECT_FALSE(i.key.empty() || i.text.empty() || i.help.empty()) << i.key;
    EXPECT_TRUE(keys.insert(i.key).second) << "key " << i.key << " twice";
    EXPECT_EQ(i.metric.substr(0, 6), "cxlkv_") << i.metric;
    EXPECT_EQ(i.metric.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"),
              std::string_view::npos) << i.metric;
    const bool total = i.metric.ends_with("_total");
    EXPECT_EQ(total, i.type == CounterType::kCounter) << i.metric;
    EXPECT_EQ(i.labels.starts_with("quantile=\""), i.type == CounterType::kQuantile) << i.key;
    if (i.type != CounterType::kQuantile) ++rows_of_metric[i.metric];
  }
  for (const auto& [metric, rows] : rows_of_metric) EXPECT_EQ(rows, 1) << metric;
}

template <typename Stats>
std::set<std::string_view> MetricsOf() {
  std::set<std::string_view> metrics;
  for (const Counter<Stats>& c : Counters<Stats>()) metrics.insert(c.info.metric);
  return metrics;
}

TEST(StoreCountersTest, RowsAreWellFormed) {
  ExpectWellFormed<TierStats>("tier");
  ExpectWellFormed<StoreStats>("store");
  ExpectWellFormed<PrefetchStats>("prefetch");
  ExpectWellFormed<LatencySummary>("latency");
  // A family belongs to one table: a tier's counter and the store's never share a name.
  const std::set<std::string_view> tables[] = {MetricsOf<TierStats>(), MetricsOf<StoreStats>(),
                                               MetricsOf<PrefetchStats>(),
                                               MetricsOf<LatencySummary>()};
  std::set<std::string_view> all;
  std::size_t each = 0;
  for (const auto& metrics : tables) {
    all.insert(metrics.begin(), metrics.end());
    each += metrics.size();
  }
  EXPECT_EQ(all.size(), each);
}

// The sample the renderers' tests use has every counter set, each to its own value: without
// that, a test could not tell a counter left out from one that is zero.
TEST(StoreCountersTest, SampleFillsEveryCounter) {
  std::set<double> seen;
  int counters = 0;
  ForEachCounter(DistinctStoreStats(), [&](const CounterPlace&, const CounterInfo& info,
                                           CounterValue value) {
    ++counters;
    if (const bool* flag = std::get_if<bool>(&value)) {
      EXPECT_TRUE(*flag) << info.key;
      return;
    }
    const double v = std::visit([](auto x) { return static_cast<double>(x); }, value);
    EXPECT_NE(v, 0) << info.key << " is not set in DistinctStoreStats()";
    EXPECT_TRUE(seen.insert(v).second) << info.key << " has another counter's value";
  });
  const std::size_t per_store = Counters<StoreStats>().size() +
                                Counters<PrefetchStats>().size() +
                                TimedOperations().size() * Counters<LatencySummary>().size();
  EXPECT_EQ(counters, static_cast<int>(2 * Counters<TierStats>().size() + per_store));
}

// The line of ToString that holds a place's counters.
std::string LineOf(const std::string& text, const StoreStats& st, const CounterPlace& at) {
  std::string head = at.tier >= 0 ? st.tiers[static_cast<std::size_t>(at.tier)].name + " ("
                     : at.prefetch ? "prefetch:"
                     : at.op != nullptr ? std::string(at.op->name) + ":"
                                        : "store:";
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(head)) return line;
  }
  return "";
}

TEST(StoreCountersTest, TextShowsEveryCounter) {
  const StoreStats st = DistinctStoreStats();
  const std::string text = st.ToString();
  ForEachCounter(st, [&](const CounterPlace& at, const CounterInfo& info, CounterValue value) {
    const std::string line = LineOf(text, st, at);
    // Preceded by ": " or ", ", followed by "," or the line's end.
    const std::string shown = FormatCounter(info, value);
    const std::size_t pos = line.find(" " + shown);
    EXPECT_NE(pos, std::string::npos) << shown << " not in: " << line;
    if (pos == std::string::npos) return;
    const std::size_t end = pos + 1 + shown.size();
    EXPECT_TRUE(end == line.size() || line[end] == ',') << shown << " in: " << line;
  });
  EXPECT_NE(text.find("dram (source-dram, lru, nt, persist-on-put): "), std::string::npos)
      << text;
}

TEST(StoreCountersTest, FormatCounterUsesTheUnit) {
  const CounterInfo bytes{"b", "used", "cxlkv_b", CounterType::kGauge, CounterUnit::kBytes, "h"};
  EXPECT_EQ(FormatCounter(bytes, std::uint64_t{3} << 20), "used 3.0 MiB");
  const CounterInfo ns{"n", "p99", "cxlkv_n", CounterType::kGauge, CounterUnit::kNanoseconds,
                       "h"};
  EXPECT_EQ(FormatCounter(ns, std::uint64_t{4095}), "p99 4095 ns");
  EXPECT_EQ(FormatCounter(ns, 12.6), "p99 13 ns");
  const CounterInfo flag{"f", "from snapshot", "cxlkv_f", CounterType::kGauge, CounterUnit::kFlag,
                         "h"};
  EXPECT_EQ(FormatCounter(flag, false), "from snapshot no");
  const CounterInfo s{"s", "recovery", "cxlkv_s", CounterType::kGauge, CounterUnit::kSeconds, "h"};
  EXPECT_EQ(FormatCounter(s, 0.0125), "recovery 0.013 s");
}

}  // namespace
}  // namespace cxlkv
