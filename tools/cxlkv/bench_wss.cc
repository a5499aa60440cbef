#include "tools/cxlkv/bench_wss.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "cxlkv/completion_queue.h"
#include "cxlkv/store.h"
#include "util/cpu.h"
#include "util/format.h"

namespace cxlkv::cli {

namespace {

using Clock = std::chrono::steady_clock;

// The destination of a pass: a ring of chunk buffers, as a cache engine reuses its staging
// memory. Large enough that the copy threads, which take chunks in order, never write one
// buffer at once (the bytes of a timed pass are checked separately anyway).
constexpr std::size_t kRingChunks = 512;

void FillChunk(std::vector<std::byte>& buf, std::uint64_t index) {
  auto* w = reinterpret_cast<std::uint64_t*>(buf.data());
  const std::size_t words = buf.size() / 8;
  for (std::size_t i = 0; i < words; ++i) w[i] = (index << 32) ^ (i * 0x9E3779B97F4A7C15ull);
}

std::string Key(std::uint64_t i) { return "wss/" + std::to_string(i); }

}  // namespace

Result<WssConfig> WssConfig::Parse(const std::string& name) {
  WssConfig c;
  c.name = name;
  std::string rest = name;
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
                                 "' (dram, none, nextN, host, host+nextN, ceiling:...)");
}

Result<WssResult> RunWssPoint(const WssConfig& config, std::uint64_t wss,
                              const std::shared_ptr<CxlSsd>& device, const WssOptions& options) {
  const std::uint64_t chunks = wss / options.chunk;
  if (chunks == 0) {
    return Status::InvalidArgument("working set " + FormatBytes(wss) + " holds no chunk of " +
                                   FormatBytes(options.chunk));
  }
  StoreOptions so;
  so.background_thread = false;
  so.copy_threads = options.copy_threads;
  so.copy_thread_cpus = AllowedCpus();
  so.chunk_sizes = {options.chunk};
  if (config.host) so.prefetch = options.prefetch;
  TierOptions tier;
  if (config.dram) {
    tier.name = "dram";
    tier.source_spec = "dram";
    // Chunks, their 256-byte headers, and slack for the slab classes.
    const std::uint64_t slab = so.slab_size;
    tier.capacity = ((wss + chunks * 256) * 11 / 10 + 2 * slab) / slab * slab;
  } else {
    if (!device) return Status::InvalidArgument("configuration " + config.name + " needs a device");
    tier.name = "cxlssd";
    tier.source = CxlSsd::Source(device);
    tier.capacity = device->size();
    device->SetTiming(false);
    CXLKV_RETURN_IF_ERROR(device->DropCache());
    device->SetNextN(config.next_n);
    const CxlSsdOptions& d = device->options();
    device->SetLatencies(config.ceiling ? std::chrono::nanoseconds(0) : d.read_latency,
                         config.ceiling ? std::chrono::nanoseconds(0) : d.program_latency);
  }
  so.tiers.push_back(std::move(tier));
  CXLKV_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(std::move(so)));

  // Store the working set.
  std::vector<std::byte> buf(options.chunk);
  std::vector<std::string> keys(chunks);
  for (std::uint64_t i = 0; i < chunks; ++i) {
    keys[i] = Key(i);
    FillChunk(buf, i);
    Status s = store->Put(keys[i], buf);
    if (!s.ok()) return s.WithContext("storing chunk " + std::to_string(i) + " of the working set");
  }
  if (device) {
    device->SetTiming(true);
    device->ResetStats();
  }

  // Retrieve it in passes.
  const std::size_t ring = std::min<std::uint64_t>(chunks, kRingChunks);
  std::vector<std::byte> dst(ring * options.chunk);
  std::vector<GetRequest> requests(chunks);
  for (std::uint64_t i = 0; i < chunks; ++i) {
    requests[i].key = keys[i];
    requests[i].dst = {dst.data() + (i % ring) * options.chunk, options.chunk};
    requests[i].user_data = i;
  }
  CXLKV_ASSIGN_OR_RETURN(std::unique_ptr<CompletionQueue> cq, CompletionQueue::Create());
  std::vector<Completion> done(std::min<std::uint64_t>(chunks, 1024));
  auto pass = [&]() -> Result<double> {
    const auto t0 = Clock::now();
    CXLKV_RETURN_IF_ERROR(store->SubmitGets(requests, *cq));
    std::uint64_t got = 0;
    while (got < chunks) {
      const std::size_t n = cq->Wait(done, 1, std::chrono::milliseconds(60'000));
      if (n == 0) return Status::IOError("a batched get made no progress for 60 s");
      for (std::size_t i = 0; i < n; ++i) {
        if (!done[i].status.ok()) return done[i].status.WithContext("retrieving the working set");
      }
      got += n;
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };

  WssResult r;
  r.config = config.name;
  r.wss = chunks * options.chunk;
  CXLKV_ASSIGN_OR_RETURN(r.warmup_seconds, pass());
  if (device) device->ResetStats();
  const StoreStats before = store->Stats();
  std::vector<double> times;
  double total = 0;
  while (times.size() < options.max_passes &&
         (times.size() < options.min_passes || total < options.min_seconds)) {
    CXLKV_ASSIGN_OR_RETURN(double t, pass());
    times.push_back(t);
    total += t;
  }
  std::sort(times.begin(), times.end());
  r.median_seconds = times[times.size() / 2];
  r.passes = static_cast<unsigned>(times.size());
  if (device) {
    r.device = device->Stats();
    CXLKV_RETURN_IF_ERROR(device->health());
  }
  const StoreStats after = store->Stats();
  r.prefetch = after.prefetch;
  r.prefetch.pages_touched -= before.prefetch.pages_touched;
  r.prefetch.slow_touches -= before.prefetch.slow_touches;
  r.prefetch.touch_ns -= before.prefetch.touch_ns;
  r.prefetch.wakeups -= before.prefetch.wakeups;
  r.prefetch.streams -= before.prefetch.streams;

  // Every chunk back, compared with what was put (timing off: this is a check, not a pass).
  if (device) device->SetTiming(false);
  std::vector<std::byte> want(options.chunk);
  for (std::uint64_t i = 0; i < chunks; ++i) {
    FillChunk(want, i);
    Result<std::size_t> n = store->Get(keys[i], buf);
    if (n.ok() && *n == options.chunk && std::memcmp(buf.data(), want.data(), want.size()) == 0) {
      ++r.chunks_verified;
    } else {
      ++r.chunks_bad;
    }
  }
  if (device) device->SetTiming(true);
  return r;
}

}  // namespace cxlkv::cli
