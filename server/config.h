// ServeConfig: what `cxlkv serve --config FILE` reads: the store's tiers, capacities and
// policies, the spill tier, and the server's addresses and limits, from a TOML file.
//
//   [server]        host, port, unix_socket, threads, max_payload, metrics_port, metrics_host,
//                   request_timeout_ms, reply_timeout_ms, idle_timeout_ms, min_transfer_rate,
//                   max_reserved_bytes, max_reply_bytes, max_connections,
//                   max_connections_per_peer, max_list_bytes, log_lines_per_second
//                   (the budgets: ServerOptions, docs/security.md)
//   [store]         slab_size, chunk_sizes, ttl_seconds, copy_threads
//   [[tier]]        name, source ("dram", "numa:1", "file:/path", "devdax:/dev/dax0.0"),
//                   capacity, eviction, high_watermark, low_watermark, promote_after_hits,
//                   copy, persist      (fastest first; one table per tier)
//   [spill]         path, capacity, segment_size, queue_depth, direct_io, eviction,
//                   promote_after_hits
//
// Sizes are integers (bytes) or strings with binary units ("2M", "1.5GiB"). An unknown table
// or key, a wrong type or a value out of range is an error naming the key and the file.
//
// Thread-safety: functions only; all are thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "cxlkv/status.h"
#include "cxlkv/store.h"
#include "server/server.h"

namespace cxlkv::serve {

struct ServeConfig {
  StoreOptions store;   // tiers empty when the file lists none
  ServerOptions server;
};

// Parses TOML text; `origin` names it in errors (the file's path). Starts from `defaults`, so
// a file gives only what it changes.
Result<ServeConfig> ParseServeConfig(std::string_view text, const std::string& origin,
                                     ServeConfig defaults);
// Reads and parses a file.
Result<ServeConfig> LoadServeConfig(const std::string& path, ServeConfig defaults);

}  // namespace cxlkv::serve
