// LatencySummary: what a latency histogram reports of the durations it recorded.
//
// Its own header because the histogram that produces it (util/, the lowest layer) must not
// include the store's API to name it.
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>

namespace cxlkv {

// Durations of operations, in nanoseconds, from a log-linear histogram (within 12.5%).
struct LatencySummary {
  std::uint64_t count = 0;
  double mean_ns = 0;
  std::uint64_t p50_ns = 0;
  std::uint64_t p90_ns = 0;
  std::uint64_t p99_ns = 0;
  std::uint64_t p999_ns = 0;
  std::uint64_t max_ns = 0;
};

}  // namespace cxlkv
