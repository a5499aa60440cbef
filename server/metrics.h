// ServerMetrics: what `cxlkv serve` counts, and its Prometheus text rendering together with
// the store's own statistics (per tier: hits, bytes, chunks, evictions; misses; latencies).
//
// Thread-safety: counters and histograms are atomic; every member function is thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "cxlkv/store.h"
#include "server/protocol.h"
#include "util/histogram.h"

namespace cxlkv::serve {

struct ServerMetrics {
  static constexpr std::size_t kCommands = 6;  // indexed by Command value; 0 unused
  static std::size_t Index(Command c) { return static_cast<std::size_t>(c); }

  std::array<std::atomic<std::uint64_t>, kCommands> requests{};
  std::array<internal::LatencyHistogram, kCommands> latency;  // header in to reply out
  std::atomic<std::uint64_t> get_hits{0};
  std::atomic<std::uint64_t> get_misses{0};
  std::atomic<std::uint64_t> exist_hits{0};
  std::atomic<std::uint64_t> exist_misses{0};
  std::atomic<std::uint64_t> puts_stored{0};
  std::atomic<std::uint64_t> puts_already_stored{0};  // write once: the payload was dropped
  std::atomic<std::uint64_t> puts_refused{0};         // the store said no (full, too large)
  std::atomic<std::uint64_t> bytes_received{0};       // PUT payload bytes
  std::atomic<std::uint64_t> bytes_sent{0};           // GET and LIST payload bytes
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> connections_closed_bad_input{0};

  // The Prometheus text exposition (version 0.0.4) of these counters and of store.Stats().
  std::string RenderPrometheus(const Store& store) const;
};

}  // namespace cxlkv::serve
