// `cxlkv bench wss`: the CXL-SSD study's working-set-size sweep on cxlkv (bench_wss.h), with a
// CSV, plots, and the goals printed as ratios from this one run.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cxlkv/store.h"
#include "tools/cxlkv/bench_wss.h"
#include "tools/cxlkv/commands.h"
#include "util/format.h"

#ifndef CXLKV_SOURCE_DIR
#define CXLKV_SOURCE_DIR ""
#endif
#ifndef CXLKV_DATA_DIR
#define CXLKV_DATA_DIR ""
#endif

namespace cxlkv::cli {
namespace {

// The study's working sets in MB (0.25 to 8 GB) and its device cache (4.8 GB), scaled.
constexpr double kStudyWssMiB[] = {250, 500, 1000, 2000, 4000, 5000, 6000, 8000};
constexpr double kQuickWssMiB[] = {1000, 8000};
constexpr double kStudyCacheMiB = 4800;
constexpr double kQuickScale = 0.05;

struct WssCommandOptions {
  double scale = 0.1;
  bool scale_given = false;
  bool quick = false;
  std::string wss;  // a list overriding the scaled study steps
  std::string chunk = "128K";
  std::string cache;
  std::string nand;
  unsigned page_kib = 4;
  unsigned channels = 8;
  unsigned dies = 4;
  double read_us = 40;
  double program_us = 200;
  std::string policy = "fifo";
  std::string configs = "dram,none,next1,next2,next4,next8,host,host+next8,none@1,next8@1";
  std::string dilation = "auto";
  double auto_margin = 3;
  unsigned ceiling_repeats = 3;
  bool ceiling = true;
  bool convergence = true;
  unsigned readers = StoreOptions{}.copy_threads;
  unsigned prefetch_threads = 128;  // the most misses in flight; the prefetcher picks how many
  unsigned misses_per_cpu = 0;
  std::string prefetch_budget;
  unsigned passes = 5;
  double min_seconds = 0.5;
  double segment_seconds = 0.3;
  std::string out = "wss-out";
  bool plot = true;
};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Result<std::uint64_t> Bytes(const std::string& flag, const std::string& text) {
  Result<std::uint64_t> b = ParseBytes(text);
  if (!b.ok()) return b.status().WithContext(flag);
  return *b;
}

std::uint64_t MiB(double mib) { return static_cast<std::uint64_t>(mib * 1024 * 1024); }

// A progress line on a terminal: "  next8  800.0 MiB  D 24   41 s".
class Progress {
 public:
  explicit Progress(int) : tty_(isatty(STDERR_FILENO) != 0) {}
  void Show(const std::string& what) {
    if (!tty_) return;
    const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    std::fprintf(stderr, "\r  %-50s %5.0f s", what.c_str(), secs);
    std::fflush(stderr);
  }
  void Done() {
    if (tty_) std::fprintf(stderr, "\r%64s\r", "");
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool tty_;
  Clock::time_point start_ = Clock::now();
};

std::string PlotScript() {
  for (const std::string& dir : {std::string(CXLKV_SOURCE_DIR) + "/tools",
                                std::string(CXLKV_DATA_DIR)}) {
    if (dir.empty() || dir == "/tools") continue;
    const std::string path = dir + "/plot_wss.py";
    if (std::filesystem::exists(path)) return path;
  }
  return "";
}

// Rows of one configuration, by working set (the convergence reruns not among them).
struct Table {
  std::map<std::string, std::map<std::uint64_t, const WssResult*>> rows;
  const WssResult* Get(const std::string& config, std::uint64_t wss) const {
    auto it = rows.find(config);
    if (it == rows.end()) return nullptr;
    auto jt = it->second.find(wss);
    return jt == it->second.end() ? nullptr : jt->second;
  }
  double Rate(const std::string& config, std::uint64_t wss) const {
    const WssResult* r = Get(config, wss);
    return r ? r->mb_per_s : NAN;
  }
};

void WriteCsvRow(std::ofstream& f, const WssResult& r, double bound_d1, double ceiling,
                 std::uint64_t cache_bytes) {
  const double late = r.device.mappings ? static_cast<double>(r.device.late_ns) / 1e3 /
                                              static_cast<double>(r.device.mappings)
                                        : 0;
  const double device_rate = r.device_mb_per_s();
  f << r.config << ',' << r.wss << ',' << (r.miss_region ? "miss" : "hit") << ',' << r.dilation
    << ',' << r.readers << ',' << (r.convergence ? 1 : 0) << ',' << r.passes << ','
    << r.bytes_measured << ',' << r.mb_per_s << ',' << device_rate << ','
    << (device_rate > 0 ? static_cast<double>(r.wss) / (device_rate * 1e6) : 0) << ','
    << bound_d1 / r.dilation << ',' << bound_d1 << ',' << ceiling << ',' << r.device.read_misses
    << ',' << r.device.nand_reads << ',' << r.device.prefetch_reads << ','
    << r.device.nand_programs << ',' << r.device.soft_faults << ',' << r.device.inflight_faults
    << ',' << r.device.die_utilisation << ',' << r.device.forwarded << ',' << late << ','
    << r.prefetch.pages_touched << ',' << r.prefetch.slow_touches << ',' << r.prefetch.probes
    << ',' << r.prefetch.inflight_limit << ',' << r.prefetch.inflight_limit_max << ','
    << r.prefetch.run_pages << ',' << static_cast<double>(r.prefetch.miss_ns) / 1e3 << ','
    << r.chunks_verified << ',' << r.chunks_bad << ',' << cache_bytes << '\n';
}

int RunWss(const WssCommandOptions& o) {
  auto usage = [](const Status& s) {
    std::fprintf(stderr, "cxlkv bench wss: %s\n", s.ToString().c_str());
    return kExitUsage;
  };
  if (!(o.scale > 0 && o.scale <= 10)) return usage(Status::InvalidArgument("--scale must be in (0, 10]"));
  // --quick halves the default scale too.
  const double scale = o.quick && !o.scale_given ? kQuickScale : o.scale;
  WssOptions w;
  Result<std::uint64_t> chunk = Bytes("--chunk", o.chunk);
  if (!chunk.ok()) return usage(chunk.status());
  if (*chunk < 4096 || *chunk % 4096 != 0) {
    return usage(Status::InvalidArgument("--chunk must be a positive multiple of 4 KiB"));
  }
  w.chunk = *chunk;
  if (!o.wss.empty()) {
    for (const std::string& item : Split(o.wss)) {
      Result<std::uint64_t> b = Bytes("--wss", item);
      if (!b.ok()) return usage(b.status());
      w.wss.push_back(*b);
    }
  } else if (o.quick) {
    for (double m : kQuickWssMiB) w.wss.push_back(MiB(m * scale));
  } else {
    for (double m : kStudyWssMiB) w.wss.push_back(MiB(m * scale));
  }
  for (std::uint64_t& b : w.wss) b = std::max<std::uint64_t>(w.chunk, b / w.chunk * w.chunk);
  std::sort(w.wss.begin(), w.wss.end());
  w.wss.erase(std::unique(w.wss.begin(), w.wss.end()), w.wss.end());

  unsigned fixed_dilation = 0;  // 0: auto
  if (o.dilation != "auto") {
    const bool digits = !o.dilation.empty() && o.dilation.size() <= 5 &&
                        o.dilation.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoul(o.dilation) == 0 || std::stoul(o.dilation) > 10'000) {
      return usage(Status::InvalidArgument("--dilation must be auto or 1 to 10000, not '" +
                                           o.dilation + "'"));
    }
    fixed_dilation = static_cast<unsigned>(std::stoul(o.dilation));
  }
  if (fixed_dilation == 0 && !o.ceiling) {
    return usage(Status::InvalidArgument("--dilation auto needs the emulator's ceiling: drop "
                                         "--no-ceiling or give --dilation a number"));
  }
  if (o.readers == 0 || o.readers > 64) {
    return usage(Status::InvalidArgument("--readers must be 1 to 64"));
  }
  if (!(o.auto_margin >= 1 && o.auto_margin <= 100)) {
    return usage(Status::InvalidArgument("--auto-margin must be 1 to 100"));
  }
  if (!(o.segment_seconds > 0 && o.segment_seconds <= 60)) {
    return usage(Status::InvalidArgument("--segment-seconds must be in (0, 60]"));
  }
  if (o.misses_per_cpu > 1024) {
    return usage(Status::InvalidArgument("--misses-per-cpu must be 0 (no cap) to 1024"));
  }
  if (o.prefetch_threads == 0 || o.prefetch_threads > 1024) {
    return usage(Status::InvalidArgument("--prefetch-threads must be 1 to 1024"));
  }
  if (o.ceiling_repeats == 0 || o.ceiling_repeats > 20) {
    return usage(Status::InvalidArgument("--ceiling-repeats must be 1 to 20"));
  }

