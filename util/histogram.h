// LatencyHistogram: a lock-free histogram of durations in nanoseconds.
//
// Log-linear buckets (every power of two split into 8), so a percentile read back is within
// 12.5% of the true value over the whole range from 1 ns to centuries, in 4 KiB of counters.
// Record is a few relaxed atomic adds: cheap enough for every Put and Get.
//
// Thread-safety: Record and Summary may be called from any thread at any time; a Summary taken
// during Records sees some of them (each counter is exact, the set is not a snapshot).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "cxlkv/latency.h"

namespace cxlkv::internal {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 3;                    // 8 buckets per power of two
  static constexpr int kLinear = 2 << kSubBits;         // values below 16 get a bucket each
  static constexpr int kBuckets = kLinear + (64 - kSubBits - 1) * (1 << kSubBits);

  void Record(std::uint64_t ns);
  LatencySummary Summary() const;
  // Values recorded in buckets that end at or below `bound` (a bound inside a bucket leaves
  // that bucket out: exact to within 12.5%), for the cumulative buckets of a Prometheus
  // histogram; and the sum of every value recorded.
  std::uint64_t CountAtMost(std::uint64_t bound) const;
  std::uint64_t Sum() const { return sum_.load(std::memory_order_relaxed); }

  // The bucket a value falls in, and the largest value of a bucket (exposed for the tests).
  static int BucketOf(std::uint64_t ns);
  static std::uint64_t BucketUpperBound(int bucket);

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> max_{0};
};

}  // namespace cxlkv::internal
