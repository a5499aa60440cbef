// The store's options schema: every option of StoreOptions, TierOptions and SpillOptions that
// a user can give, described once (key, type, range, default, doc). The TOML file of
// `cxlkv serve` ([store], [[tier]], [spill]), its --tier/--spill/--store flags, the Python
// binding (cxlkv.open) and LMCache's settings (extra_config cxlkv.*, the MP connector's
// adapter_params) all parse through these tables; see options/option_schema.h.
//
// Ranges are the store's own: an option the schema accepts is one Store::Open accepts (pinned
// by store_schema_test.cc against a real Store::Open), so an out-of-range value is refused
// where it was written, naming its key, instead of later by the store.
//
// Thread-safety: functions only; all are thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/store.h"
#include "options/option_schema.h"

namespace cxlkv::options {

// Limits the store enforces (backends/memory_tier.cc, backends/log_tier.cc: a chunk's read counter
// saturates at 63; alloc/size_classes.cc; backends/spill/segment_log.cc).
inline constexpr int kMaxPromoteAfterHits = 63;
inline constexpr std::int64_t kMinSlabSize = std::int64_t{64} << 10;
inline constexpr std::int64_t kMaxSlabSize = std::int64_t{32} << 20;
inline constexpr std::int64_t kMinSpillQueueDepth = 2;
inline constexpr std::int64_t kMaxSpillQueueDepth = 4096;
inline constexpr std::int64_t kMaxSegmentSize = std::int64_t{4} << 30;

// [store]: slab_size, chunk_sizes, ttl_seconds, copy_threads, background.
Schema<StoreOptions> StoreSchema();
// [[tier]]: source and capacity (required), name, eviction, watermarks, promote_after_hits,
// copy, durability, format, flush_interval_ms.
Schema<TierOptions> TierSchema();
// [spill]: path (required), capacity, segment_size, queue_depth, read_bytes_in_flight, write_unit,
// direct_io, eviction, promote_after_hits, format.
Schema<SpillOptions> SpillSchema();

// Whether `word` is one of TierOptions::durability's values (flag and string forms tell a
// durability from an eviction policy by it).
bool IsDurability(std::string_view word);
std::vector<std::string> Durabilities();

// The flat form the Python routes use (keyword arguments, LMCache's settings): the [store]
// keys as they are and the [spill] keys prefixed "spill_" (spill_path, spill_capacity, ...).
// Tiers are given apart. An unknown key is refused naming it, with the flat keys listed.
Status ApplyFlat(std::span<const NamedValue> values, StoreOptions& options);
std::vector<std::string> FlatKeys();

// The options as a TOML file `cxlkv serve --config` reads back to the same options: [store],
// one [[tier]] each, [spill] when it has a path. Tiers given as a MemorySource object (not a
// spec) show no source.
std::string DescribeStoreOptions(const StoreOptions& options);

// Help for the three tables, one line per option, under their TOML headings.
std::string StoreOptionsHelp();

}  // namespace cxlkv::options