  CxlSsdOptions& d = w.device;
  d.page_size = std::size_t{o.page_kib} * 1024;
  d.channels = o.channels;
  d.dies_per_channel = o.dies;
  d.read_latency = std::chrono::nanoseconds(static_cast<std::int64_t>(o.read_us * 1000));
  d.program_latency = std::chrono::nanoseconds(static_cast<std::int64_t>(o.program_us * 1000));
  d.cache_policy = o.policy;
  if (o.cache.empty()) {
    d.cache_bytes = MiB(kStudyCacheMiB * scale) / d.page_size * d.page_size;
  } else {
    Result<std::uint64_t> b = Bytes("--cache", o.cache);
    if (!b.ok()) return usage(b.status());
    d.cache_bytes = *b;
  }
  // NAND: the largest set with its headers and slab slack; the store's tier spans all of it.
  const std::uint64_t slab = 4 << 20;
  if (o.nand.empty()) {
    d.capacity = (w.wss.back() * 5 / 4 + 16 * slab) / slab * slab;
  } else {
    Result<std::uint64_t> b = Bytes("--nand", o.nand);
    if (!b.ok()) return usage(b.status());
    d.capacity = *b / slab * slab;
  }
  w.prefetch.threads = o.prefetch_threads;
  w.prefetch.max_misses_per_cpu = o.misses_per_cpu;
  if (o.prefetch_budget.empty()) {
    w.prefetch.max_ahead_bytes = d.cache_bytes / 4;  // the rest holds what is being copied
  } else {
    Result<std::uint64_t> b = Bytes("--prefetch-budget", o.prefetch_budget);
    if (!b.ok()) return usage(b.status());
    w.prefetch.max_ahead_bytes = *b;
  }
  w.readers = o.readers;
  w.passes = std::max(1u, o.passes);
  w.min_seconds = o.min_seconds;
  w.segment_seconds = o.segment_seconds;
  w.convergence = o.convergence;

