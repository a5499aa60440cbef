// bench_store, demotion: a DRAM tier over a file tier (MemorySource::File, libpmem2, on a fresh
// file in a temporary directory), 2 MiB chunks. The store demotes on its background thread
// when a tier passes its high watermark, down to its low one; here it is opened without that
// thread (background_thread = false), so demotion runs only inside Maintain(), in the timed
// thread:
//   1. untimed: put all n chunks. The DRAM tier holds them all (both tiers are sized for n
//      chunks plus a slab for the 256-byte headers and a spare), so no put evicts, and nothing
//      demotes although the tier is past its high watermark (0.02);
//   2. timed: one Maintain(), which demotes the coldest chunks (LRU: in put order) until the
//      DRAM tier is under its low watermark (0.01 of its capacity): all but at most one.
// Measured: chunk bytes that arrived in the file tier (Stats().tiers[1].bytes_in) per second of
// that call, which is one background pass: per chunk, pick the victim, copy bytes and header
// into the file tier with its copy method ("auto": nt; no msync, the tier does not persist),
// switch the index entry, free the DRAM slots.
//
// Baselines, same run, same bytes, each into a fresh file in the same directory, mapped fresh:
//   memcpy:       std::memcpy into the mapping (the baseline);
//   nt:           CopyBytes(kNonTemporal), the copy the file tier makes;
//   copy+persist: the region's CopyAndPersist (libpmem2's copy, then msync of its pages on a
//                 page-cache file system): what a durable demotion would cost.
// Every file (the store's pool too) is first written with zeros through write(), untimed, so
// its blocks are allocated and its pages cached: a pool in use. Into a file that is only
// fallocated, each write fault first zeroes a new page-cache folio; on the development VM that
// kernel memset took up to 90% of the time and swung from 0.35 to 3.2 GB/s between runs (the
// store's and the baselines' alike), which drowned what is compared here.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/store_bench.h"
#include "cxlkv/store.h"
#include "util/copy.h"
#include "util/format.h"

namespace cxlkv::bench {
namespace {

constexpr std::size_t kChunk = 2 * kMiB;
constexpr std::size_t kSlab = 4 * kMiB;
constexpr double kHighWatermark = 0.02;
constexpr double kLowWatermark = 0.01;

struct DemotionRun {
  std::uint64_t demoted_bytes = 0;
  double store_gbps = 0;    // demoted bytes per second of the timed Maintain()
  double memcpy_gbps = 0;   // memcpy of those bytes into a fresh file mapping
  double nt_gbps = 0;       // CopyBytes(kNonTemporal) of them into a fresh file mapping
  double persist_gbps = 0;  // CopyAndPersist of them into a fresh file mapping
};

// Creates `path` with `bytes` of zeros written through the page cache, so that the mapping made
// of it next finds its blocks allocated and its pages cached.
void PrewriteFile(const std::string& path, std::size_t bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    Fail("cannot create " + path + ": " + std::strerror(err));
  }
  static const std::vector<std::byte> zeros(kSlab);
  for (std::size_t off = 0; off < bytes;) {
    const std::size_t len = std::min(kSlab, bytes - off);
    const ssize_t w = pwrite(fd, zeros.data(), len, static_cast<off_t>(off));
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      close(fd);
      Fail("writing " + path + ": " + std::strerror(err));
    }
    off += static_cast<std::size_t>(w);
  }
  if (close(fd) != 0) {
    const int err = errno;
    Fail("closing " + path + ": " + std::strerror(err));
  }
}

std::unique_ptr<MemoryRegion> MapFile(const std::string& path, std::size_t bytes) {
  auto source = MemorySource::File(FileOptions{path, /*create=*/true, /*offset=*/0});
  return Unwrap(source->Map(bytes), "mapping " + SizeName(bytes) + " of " + path);
}

