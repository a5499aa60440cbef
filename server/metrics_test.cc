#include "server/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
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
  if (!info.quantile.empty()) labels += ",quantile=\"" + std::string(info.quantile) + "\"";
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

}  // namespace
}  // namespace cxlkv::serve
