#include "util/histogram.h"

#include <bit>

namespace cxlkv::internal {

int LatencyHistogram::BucketOf(std::uint64_t ns) {
  if (ns < kLinear) return static_cast<int>(ns);
  const int exponent = static_cast<int>(std::bit_width(ns)) - 1;  // >= kSubBits + 1
  const int sub = static_cast<int>((ns >> (exponent - kSubBits)) & ((1 << kSubBits) - 1));
  return kLinear + (exponent - kSubBits - 1) * (1 << kSubBits) + sub;
}

std::uint64_t LatencyHistogram::BucketUpperBound(int bucket) {
  if (bucket < kLinear) return static_cast<std::uint64_t>(bucket);
  const int group = (bucket - kLinear) >> kSubBits;
  const int sub = (bucket - kLinear) & ((1 << kSubBits) - 1);
  const int exponent = group + kSubBits + 1;
  const std::uint64_t step = std::uint64_t{1} << (exponent - kSubBits);
  const std::uint64_t low = (std::uint64_t{1} << exponent) + static_cast<std::uint64_t>(sub) * step;
  return low + (step - 1);  // the top bucket ends at UINT64_MAX without overflowing
}

void LatencyHistogram::Record(std::uint64_t ns) {
  counts_[static_cast<std::size_t>(BucketOf(ns))].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(ns, std::memory_order_relaxed);
  std::uint64_t seen = max_.load(std::memory_order_relaxed);
  while (ns > seen && !max_.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
  }
}

std::uint64_t LatencyHistogram::CountAtMost(std::uint64_t bound) const {
  std::uint64_t n = 0;
  for (int b = 0; b < kBuckets && BucketUpperBound(b) <= bound; ++b) {
    n += counts_[static_cast<std::size_t>(b)].load(std::memory_order_relaxed);
  }
  return n;
}

LatencySummary LatencyHistogram::Summary() const {
  std::array<std::uint64_t, kBuckets> counts;
  std::uint64_t total = 0;
  for (int b = 0; b < kBuckets; ++b) {
    counts[static_cast<std::size_t>(b)] = counts_[static_cast<std::size_t>(b)].load(
        std::memory_order_relaxed);
    total += counts[static_cast<std::size_t>(b)];
  }
  LatencySummary s;
  s.count = total;
  if (total == 0) return s;
  s.mean_ns = static_cast<double>(sum_.load(std::memory_order_relaxed)) /
              static_cast<double>(count_.load(std::memory_order_relaxed));
  s.max_ns = max_.load(std::memory_order_relaxed);
  // The value at rank ceil(q * total): the upper bound of its bucket, capped by the maximum.
  auto at = [&](double q) {
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total));
    if (static_cast<double>(rank) < q * static_cast<double>(total)) ++rank;
    if (rank == 0) rank = 1;
    std::uint64_t seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += counts[static_cast<std::size_t>(b)];
      if (seen >= rank) return std::min(BucketUpperBound(b), s.max_ns);
    }
    return s.max_ns;
  };
  s.p50_ns = at(0.50);
  s.p90_ns = at(0.90);
  s.p99_ns = at(0.99);
  s.p999_ns = at(0.999);
  return s;
}

}  // namespace cxlkv::internal
