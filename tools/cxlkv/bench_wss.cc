#include "tools/cxlkv/bench_wss.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>

#include "cxlkv/completion_queue.h"
#include "cxlkv/store.h"
#include "util/cpu.h"
#include "util/format.h"

namespace cxlkv::cli {

namespace {

using Clock = std::chrono::steady_clock;

// The destination of a retrieve: a ring of chunk buffers, as a cache engine reuses its staging
// memory. Large enough that the copy threads, which take chunks in order, never write one
// buffer at once (the bytes are checked separately anyway).
constexpr std::size_t kRingChunks = 512;
// A segment is never shorter than this: the prefetcher and the copy threads start each batch
// afresh, and that start should stay a small part of it.
constexpr std::uint64_t kMinSegmentChunks = 16;
// Nor shorter than this many (dilated) NAND reads: a batch's start costs a few of them (the
// reader's first miss, the prefetcher's ramp), whatever D is, so a segment of fixed seconds
// would weigh it more at a larger D.
constexpr double kSegmentReads = 150;

void FillChunk(std::vector<std::byte>& buf, std::uint64_t index) {
  auto* w = reinterpret_cast<std::uint64_t*>(buf.data());
  const std::size_t words = buf.size() / 8;
  for (std::size_t i = 0; i < words; ++i) w[i] = (index << 32) ^ (i * 0x9E3779B97F4A7C15ull);
}

std::string Key(std::uint64_t i) { return "wss/" + std::to_string(i); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// A store holding one working set, and the retrieves that time it.
class Bed {
 public:
  static Result<std::unique_ptr<Bed>> Open(std::shared_ptr<CxlSsd> device, bool host,
                                           unsigned readers, std::uint64_t wss,
                                           const WssOptions& o) {
    const std::uint64_t chunks = wss / o.chunk;
    if (chunks == 0) {
      return Status::InvalidArgument("working set " + FormatBytes(wss) + " holds no chunk of " +
                                     FormatBytes(o.chunk));
    }
    auto bed = std::unique_ptr<Bed>(new Bed(std::move(device), chunks, o.chunk));
    StoreOptions so;
    so.background_thread = false;
    so.copy_threads = readers;
    so.copy_thread_cpus = AllowedCpus();
    so.chunk_sizes = {o.chunk};
    if (host) so.prefetch = o.prefetch;
    TierOptions tier;
    if (!bed->device_) {
      tier.name = "dram";
      tier.source_spec = "dram";
      // Chunks, their 256-byte headers, and slack for the slab classes.
      const std::uint64_t slab = so.slab_size;
      tier.capacity = ((wss + chunks * 256) * 11 / 10 + 2 * slab) / slab * slab;
    } else {
      tier.name = "cxlssd";
      tier.source = CxlSsd::Source(bed->device_);
      tier.capacity = bed->device_->size();
      bed->device_->SetTiming(false);
      bed->device_->SetNextN(0);  // what the last configuration left
      CXLKV_RETURN_IF_ERROR(bed->device_->DropCache());
    }
    so.tiers.push_back(std::move(tier));
    CXLKV_ASSIGN_OR_RETURN(bed->store_, Store::Open(std::move(so)));
    CXLKV_ASSIGN_OR_RETURN(bed->cq_, CompletionQueue::Create());
    std::vector<std::byte> buf(o.chunk);
    for (std::uint64_t i = 0; i < chunks; ++i) {
      FillChunk(buf, i);
      Status s = bed->store_->Put(Key(i), buf);
      if (!s.ok()) return s.WithContext("storing chunk " + std::to_string(i) + " of the working set");
    }
    CXLKV_RETURN_IF_ERROR(bed->Settle());
    return bed;
  }

  // Empties the device cache and reads the whole set once with timing off, from the cursor:
  // the cache then holds what a pass leaves, the puts' dirty pages are written back, and no
  // timed pass pays for either. A cyclic scan just past the cache size misses on every page
  // only from such a start: a run of hits (pages fetched out of scan order, a previous
  // configuration's read-ahead) leaves fewer pages inserted per cycle, which makes more hits,
  // and the cache drifts towards holding much of the set (seen at 1.04x the cache).
  // The pass is made of plain gets, which the host prefetcher does not see: it would learn
  // an untimed device from it.
  Status Settle() {
    if (device_) {
      device_->SetTiming(false);
      CXLKV_RETURN_IF_ERROR(device_->DropCache());
    }
    std::vector<std::byte> buf(chunk_);
    for (std::uint64_t i = 0; i < chunks_; ++i) {
      const std::uint64_t c = (cursor_ + i) % chunks_;
      Result<std::size_t> n = store_->Get(Key(c), buf);
      if (!n.ok()) return n.status().WithContext("reading the working set untimed");
    }
    if (device_) device_->SetTiming(true);
    return Status::Ok();
  }

  ~Bed() {
    if (device_) device_->SetTiming(true);
  }

  std::uint64_t chunks() const { return chunks_; }
  CxlSsd* device() const { return device_.get(); }
  Store& store() { return *store_; }

  // One batched get of `count` chunks from the cursor on (wrapping round the set); returns its
  // seconds and moves the cursor past them.
  Result<double> Retrieve(std::uint64_t count) {
    count = std::min(count, chunks_);
    const std::size_t ring = std::min<std::uint64_t>(chunks_, kRingChunks);
    requests_.resize(count);
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::uint64_t c = (cursor_ + i) % chunks_;
      keys_.resize(std::max<std::size_t>(keys_.size(), chunks_));
      if (keys_[c].empty()) keys_[c] = Key(c);
      requests_[i].key = keys_[c];
      requests_[i].dst = {dst_.data() + (i % ring) * chunk_, chunk_};
      requests_[i].user_data = c;
    }
    cursor_ = (cursor_ + count) % chunks_;
    const auto t0 = Clock::now();
    CXLKV_RETURN_IF_ERROR(store_->SubmitGets(requests_, *cq_));
    std::uint64_t got = 0;
    while (got < count) {
      const std::size_t n = cq_->Wait(done_, 1, std::chrono::milliseconds(120'000));
      if (n == 0) return Status::IOError("a batched get made no progress for 120 s");
      for (std::size_t i = 0; i < n; ++i) {
        if (!done_[i].status.ok()) return done_[i].status.WithContext("retrieving the working set");
      }
      got += n;
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // Every chunk back with timing off (a check, not a pass), compared with what was put.
  void Verify(std::uint64_t* good, std::uint64_t* bad) {
    if (device_) device_->SetTiming(false);
    std::vector<std::byte> want(chunk_), got(chunk_);
    *good = *bad = 0;
    for (std::uint64_t i = 0; i < chunks_; ++i) {
      FillChunk(want, i);
      Result<std::size_t> n = store_->Get(Key(i), got);
      if (n.ok() && *n == chunk_ && std::memcmp(got.data(), want.data(), want.size()) == 0) {
        ++*good;
      } else {
        ++*bad;
      }
    }
    if (device_) device_->SetTiming(true);
  }

 private:
  Bed(std::shared_ptr<CxlSsd> device, std::uint64_t chunks, std::uint64_t chunk)
      : device_(std::move(device)),
        chunks_(chunks),
        chunk_(chunk),
        dst_(std::min<std::uint64_t>(chunks, kRingChunks) * chunk),
        done_(std::min<std::uint64_t>(chunks, 1024)) {}

  std::shared_ptr<CxlSsd> device_;
  const std::uint64_t chunks_;
  const std::uint64_t chunk_;
  std::vector<std::byte> dst_;
  std::vector<Completion> done_;
  std::vector<std::string> keys_;
  std::vector<GetRequest> requests_;
  std::unique_ptr<Store> store_;  // after the buffers it reads into: closed first
  std::unique_ptr<CompletionQueue> cq_;
  std::uint64_t cursor_ = 0;
};

// Sets the device for a configuration at dilation d.
Status Configure(Bed& bed, const WssConfig& c, unsigned d, const WssOptions& o) {
  CxlSsd* dev = bed.device();
  if (dev == nullptr) return Status::Ok();
  dev->SetNextN(c.next_n);
  dev->SetLatencies(c.ceiling ? std::chrono::nanoseconds(0) : o.device.read_latency,
                    c.ceiling ? std::chrono::nanoseconds(0) : o.device.program_latency);
  return dev->SetDilation(d);
}

PrefetchStats Minus(PrefetchStats after, const PrefetchStats& before) {
  after.streams -= before.streams;
  after.pages_touched -= before.pages_touched;
  after.slow_touches -= before.slow_touches;
  after.touch_ns -= before.touch_ns;
  after.wakeups -= before.wakeups;
  after.probes -= before.probes;
  return after;  // what it learnt stays as it is now
}

// What a measurement is: whole passes or segments, and at which D.
struct Plan {
  bool segments = false;
  unsigned dilation = 1;
};

// Starts a measurement: the device set for the configuration, one warm-up pass or segment.
// Returns the rate of the warm-up (bytes/s) to size the segments that follow.
// One measured pass or segment; `rate` (bytes/s, from the last one) sizes a segment and is
// updated. Adds the bytes it read to *bytes.
Result<double> Measure(Bed& bed, const Plan& plan, const WssOptions& o, double* rate,
                       std::uint64_t* bytes) {
  std::uint64_t count = bed.chunks();
  if (plan.segments) {
    const double read_s = static_cast<double>(o.device.read_latency.count()) * 1e-9;
    const double seconds = std::max(o.segment_seconds, kSegmentReads * read_s * plan.dilation);
    const double want = *rate * seconds / static_cast<double>(o.chunk);
    count = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(want), kMinSegmentChunks,
                                      bed.chunks());
  }
  count = std::min(count, bed.chunks());
  CXLKV_ASSIGN_OR_RETURN(double t, bed.Retrieve(count));
  *rate = static_cast<double>(count * o.chunk) / std::max(t, 1e-9);
  *bytes += count * o.chunk;
  return *rate;
}

// Whole segments: a short one to size them, then two as long as a measured one, so that
// what the prefetcher learnt on the previous configuration (run length, misses in flight)
// has adapted before measuring.
Result<double> WarmUp(Bed& bed, const WssConfig& c, const Plan& plan, const WssOptions& o) {
  CXLKV_RETURN_IF_ERROR(Configure(bed, c, plan.dilation, o));
  if (plan.segments) CXLKV_RETURN_IF_ERROR(bed.Settle());  // the same start for every one
  const std::uint64_t count = plan.segments ? kMinSegmentChunks : bed.chunks();
  CXLKV_ASSIGN_OR_RETURN(double t, bed.Retrieve(count));
  double rate = static_cast<double>(std::min(count, bed.chunks()) * o.chunk) / std::max(t, 1e-9);
  for (int i = 0; plan.segments && i < 2; ++i) {
    std::uint64_t bytes = 0;
    CXLKV_RETURN_IF_ERROR(Measure(bed, plan, o, &rate, &bytes).status());
  }
  return rate;
}

void BeginStats(Bed& bed, PrefetchStats* prefetch) {
  if (bed.device()) bed.device()->ResetStats();
  *prefetch = bed.store().Stats().prefetch;
}

Status EndStats(Bed& bed, const PrefetchStats& before, WssResult* r) {
  if (bed.device()) {
    r->device = bed.device()->Stats();
    CXLKV_RETURN_IF_ERROR(bed.device()->health());
  }
  r->prefetch = Minus(bed.store().Stats().prefetch, before);
  return Status::Ok();
}

bool Enough(std::size_t n, double seconds, const Plan& plan, const WssOptions& o) {
  if (n >= o.max_passes) return true;
  if (n < std::max(1u, o.passes)) return false;
  return plan.segments || seconds >= o.min_seconds;
}

Result<WssResult> RunConfig(Bed& bed, const WssConfig& c, const Plan& plan, unsigned readers,
                            const WssOptions& o) {
  WssResult r;
  r.config = c.name;
  r.wss = bed.chunks() * o.chunk;
  r.dilation = plan.dilation;
  r.readers = readers;
  r.miss_region = plan.segments;
  CXLKV_ASSIGN_OR_RETURN(double rate, WarmUp(bed, c, plan, o));
  PrefetchStats before;
  BeginStats(bed, &before);
  std::vector<double> rates;
  double seconds = 0;
  while (!Enough(rates.size(), seconds, plan, o)) {
    std::uint64_t bytes = 0;
    CXLKV_ASSIGN_OR_RETURN(double got, Measure(bed, plan, o, &rate, &bytes));
    rates.push_back(got);
    seconds += static_cast<double>(bytes) / got;
    r.bytes_measured += bytes;
  }
  CXLKV_RETURN_IF_ERROR(EndStats(bed, before, &r));
  r.mb_per_s = Median(rates) / 1e6;
  r.passes = static_cast<unsigned>(rates.size());
  return r;
}

// The hit region's pair: passes without and with host prefetch interleaved, the order
// alternating, so that the host's drift (other jobs, memory bandwidth) falls on both alike.
// *ratio is host / none of the two medians.
Status RunPair(Bed& none_bed, const WssConfig& none, Bed& host_bed, const WssConfig& host,
               unsigned readers, const WssOptions& o, WssResult* none_r, WssResult* host_r,
               double* ratio) {
  const Plan plan;  // whole passes at D = 1
  none_r->config = none.name;
  host_r->config = host.name;
  none_r->wss = host_r->wss = none_bed.chunks() * o.chunk;
  none_r->readers = host_r->readers = readers;
  CXLKV_RETURN_IF_ERROR(WarmUp(none_bed, none, plan, o).status());
  CXLKV_RETURN_IF_ERROR(WarmUp(host_bed, host, plan, o).status());
  PrefetchStats none_before, host_before;
  BeginStats(none_bed, &none_before);
  BeginStats(host_bed, &host_before);
  std::vector<double> none_rates, host_rates;
  double seconds = 0;
  while (!Enough(none_rates.size(), seconds, plan, o)) {
    double rate = 0;
    std::uint64_t bytes = 0;
    double a = 0, b = 0;
    if (none_rates.size() % 2 == 0) {
      CXLKV_ASSIGN_OR_RETURN(a, Measure(none_bed, plan, o, &rate, &bytes));
      CXLKV_ASSIGN_OR_RETURN(b, Measure(host_bed, plan, o, &rate, &bytes));
    } else {
      CXLKV_ASSIGN_OR_RETURN(b, Measure(host_bed, plan, o, &rate, &bytes));
      CXLKV_ASSIGN_OR_RETURN(a, Measure(none_bed, plan, o, &rate, &bytes));
    }
    none_rates.push_back(a);
    host_rates.push_back(b);
    seconds += static_cast<double>(bytes / 2) / a;
    none_r->bytes_measured += bytes / 2;
    host_r->bytes_measured += bytes / 2;
  }
  CXLKV_RETURN_IF_ERROR(EndStats(none_bed, none_before, none_r));
  CXLKV_RETURN_IF_ERROR(EndStats(host_bed, host_before, host_r));
  none_r->mb_per_s = Median(none_rates) / 1e6;
  host_r->mb_per_s = Median(host_rates) / 1e6;
  *ratio = host_r->mb_per_s / none_r->mb_per_s;
  none_r->passes = host_r->passes = static_cast<unsigned>(none_rates.size());
  return Status::Ok();
}

bool IsGoalConfig(const WssConfig& c) {
  return !c.ceiling && !c.dram && c.readers == 0 &&
         (c.name == "next8" || c.name == "host" || c.name == "host+next8");
}

}  // namespace

WssGoalRatios GoalRatios(const std::vector<WssResult>& results, std::uint64_t wss, unsigned d,
                         double bound_d1) {
  auto rate = [&](const char* config) {
    for (const WssResult& r : results) {
      if (r.config == config && r.wss == wss && r.dilation == d && r.miss_region) return r.mb_per_s;
    }
    return static_cast<double>(NAN);
  };
  const double bound = bound_d1 / d;
  return {rate("host") / bound, rate("host+next8") / bound, rate("host+next8") / rate("next8")};
}

double GoalDrift(const WssGoalRatios& a, const WssGoalRatios& b) {
  double worst = NAN;
  for (auto [x, y] : {std::pair{a.host_bound, b.host_bound},
                      std::pair{a.host_next8_bound, b.host_next8_bound},
                      std::pair{a.host_next8_next8, b.host_next8_next8}}) {
    const double drift = std::fabs(y / x - 1);
    if (!std::isnan(drift)) worst = std::isnan(worst) ? drift : std::max(worst, drift);
  }
  return worst;
}

bool WssMissRegion(std::uint64_t wss, std::uint64_t cache_bytes) {
  return wss * 10 > cache_bytes * 9;
}

Result<WssConfig> WssConfig::Parse(const std::string& name) {
  WssConfig c;
  c.name = name;
  std::string rest = name;
  const std::size_t at = rest.find('@');
  if (at != std::string::npos) {
    const std::string r = rest.substr(at + 1);
    if (r.empty() || r.size() > 2 || r.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(r) == 0 || std::stoul(r) > 64) {
      return Status::InvalidArgument("configuration '" + name +
                                     "': readers after @ must be 1 to 64");
    }
    c.readers = static_cast<unsigned>(std::stoul(r));
    rest = rest.substr(0, at);
  }
  if (rest.rfind("ceiling:", 0) == 0) {
    c.ceiling = true;
    rest = rest.substr(8);
  }
  if (rest == "dram" && !c.ceiling) {
    c.dram = true;
    return c;
  }
  if (rest == "none") return c;
  if (rest.rfind("host", 0) == 0) {
    c.host = true;
    rest = rest.substr(4);
    if (rest.empty()) return c;
    if (rest[0] != '+') return Status::InvalidArgument("unknown configuration '" + name + "'");
    rest = rest.substr(1);
  }
  if (rest.rfind("next", 0) == 0 && rest.size() > 4 &&
      rest.find_first_not_of("0123456789", 4) == std::string::npos && rest.size() <= 8) {
    c.next_n = static_cast<unsigned>(std::stoul(rest.substr(4)));
    if (c.next_n > 0) return c;
  }
  return Status::InvalidArgument("unknown configuration '" + name +
                                 "' (dram, none, nextN, host, host+nextN, ceiling:..., ...@R)");
}

unsigned AutoDilation(double nand_bound_at_d1, double ceiling, double margin) {
  if (!(ceiling > 0) || !(nand_bound_at_d1 > 0)) return 1;
  const double d = std::ceil(margin * nand_bound_at_d1 / ceiling);
  return static_cast<unsigned>(std::clamp(d, 1.0, 10'000.0));
}

Result<WssCeiling> MeasureWssCeiling(const std::vector<WssConfig>& patterns, std::uint64_t wss,
                                     unsigned repeats, const WssDevices& devices,
                                     const WssOptions& o, const WssProgress& progress) {
  WssCeiling out;
  if (patterns.empty()) return out;
  // One bed per kind of store the patterns need; host ones on the second device.
  std::unique_ptr<Bed> plain, host;
  for (const WssConfig& p : patterns) {
    std::unique_ptr<Bed>& bed = p.host ? host : plain;
    if (bed) continue;
    CXLKV_ASSIGN_OR_RETURN(bed, Bed::Open(p.host ? devices.b : devices.a, p.host, o.readers,
                                          wss, o));
  }
  const Plan plan{true, 1};
  std::map<std::string, WssResult> slowest;
  for (unsigned rep = 0; rep < std::max(1u, repeats); ++rep) {
    for (const WssConfig& p : patterns) {
      WssConfig c = p;
      c.ceiling = true;
      c.name = "ceiling:" + p.name;
      if (progress) progress(c.name + " #" + std::to_string(rep + 1));
      CXLKV_ASSIGN_OR_RETURN(WssResult r,
                             RunConfig(p.host ? *host : *plain, c, plan, o.readers, o));
      out.mb_per_s[c.name].push_back(r.mb_per_s);
      auto it = slowest.find(c.name);
      if (it == slowest.end() || r.mb_per_s < it->second.mb_per_s) slowest[c.name] = r;
    }
  }
  for (auto& [name, r] : slowest) {
    out.conservative_mb_per_s = out.results.empty()
                                    ? r.mb_per_s
                                    : std::min(out.conservative_mb_per_s, r.mb_per_s);
    out.results.push_back(r);
  }
  std::uint64_t good[2] = {0, 0}, bad[2] = {0, 0};
  if (plain) plain->Verify(&good[0], &bad[0]);
  if (host) host->Verify(&good[1], &bad[1]);
  for (WssResult& r : out.results) {
    const int on_host = r.config.rfind("ceiling:host", 0) == 0 ? 1 : 0;
    r.chunks_verified = good[on_host];
    r.chunks_bad = bad[on_host];
  }
  return out;
}

Result<WssSweep> RunWssSweep(const std::vector<WssConfig>& configs, const WssDevices& devices,
                             const WssOptions& o, const WssProgress& progress) {
  WssSweep sweep;
  std::vector<unsigned> readers_values = {o.readers};
  for (const WssConfig& c : configs) {
    const unsigned r = c.readers ? c.readers : o.readers;
    if (std::find(readers_values.begin(), readers_values.end(), r) == readers_values.end()) {
      readers_values.push_back(r);
    }
  }
  std::vector<std::uint64_t> sets = o.wss;
  std::sort(sets.rbegin(), sets.rend());  // the largest (and slowest) first
  for (std::uint64_t wss : sets) {
    const bool miss = WssMissRegion(wss, o.device.cache_bytes);
    const Plan plan{miss, miss ? o.dilation : 1};
    for (unsigned readers : readers_values) {
      std::vector<WssConfig> dram, plain, host;
      for (const WssConfig& c : configs) {
        if ((c.readers ? c.readers : o.readers) != readers) continue;
        (c.dram ? dram : c.host ? host : plain).push_back(c);
      }
      // Each bed's chunks back after its configurations; the rows of a bed carry its count.
      std::vector<Bed*> bed_of;  // per result from `first` on
      auto verify = [&](std::size_t first, Bed* bed) {
        if (bed == nullptr) return;
        std::uint64_t good = 0, bad = 0;
        bed->Verify(&good, &bad);
        sweep.chunks_verified += good;
        sweep.chunks_bad += bad;
        for (std::size_t i = first; i < sweep.results.size(); ++i) {
          if (bed_of[i - first] != bed) continue;
          sweep.results[i].chunks_verified = good;
          sweep.results[i].chunks_bad = bad;
        }
      };
      auto run = [&](Bed& bed, const WssConfig& c, const Plan& p, bool convergence) -> Status {
        if (progress) {
          progress(c.name + "  " + FormatBytes(wss) + (p.dilation > 1 ? "  D " +
                   std::to_string(p.dilation) : ""));
        }
        CXLKV_ASSIGN_OR_RETURN(WssResult r, RunConfig(bed, c, p, readers, o));
        r.convergence = convergence;
        sweep.results.push_back(std::move(r));
        bed_of.push_back(&bed);
        return Status::Ok();
      };
      if (!dram.empty()) {
        bed_of.clear();
        const std::size_t first = sweep.results.size();
        CXLKV_ASSIGN_OR_RETURN(std::unique_ptr<Bed> bed, Bed::Open(nullptr, false, readers, wss, o));
        for (const WssConfig& c : dram) CXLKV_RETURN_IF_ERROR(run(*bed, c, Plan{}, false));
        verify(first, bed.get());
      }
      if (plain.empty() && host.empty()) continue;
      std::unique_ptr<Bed> plain_bed, host_bed;
      if (!plain.empty()) {
        CXLKV_ASSIGN_OR_RETURN(plain_bed, Bed::Open(devices.a, false, readers, wss, o));
      }
      if (!host.empty()) {
        CXLKV_ASSIGN_OR_RETURN(host_bed, Bed::Open(devices.b, true, readers, wss, o));
      }
      bed_of.clear();
      const std::size_t first = sweep.results.size();
      // The hit region's goal pair first, interleaved.
      auto none_it = std::find_if(plain.begin(), plain.end(),
                                  [](const WssConfig& c) { return !c.ceiling && c.next_n == 0; });
      auto host_it = std::find_if(host.begin(), host.end(),
                                  [](const WssConfig& c) { return !c.ceiling && c.next_n == 0; });
      std::vector<const WssConfig*> left;
      if (!miss && none_it != plain.end() && host_it != host.end()) {
        if (progress) progress(none_it->name + " / " + host_it->name + "  " + FormatBytes(wss));
        WssResult a, b;
        CXLKV_RETURN_IF_ERROR(RunPair(*plain_bed, *none_it, *host_bed, *host_it, readers, o, &a,
                                      &b, &sweep.hit_ratio[wss]));
        sweep.results.push_back(std::move(a));
        bed_of.push_back(plain_bed.get());
        sweep.results.push_back(std::move(b));
        bed_of.push_back(host_bed.get());
        for (const WssConfig& c : plain) {
          if (&c != &*none_it) left.push_back(&c);
        }
        for (const WssConfig& c : host) {
          if (&c != &*host_it) left.push_back(&c);
        }
      } else {
        for (const WssConfig& c : plain) left.push_back(&c);
        for (const WssConfig& c : host) left.push_back(&c);
      }
      for (const WssConfig* c : left) {
        CXLKV_RETURN_IF_ERROR(run(c->host ? *host_bed : *plain_bed, *c, plan, false));
      }
      // Convergence: the goal configurations again at 2D, at the largest set, and at 4D, 8D
      // while their ratios still move more than kConvergedDrift.
      if (miss && o.convergence && wss == sets.front() && readers == o.readers) {
        const double bound_d1 = static_cast<double>(o.device.channels * o.device.dies_per_channel) *
                                static_cast<double>(o.device.page_size) /
                                (static_cast<double>(o.device.read_latency.count()) * 1e-9) / 1e6;
        sweep.ladder = {plan.dilation};
        for (unsigned k = 1; k <= std::max(1u, o.max_doublings); ++k) {
          const unsigned d = sweep.ladder.back();
          if (2 * d > 10'000u) break;
          const Plan twice{true, 2 * d};
          for (const WssConfig* c : left) {
            if (IsGoalConfig(*c)) {
              CXLKV_RETURN_IF_ERROR(run(c->host ? *host_bed : *plain_bed, *c, twice, true));
            }
          }
          sweep.ladder.push_back(2 * d);
          const double drift = GoalDrift(GoalRatios(sweep.results, wss, d, bound_d1),
                                         GoalRatios(sweep.results, wss, 2 * d, bound_d1));
          if (drift <= kConvergedDrift) {
            sweep.converged_d = d;
            break;
          }
          if (std::isnan(drift)) break;  // nothing to compare: no goal configurations
        }
      }
      verify(first, plain_bed.get());
      verify(first, host_bed.get());
    }
  }
  return sweep;
}

}  // namespace cxlkv::cli
