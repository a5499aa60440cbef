// ServerMetrics: what `cxlkv serve` counts, and its Prometheus text rendering together with
// the store's own statistics (every counter of cxlkv/store_counters.h).
//
// Thread-safety: counters and histograms are atomic; every member function is thread-safe.
#pragma once

#include <array>
#include <span>
#include <atomic>
#include <cstdint>
#include <string>

#include "cxlkv/store.h"
#include "cxlkv/store_counters.h"
#include "server/protocol.h"
#include "util/histogram.h"

namespace cxlkv::serve {

// What the server holds now, read when metrics are rendered.
struct ServerGauges {
  std::size_t reserved_bytes = 0;      // slots reserved by PUTs being received
  std::size_t max_reserved_bytes = 0;
  std::size_t reply_bytes = 0;         // chunks pinned and LIST copies held by unsent replies
  std::size_t max_reply_bytes = 0;
  std::size_t max_connections = 0;
  std::uint64_t log_lines_dropped = 0;
};

// ServerMetrics' counters and the gauges as plain numbers (each read once, one after
// another): what the rows of Counters<ServerStats>() (server/metrics.cc) read, and so what
// /metrics and the text show. A value: not shared between threads.
struct ServerStats {
  std::uint64_t requests_put = 0, requests_get = 0, requests_exist = 0, requests_list = 0,
                requests_health = 0;
  std::uint64_t get_hits = 0, get_misses = 0, gets_over_budget = 0, gets_pinned_off_loop = 0;
  std::uint64_t exist_hits = 0, exist_misses = 0;
  std::uint64_t puts_stored = 0, puts_already_stored = 0, puts_refused = 0, puts_over_budget = 0;
  std::uint64_t bytes_received = 0, bytes_sent = 0;
  std::uint64_t connections_accepted = 0, connections_open = 0;
  std::uint64_t connections_closed_bad_input = 0, connections_closed_timeout = 0,
                connections_closed_idle = 0, connections_replaced = 0;
  std::uint64_t connections_refused = 0, max_connections = 0, accept_failures = 0;
  std::uint64_t reserved_bytes = 0, max_reserved_bytes = 0, reply_bytes = 0, max_reply_bytes = 0;
  std::uint64_t lists_truncated = 0, lists_over_budget = 0;
  std::uint64_t log_lines_dropped = 0, metrics_clients_dropped = 0;
  std::string ToString() const;  // "server: PUT requests 3, ...\n"
};

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
  // Budgets and limits (docs/security.md): what was refused or cut, and why.
  std::atomic<std::uint64_t> puts_over_budget{0};   // dropped: max_reserved_bytes was reached
  std::atomic<std::uint64_t> gets_over_budget{0};   // answered as a miss: max_reply_bytes reached
  std::atomic<std::uint64_t> gets_pinned_off_loop{0};  // pinned by a reader thread (a tier read through I/O)
  std::atomic<std::uint64_t> lists_over_budget{0};  // answered FAIL: max_reply_bytes reached
  std::atomic<std::uint64_t> lists_truncated{0};    // cut at max_list_bytes
  std::atomic<std::uint64_t> connections_closed_timeout{0};  // a deadline or the minimum rate
  std::atomic<std::uint64_t> connections_closed_idle{0};
  std::atomic<std::uint64_t> connections_refused{0};   // over max_connections(_per_peer)
  std::atomic<std::uint64_t> connections_replaced{0};  // idle ones closed for a new one
  std::atomic<std::uint64_t> accept_failures{0};       // accept() errors (out of descriptors)
  std::atomic<std::uint64_t> metrics_clients_dropped{0};  // scrapes cut: slow, or too many

  ServerStats Snapshot(const ServerGauges& gauges) const;

  // The Prometheus text exposition (version 0.0.4) of these counters, the gauges and
  // store.Stats().
  std::string RenderPrometheus(const Store& store, const ServerGauges& gauges) const;
  // The server's part of it: these counters, the gauges and the request latency histograms.
  std::string RenderServerPrometheus(const ServerGauges& gauges) const;
};

// The Prometheus text of a store's statistics: every row of cxlkv/store_counters.h, per tier
// (`tier="dram"`), store-wide, the prefetcher's, and per timed operation (`op="put"`).
std::string RenderStorePrometheus(const StoreStats& stats);

}  // namespace cxlkv::serve

namespace cxlkv {
template <>
std::span<const Counter<serve::ServerStats>> Counters<serve::ServerStats>();
}  // namespace cxlkv
