// ServeConfig: what `cxlkv serve --config FILE` reads: the store's tiers, capacities and
// policies, the spill tier, and the server's addresses and limits, from a TOML file.
//
//   [server]   the lm:// server (ServerOptions; the budgets: docs/security.md)
//   [store]    the store as a whole: slab_size, chunk_sizes, ttl_seconds, ...
//   [[tier]]   one table per tier, fastest first: source, capacity, eviction, durability, ...
//   [spill]    the NVMe spill log: path, capacity, segment_size, ...
//
// The keys, their types, ranges and defaults are the options schema's (server/server_schema.h,
// options/store_schema.h), the same the flags and the Python binding take; `cxlkv serve --help`
// lists them. Sizes are integers (bytes) or strings with binary units ("2M", "1.5GiB"). An
// unknown table or key, a wrong type or a value out of range is an error naming the key and
// the file.
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

// The configuration as a TOML file that parses back to it (`cxlkv serve --print-options`).
std::string DescribeServeConfig(const ServeConfig& config);

}  // namespace cxlkv::serve
