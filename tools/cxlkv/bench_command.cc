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
  std::string configs = "dram,none,next1,next2,next4,next8,host,host+next8";
  bool ceiling = true;
  unsigned prefetch_threads = 16;  // measured better than 64 here: the emulator is CPU-bound
  std::string prefetch_budget;
  unsigned passes = 1;
  double min_seconds = 0.3;
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

// A progress line on a terminal: "[#####.....] 12/58  host  800.0 MiB  41 s".
class Progress {
 public:
  explicit Progress(std::size_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void Show(std::size_t done, const std::string& what) {
    if (!tty_) return;
    const int width = 30;
    const int filled = static_cast<int>(width * done / std::max<std::size_t>(1, total_));
    const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    std::fprintf(stderr, "\r[%s%s] %zu/%zu  %-36s %4.0f s", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), done, total_, what.c_str(), secs);
    std::fflush(stderr);
  }
  void Done() {
    if (tty_) std::fprintf(stderr, "\r%80s\r", "");
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::size_t total_;
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

int RunWss(const WssCommandOptions& o) {
  auto usage = [](const Status& s) {
    std::fprintf(stderr, "cxlkv bench wss: %s\n", s.ToString().c_str());
    return kExitUsage;
  };
  if (!(o.scale > 0 && o.scale <= 10)) return usage(Status::InvalidArgument("--scale must be in (0, 10]"));
  // --quick halves the default scale too, to stay under two minutes on 2 cores.
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
  if (o.prefetch_budget.empty()) {
    w.prefetch.max_ahead_bytes = d.cache_bytes / 4;  // the rest holds what is being copied
  } else {
    Result<std::uint64_t> b = Bytes("--prefetch-budget", o.prefetch_budget);
    if (!b.ok()) return usage(b.status());
    w.prefetch.max_ahead_bytes = *b;
  }
  w.min_passes = std::max(1u, o.passes);
  w.min_seconds = o.min_seconds;

  std::vector<WssConfig> configs;
  for (const std::string& name : Split(o.configs)) {
    Result<WssConfig> c = WssConfig::Parse(name);
    if (!c.ok()) return usage(c.status().WithContext("--configs"));
    configs.push_back(*c);
  }
  if (configs.empty()) return usage(Status::InvalidArgument("--configs lists nothing"));
  // The emulator's ceiling: the prefetching patterns with NAND latency 0, at the largest set.
  std::vector<WssConfig> ceilings;
  if (o.ceiling) {
    for (const WssConfig& c : configs) {
      if (c.host && !c.ceiling) ceilings.push_back(*WssConfig::Parse("ceiling:" + c.name));
    }
  }

  Result<std::shared_ptr<CxlSsd>> device = CxlSsd::Create(d);
  if (!device.ok()) return usage(device.status().WithContext("creating the emulated CXL-SSD"));
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) return usage(Status::IOError("creating --out " + o.out + ": " + ec.message()));

  std::printf("cxlkv bench wss: device %s NAND, cache %s (%s), %u x %u dies, page %s, read %.0f us, "
              "program %.0f us; chunk %s; %zu working sets %s..%s; host prefetch %u threads, "
              "budget %s\n",
              FormatBytes(d.capacity).c_str(), FormatBytes(d.cache_bytes).c_str(),
              o.policy.c_str(), o.channels, o.dies, FormatBytes(d.page_size).c_str(), o.read_us,
              o.program_us, FormatBytes(w.chunk).c_str(), w.wss.size(),
              FormatBytes(w.wss.front()).c_str(), FormatBytes(w.wss.back()).c_str(),
              w.prefetch.threads, FormatBytes(w.prefetch.max_ahead_bytes).c_str());
  std::fflush(stdout);

  std::vector<WssResult> results;
  Progress progress(configs.size() * w.wss.size() + ceilings.size());
  std::size_t done = 0;
  bool bad = false;
  auto run = [&](const WssConfig& c, std::uint64_t wss) -> bool {
    progress.Show(done, c.name + "  " + FormatBytes(wss));
    Result<WssResult> r = RunWssPoint(c, wss, c.dram ? nullptr : *device, w);
    ++done;
    if (!r.ok()) {
      progress.Done();
      std::fprintf(stderr, "cxlkv bench wss: %s at %s: %s\n", c.name.c_str(),
                   FormatBytes(wss).c_str(), r.status().ToString().c_str());
      bad = true;
      return false;
    }
    if (r->chunks_bad != 0) bad = true;
    results.push_back(*r);
    return true;
  };
  for (const WssConfig& c : configs) {
    for (std::uint64_t wss : w.wss) {
      if (!run(c, wss)) return kExitFailure;
    }
  }
  for (const WssConfig& c : ceilings) {
    if (!run(c, w.wss.back())) return kExitFailure;
  }
  progress.Done();

  // CSV.
  const std::string csv = o.out + "/wss.csv";
  {
    std::ofstream f(csv);
    f << "config,wss_bytes,passes,warmup_s,retrieve_s,mb_per_s,read_misses,nand_reads,"
         "prefetch_reads,nand_programs,soft_faults,inflight_faults,die_utilisation,forwarded,"
         "late_us_per_mapping,host_pages_touched,host_slow_touches,chunks_verified,chunks_bad,"
         "nand_bound_mb_per_s,cache_bytes\n";
    for (const WssResult& r : results) {
      const double late =
          r.device.mappings ? static_cast<double>(r.device.late_ns) / 1e3 / static_cast<double>(r.device.mappings) : 0;
      f << r.config << ',' << r.wss << ',' << r.passes << ',' << r.warmup_seconds << ','
        << r.median_seconds << ',' << r.mb_per_s() << ',' << r.device.read_misses << ','
        << r.device.nand_reads << ',' << r.device.prefetch_reads << ',' << r.device.nand_programs
        << ',' << r.device.soft_faults << ',' << r.device.inflight_faults << ','
        << r.device.die_utilisation << ',' << r.device.forwarded << ',' << late << ','
        << r.prefetch.pages_touched << ',' << r.prefetch.slow_touches << ','
        << r.chunks_verified << ',' << r.chunks_bad << ',' << (*device)->NandReadBound() / 1e6
        << ',' << d.cache_bytes << '\n';
    }
    if (!f) return usage(Status::IOError("writing " + csv));
  }

  // Table: MB/s per configuration and working set.
  std::map<std::string, std::map<std::uint64_t, double>> bw;
  for (const WssResult& r : results) bw[r.config][r.wss] = r.mb_per_s();
  std::printf("\nretrieve bandwidth, MB/s (median pass; the whole working set per pass)\n%-14s",
              "config");
  for (std::uint64_t wss : w.wss) std::printf(" %10s", FormatBytes(wss).c_str());
  std::printf("\n");
  for (const WssConfig& c : configs) {
    std::printf("%-14s", c.name.c_str());
    for (std::uint64_t wss : w.wss) std::printf(" %10.0f", bw[c.name][wss]);
    std::printf("\n");
  }
  for (const WssConfig& c : ceilings) {
    std::printf("%-14s", c.name.c_str());
    for (std::uint64_t wss : w.wss) {
      if (bw[c.name].count(wss)) {
        std::printf(" %10.0f", bw[c.name][wss]);
      } else {
        std::printf(" %10s", "");
      }
    }
    std::printf("\n");
  }
  const double bound = (*device)->NandReadBound() / 1e6;
  std::printf("NAND-parallelism bound: %.0f MB/s (%u dies x %s / %.0f us)\n", bound,
              o.channels * o.dies, FormatBytes(d.page_size).c_str(), o.read_us);

  // Goals, as ratios from this run.
  auto at = [&](const std::string& c, std::uint64_t wss) -> double {
    auto it = bw.find(c);
    if (it == bw.end() || !it->second.count(wss)) return NAN;
    return it->second[wss];
  };
  const std::uint64_t miss = w.wss.back();
  std::vector<std::uint64_t> hits;
  for (std::uint64_t wss : w.wss) {
    if (wss * 10 <= d.cache_bytes * 9) hits.push_back(wss);
  }
  std::printf("\ngoals (this run; the largest working set %s = %.2f x the device cache):\n",
              FormatBytes(miss).c_str(), static_cast<double>(miss) / static_cast<double>(d.cache_bytes));
  auto line = [](const char* what, double value, const char* goal, bool met) {
    if (std::isnan(value)) {
      std::printf("  %-58s n/a (a configuration was not run)\n", what);
    } else {
      std::printf("  %-58s %6.2f  goal %-8s %s\n", what, value, goal, met ? "met" : "NOT MET");
    }
  };
  double worst_hit = NAN, host_cost = NAN, best_none_hit = NAN;
  if (!hits.empty()) {
    double log_sum = 0;
    int n = 0;
    for (std::uint64_t h : hits) {
      const double r = at("none", h) / at("dram", h);
      worst_hit = std::isnan(worst_hit) ? r : std::min(worst_hit, r);
      best_none_hit = std::isnan(best_none_hit) ? at("none", h) : std::max(best_none_hit, at("none", h));
      const double c = at("host", h) / at("none", h);
      if (!std::isnan(c)) {
        log_sum += std::log(c);
        ++n;
      }
    }
    if (n > 0) host_cost = std::exp(log_sum / n);
  }
  line("hit region: no-prefetch / DRAM tier (worst working set)", worst_hit, ">= 0.5",
       worst_hit >= 0.5);
  const double collapse = at("none", miss) / best_none_hit;
  line("no-prefetch at the largest set / in the hit region", collapse, "collapse", collapse < 0.2);
  const double n8 = at("next8", miss) / at("none", miss);
  line("device next-8 / no prefetch (the study saw 6.2)", n8, "several x", n8 >= 3);
  const double h = at("host", miss) / at("next8", miss);
  line("host prefetch / device next-8", h, ">= 2.5", h >= 2.5);
  const double hn = at("host+next8", miss) / at("next8", miss);
  line("host + device next-8 / device next-8", hn, ">= 5", hn >= 5);
  line("host + device next-8 / NAND-parallelism bound", at("host+next8", miss) / bound, "~0.95",
       at("host+next8", miss) / bound >= 0.9);
  const double ceiling = at("ceiling:host", miss);
  const double limit = std::isnan(ceiling) ? bound : std::min(bound, ceiling);
  line("host prefetch / min(NAND bound, emulator ceiling)", at("host", miss) / limit, ">= 0.7",
       at("host", miss) / limit >= 0.7);
  line("hit region: host prefetch / no prefetch (geomean)", host_cost, ">= 0.95",
       host_cost >= 0.95);
  for (const WssConfig& c : ceilings) {
    std::printf("  emulator ceiling, %s pattern with NAND latency 0: %.0f MB/s\n",
                c.name.substr(8).c_str(), at(c.name, miss));
  }
  std::uint64_t verified = 0, corrupt = 0;
  for (const WssResult& r : results) {
    verified += r.chunks_verified;
    corrupt += r.chunks_bad;
  }
  std::printf("every chunk read back after its runs: %llu verified, %llu bad\n",
              static_cast<unsigned long long>(verified), static_cast<unsigned long long>(corrupt));
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
  return bad ? kExitFailure : kExitOk;
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
                "240 MiB): under 2 minutes");
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
  app->add_option("--configs", o->configs, "Configurations, comma-separated")->capture_default_str();
  app->add_flag("!--no-ceiling", o->ceiling, "Skip the emulator-ceiling runs");
  app->add_option("--prefetch-threads", o->prefetch_threads, "Host prefetch threads")
      ->capture_default_str();
  app->add_option("--prefetch-budget", o->prefetch_budget,
                  "Host prefetch: most bytes ahead of the reader (default cache / 4)");
  app->add_option("--passes", o->passes, "Measured passes at least (after one warm-up)")
      ->capture_default_str();
  app->add_option("--min-seconds", o->min_seconds, "Measured passes last at least this long")
      ->capture_default_str();
  app->add_option("--out", o->out, "Directory for the CSV and plots")->capture_default_str();
  app->add_flag("!--no-plot", o->plot, "Do not draw the plots");
  return Command{app, [o] { return RunWss(*o); }};
}

}  // namespace cxlkv::cli
