#include "options/store_schema.h"

#include <gtest/gtest.h>

#include "backends/pool/pool_format.h"
#include "tests/test_util.h"
#include "util/copy.h"

namespace cxlkv::options {
namespace {

constexpr std::size_t kSlab = std::size_t{64} << 10;

StoreOptions TwoDramTiers() {
  StoreOptions o;
  for (int i = 0; i < 2; ++i) {
    TierOptions t;
    t.source_spec = "dram";
    t.capacity = 16 * kSlab;
    o.tiers.push_back(std::move(t));
  }
  o.slab_size = kSlab;
  o.background_thread = false;
  return o;
}

Status SchemaSets(StoreOptions& o, std::string key, OptionValue value) {
  const NamedValue nv{key, std::move(value), key};
  return ApplyFlat(std::span(&nv, 1), o);
}

// A spill option through the flat keys, with the path they require.
Status SpillSchemaSets(StoreOptions& o, std::string key, std::int64_t value) {
  const std::vector<NamedValue> values = {{"spill_path", {o.spill.path}, "spill_path"},
                                          {key, {value}, key}};
  return ApplyFlat(values, o);
}

// The second tier, from the tier schema: its source and capacity, and one more key.
Status SecondTierSets(StoreOptions& o, std::string key, std::int64_t value) {
  const std::vector<NamedValue> values = {{"source", {std::string("dram")}, "source"},
                                          {"capacity", {std::string("1M")}, "capacity"},
                                          {key, {value}, key}};
  return Apply(TierSchema(), values, "", o.tiers[1]);
}

// The schema's ranges are the store's: what the schema takes, Store::Open takes; one past
// the limit, both refuse. (The store checks its own limits: backends/memory_tier.cc,
// backends/log_tier.cc, alloc/size_classes.cc, backends/spill/segment_log.cc.)
TEST(StoreSchemaTest, PromoteAfterHitsLimitIsTheStores) {
  StoreOptions at = TwoDramTiers();
  ASSERT_TRUE(SecondTierSets(at, "promote_after_hits", kMaxPromoteAfterHits).ok());
  EXPECT_TRUE(Store::Open(std::move(at)).ok());

  StoreOptions past = TwoDramTiers();
  const Status refused = SecondTierSets(past, "promote_after_hits", kMaxPromoteAfterHits + 1);
  EXPECT_EQ(refused.message(), "promote_after_hits is 64; it must be 0 to 63");
  past.tiers[1].promote_after_hits = kMaxPromoteAfterHits + 1;  // around the schema
  EXPECT_TRUE(Store::Open(std::move(past)).status().IsInvalidArgument());
}

TEST(StoreSchemaTest, SpillLimitsAreTheStores) {
  testing::TempDir dir;
  auto with_spill = [&] {
    StoreOptions o = TwoDramTiers();
    o.spill.path = dir.File("spill.log");
    o.spill.capacity = std::uint64_t{8} << 20;
    o.spill.segment_size = std::uint64_t{1} << 20;
    o.spill.format = true;
    return o;
  };
  StoreOptions at = with_spill();
  ASSERT_TRUE(SpillSchemaSets(at, "spill_promote_after_hits", kMaxPromoteAfterHits).ok());
  ASSERT_TRUE(SpillSchemaSets(at, "spill_queue_depth", kMinSpillQueueDepth).ok());
  EXPECT_TRUE(Store::Open(std::move(at)).ok());

  StoreOptions past = with_spill();
  EXPECT_FALSE(SpillSchemaSets(past, "spill_promote_after_hits", 64).ok());
  past.spill.promote_after_hits = 64;
  EXPECT_TRUE(Store::Open(std::move(past)).status().IsInvalidArgument());

  StoreOptions shallow = with_spill();
  EXPECT_EQ(SpillSchemaSets(shallow, "spill_queue_depth", kMinSpillQueueDepth - 1).message(),
            "spill_queue_depth is 1; it must be 2 to 4096");
  shallow.spill.queue_depth = static_cast<unsigned>(kMinSpillQueueDepth - 1);
  EXPECT_TRUE(Store::Open(std::move(shallow)).status().IsInvalidArgument());
}

TEST(StoreSchemaTest, SlabSizeLimitsAreTheStores) {
  for (const std::int64_t size : {kMinSlabSize, kMaxSlabSize}) {
    StoreOptions o = TwoDramTiers();
    ASSERT_TRUE(SchemaSets(o, "slab_size", {size}).ok()) << size;
    for (TierOptions& t : o.tiers) t.capacity = 2 * static_cast<std::size_t>(size);
    EXPECT_TRUE(Store::Open(std::move(o)).ok()) << size;
  }
  for (const std::int64_t size : {kMinSlabSize / 2, kMaxSlabSize * 2}) {
    StoreOptions o = TwoDramTiers();
    EXPECT_FALSE(SchemaSets(o, "slab_size", {size}).ok()) << size;
    o.slab_size = static_cast<std::size_t>(size);
    for (TierOptions& t : o.tiers) t.capacity = 2 * static_cast<std::size_t>(size);
    EXPECT_TRUE(Store::Open(std::move(o)).status().IsInvalidArgument()) << size;
  }
}

// The names the schema checks are those the store parses, and a name outside them the store
// refuses too.
TEST(StoreSchemaTest, ChoicesAreTheStoresNames) {
  const std::vector<std::string> durabilities = Durabilities();
  EXPECT_EQ(durabilities.size(), 3u);
  for (const std::string& d : durabilities) {
    EXPECT_TRUE(IsDurability(d));
    EXPECT_TRUE(internal::ParseDurability(d).ok()) << d;
  }
  EXPECT_FALSE(IsDurability("forever"));
  EXPECT_FALSE(internal::ParseDurability("forever").ok());
  const OptionInfo& copy = Find(TierSchema(), "copy")->info;
  for (std::string_view method : {"memcpy", "nt"}) {
    EXPECT_TRUE(IsChoice(copy, method));
    EXPECT_TRUE(ParseCopyMethod(method).ok()) << method;
  }
  EXPECT_TRUE(IsChoice(copy, "auto"));  // resolved by the tier (backends/memory_tier.cc)
  EXPECT_FALSE(IsChoice(copy, "fast"));
  EXPECT_FALSE(ParseCopyMethod("fast").ok());
  testing::TempDir dir;
  const OptionInfo& eviction = Find(SpillSchema(), "eviction")->info;
  for (std::string_view policy : {"fifo", "lru", "random"}) {
    StoreOptions o = TwoDramTiers();
    o.spill.path = dir.File("spill.log");
    o.spill.capacity = std::uint64_t{8} << 20;
    o.spill.segment_size = std::uint64_t{1} << 20;
    o.spill.format = true;
    o.spill.eviction = std::string(policy);
    EXPECT_EQ(Store::Open(std::move(o)).ok(), IsChoice(eviction, policy)) << policy;
  }
}

TEST(StoreSchemaTest, FlatKeysAreTheStoreKeysAndThePrefixedSpillKeys) {
  StoreOptions o;
  const std::vector<NamedValue> values = {
      {"ttl_seconds", {std::string("60")}, "ttl_seconds"},
      {"spill_path", {std::string("/tmp/x")}, "spill_path"},
      {"spill_segment_size", {std::string("1M")}, "spill_segment_size"}};
  ASSERT_TRUE(ApplyFlat(values, o).ok());
  EXPECT_EQ(o.ttl.count(), 60);
  EXPECT_EQ(o.spill.path, "/tmp/x");
  EXPECT_EQ(o.spill.segment_size, std::uint64_t{1} << 20);

  const std::string unknown = SchemaSets(o, "spill_size", {std::int64_t{1}}).message();
  EXPECT_EQ(unknown.find("unknown key spill_size (known: slab_size, "), 0u) << unknown;
  EXPECT_NE(unknown.find("spill_capacity"), std::string::npos) << unknown;
  StoreOptions no_path;
  EXPECT_EQ(SchemaSets(no_path, "spill_capacity", {std::int64_t{1}}).message(),
            "spill_path is required");
}

TEST(StoreSchemaTest, DescribeListsEveryTableAndLeavesTheStoresChoicesOut) {
  StoreOptions o = TwoDramTiers();
  o.tiers[1].promote_after_hits = 3;
  const std::string text = DescribeStoreOptions(o);
  EXPECT_NE(text.find("[store]\nslab_size = 65536\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n[[tier]]\nsource = \"dram\"\ncapacity = 1048576\n"), std::string::npos);
  EXPECT_NE(text.find("promote_after_hits = 3\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("high_watermark"), std::string::npos) << text;  // left to the store
  EXPECT_EQ(text.find("[spill]"), std::string::npos) << text;
  const std::string help = StoreOptionsHelp();
  for (std::string_view heading : {"[store]", "[[tier]]", "[spill]"}) {
    EXPECT_NE(help.find(heading), std::string::npos) << heading;
  }
  EXPECT_NE(help.find("  promote_after_hits (0..63"), std::string::npos) << help;
}

}  // namespace
}  // namespace cxlkv::options
