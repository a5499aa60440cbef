// What `cxlkv demo` did, and its two renderings: compact text for people, JSON for scripts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cxlkv/store.h"
#include "tools/cxlkv/demo_replay.h"

namespace cxlkv::cli {

struct DemoReport {
  // Where the requests came from: a trace file, or the synthetic generator and why.
  std::string trace_path;  // empty for the synthetic trace
  std::string trace_note;  // one line: which paths were tried before falling back
  std::uint64_t seed = 0;  // of the synthetic trace

  std::string model;
  std::uint64_t bytes_per_token = 0;
  std::uint32_t chunk_tokens = 0;
  std::uint64_t full_chunk_bytes = 0;
  std::string eviction;

  ReplayResult replay;
  StoreStats stats;

  std::string dir;  // the scratch directory of the file tier
  bool kept = false;
  double elapsed_seconds = 0;
};

// A tier's labels and counters, and the store-wide rest of StoreStats (its counters,
// "prefetch", "put_latency", ...), keyed as cxlkv/store_counters.h names them.
nlohmann::ordered_json TierJson(const TierStats& tier);
nlohmann::ordered_json StoreJson(const StoreStats& stats);

std::string FormatDemoReport(const DemoReport& report);
nlohmann::ordered_json DemoReportToJson(const DemoReport& report);

}  // namespace cxlkv::cli
