// bench_lmcache: the contract LMCache's MP-mode native_plugin L2 adapter drives
// (python/lmcache_connector.h: submit a batch, wait on event_fd, drain), against baselines
// measured in the same run. The Python object LMCache loads calls these methods one to one
// (python/lmcache_native.cc); bench/lmcache_native_bench.py measures the same through Python.
//
//   1. batched get of 32 x 2 MiB into the caller's buffers, against a memcpy of the same
//      bytes into the same buffers by one thread (goal >= 0.9x) and by as many threads as the
//      store has copy threads (shown, no goal);
//   2. batched set of 32 x 2 MiB from the caller's buffers (goal >= 0.8x of the one-thread
//      memcpy);
//   3. the latency of one 64 KiB get, from submit until its completion is drained after the
//      eventfd turned readable (goal p99 < 20 us);
//   4. reopen of a durable pool holding 100,000 chunks: after a clean close (from the index
//      snapshot; goal < 1 s) and after the process died without closing (header scan).
//
// Usage: bench_lmcache [--quick] [--dir DIR] [--reps N] [--chunks N]
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench/store_bench.h"
#include "python/lmcache_connector.h"

namespace cxlkv::bench {
namespace {

using lmcache::BatchCompletion;
using lmcache::LmcacheConnector;

struct Args {
  bool quick = false;
  int reps = 9;
  std::size_t reopen_chunks = 100000;
  std::string dir;
};

StoreOptions DramStore(std::size_t capacity) {
  StoreOptions o;
  TierOptions t;
  t.name = "dram";
  t.source_spec = "dram";
  t.capacity = capacity;
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = {2 * kMiB, 64 * kKiB};
  return o;
}

std::unique_ptr<LmcacheConnector> Open(StoreOptions o, const std::string& what) {
  return Unwrap(LmcacheConnector::Open(std::move(o)), "opening " + what);
}

// What LMCache's demux thread does: poll the fd, drain, until `id` is among the completions.
BatchCompletion WaitFor(LmcacheConnector& c, std::uint64_t id) {
  for (;;) {
    pollfd p{c.event_fd(), POLLIN, 0};
    if (::poll(&p, 1, 10000) == 0) Fail("no completion within 10 s");
    for (BatchCompletion& d : c.Drain()) {
      if (d.future_id == id) return d;
    }
  }
}

void RequireAll(const BatchCompletion& d, const std::string& what) {
  const bool all = std::all_of(d.per_key.begin(), d.per_key.end(), [](bool b) { return b; });
  if (!d.ok || !all) Fail(what + " failed: " + d.error);
}

std::vector<std::string> Keys(std::size_t n, std::size_t space) {
  std::vector<std::string> k;
  for (std::size_t i = 0; i < n; ++i) k.push_back(Key(i, space));
  return k;
}

// The memcpy baseline: the same bytes into the same buffers, split over `threads` threads.
double MemcpySeconds(const std::vector<std::span<std::byte>>& dst, const std::byte* src,
                     std::size_t chunk, unsigned threads) {
  const auto start = Clock::now();
  std::vector<std::thread> t;
  for (unsigned w = 0; w < threads; ++w) {
    t.emplace_back([&, w] {
      for (std::size_t i = w; i < dst.size(); i += threads) {
        std::memcpy(dst[i].data(), src + i * chunk, chunk);
      }
    });
  }
  for (auto& x : t) x.join();
  return Seconds(start);
}

void BatchedGetAndSet(const Args& a) {
  constexpr std::size_t kChunks = 32, kChunk = 2 * kMiB;
  StoreOptions o = DramStore(256 * kMiB);
  const unsigned copy_threads = o.copy_threads;
  auto c = Open(std::move(o), "a DRAM store");
  auto src = DramBuffer(kChunks * kChunk, "the chunks");
  auto dst = DramBuffer(kChunks * kChunk, "LMCache's buffers");
  for (std::size_t i = 0; i < kChunks * kChunk; i += 4096) {
    src->data()[i] = static_cast<std::byte>(i / 4096);
  }
  std::vector<std::span<const std::byte>> put_spans;
  std::vector<std::span<std::byte>> get_spans;
  for (std::size_t i = 0; i < kChunks; ++i) {
    put_spans.emplace_back(src->data() + i * kChunk, kChunk);
    get_spans.emplace_back(dst->data() + i * kChunk, kChunk);
  }
  const std::vector<std::string> keys = Keys(kChunks, 1);

  std::vector<double> set_s, get_s, mem1_s, memn_s;
  for (int r = 0; r < a.reps + 1; ++r) {  // the first round warms the slots up, not counted
    auto t0 = Clock::now();
    RequireAll(WaitFor(*c, Unwrap(c->SubmitSet(keys, put_spans), "set")), "set");
    const double set = Seconds(t0);
    t0 = Clock::now();
    RequireAll(WaitFor(*c, Unwrap(c->SubmitGet(keys, get_spans), "get")), "get");
    const double get = Seconds(t0);
    if (std::memcmp(dst->data(), src->data(), kChunks * kChunk) != 0) Fail("get: bytes differ");
    const double m1 = MemcpySeconds(get_spans, src->data(), kChunk, 1);
    const double mn = MemcpySeconds(get_spans, src->data(), kChunk, copy_threads);
    RequireAll(WaitFor(*c, Unwrap(c->SubmitDelete(keys), "delete")), "delete");
    if (r == 0) continue;
    set_s.push_back(set);
    get_s.push_back(get);
    mem1_s.push_back(m1);
    memn_s.push_back(mn);
  }
  const double gb = static_cast<double>(kChunks * kChunk) / 1e9;
  const double get = gb / Median(get_s), set = gb / Median(set_s);
  const double m1 = gb / Median(mem1_s), mn = gb / Median(memn_s);
  std::printf("batched get, 32 x 2 MiB: %.2f GB/s, %.2fx memcpy by 1 thread (%.2f GB/s; goal >= "
              "0.90x: %s), %.2fx memcpy by %u threads (%.2f GB/s)\n",
              get, get / m1, m1, MetText(get / m1 >= 0.9), get / mn, copy_threads, mn);
  std::printf("batched set, 32 x 2 MiB: %.2f GB/s, %.2fx memcpy by 1 thread (goal >= 0.80x: %s), "
              "%.2fx memcpy by %u threads\n",
              set, set / m1, MetText(set / m1 >= 0.8), set / mn, copy_threads);
}

void CompletionLatency(const Args& a) {
  constexpr std::size_t kChunk = 64 * kKiB;
  auto c = Open(DramStore(64 * kMiB), "a DRAM store");
  auto buf = DramBuffer(2 * kChunk, "buffers");
  const std::vector<std::string> key = {Key(7, 2)};
  std::vector<std::span<const std::byte>> put = {{buf->data(), kChunk}};
  std::vector<std::span<std::byte>> get = {{buf->data() + kChunk, kChunk}};
  RequireAll(WaitFor(*c, Unwrap(c->SubmitSet(key, put), "set")), "set");
  const int ops = a.quick ? 2000 : 20000;
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(ops));
  for (int i = 0; i < ops + 100; ++i) {
    const auto t0 = Clock::now();
    const BatchCompletion d = WaitFor(*c, Unwrap(c->SubmitGet(key, get), "get"));
    const double t = Seconds(t0) * 1e9;
    RequireAll(d, "get");
    if (i >= 100) ns.push_back(t);
  }
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) {
    return ns[static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1))] / 1e3;
  };
  std::printf("completion latency, one 64 KiB get, submit to drained (%d ops): p50 %.1f us, p99 "
              "%.1f us (goal < 20 us: %s), p99.9 %.1f us, max %.1f us\n",
              ops, pct(0.5), pct(0.99), MetText(pct(0.99) < 20), pct(0.999), pct(1.0));
}

