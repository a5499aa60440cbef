// bench_pool: what durability costs, against baselines measured in the same run.
//
// 1. Reopen. A pool of N chunks (4 KiB each: reopening reads headers, never chunk bytes, so
//    the chunk size does not matter) is closed cleanly, then reopened twice:
//      snapshot  Store::Open on the cleanly closed pool (index snapshot; only the headers it
//                names are read, to check them);
//      scan      Store::Open on a copy taken while a store had it open (what a crash leaves:
//                every header slot scanned, in parallel, and the index rebuilt).
//    Baseline: reading the bytes of every header span with pread, in order, into a buffer
//    (one sequential read of the same bytes). Ratios: time / baseline.
// 2. Puts. For each chunk size, the same chunks are put into a freshly formatted pool as
//    volatile, persist-on-put and background (timed until Sync returns); ratio to volatile.
//    The region's persistence granularity is printed: a file in the page cache is "page"
//    (msync); libpmem2's PMEM2_FORCE_GRANULARITY=CACHE_LINE shows what cache-line flushing
//    (devdax, pmem) costs on the same bytes.
//
// Usage: bench_pool [--dir DIR] [--chunks N,N] [--put-mib N] [--repeats N] [--quick]
// --quick (the CI smoke test): 2000 chunks, 16 MiB of 128 KiB and 2 MiB puts, one round.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backends/pool/pool_scan.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/store.h"
#include "util/cpu.h"
#include "util/format.h"