  std::vector<WssConfig> configs;
  bool any_host = false;
  for (const std::string& name : Split(o.configs)) {
    Result<WssConfig> c = WssConfig::Parse(name);
    if (!c.ok()) return usage(c.status().WithContext("--configs"));
    any_host |= c->host;
    configs.push_back(*c);
  }
  if (configs.empty()) return usage(Status::InvalidArgument("--configs lists nothing"));
  // The emulator's ceiling: the host-prefetch patterns (or else the first emulated one) with
  // NAND latency 0, at the largest set.
  std::vector<WssConfig> patterns;
  if (o.ceiling) {
    for (const WssConfig& c : configs) {
      if (c.host && !c.ceiling && c.readers == 0) patterns.push_back(c);
    }
    if (patterns.empty()) {
      for (const WssConfig& c : configs) {
        if (!c.dram && !c.ceiling && c.readers == 0) {
          patterns.push_back(c);
          break;
        }
      }
    }
    if (patterns.empty() && fixed_dilation == 0) {
      return usage(Status::InvalidArgument(
          "--dilation auto needs an emulated configuration to measure the ceiling with"));
    }
  }

  WssDevices devices;
  bool any_device = false;
  for (const WssConfig& c : configs) any_device |= !c.dram;
  if (any_device) {
    Result<std::shared_ptr<CxlSsd>> a = CxlSsd::Create(d);
    if (!a.ok()) return usage(a.status().WithContext("creating the emulated CXL-SSD"));
    devices.a = *a;
    if (any_host) {
      Result<std::shared_ptr<CxlSsd>> b = CxlSsd::Create(d);
      if (!b.ok()) return usage(b.status().WithContext("creating the second emulated CXL-SSD"));
      devices.b = *b;
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) return usage(Status::IOError("creating --out " + o.out + ": " + ec.message()));

  const double dies = static_cast<double>(o.channels) * o.dies;
  const double bound_d1 = dies * static_cast<double>(d.page_size) / (o.read_us * 1e-6) / 1e6;
  std::printf("cxlkv bench wss: device %s NAND, cache %s (%s), %u x %u dies, page %s, read %.0f us, "
              "program %.0f us; chunk %s; %zu working sets %s..%s; %u readers; host prefetch up "
              "to %u threads%s, budget %s\n",
              FormatBytes(d.capacity).c_str(), FormatBytes(d.cache_bytes).c_str(),
              o.policy.c_str(), o.channels, o.dies, FormatBytes(d.page_size).c_str(), o.read_us,
              o.program_us, FormatBytes(w.chunk).c_str(), w.wss.size(),
              FormatBytes(w.wss.front()).c_str(), FormatBytes(w.wss.back()).c_str(), o.readers,
              w.prefetch.threads,
              o.misses_per_cpu ? (", " + std::to_string(o.misses_per_cpu) + " misses per CPU").c_str()
                               : "",
              FormatBytes(w.prefetch.max_ahead_bytes).c_str());
  std::fflush(stdout);

  Progress progress(0);
  auto show = [&progress](const std::string& what) { progress.Show(what); };

  // The ceiling, then D.
  WssCeiling ceiling;
  if (!patterns.empty()) {
    Result<WssCeiling> c =
        MeasureWssCeiling(patterns, w.wss.back(), o.ceiling_repeats, devices, w, show);
    if (!c.ok()) {
      progress.Done();
      std::fprintf(stderr, "cxlkv bench wss: the emulator's ceiling: %s\n",
                   c.status().ToString().c_str());
      return kExitFailure;
    }
    ceiling = std::move(*c);
  }
  progress.Done();
  const unsigned dilation = fixed_dilation != 0
                                ? fixed_dilation
                                : AutoDilation(bound_d1, ceiling.conservative_mb_per_s,
                                               o.auto_margin);
  w.dilation = dilation;
  const double bound = bound_d1 / dilation;
  for (const auto& [name, rates] : ceiling.mb_per_s) {
    std::printf("emulator ceiling, %s pattern with NAND latency 0, %s:", name.substr(8).c_str(),
                FormatBytes(w.wss.back()).c_str());
    for (double r : rates) std::printf(" %.0f", r);
    std::printf(" MB/s\n");
  }
  std::printf("NAND-parallelism bound: %.0f MB/s at D = 1 (%u dies x %s / %.0f us)\n", bound_d1,
              o.channels * o.dies, FormatBytes(d.page_size).c_str(), o.read_us);
  if (fixed_dilation == 0) {
    std::printf("time dilation D = %u (auto: ceiling %.0f MB/s, the lowest measured, >= %.1f x "
                "the dilated bound %.0f MB/s)\n",
                dilation, ceiling.conservative_mb_per_s, o.auto_margin, bound);
  } else if (ceiling.conservative_mb_per_s > 0) {
    std::printf("time dilation D = %u (given): ceiling %.0f MB/s = %.1f x the dilated bound "
                "%.0f MB/s%s\n",
                dilation, ceiling.conservative_mb_per_s, ceiling.conservative_mb_per_s / bound,
                bound, ceiling.conservative_mb_per_s < 3 * bound
                           ? " (under 3x: the emulator's own cost may hold the results back)"
                           : "");
  } else {
    std::printf("time dilation D = %u (given; no ceiling measured)\n", dilation);
  }
  std::fflush(stdout);

  Result<WssSweep> swept = RunWssSweep(configs, devices, w, show);
  progress.Done();
  if (!swept.ok()) {
    std::fprintf(stderr, "cxlkv bench wss: %s\n", swept.status().ToString().c_str());
    return kExitFailure;
  }
  const WssSweep& sweep = *swept;

  // CSV: the ceiling rows, then the sweep's.
  const std::string csv = o.out + "/wss.csv";
  {
    std::ofstream f(csv);
    f << "config,wss_bytes,region,dilation,readers,convergence,passes,bytes_measured,mb_per_s,"
         "device_mb_per_s,device_retrieve_s,nand_bound_mb_per_s,nand_bound_d1_mb_per_s,"
         "ceiling_mb_per_s,read_misses,nand_reads,prefetch_reads,nand_programs,soft_faults,"
         "inflight_faults,die_utilisation,forwarded,late_us_per_mapping,host_pages_touched,"
         "host_slow_touches,host_probes,host_inflight_limit,host_inflight_limit_max,"
         "host_run_pages,host_miss_us,chunks_verified,chunks_bad,cache_bytes\n";
    for (const WssResult& r : ceiling.results) {
      WriteCsvRow(f, r, bound_d1, ceiling.conservative_mb_per_s, d.cache_bytes);
    }
    for (const WssResult& r : sweep.results) {
      WriteCsvRow(f, r, bound_d1, ceiling.conservative_mb_per_s, d.cache_bytes);
    }
    if (!f) return usage(Status::IOError("writing " + csv));
  }

  // Table, in the device's time (MB/s x the D it ran at).
  Table t;
  for (const WssResult& r : sweep.results) {
    if (!r.convergence) t.rows[r.config][r.wss] = &r;
  }
  std::printf("\nretrieve bandwidth in the device's time, MB/s (measured x D: D = 1 in the hit "
              "region, %u past it; median pass or segment)\n%-18s",
              dilation, "config");
  for (std::uint64_t wss : w.wss) std::printf(" %10s", FormatBytes(wss).c_str());
  std::printf("\n");
  for (const WssConfig& c : configs) {
    std::printf("%-18s", c.name.c_str());
    for (std::uint64_t wss : w.wss) {
      const WssResult* r = t.Get(c.name, wss);
      if (r) {
        std::printf(" %10.0f", r->device_mb_per_s());
      } else {
        std::printf(" %10s", "");
      }
    }
    std::printf("\n");
  }
  for (const WssResult& r : sweep.results) {  // the convergence reruns, at the largest set
    if (!r.convergence) continue;
    const std::string label = r.config + " (D " + std::to_string(r.dilation) + ")";
    std::printf("%-18s %*s %10.0f\n", label.c_str(), static_cast<int>(11 * (w.wss.size() - 1)), "",
                r.device_mb_per_s());
  }
  std::printf("NAND-parallelism bound: %.0f MB/s in the device's time (%.0f MB/s measured at "
              "D = %u)\n", bound_d1, bound, dilation);

  // Goals, as ratios from this run.
  const std::uint64_t miss = w.wss.back();
  auto line = [](const std::string& what, double value, const char* goal, bool met) {
    if (std::isnan(value)) {
      std::printf("  %-62s n/a (a configuration was not run)\n", what.c_str());
    } else {
      std::printf("  %-62s %6.2f  goal %-6s %s\n", what.c_str(), value, goal,
                  met ? "met" : "NOT MET");
    }
  };
  auto info = [](const std::string& what, double value, const std::string& note) {
    if (std::isnan(value)) {
      std::printf("  %-62s n/a\n", what.c_str());
    } else {
      std::printf("  %-62s %6.2f  %s\n", what.c_str(), value, note.c_str());
    }
  };
  // The miss-region goals are read at the first D whose ratios agree with twice it; D itself
  // when the check did not run or never agreed.
  const unsigned goal_d = sweep.converged_d ? sweep.converged_d : dilation;
  std::printf("\ngoals (this run; the largest working set %s = %.2f x the device cache; miss "
              "region at D = %u):\n",
              FormatBytes(miss).c_str(),
              static_cast<double>(miss) / static_cast<double>(d.cache_bytes), goal_d);
  if (!WssMissRegion(miss, d.cache_bytes)) {
    std::printf("  (the largest set fits the cache: no miss region measured)\n");
  }
  const WssGoalRatios g = GoalRatios(sweep.results, miss, goal_d, bound_d1);
  line("host prefetch alone / dilated NAND bound", g.host_bound, ">= 0.8", g.host_bound >= 0.8);
  line("host + next-8 / dilated NAND bound", g.host_next8_bound, ">= 0.9",
       g.host_next8_bound >= 0.9);
  line("host + next-8 / next-8 (" + std::to_string(o.readers) + " readers each)",
       g.host_next8_next8, ">= 1.9", g.host_next8_next8 >= 1.9);
  double drift = NAN;
  if (sweep.ladder.size() >= 2) {
    const std::size_t k = sweep.converged_d
                              ? static_cast<std::size_t>(
                                    std::find(sweep.ladder.begin(), sweep.ladder.end(), goal_d) -
                                    sweep.ladder.begin())
                              : sweep.ladder.size() - 2;
    drift = GoalDrift(GoalRatios(sweep.results, miss, sweep.ladder[k], bound_d1),
                      GoalRatios(sweep.results, miss, sweep.ladder[k + 1], bound_d1));
  }
  line("the goal ratios at D and 2D: largest difference", drift, "<= 0.10",
       drift <= kConvergedDrift);
  for (unsigned ld : sweep.ladder) {
    const WssGoalRatios r = GoalRatios(sweep.results, miss, ld, bound_d1);
    std::printf("    at D = %-5u host / bound %.2f, host+next8 / bound %.2f, host+next8 / next8 "
                "%.2f\n", ld, r.host_bound, r.host_next8_bound, r.host_next8_next8);
  }
  if (!sweep.ladder.empty()) {
    if (sweep.converged_d == dilation) {
      std::printf("    converged at D = %u: twice the dilation moves no goal ratio by more "
                  "than 10%%\n", dilation);
    } else if (sweep.converged_d) {
      std::printf("    converged at D = %u, not at D = %u (the emulator's own cost, or this "
                  "host's load, still moved the ratios there): the goals are read at D = %u\n",
                  sweep.converged_d, dilation, sweep.converged_d);
    } else {
      std::printf("    NOT CONVERGED up to D = %u: the ratios still move with D\n",
                  sweep.ladder.back());
    }
  }
  double hit_log = 0, hit_worst = NAN;
  int hit_n = 0;
  for (const auto& [wss, ratio] : sweep.hit_ratio) {
    if (std::isnan(ratio) || !(ratio > 0)) continue;
    hit_log += std::log(ratio);
    ++hit_n;
    hit_worst = std::isnan(hit_worst) ? ratio : std::min(hit_worst, ratio);
  }
  const double hit = hit_n ? std::exp(hit_log / hit_n) : NAN;
  line("hit region (D = 1): host prefetch / no prefetch (geomean)", hit, ">= 0.95", hit >= 0.95);
  if (hit_n) {
    std::printf("    per set, the medians of >= %u passes each, interleaved; worst set %.2f\n",
                w.passes, hit_worst);
  }
  const std::uint64_t ceiling_bad = [&] {
    std::uint64_t b = 0;
    for (const WssResult& r : ceiling.results) b += r.chunks_bad;
    return b;
  }();
  line("chunks read back intact (every bed, after its runs): bad chunks",
       static_cast<double>(sweep.chunks_bad + ceiling_bad), "0",
       sweep.chunks_bad + ceiling_bad == 0);
  std::printf("    %llu verified, %llu bad\n",
              static_cast<unsigned long long>(sweep.chunks_verified),
              static_cast<unsigned long long>(sweep.chunks_bad + ceiling_bad));

  std::printf("\nthe study's figures beside ours (largest set; ours in the device's time):\n");
  const std::string rr = std::to_string(o.readers) + " readers";
  info("device next-8 / no prefetch, " + rr, t.Rate("next8", miss) / t.Rate("none", miss),
       "(the study: 6.2, one reader)");
  info("device next-8 / no prefetch, 1 reader", t.Rate("next8@1", miss) / t.Rate("none@1", miss),
       "(the study: 6.2)");
  auto device_rate = [&](const std::string& c) {
    const WssResult* r = t.Get(c, miss);
    return r ? r->device_mb_per_s() : NAN;
  };
  auto rate_line = [](const std::string& what, double mbps, const char* study) {
    if (std::isnan(mbps)) {
      std::printf("  %-62s n/a\n", what.c_str());
    } else {
      std::printf("  %-62s %6.0f MB/s  (the study: %s)\n", what.c_str(), mbps, study);
    }
  };
  rate_line("no prefetch, 1 reader", device_rate("none@1"), "86 MB/s");
  rate_line("device next-8, 1 reader", device_rate("next8@1"), "534 MB/s");
  double worst_hit_dram = NAN, best_none_hit = NAN;
  for (std::uint64_t wss : w.wss) {
    if (WssMissRegion(wss, d.cache_bytes)) continue;
    const double r = t.Rate("none", wss) / t.Rate("dram", wss);
    if (!std::isnan(r)) worst_hit_dram = std::isnan(worst_hit_dram) ? r : std::min(worst_hit_dram, r);
    const double n = t.Rate("none", wss);
    if (!std::isnan(n)) best_none_hit = std::isnan(best_none_hit) ? n : std::max(best_none_hit, n);
  }
  info("hit region: no prefetch / DRAM tier (worst set)", worst_hit_dram,
       "(the study: CXL-SSD ~ DRAM)");
  info("no prefetch past the cache / in the hit region", device_rate("none") / best_none_hit,
       "(the study: 86 / 6000 = 0.014)");
  for (const char* c : {"host", "host+next8"}) {
    const WssResult* r = t.Get(c, miss);
    if (r == nullptr || r->prefetch.inflight_limit == 0) continue;
    std::printf("  %-16s prefetcher learnt: %u misses in flight (at most %u), run %u pages, miss "
                "%.0f us\n",
                c, r->prefetch.inflight_limit, r->prefetch.inflight_limit_max,
                r->prefetch.run_pages, static_cast<double>(r->prefetch.miss_ns) / 1e3);
  }
  std::printf("wrote %s\n", csv.c_str());

  if (o.plot) {
    const std::string script = PlotScript();
    if (script.empty()) {
      std::printf("no plots: plot_wss.py not found (source tree or %s)\n", CXLKV_DATA_DIR);
    } else {
      const std::string cmd = "/usr/bin/python3 '" + script + "' '" + csv + "' '" + o.out + "'";
      if (std::system(cmd.c_str()) != 0) {
        std::printf("no plots: %s failed (is python3-matplotlib installed?)\n", cmd.c_str());
      }
    }
  }
  return sweep.chunks_bad + ceiling_bad != 0 ? kExitFailure : kExitOk;
}

}  // namespace

Command AddBenchCommand(CLI::App& root) {
  auto o = std::make_shared<WssCommandOptions>();
  CLI::App* bench = root.add_subcommand("bench", "Benchmarks that print ratios from one run");
  bench->require_subcommand(1);
  CLI::App* app = bench->add_subcommand(
      "wss",
      "Working-set-size sweep on an emulated CXL-SSD (the CXL-SSD study at --scale): retrieve "
      "bandwidth per working set for DRAM, no prefetch, device next-N, host prefetch and both");
  app->footer(
      "Writes OUT/wss.csv and, with /usr/bin/python3 and matplotlib, OUT/wss_bandwidth.png and "
      "OUT/wss_latency.png. Exit status 0, 1 when a run failed or a chunk read back wrong, 2 "
      "bad options or no userfaultfd.");
  app->add_option_function<double>(
         "--scale", [o](double v) { o->scale = v, o->scale_given = true; },
         "Scale of the study (cache 4.8 GB, WSS 0.25-8 GB); default 0.1, 0.05 with --quick");
  app->add_flag("--quick", o->quick,
                "Two working sets, 1 and 8 GB of the study at scale 0.05 (50 and 400 MiB, cache "
                "240 MiB)");
  app->add_option("--wss", o->wss, "Working sets, comma-separated (e.g. 25M,800M)");
  app->add_option("--chunk", o->chunk, "Chunk size")->capture_default_str();
  app->add_option("--cache", o->cache, "Device DRAM cache (default 4800 MiB x scale)");
  app->add_option("--nand", o->nand, "Device NAND (default: the largest set x 1.25 + 64 MiB)");
  app->add_option("--page-kib", o->page_kib, "Device page, KiB")
      ->check(CLI::IsMember({4, 16}))
      ->capture_default_str();
  app->add_option("--channels", o->channels, "NAND channels")->capture_default_str();
  app->add_option("--dies", o->dies, "Dies per channel")->capture_default_str();
  app->add_option("--read-us", o->read_us, "NAND read latency, us")->capture_default_str();
  app->add_option("--program-us", o->program_us, "NAND program latency, us")->capture_default_str();
  app->add_option("--cache-policy", o->policy, "Device cache policy")
      ->check(CLI::IsMember({"fifo", "lru", "clock"}))
      ->capture_default_str();
  app->add_option("--configs", o->configs,
                  "Configurations, comma-separated; @R after one runs it with R readers")
      ->capture_default_str();
  app->add_option("--dilation", o->dilation,
                  "Time dilation D of the miss region: a number, or auto (the smallest D at which "
                  "the emulator's ceiling is --auto-margin x the dilated NAND bound)")
      ->capture_default_str();
  app->add_option("--auto-margin", o->auto_margin, "auto: ceiling / dilated bound at least")
      ->capture_default_str();
  app->add_option("--ceiling-repeats", o->ceiling_repeats,
                  "Times each ceiling is measured (the lowest counts)")
      ->capture_default_str();
  app->add_flag("!--no-ceiling", o->ceiling, "Skip the emulator-ceiling runs (needs --dilation N)");
  app->add_flag("!--no-convergence", o->convergence,
                "Skip the reruns of the goal configurations at 2D (and 4D if they moved)");
  app->add_option("--readers", o->readers, "Readers (the store's copy threads) of a batched get")
      ->capture_default_str();
  app->add_option("--prefetch-threads", o->prefetch_threads,
                  "Host prefetch threads: the most misses it may keep in flight")
      ->capture_default_str();
  app->add_option("--misses-per-cpu", o->misses_per_cpu,
                  "Host prefetch: cap misses in flight per CPU (a model of line-fill buffers); "
                  "0: none")
      ->capture_default_str();
  app->add_option("--prefetch-budget", o->prefetch_budget,
                  "Host prefetch: most bytes ahead of the reader (default cache / 4)");
  app->add_option("--passes", o->passes, "Measured passes or segments at least (after a warm-up)")
      ->capture_default_str();
  app->add_option("--min-seconds", o->min_seconds, "Hit region: measured passes last at least this long")
      ->capture_default_str();
  app->add_option("--segment-seconds", o->segment_seconds,
                  "Miss region: each measured segment of the cyclic scan lasts about this long")
      ->capture_default_str();
  app->add_option("--out", o->out, "Directory for the CSV and plots")->capture_default_str();
  app->add_flag("!--no-plot", o->plot, "Do not draw the plots");
  return Command{app, [o] { return RunWss(*o); }};
}

}  // namespace cxlkv::cli