StoreOptions PoolStore(const std::string& path, std::size_t chunks, std::size_t chunk) {
  StoreOptions o;
  TierOptions t;
  t.name = "pool";
  t.source_spec = "file:" + path;
  // Slots of chunk + header; 1/8 spare for slab rounding and the pool's metadata slab.
  t.capacity = (chunks * (chunk + 256) / kMiB + 1) * kMiB * 9 / 8 + 8 * kMiB;
  t.durability = "background";  // filled at memory speed, made durable by Sync
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = {chunk};
  return o;
}

// Fills a pool with `chunks` chunks of 4 KiB through the connector, 256 a batch, then Syncs.
void Fill(LmcacheConnector& c, std::size_t chunks) {
  constexpr std::size_t kBatch = 256, kChunk = 4 * kKiB;
  std::vector<std::byte> bytes(kBatch * kChunk);
  for (std::size_t first = 0; first < chunks; first += kBatch) {
    const std::size_t n = std::min(kBatch, chunks - first);
    std::vector<std::string> keys;
    std::vector<std::span<const std::byte>> spans;
    for (std::size_t i = 0; i < n; ++i) {
      keys.push_back(Key(first + i, 3));
      std::memcpy(bytes.data() + i * kChunk, &first, sizeof(first));
      spans.emplace_back(bytes.data() + i * kChunk, kChunk);
    }
    RequireAll(WaitFor(c, Unwrap(c.SubmitSet(keys, spans), "fill")), "fill");
  }
  c.store()->Sync();
}

