// The working-set-size sweep of `cxlkv bench wss`: the CXL-SSD study (LMCache on an emulated
// CXL-SSD) redone on cxlkv's store, at a chosen scale, under time dilation.
//
// A bed is a store with one tier (DRAM, or an emulated CXL-SSD) holding a working set (128 KiB
// chunks by default), put with the device's timing off and then read once with timing off, so
// that the device cache and its dirty pages are as a pass leaves them. Configurations that
// differ only in device settings (next-N, latencies, D) run one after another on one bed.
// Every retrieve is one batched get in the set's order (as LMCache retrieves a prefix):
//   - Hit region (the set fits 90% of the device cache): whole passes at D = 1, one warm-up
//     first. There is nothing to dilate where nothing misses.
//   - Miss region: the set is scanned cyclically in segments, one batched get each, sized to
//     last about `segment_seconds` and at least 150 dilated NAND reads, at time dilation D.
//     Past the cache a cyclic scan misses on every page (FIFO, LRU), so a segment is a pass
//     in miniature; whole passes at D would take D times as long. Warm-up segments first.
// The figure reported is the median rate over the measured passes or segments. After its
// configurations a bed reads every chunk back with timing off and compares it with what was
// put. Ratios between configurations at the same D, and against the dilated NAND bound, are
// what the sweep is for (docs/cxl_ssd.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/cxl_ssd.h"
#include "cxlkv/prefetcher.h"
#include "cxlkv/status.h"

namespace cxlkv::cli {

// One line of the sweep: "dram", "none" (emulated, no prefetch), "nextN" (device prefetch),
// "host" (host prefetch), "host+nextN"; with "ceiling:" in front, the same with NAND latencies
// 0; with "@R" behind, with R readers (copy threads) instead of the sweep's.
struct WssConfig {
  std::string name;
  bool dram = false;
  unsigned next_n = 0;
  bool host = false;
  bool ceiling = false;
  unsigned readers = 0;  // 0: the sweep's
  static Result<WssConfig> Parse(const std::string& name);
};

struct WssOptions {
  std::vector<std::uint64_t> wss;  // bytes, ascending
  std::uint64_t chunk = 128 << 10;
  CxlSsdOptions device;            // capacity must hold the largest working set
  PrefetchOptions prefetch;
  unsigned readers = 2;            // copy threads of the store: readers of a batched get
  unsigned dilation = 1;           // D for the miss region
  bool convergence = true;         // rerun the goal configurations at 2D, largest set
  unsigned max_doublings = 2;      // and, while the goal ratios still move, at 4D
  unsigned passes = 5;             // measured passes or segments at least
  double min_seconds = 0.5;        // hit region: and at least this long in all
  double segment_seconds = 0.3;    // miss region: each segment about this long, and at least
                                   // 150 (dilated) NAND reads
  unsigned max_passes = 60;
};

// True when `wss` is measured as the miss region (segments at D) for this device cache.
bool WssMissRegion(std::uint64_t wss, std::uint64_t cache_bytes);

struct WssResult {
  std::string config;
  std::uint64_t wss = 0;
  unsigned dilation = 1;           // D it ran at
  unsigned readers = 0;
  bool miss_region = false;        // segments at D; else whole passes at D = 1
  bool convergence = false;        // a rerun at 2D, 4D, ...: the convergence check
  double mb_per_s = 0;             // median over measured passes or segments, wall clock
  double device_mb_per_s() const { return mb_per_s * dilation; }  // in the device's time
  unsigned passes = 0;
  std::uint64_t bytes_measured = 0;
  CxlSsdStats device;              // over the measured passes (zeros for dram)
  PrefetchStats prefetch;          // counters over the measured passes; what it learnt, after
  std::uint64_t chunks_verified = 0;  // of the bed it ran on, read back after its runs
  std::uint64_t chunks_bad = 0;
};

// The emulator's ceiling: a pattern with NAND latencies 0, measured `repeats` times
// (interleaved with the other patterns) at one working set.
struct WssCeiling {
  std::map<std::string, std::vector<double>> mb_per_s;  // per pattern, each repeat
  std::vector<WssResult> results;                      // the slowest repeat of each pattern
  double conservative_mb_per_s = 0;                    // the lowest of them all
};

struct WssDevices {
  std::shared_ptr<CxlSsd> a;  // stores without host prefetch
  std::shared_ptr<CxlSsd> b;  // stores with host prefetch (a second device, so the hit
                              // region can interleave passes with and without it)
};

// The goal ratios of the miss region at one working set and one D (NaN where a
// configuration is missing): host / NAND bound, host+next8 / bound, host+next8 / next8.
struct WssGoalRatios {
  double host_bound = 0, host_next8_bound = 0, host_next8_next8 = 0;
};
WssGoalRatios GoalRatios(const std::vector<WssResult>& results, std::uint64_t wss, unsigned d,
                         double nand_bound_d1_mb_per_s);
// The largest relative difference between two sets of goal ratios (NaN: none comparable).
double GoalDrift(const WssGoalRatios& a, const WssGoalRatios& b);
// Goal ratios within this of those at twice the D: converged.
inline constexpr double kConvergedDrift = 0.10;

struct WssSweep {
  std::vector<WssResult> results;
  // The convergence check at the largest set: the D values the goal configurations ran at
  // (D, 2D, ... doubling while the goal ratios moved more than kConvergedDrift), and the
  // first D whose ratios agree with those at twice it (0: none did).
  std::vector<unsigned> ladder;
  unsigned converged_d = 0;
  // Hit region: per working set, host / none, the medians of their interleaved passes.
  std::map<std::uint64_t, double> hit_ratio;
  std::uint64_t chunks_verified = 0;  // every bed, once
  std::uint64_t chunks_bad = 0;
};

using WssProgress = std::function<void(const std::string& what)>;

// Measures the ceiling of `patterns` (configurations with host prefetch, or any) at `wss`.
Result<WssCeiling> MeasureWssCeiling(const std::vector<WssConfig>& patterns, std::uint64_t wss,
                                     unsigned repeats, const WssDevices& devices,
                                     const WssOptions& options, const WssProgress& progress);

// The smallest D at which the dilated NAND bound is at most ceiling / margin.
unsigned AutoDilation(double nand_bound_at_d1, double ceiling, double margin);

// Runs every configuration at every working set (the largest first), the convergence reruns,
// and the hit-region pairs.
Result<WssSweep> RunWssSweep(const std::vector<WssConfig>& configs, const WssDevices& devices,
                             const WssOptions& options, const WssProgress& progress);

}  // namespace cxlkv::cli
