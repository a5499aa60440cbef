// What `cxlkv demo` did, and its two renderings: text for people, JSON for scripts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cxlkv/memory_source.h"
#include "cxlkv/slab_allocator.h"
#include "tools/cxlkv/demo_tier.h"

namespace cxlkv::cli {

struct TierReport {
  std::string source;  // RegionInfo::ToString()
  PersistGranularity persistence = PersistGranularity::kNone;
  std::uint64_t capacity_bytes = 0;
  TierCounters counters;
  SlabAllocatorStats slabs;
};

struct DemoReport {
  std::string model;
  std::uint64_t bytes_per_token = 0;
  std::uint64_t full_chunk_bytes = 0;
  std::uint64_t seed = 0;

  std::uint64_t requests = 0;
  std::uint64_t min_prompt_tokens = 0;
  std::uint64_t max_prompt_tokens = 0;
  std::uint64_t total_prompt_tokens = 0;

  std::uint64_t chunks = 0;      // chunk lookups over all requests
  std::uint64_t stored = 0;      // written once, to some tier
  std::uint64_t stored_bytes = 0;
  std::uint64_t dedup_hits = 0;  // already stored by an earlier request (shared prefix)
  std::uint64_t dropped = 0;     // both tiers full
  std::uint64_t dropped_bytes = 0;
  std::uint64_t verified = 0;    // read back with a matching checksum
  std::uint64_t mismatches = 0;

  double memcpy_gbps = 0;  // DRAM-to-DRAM memcpy of chunk-sized copies, this run
  std::vector<TierReport> tiers;

  std::string dir;  // the temporary directory of the file tier
  bool kept = false;
  double elapsed_seconds = 0;
};

// Decimal gigabytes per second; 0 when nothing was timed.
double GigabytesPerSecond(std::uint64_t bytes, double seconds);

std::string FormatDemoReport(const DemoReport& report);
nlohmann::ordered_json DemoReportToJson(const DemoReport& report);

}  // namespace cxlkv::cli
