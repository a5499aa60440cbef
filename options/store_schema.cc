#include "options/store_schema.h"

#include <chrono>
#include <climits>
#include <type_traits>

namespace cxlkv::options {
namespace {

using T = OptionType;

// TierOptions::durability's values, which the store parses (backends/tier.cc).
constexpr std::string_view kDurabilities = "volatile|persist-on-put|background";

std::optional<OptionValue> Int(std::int64_t n) { return OptionValue{n}; }
std::optional<OptionValue> Size(std::uint64_t n) {
  return OptionValue{static_cast<std::int64_t>(n)};
}
std::optional<OptionValue> Flag(bool b) { return OptionValue{b}; }
std::optional<OptionValue> Text(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return OptionValue{s};
}
template <typename N>
std::optional<OptionValue> Maybe(const std::optional<N>& v) {
  if (!v) return std::nullopt;
  if constexpr (std::is_floating_point_v<N>) {
    return OptionValue{static_cast<double>(*v)};
  } else {
    return OptionValue{static_cast<std::int64_t>(*v)};
  }
}

const OptionSpec<StoreOptions> kStore[] = {
    {{"slab_size", T::kBytes, "the unit tiers are carved in; a power of two", kMinSlabSize,
      kMaxSlabSize},
     [](StoreOptions& o, const CheckedValue& v) { o.slab_size = v.bytes; },
     [](const StoreOptions& o) { return Size(o.slab_size); }},
    {{"chunk_sizes", T::kSizeList,
      "chunk sizes given exact slot classes (no waste); others get geometric classes"},
     [](StoreOptions& o, const CheckedValue& v) {
       o.chunk_sizes.assign(v.sizes.begin(), v.sizes.end());
     },
     [](const StoreOptions& o) -> std::optional<OptionValue> {
       std::vector<OptionValue> list;
       for (std::size_t s : o.chunk_sizes) {
         // Emplaced in place: moving a temporary variant trips GCC 12's -Wmaybe-uninitialized.
         list.emplace_back().v.emplace<std::int64_t>(static_cast<std::int64_t>(s));
       }
       return OptionValue{list};
     }},
    {{"ttl_seconds", T::kInteger, "time to live of every chunk from its put; 0 never expires", 0,
      INT32_MAX},
     [](StoreOptions& o, const CheckedValue& v) { o.ttl = std::chrono::seconds(v.integer); },
     [](const StoreOptions& o) { return Int(o.ttl.count()); }},
    {{"copy_threads", T::kInteger, "threads that run batched gets and puts", 1, 1024},
     [](StoreOptions& o, const CheckedValue& v) {
       o.copy_threads = static_cast<unsigned>(v.integer);
     },
     [](const StoreOptions& o) { return Int(o.copy_threads); }},
    {{"background", T::kBool,
      "demote, promote and expire on a background thread (false: only in Maintain)"},
     [](StoreOptions& o, const CheckedValue& v) { o.background_thread = v.flag; },
     [](const StoreOptions& o) { return Flag(o.background_thread); }},
};

const OptionSpec<TierOptions> kTier[] = {
    {{.key = "source",
      .type = T::kString,
      .doc = "dram, numa:N, file:PATH or devdax:PATH",
      .required = true},
     [](TierOptions& t, const CheckedValue& v) { t.source_spec = v.text; },
     [](const TierOptions& t) { return Text(t.source_spec); }},
    {{.key = "capacity",
      .type = T::kBytes,
      .doc = "bytes mapped for the tier; at least one slab",
      .min = 1,
      .required = true},
     [](TierOptions& t, const CheckedValue& v) { t.capacity = v.bytes; },
     [](const TierOptions& t) -> std::optional<OptionValue> {
       return t.capacity == 0 ? std::nullopt : Size(t.capacity);
     }},
    {{"name", T::kString, "the tier's name in stats and errors (default tier<i>)"},
     [](TierOptions& t, const CheckedValue& v) { t.name = v.text; },
     [](const TierOptions& t) { return Text(t.name); }},
    {{"eviction", T::kString, "lru, fifo, lfu, s3fifo, prefix-chains, prefix or prefix-hazard"},
     [](TierOptions& t, const CheckedValue& v) { t.eviction = v.text; },
     [](const TierOptions& t) { return Text(t.eviction); }},
    {{"high_watermark", T::kFraction,
      "demotion starts above this share of the capacity (0.95; last tier 1.0)"},
     [](TierOptions& t, const CheckedValue& v) { t.high_watermark = v.fraction; },
     [](const TierOptions& t) { return Maybe(t.high_watermark); }},
    {{"low_watermark", T::kFraction, "and stops at this share (0.85; last tier 1.0)"},
     [](TierOptions& t, const CheckedValue& v) { t.low_watermark = v.fraction; },
     [](const TierOptions& t) { return Maybe(t.low_watermark); }},
    {{"promote_after_hits", T::kInteger,
      "reads in this tier that move a chunk to the first tier; 0 never (2; first and last "
      "tier 0)",
      0, kMaxPromoteAfterHits},
     [](TierOptions& t, const CheckedValue& v) {
       t.promote_after_hits = static_cast<int>(v.integer);
     },
     [](const TierOptions& t) { return Maybe(t.promote_after_hits); }},
    {{.key = "copy",
      .type = T::kString,
      .doc = "how bytes are copied into the tier",
      .choices = "auto|memcpy|nt"},
     [](TierOptions& t, const CheckedValue& v) { t.copy = v.text; },
     [](const TierOptions& t) { return Text(t.copy); }},
    {{.key = "durability",
      .type = T::kString,
      .doc = "whether chunks survive a restart (file and devdax tiers): docs/persistence.md",
      .choices = kDurabilities},
     [](TierOptions& t, const CheckedValue& v) { t.durability = v.text; },
     [](const TierOptions& t) { return Text(t.durability); }},
    {{"format", T::kBool, "a durable tier starts empty, overwriting the pool it finds"},
     [](TierOptions& t, const CheckedValue& v) { t.format = v.flag; },
     [](const TierOptions& t) { return Flag(t.format); }},
    {{"flush_interval_ms", T::kInteger, "durability background: the flusher's period", 1, 3600000},
     [](TierOptions& t, const CheckedValue& v) {
       t.flush_interval = std::chrono::milliseconds(v.integer);
     },
     [](const TierOptions& t) { return Int(t.flush_interval.count()); }},
};

const OptionSpec<SpillOptions> kSpill[] = {
    {{.key = "path",
      .type = T::kString,
      .doc = "a file (created when missing) or a block device",
      .required = true},
     [](SpillOptions& s, const CheckedValue& v) { s.path = v.text; },
     [](const SpillOptions& s) { return Text(s.path); }},
    {{"capacity", T::kBytes, "bytes to use; 0: the device's size (a new file needs one)"},
     [](SpillOptions& s, const CheckedValue& v) { s.capacity = v.bytes; },
     [](const SpillOptions& s) { return Size(s.capacity); }},
    {{"segment_size", T::kBytes,
      "the log's unit of eviction: a multiple of 4 KiB from 64 KiB; 0: 64 MiB", 0, kMaxSegmentSize},
     [](SpillOptions& s, const CheckedValue& v) { s.segment_size = v.bytes; },
     [](const SpillOptions& s) { return Size(s.segment_size); }},
    {{"queue_depth", T::kInteger, "I/Os in flight for appends and batched reads",
      kMinSpillQueueDepth, kMaxSpillQueueDepth},
     [](SpillOptions& s, const CheckedValue& v) {
       s.queue_depth = static_cast<unsigned>(v.integer);
     },
     [](const SpillOptions& s) { return Int(s.queue_depth); }},
    {{"read_bytes_in_flight", T::kBytes,
      "bytes of batched reads at the device at once; 0: queue_depth alone limits them"},
     [](SpillOptions& s, const CheckedValue& v) { s.read_bytes_in_flight = v.bytes; },
     [](const SpillOptions& s) { return Size(s.read_bytes_in_flight); }},
    {{"write_unit", T::kBytes,
      "appends cover whole units of this many bytes of the disk: a power of two from 4 KiB to "
      "256 KiB; 0: none",
      0, 256 << 10},
     [](SpillOptions& s, const CheckedValue& v) {
       s.write_unit = static_cast<std::uint32_t>(v.bytes);
     },
     [](const SpillOptions& s) { return Size(s.write_unit); }},
    {{"direct_io", T::kBool, "O_DIRECT where the file system takes it"},
     [](SpillOptions& s, const CheckedValue& v) { s.direct_io = v.flag; },
     [](const SpillOptions& s) { return Flag(s.direct_io); }},
    {{.key = "eviction",
      .type = T::kString,
      .doc = "which whole segment goes",
      .choices = "fifo|lru"},
     [](SpillOptions& s, const CheckedValue& v) { s.eviction = v.text; },
     [](const SpillOptions& s) { return Text(s.eviction); }},
    {{"promote_after_hits", T::kInteger,
      "reads of a spilled chunk that copy it back to the first tier; 0 never", 0,
      kMaxPromoteAfterHits},
     [](SpillOptions& s, const CheckedValue& v) {
       s.promote_after_hits = static_cast<int>(v.integer);
     },
     [](const SpillOptions& s) { return Int(s.promote_after_hits); }},
    {{"format", T::kBool, "start empty, overwriting what the path holds"},
     [](SpillOptions& s, const CheckedValue& v) { s.format = v.flag; },
     [](const SpillOptions& s) { return Flag(s.format); }},
};

constexpr std::string_view kSpillPrefix = "spill_";

}  // namespace

Schema<StoreOptions> StoreSchema() { return kStore; }

bool IsDurability(std::string_view word) {
  return IsChoice(Find(TierSchema(), "durability")->info, word);
}

std::vector<std::string> Durabilities() {
  std::vector<std::string> out;
  std::string_view rest = kDurabilities;
  for (std::size_t bar; (bar = rest.find('|')) != std::string_view::npos;
       rest.remove_prefix(bar + 1)) {
    out.emplace_back(rest.substr(0, bar));
  }
  out.emplace_back(rest);
  return out;
}
Schema<TierOptions> TierSchema() { return kTier; }
Schema<SpillOptions> SpillSchema() { return kSpill; }

std::vector<std::string> FlatKeys() {
  std::vector<std::string> keys;
  for (std::string_view k : Keys(StoreSchema())) keys.emplace_back(k);
  for (std::string_view k : Keys(SpillSchema()))
    keys.push_back(std::string(kSpillPrefix) + std::string(k));
  return keys;
}

Status ApplyFlat(std::span<const NamedValue> values, StoreOptions& options) {
  std::vector<NamedValue> store;
  std::vector<NamedValue> spill;
  for (const NamedValue& nv : values) {
    if (Find(StoreSchema(), nv.key) != nullptr) {
      store.push_back(nv);
    } else if (nv.key.starts_with(kSpillPrefix) &&
               Find(SpillSchema(), std::string_view(nv.key).substr(kSpillPrefix.size())) !=
                   nullptr) {
      spill.push_back(nv);
      spill.back().key.erase(0, kSpillPrefix.size());
    } else {
      const std::vector<std::string> keys = FlatKeys();
      return UnknownKey(nv.name, std::vector<std::string_view>(keys.begin(), keys.end()));
    }
  }
  CXLKV_RETURN_IF_ERROR(Apply(StoreSchema(), store, "", options));
  if (spill.empty()) return Status::Ok();
  return Apply(SpillSchema(), spill, std::string(kSpillPrefix), options.spill);
}

std::string DescribeStoreOptions(const StoreOptions& options) {
  std::string out = "[store]\n" + Describe(StoreSchema(), options);
  for (const TierOptions& t : options.tiers) out += "\n[[tier]]\n" + Describe(TierSchema(), t);
  if (!options.spill.path.empty()) out += "\n[spill]\n" + Describe(SpillSchema(), options.spill);
  return out;
}

std::string StoreOptionsHelp() {
  return "[store]\n" + Help(StoreSchema()) + "[[tier]] (one per tier, fastest first)\n" +
         Help(TierSchema()) + "[spill] (an NVMe log below the memory tiers)\n" +
         Help(SpillSchema());
}

}  // namespace cxlkv::options
