#include "tools/cxlkv/demo_report.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/store_stats_sample.h"

namespace cxlkv::cli {
namespace {

using testing::CounterPlace;

// `cxlkv demo --json` shows every counter of the store's statistics: a tier's in its entry of
// "tiers", the rest in "store" (the prefetcher's in "prefetch", a latency in "put_latency", ...).
TEST(DemoReportTest, JsonShowsEveryStoreCounter) {
  DemoReport report;
  report.stats = testing::DistinctStoreStats();
  const nlohmann::ordered_json json = DemoReportToJson(report);
  ASSERT_EQ(json.at("tiers").size(), 2u);
  testing::ForEachCounter(report.stats, [&](const CounterPlace& at, const CounterInfo& info,
                                            CounterValue value) {
    const nlohmann::ordered_json& where =
        at.tier >= 0   ? json.at("tiers").at(static_cast<std::size_t>(at.tier))
        : at.prefetch  ? json.at("store").at("prefetch")
        : at.op != nullptr ? json.at("store").at(std::string(at.op->key))
                           : json.at("store");
    const std::string key(info.key);
    ASSERT_TRUE(where.contains(key)) << key << " is not in " << where.dump();
    std::visit([&](auto v) { EXPECT_EQ(where.at(key).get<decltype(v)>(), v) << key; }, value);
    EXPECT_EQ(where.at(key).is_boolean(), std::holds_alternative<bool>(value)) << key;
  });
  const nlohmann::ordered_json& spill = json["tiers"][1];
  for (const TierLabel& label : TierLabels()) {
    EXPECT_EQ(spill.at(std::string(label.key)), report.stats.tiers[1].*label.field) << label.key;
  }
  EXPECT_EQ(json["store"]["text"], report.stats.ToString());
}

}  // namespace
}  // namespace cxlkv::cli
