// The working-set-size sweep of `cxlkv bench wss`: the CXL-SSD study (LMCache on an emulated
// CXL-SSD) redone on cxlkv's store, at a chosen scale.
//
// For every configuration and working-set size: open a store with one tier (DRAM, or the
// emulated CXL-SSD), put the working set (128 KiB chunks by default) with the device's timing
// off, then retrieve the whole set in passes with one batched get each (the order announced,
// as LMCache retrieves a prefix), timing on. The first pass warms up (it also writes back
// what the puts left dirty); the measured passes follow. Every chunk is then read back with
// timing off and compared with what was put.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cxlkv/cxl_ssd.h"
#include "cxlkv/prefetcher.h"
#include "cxlkv/status.h"

namespace cxlkv::cli {

// One line of the sweep: "dram", "none" (emulated, no prefetch), "nextN" (device prefetch),
// "host" (host prefetch), "host+nextN"; with "ceiling:" in front, the same with NAND latencies 0.
struct WssConfig {
  std::string name;
  bool dram = false;
  unsigned next_n = 0;
  bool host = false;
  bool ceiling = false;
  static Result<WssConfig> Parse(const std::string& name);
};

struct WssOptions {
  std::vector<std::uint64_t> wss;  // bytes, ascending
  std::uint64_t chunk = 128 << 10;
  CxlSsdOptions device;            // capacity must hold the largest working set
  PrefetchOptions prefetch;
  unsigned copy_threads = 2;
  unsigned min_passes = 1;         // measured passes at least
  double min_seconds = 0.3;        // and at least this long in all
  unsigned max_passes = 30;
};

struct WssResult {
  std::string config;
  std::uint64_t wss = 0;
  double warmup_seconds = 0;
  double median_seconds = 0;       // median over measured passes: retrieve time of the set
  unsigned passes = 0;
  double mb_per_s() const { return median_seconds > 0 ? static_cast<double>(wss) / median_seconds / 1e6 : 0; }
  CxlSsdStats device;              // over the measured passes (zeros for dram)
  PrefetchStats prefetch;
  std::uint64_t chunks_verified = 0;
  std::uint64_t chunks_bad = 0;
};

using WssProgress = std::function<void(const std::string& config, std::uint64_t wss)>;

// Runs one configuration at one working-set size; `device` is null for "dram".
Result<WssResult> RunWssPoint(const WssConfig& config, std::uint64_t wss,
                              const std::shared_ptr<CxlSsd>& device, const WssOptions& options);

}  // namespace cxlkv::cli
