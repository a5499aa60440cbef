#include "util/histogram.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

namespace cxlkv::internal {
namespace {

TEST(LatencyHistogramTest, BucketsAreContiguousAndWithinOneEighth) {
  // Every value lands in a bucket whose bound is at or above it and less than 12.5% above.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t v = rng() >> (rng() % 64);
    const int b = LatencyHistogram::BucketOf(v);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, LatencyHistogram::kBuckets);
    const std::uint64_t hi = LatencyHistogram::BucketUpperBound(b);
    ASSERT_GE(hi, v);
    if (b > 0) {
      ASSERT_LT(LatencyHistogram::BucketUpperBound(b - 1), v) << v;
    }
    ASSERT_LE(static_cast<double>(hi - v), static_cast<double>(v) / 8.0 + 1) << v;
  }
  EXPECT_EQ(LatencyHistogram::BucketOf(std::numeric_limits<std::uint64_t>::max()),
            LatencyHistogram::kBuckets - 1);
  EXPECT_EQ(LatencyHistogram::BucketUpperBound(LatencyHistogram::kBuckets - 1),
            std::numeric_limits<std::uint64_t>::max());
}

TEST(LatencyHistogramTest, PercentilesOfAKnownDistribution) {
  LatencyHistogram h;
  EXPECT_EQ(h.Summary().count, 0u);
  // 1..1000 ns once each: p50 = 500, p99 = 990, within the bucket width.
  for (std::uint64_t v = 1; v <= 1000; ++v) h.Record(v);
  const LatencySummary s = h.Summary();
  EXPECT_EQ(s.count, 1000u);
  EXPECT_DOUBLE_EQ(s.mean_ns, 500.5);
  EXPECT_EQ(s.max_ns, 1000u);
  EXPECT_GE(s.p50_ns, 500u);
  EXPECT_LE(s.p50_ns, 500u + 500u / 8);
  EXPECT_GE(s.p99_ns, 990u);
  EXPECT_LE(s.p99_ns, 1000u);
  EXPECT_LE(s.p999_ns, 1000u);
  EXPECT_LE(s.p50_ns, s.p90_ns);
}

TEST(LatencyHistogramTest, ConcurrentRecordsAreAllCounted) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 20000; ++i) h.Record(static_cast<std::uint64_t>(100 * (t + 1)));
    });
  }
  for (auto& th : threads) th.join();
  const LatencySummary s = h.Summary();
  EXPECT_EQ(s.count, 80000u);
  EXPECT_EQ(s.max_ns, 400u);
  EXPECT_DOUBLE_EQ(s.mean_ns, 250.0);
}

}  // namespace
}  // namespace cxlkv::internal

namespace cxlkv::internal {
namespace {

TEST(LatencyHistogramTest, CountAtMostIsCumulative) {
  LatencyHistogram h;
  for (std::uint64_t ns : {5ull, 1000ull, 1000ull, 100000ull, 10000000ull}) h.Record(ns);
  EXPECT_EQ(h.CountAtMost(0), 0u);
  EXPECT_EQ(h.CountAtMost(5), 1u);
  EXPECT_EQ(h.CountAtMost(2000), 3u);
  EXPECT_EQ(h.CountAtMost(200000), 4u);
  EXPECT_EQ(h.CountAtMost(UINT64_MAX), 5u);
  EXPECT_EQ(h.Sum(), 5u + 2000u + 100000u + 10000000u);
}

}  // namespace
}  // namespace cxlkv::internal