DemotionRun MeasureOnce(const TempDir& dir, int run,
                        const std::vector<std::string>& keys,
                        const std::vector<const std::byte*>& src) {
  const std::size_t n = src.size();
  const std::string pool = dir.File("tier1-" + std::to_string(run) + ".pool");
  DemotionRun out;
  {
    // n chunks, a slab for their headers, a spare slab.
    const std::size_t capacity = AlignUp(n * kChunk, kSlab) + 2 * kSlab;
    StoreOptions so;
    TierOptions dram;
    dram.name = "dram";
    dram.source = MemorySource::Dram(DramOptions{HugePages::kTransparent, /*populate=*/true});
    dram.capacity = capacity;
    dram.high_watermark = kHighWatermark;
    dram.low_watermark = kLowWatermark;
    TierOptions file;
    file.name = "file";
    PrewriteFile(pool, capacity);
    file.source = MemorySource::File(FileOptions{pool, /*create=*/true, /*offset=*/0});
    file.capacity = capacity;  // holds every chunk: nothing dropped
    so.tiers.push_back(std::move(dram));
    so.tiers.push_back(std::move(file));
    so.chunk_sizes = {kChunk};
    so.slab_size = kSlab;
    so.background_thread = false;  // demotion only inside Maintain()
    auto store = Unwrap(Store::Open(std::move(so)), "opening the DRAM-over-file store");

    for (std::size_t i = 0; i < n; ++i) {
      Check(store->Put(keys[i], {src[i], kChunk}), "put (filling the DRAM tier)");
    }
    const StoreStats before = store->Stats();
    if (before.tiers[0].chunks != n || before.tiers[0].evictions != 0) {
      Fail("the puts did not all land in the DRAM tier, or some were evicted: " +
           before.ToString());
    }
    const auto t0 = Clock::now();
    store->Maintain();
    const double secs = Seconds(t0);
    const StoreStats after = store->Stats();
    out.demoted_bytes = after.tiers[1].bytes_in - before.tiers[1].bytes_in;
    if (out.demoted_bytes == 0) Fail("Maintain() demoted nothing to the file tier");
    if (after.tiers[1].chunks + after.tiers[0].chunks != n ||
        after.tiers[0].evictions != after.tiers[0].demotions ||
        after.tiers[0].demotions * kChunk != out.demoted_bytes) {
      Fail("the store dropped chunks: " + after.ToString());
    }
    if (static_cast<double>(after.tiers[0].used_bytes) >
        kLowWatermark * static_cast<double>(capacity)) {
      Fail("Maintain() left the DRAM tier above its low watermark: " + after.ToString());
    }
    out.store_gbps = static_cast<double>(out.demoted_bytes) / 1e9 / secs;
    // Chunk 0 was the first demoted: it must be in the file tier, with its bytes intact.
    PinnedChunk back = Unwrap(store->Pin(keys[0]), "pin of a demoted chunk");
    if (back.tier() != 1 || back.size() != kChunk ||
        std::memcmp(back.data(), src[0], kChunk) != 0) {
      Fail("the first chunk demoted to the file tier is not there intact (tier " +
           std::to_string(back.tier()) + ", " + std::to_string(back.size()) + " bytes)");
    }
  }
  RemoveFile(pool);

  // The same bytes: the chunks demoted are the first ones put (LRU, none read).
  const std::size_t count = out.demoted_bytes / kChunk;
  enum class Baseline { kMemcpy, kNt, kPersist };
  auto copy_into_fresh_file = [&](const char* name, Baseline method) {
    const std::string path = dir.File(std::string(name) + "-" + std::to_string(run) + ".pool");
    double gbps = 0;
    {
      PrewriteFile(path, count * kChunk);
      auto region = MapFile(path, count * kChunk);
      const auto t0 = Clock::now();
      for (std::size_t k = 0; k < count; ++k) {
        std::byte* dst = region->data() + k * kChunk;
        switch (method) {
          case Baseline::kMemcpy: std::memcpy(dst, src[k], kChunk); break;
          case Baseline::kNt: CopyBytes(dst, src[k], kChunk, CopyMethod::kNonTemporal); break;
          case Baseline::kPersist: region->CopyAndPersist(dst, src[k], kChunk); break;
        }
      }
      gbps = static_cast<double>(count * kChunk) / 1e9 / Seconds(t0);
    }
    RemoveFile(path);  // an unlinked file's dirty pages are dropped, not written back later
    return gbps;
  };
  out.memcpy_gbps = copy_into_fresh_file("memcpy", Baseline::kMemcpy);
  out.nt_gbps = copy_into_fresh_file("nt", Baseline::kNt);
  out.persist_gbps = copy_into_fresh_file("persist", Baseline::kPersist);
  return out;
}

}  // namespace

void RunDemotion(const Options& o, Csv& csv) {
  const std::size_t n = o.demote_chunks;
  auto buffer = DramBuffer(n * kChunk, "demotion sources");
  std::vector<std::string> keys(n);
  std::vector<const std::byte*> src(n);
  for (std::size_t i = 0; i < n; ++i) {
    keys[i] = Key(i, 1);
    src[i] = buffer->data() + i * kChunk;
    std::memset(buffer->data() + i * kChunk, static_cast<int>(i * 7 + 3), kChunk);
  }
  TempDir dir(o.dir);
  std::vector<double> store, memcpy_gbps, nt, persist;
  std::uint64_t demoted = 0;
  for (int r = 0; r < o.repeats; ++r) {
    const DemotionRun run = MeasureOnce(dir, r, keys, src);
    store.push_back(run.store_gbps);
    memcpy_gbps.push_back(run.memcpy_gbps);
    nt.push_back(run.nt_gbps);
    persist.push_back(run.persist_gbps);
    demoted = run.demoted_bytes;
  }
  const double s = Median(store), m = Median(memcpy_gbps), t = Median(nt), p = Median(persist);
  std::printf("\nDemotion DRAM -> file tier (%s), 2 MiB chunks: %zu put untimed, then one "
              "Maintain() demotes %s (%llu chunks), median of %d runs\n",
              dir.path().c_str(), n, SizeName(demoted).c_str(),
              static_cast<unsigned long long>(demoted / kChunk), o.repeats);
  std::printf("  demoted %.2f GB/s; into a pre-written file, mapped fresh: memcpy %.2f GB/s "
              "(%.2fx), nt %.2f GB/s (%.2fx), CopyAndPersist %.2f GB/s (%.2fx)\n",
              s, m, s / m, t, s / t, p, s / p);
  csv.Add({"demotion", 1, kChunk, "GB/s", s, m, "", -1,
           "Maintain() DRAM to file; baseline memcpy into a pre-written file mapped fresh"});
  csv.Add({"demotion_vs_nt", 1, kChunk, "GB/s", s, t, "", -1,
           "baseline CopyBytes(kNonTemporal) into a pre-written file mapped fresh"});
  csv.Add({"demotion_vs_persist", 1, kChunk, "GB/s", s, p, "", -1,
           "baseline CopyAndPersist into a pre-written file mapped fresh"});
}

}  // namespace cxlkv::bench