double ReopenSeconds(const std::string& path, std::size_t chunks) {
  const auto t0 = Clock::now();
  auto c = Open(PoolStore(path, chunks, 4 * kKiB), "the pool again");
  const double s = Seconds(t0);
  // Every chunk must be back: a reopen that lost chunks would be fast for the wrong reason.
  const std::vector<std::string> sample = {Key(0, 3), Key(chunks / 2, 3), Key(chunks - 1, 3)};
  const std::size_t found = c->store()->Stats().index_entries;
  RequireAll(WaitFor(*c, Unwrap(c->SubmitExists(sample), "exists")),
             "exists after reopening " + path + " (" + std::to_string(found) + " chunks found)");
  if (found != chunks) {
    Fail("reopen found " + std::to_string(found) + " of " + std::to_string(chunks) + " chunks");
  }
  return s;
}

void Reopen(const Args& a) {
  TempDir dir(a.dir);
  const std::size_t chunks = a.reopen_chunks;
  const std::string clean = dir.File("clean.pool"), crashed = dir.File("crashed.pool");
  {
    auto c = Open(PoolStore(clean, chunks, 4 * kKiB), "a durable pool");
    Fill(*c, chunks);
    c->Close();  // clean: the index snapshot is written
  }
  // The crash case: a child fills the pool, makes it durable and dies without closing.
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child < 0) Fail("fork failed");
  if (child == 0) {
    auto r = LmcacheConnector::Open(PoolStore(crashed, chunks, 4 * kKiB));
    if (!r.ok()) ::_exit(2);
    Fill(**r, chunks);
    ::_exit(0);
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Fail("the filling child failed");
  }
  std::vector<double> snap, scan;
  for (int r = 0; r < 3; ++r) {
    snap.push_back(ReopenSeconds(clean, chunks));
    // A reopen closes the pool cleanly, so each crash reopen starts from a fresh copy of the
    // image the killed child left.
    const std::string copy = dir.File("crashed-copy.pool");
    std::error_code ec;
    std::filesystem::copy_file(crashed, copy, std::filesystem::copy_options::overwrite_existing,
                               ec);
    if (ec) Fail("copying the crash image: " + ec.message());
    scan.push_back(ReopenSeconds(copy, chunks));
  }
  std::printf("reopen of a durable pool of %zu chunks (4 KiB, a file under %s), median of 3: "
              "after a clean close %.0f ms (goal < 1 s: %s); after the process died without "
              "closing %.0f ms (header scan)\n",
              chunks, a.dir.c_str(), Median(snap) * 1e3, MetText(Median(snap) < 1.0),
              Median(scan) * 1e3);
}

}  // namespace
}  // namespace cxlkv::bench

int main(int argc, char** argv) {
  using namespace cxlkv::bench;  // NOLINT(google-build-using-namespace)
  Args a;
  const char* tmp = std::getenv("TMPDIR");
  a.dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      a.quick = true;
      a.reps = 3;
      a.reopen_chunks = 10000;
    } else if (arg == "--dir" && i + 1 < argc) {
      a.dir = argv[++i];
    } else if (arg == "--reps" && i + 1 < argc) {
      a.reps = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--chunks" && i + 1 < argc) {
      a.reopen_chunks = std::max<std::size_t>(1000, std::strtoull(argv[++i], nullptr, 10));
    } else {
      std::fprintf(stderr, "usage: bench_lmcache [--quick] [--dir DIR] [--reps N] [--chunks N]\n");
      return 2;
    }
  }
  BatchedGetAndSet(a);
  CompletionLatency(a);
  Reopen(a);
  return 0;
}