namespace {

using cxlkv::FormatBytes;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr std::size_t kKiB = 1024, kMiB = 1024 * kKiB;
constexpr std::size_t kSmall = 4 * kKiB;

struct Options {
  std::string dir;
  std::vector<std::size_t> chunks = {10000, 100000};
  std::size_t put_mib = 256;
  int repeats = 3;
  std::vector<std::size_t> put_sizes = {128 * kKiB, 2 * kMiB, 32 * kMiB};
};

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] void Die(const std::string& what, const cxlkv::Status& s) {
  std::fprintf(stderr, "bench_pool: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

cxlkv::StoreOptions PoolOptions(const std::string& path, std::size_t capacity,
                                const std::string& durability, bool format,
                                std::vector<std::size_t> chunk_sizes) {
  cxlkv::StoreOptions o;
  cxlkv::TierOptions t;
  t.name = "pool";
  t.source_spec = "file:" + path;
  t.capacity = capacity;
  t.durability = durability;
  t.format = format;
  t.flush_interval = std::chrono::milliseconds(100);
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = std::move(chunk_sizes);
  o.background_thread = false;
  o.copy_threads = 1;
  return o;
}

std::string KeyOf(std::size_t i) { return "vllm@bench@pool@" + std::to_string(i); }

// Bytes of every header span of the pool file, read with pread in order.
double BaselineHeaderRead(const std::string& path, std::size_t* bytes_out) {
  std::vector<std::byte> image(fs::file_size(path));
  {
    const int fd = open(path.c_str(), O_RDONLY);
    std::size_t done = 0;
    while (done < image.size()) {
      const ssize_t n = pread(fd, image.data() + done, image.size() - done,
                              static_cast<off_t>(done));
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    close(fd);
  }
  auto scan = cxlkv::internal::ScanPool(image);
  if (!scan.ok()) Die("scanning for the baseline", scan.status());
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  const std::size_t slab = scan->superblock.geometry.slab_size;
  for (const auto& sp : scan->spans) {
    if (sp.slot_size == cxlkv::internal::ChunkHeader::kSize) {
      ranges.push_back({sp.first_slab * slab, sp.slabs * slab});
    }
  }
  std::size_t total = 0;
  for (const auto& r : ranges) total += r.second;
  std::vector<std::byte> buf(total);
  const int fd = open(path.c_str(), O_RDONLY);
  const auto t0 = Clock::now();
  std::size_t at = 0;
  for (const auto& [offset, len] : ranges) {
    if (pread(fd, buf.data() + at, len, static_cast<off_t>(offset)) != static_cast<ssize_t>(len)) {
      Die("pread", cxlkv::Status::IOError("short read"));
    }
    at += len;
  }
  const auto t1 = Clock::now();
  close(fd);
  *bytes_out = total;
  return Seconds(t0, t1);
}

void Reopen(const Options& o) {
  std::printf("Reopen: %u scan threads (the allowed CPUs), pool files in %s, median of %d\n",
              static_cast<unsigned>(cxlkv::AllowedCpus().size()), o.dir.c_str(), o.repeats);
  std::printf("%8s %10s %10s %10s %12s %12s %12s %10s\n", "chunks", "headers", "read ms",
              "snap ms", "scan ms", "snap/read", "scan/read", "found");
  for (const std::size_t n : o.chunks) {
    const std::string pool = o.dir + "/reopen.pool", crashed = o.dir + "/reopen.crashed";
    const std::size_t capacity = (n * (kSmall + 256) / (4 * kMiB) + 4) * 4 * kMiB;
    {
      auto s = cxlkv::Store::Open(PoolOptions(pool, capacity, "background", true, {kSmall}));
      if (!s.ok()) Die("opening the pool", s.status());
      std::vector<std::byte> chunk(kSmall, std::byte{0x5a});
      for (std::size_t i = 0; i < n; ++i) {
        const cxlkv::Status st = (*s)->Put(KeyOf(i), chunk);
        if (!st.ok()) Die("put", st);
      }
    }  // clean close: the snapshot
    std::vector<double> read_s, snap_s, scan_s;
    std::size_t header_bytes = 0, found = 0;
    for (int r = 0; r < o.repeats; ++r) {
      read_s.push_back(BaselineHeaderRead(pool, &header_bytes));
      {
        const auto t0 = Clock::now();
        auto s = cxlkv::Store::Open(PoolOptions(pool, capacity, "background", false, {kSmall}));
        const auto t1 = Clock::now();
        if (!s.ok()) Die("reopening", s.status());
        if (!(*s)->Stats().tiers[0].recovered_from_snapshot) {
          Die("reopening", cxlkv::Status::Corruption("the snapshot was not used"));
        }
        snap_s.push_back(Seconds(t0, t1));
        fs::remove(crashed);
        fs::copy_file(pool, crashed);  // unclean: the copy says "in use"
      }
      const auto t0 = Clock::now();
      auto s = cxlkv::Store::Open(PoolOptions(crashed, capacity, "background", false, {kSmall}));
      const auto t1 = Clock::now();
      if (!s.ok()) Die("reopening the crash copy", s.status());
      found = (*s)->Stats().tiers[0].recovered;
      if ((*s)->Stats().tiers[0].recovered_from_snapshot || found != n) {
        Die("reopening the crash copy", cxlkv::Status::Corruption("not a full scan"));
      }
      scan_s.push_back(Seconds(t0, t1));
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double rd = median(read_s), sn = median(snap_s), sc = median(scan_s);
    std::printf("%8zu %10s %10.2f %10.2f %12.2f %12.2f %12.2f %10zu\n", n,
                FormatBytes(header_bytes).c_str(), rd * 1e3, sn * 1e3, sc * 1e3, sn / rd, sc / rd,
                found);
    fs::remove(pool);
    fs::remove(crashed);
  }
}

void Puts(const Options& o) {
  const std::string pool = o.dir + "/puts.pool";
  {
    cxlkv::FileOptions fo;
    fo.path = pool;
    auto region = cxlkv::MemorySource::File(fo)->Map(4 * kMiB);
    if (region.ok()) std::printf("\nPuts: region %s\n", (*region)->info().ToString().c_str());
    fs::remove(pool);
  }
  std::printf("%8s %16s %10s %10s %10s %12s %12s\n", "chunk", "mode", "GB/s", "p50 us",
              "ratio", "", "");
  for (const std::size_t size : o.put_sizes) {
    const std::size_t count = std::max<std::size_t>(4, o.put_mib * kMiB / size);
    const std::size_t capacity = (count * size * 5 / 4 / (4 * kMiB) + 8) * 4 * kMiB;
    std::vector<std::byte> chunk(size);
    for (std::size_t i = 0; i < size; ++i) chunk[i] = static_cast<std::byte>(i * 131 + 7);
    double volatile_gbps = 0;
    for (const char* mode : {"volatile", "persist-on-put", "background"}) {
      std::vector<double> gbps;
      std::uint64_t p50 = 0;
      for (int r = 0; r < o.repeats; ++r) {
        auto s = cxlkv::Store::Open(PoolOptions(pool, capacity, mode, true, {size}));
        if (!s.ok()) Die(std::string("opening for ") + mode, s.status());
        // Touch every page once (a first write into a fresh file allocates its blocks), so
        // the timed puts measure durability, not the file system's allocation.
        {
          for (std::size_t i = 0; i < count; ++i) {
            const cxlkv::Status st = (*s)->Put("warm" + KeyOf(i), chunk);
            if (!st.ok()) Die("warm put", st);
          }
          for (std::size_t i = 0; i < count; ++i) (void)(*s)->Remove("warm" + KeyOf(i));
          (*s)->Sync();
        }
        const auto before = (*s)->Stats().put_latency.count;
        const auto t0 = Clock::now();
        for (std::size_t i = 0; i < count; ++i) {
          const cxlkv::Status st = (*s)->Put(KeyOf(i), chunk);
          if (!st.ok()) Die("put", st);
        }
        (*s)->Sync();
        const auto t1 = Clock::now();
        gbps.push_back(static_cast<double>(count * size) / Seconds(t0, t1) / 1e9);
        p50 = (*s)->Stats().put_latency.p50_ns;
        (void)before;
        s->reset();
        fs::remove(pool);
      }
      std::sort(gbps.begin(), gbps.end());
      const double g = gbps[gbps.size() / 2];
      if (std::string(mode) == "volatile") volatile_gbps = g;
      std::printf("%8s %16s %10.2f %10.1f %10.2f\n", FormatBytes(size).c_str(), mode, g,
                  static_cast<double>(p50) / 1e3, g / volatile_gbps);
    }
  }
  std::printf("Goals: cold recovery (scan) of 100k chunks under 1 s; persist-on-put >= 0.7x "
              "volatile for chunks >= 2 MiB.\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const char* tmp = std::getenv("TMPDIR");
  o.dir = tmp != nullptr ? tmp : "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_pool: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dir") {
      o.dir = next();
    } else if (a == "--chunks") {
      o.chunks.clear();
      std::string v = next();
      for (std::size_t p = 0; p < v.size();) {
        const std::size_t q = v.find(',', p);
        o.chunks.push_back(std::stoul(v.substr(p, q - p)));
        p = q == std::string::npos ? v.size() : q + 1;
      }
    } else if (a == "--put-mib") {
      o.put_mib = std::stoul(next());
    } else if (a == "--repeats") {
      o.repeats = std::max(1, std::stoi(next()));
    } else if (a == "--quick") {
      o.chunks = {2000};
      o.put_mib = 16;
      o.repeats = 1;
      o.put_sizes = {128 * kKiB, 2 * kMiB};
    } else {
      std::fprintf(stderr,
                   "usage: bench_pool [--dir DIR] [--chunks N,N] [--put-mib N] [--repeats N] "
                   "[--quick]\n");
      return 2;
    }
  }
  Reopen(o);
  Puts(o);
  return 0;
}
