#include "server/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <atomic>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <variant>

#include "tests/store_stats_sample.h"

namespace cxlkv::serve {
namespace {

using testing::CounterPlace;

// The sample a counter should have: Prometheus' labels for its place, and its value in
// seconds where it is a duration, 0 or 1 where it is a flag.
std::string ExpectedSample(const StoreStats& st, const CounterPlace& at, const CounterInfo& info,
                           CounterValue value) {
  std::string labels;
  if (at.tier >= 0) labels = "tier=\"" + st.tiers[static_cast<std::size_t>(at.tier)].name + "\"";
  if (at.op != nullptr) labels = "op=\"" + std::string(at.op->name) + "\"";
  if (!info.labels.empty()) labels += (labels.empty() ? "" : ",") + std::string(info.labels);
  char number[64];
  std::visit(
      [&](auto v) {
        if (info.unit == CounterUnit::kNanoseconds) {
          std::snprintf(number, sizeof(number), "%.17g", static_cast<double>(v) * 1e-9);
        } else if constexpr (std::is_same_v<decltype(v), double>) {
          std::snprintf(number, sizeof(number), "%.17g", v);
        } else {
          std::snprintf(number, sizeof(number), "%llu", static_cast<unsigned long long>(v));
        }
      },
      value);
  return std::string(info.metric) + (labels.empty() ? "" : "{" + labels + "}") + " " + number +
         "\n";
}

TEST(MetricsTest, PrometheusShowsEveryStoreCounter) {
  const StoreStats st = testing::DistinctStoreStats();
  const std::string text = RenderStorePrometheus(st);
  testing::ForEachCounter(st, [&](const CounterPlace& at, const CounterInfo& info,
                                  CounterValue value) {
    const std::string sample = ExpectedSample(st, at, info, value);
    EXPECT_NE(text.find("\n" + sample), std::string::npos) << sample << " is not in:\n" << text;
  });
  // Each family is announced once, before its samples, with the type its rows say.
  std::map<std::string, int> types;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("# TYPE ")) ++types[line.substr(7)];
  }
  testing::ForEachCounter(st, [&](const CounterPlace&, const CounterInfo& info, CounterValue) {
    const char* type = info.type == CounterType::kCounter ? " counter"
                       : info.type == CounterType::kGauge ? " gauge"
                                                          : " summary";
    EXPECT_EQ(types[std::string(info.metric) + type], 1) << info.metric << type;
  });
  EXPECT_NE(text.find("\ncxlkv_tier_info{tier=\"spill\",source=\"source-spill\",eviction=\"lru\","
                      "copy=\"nt\",durability=\"persist-on-put\"} 1\n"),
            std::string::npos)
      << text;
  // The summary's count and sum: the operations, and their mean times that.
  const LatencySummary& put = st.put_latency;
  char sum[64];
  std::snprintf(sum, sizeof(sum), "%.17g", put.mean_ns * static_cast<double>(put.count) * 1e-9);
  EXPECT_NE(text.find("\ncxlkv_store_latency_seconds_sum{op=\"put\"} " + std::string(sum) + "\n"),
            std::string::npos);
  EXPECT_NE(text.find("\ncxlkv_store_latency_seconds_count{op=\"put\"} " +
                      std::to_string(put.count) + "\n"),
            std::string::npos);
}

// The server's own counters: each row of Counters<ServerStats>() in /metrics and in the text
// `cxlkv serve` prints when it stops, with its value; every counter and gauge copied.
TEST(MetricsTest, PrometheusAndTextShowEveryServerCounter) {
  ServerMetrics m;
  std::uint64_t next = 1000;
  auto n = [&] { return next += next / 4 + 7; };
  for (auto& r : m.requests) r = n();
  for (std::atomic<std::uint64_t>* c :
       {&m.get_hits, &m.get_misses, &m.exist_hits, &m.exist_misses, &m.puts_stored,
        &m.puts_already_stored, &m.puts_refused, &m.bytes_received, &m.bytes_sent,
        &m.connections_accepted, &m.connections_open, &m.connections_closed_bad_input,
        &m.puts_over_budget, &m.gets_over_budget, &m.gets_pinned_off_loop, &m.lists_over_budget,
        &m.lists_truncated,
        &m.connections_closed_timeout, &m.connections_closed_idle, &m.connections_refused,
        &m.connections_replaced, &m.accept_failures, &m.metrics_clients_dropped}) {
    *c = n();
  }
  ServerGauges g;
  g.reserved_bytes = n();
  g.max_reserved_bytes = n();
  g.reply_bytes = n();
  g.max_reply_bytes = n();
  g.max_connections = n();
  g.log_lines_dropped = n();
  const ServerStats stats = m.Snapshot(g);
  std::set<std::uint64_t> values;
  std::size_t rows = 0;
  VisitCounters(stats, [&](const CounterInfo&, auto v) {
    values.insert(static_cast<std::uint64_t>(v));
    ++rows;
  });
  // Every row but the second bad-input one reads a field of its own, and each field was set.
  EXPECT_EQ(values.size(), rows - 1);
  EXPECT_EQ(values.count(0), 0u);

  const std::string prometheus = m.RenderServerPrometheus(g);
  const std::string text = stats.ToString();
  VisitCounters(stats, [&](const CounterInfo& info, auto v) {
    const std::string sample = ExpectedSample(StoreStats{}, CounterPlace{}, info, v);
    EXPECT_NE(prometheus.find("\n" + sample), std::string::npos) << sample << prometheus;
    const std::string shown = FormatCounter(info, v);
    EXPECT_NE(text.find(" " + shown), std::string::npos) << shown << " not in: " << text;
  });
  // Names scrapers and tests/serve rely on.
  EXPECT_NE(prometheus.find("\ncxlkv_get_total{result=\"hit\"} " +
                            std::to_string(m.get_hits.load()) + "\n"),
            std::string::npos);
  EXPECT_NE(prometheus.find("\ncxlkv_connections_closed_total{reason=\"bad_input\"} " +
                            std::to_string(m.connections_closed_bad_input.load()) + "\n"),
            std::string::npos);
  EXPECT_NE(prometheus.find("\ncxlkv_request_duration_seconds_count{command=\"PUT\"} 0\n"),
            std::string::npos);
  EXPECT_TRUE(text.starts_with("server: PUT requests ")) << text;
  // A family's rows follow one another, the first with the family's help: one TYPE each.
  std::string_view family;
  for (const Counter<ServerStats>& c : Counters<ServerStats>()) {
    EXPECT_TRUE(c.info.metric == family || !c.info.help.empty()) << c.info.key;
    family = c.info.metric;
  }
  std::map<std::string, int> types;
  std::istringstream lines(prometheus);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("# TYPE ")) ++types[line.substr(7, line.find(' ', 7) - 7)];
  }
  for (const auto& [name, count] : types) EXPECT_EQ(count, 1) << name;
}

}  // namespace
}  // namespace cxlkv::serve
