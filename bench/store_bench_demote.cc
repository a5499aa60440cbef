// bench_store, demotion: a small DRAM tier over a file tier (libpmem2 on a file in a temporary
// directory). 2 MiB chunks are put until the DRAM tier is full (untimed); every further put
// makes the store demote its coldest chunk to the file tier. Measured: chunk bytes that arrived
// in the file tier (Stats().tiers[1].bytes_in) per second of the timed phase.
//
// In this version of the Store, demotion runs synchronously inside Put, so the timed phase also
// contains the puts' own copies into DRAM (on the development VM ~7 GB/s against ~1.2 GB/s for
// the persisting copy into the file: about 15% of the time). When the store demotes in the
// background, only DriveDemotion changes: put, then wait for (or call) the store's maintenance
// until the DRAM tier is back under its watermark, and time that.
//
// Baselines, same run, same bytes, each into a freshly mapped file region in the same
// directory (the store's file tier is fresh in every run too, so page faults and block
// allocation are on both sides):
//   memcpy:          std::memcpy into the mapping (the baseline; nothing persisted);
//   copy+persist:    the region's CopyAndPersist, which the store calls for each demoted chunk
//                    (libpmem2: the copy and msync of its pages on a page-cache file system).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/store_bench.h"
#include "cxlkv/store.h"
#include "util/format.h"

namespace cxlkv::bench {
namespace {

constexpr std::size_t kChunk = 2 * kMiB;
constexpr std::size_t kSlab = 4 * kMiB;

struct DemotionRun {
  std::uint64_t demoted_bytes = 0;
  double store_gbps = 0;    // demoted bytes per second of the timed puts
  double memcpy_gbps = 0;   // memcpy of those bytes into a fresh file mapping
  double persist_gbps = 0;  // CopyAndPersist of those bytes into a fresh file mapping
};

// The part that drives demotion, and the one to adapt when demotion moves to a background
// thread. Today: each Put of a chunk into the full DRAM tier demotes the coldest one.
Status DriveDemotion(Store& store, const std::vector<std::string>& keys,
                     const std::vector<const std::byte*>& src, std::size_t begin,
                     std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) {
    CXLKV_RETURN_IF_ERROR(store.Put(keys[i], {src[i], kChunk}));
  }
  return Status::Ok();
}

std::unique_ptr<MemoryRegion> MapFile(const std::string& path, std::size_t bytes) {
  auto source = MemorySource::File(FileOptions{path, /*create=*/true, /*offset=*/0});
  return Unwrap(source->Map(bytes), "mapping " + SizeName(bytes) + " of " + path);
}

DemotionRun MeasureOnce(const Options& o, const TempDir& dir, int run,
                        const std::vector<std::string>& keys,
                        const std::vector<const std::byte*>& src) {
  const std::size_t n = src.size();
  const std::string pool = dir.File("tier1-" + std::to_string(run) + ".pool");
  DemotionRun out;
  {
    StoreOptions so;
    TierOptions dram;
    dram.name = "dram";
    dram.source = MemorySource::Dram(DramOptions{HugePages::kTransparent, /*populate=*/true});
    dram.capacity = o.demote_dram;
    TierOptions file;
    file.name = "file";
    file.source = MemorySource::File(FileOptions{pool, /*create=*/true, /*offset=*/0});
    file.capacity = AlignUp(n * kChunk, kSlab) + kSlab;  // holds every chunk: nothing dropped
    so.tiers.push_back(std::move(dram));
    so.tiers.push_back(std::move(file));
    so.chunk_sizes = {kChunk};
    so.slab_size = kSlab;
    auto store = Unwrap(Store::Open(std::move(so)), "opening the DRAM-over-file store");

    // Fill (untimed): put until the first demotion, so that the DRAM tier is full.
    std::size_t i = 0;
    while (i < n && store->Stats().tiers[0].demotions == 0) {
      Check(store->Put(keys[i], {src[i], kChunk}), "put (filling the DRAM tier)");
      ++i;
    }
    if (n - i < 2) {
      Fail("the DRAM tier of " + SizeName(o.demote_dram) + " holds nearly all " +
           std::to_string(n) + " chunks: nothing left to time");
    }
    const StoreStats before = store->Stats();
    const auto t0 = Clock::now();
    Check(DriveDemotion(*store, keys, src, i, n), "put (demoting to the file tier)");
    const double secs = Seconds(t0);
    const StoreStats after = store->Stats();
    out.demoted_bytes = after.tiers[1].bytes_in - before.tiers[1].bytes_in;
    if (out.demoted_bytes == 0) Fail("no chunk was demoted to the file tier");
    if (after.tiers[1].chunks + after.tiers[0].chunks != n || after.tiers[0].evictions !=
                                                                after.tiers[0].demotions) {
      Fail("the store dropped chunks: " + after.ToString());
    }
    out.store_gbps = static_cast<double>(out.demoted_bytes) / 1e9 / secs;
    // Chunk 0 was the first demoted: it must read back from the file tier intact.
    std::vector<std::byte> back(kChunk);
    Unwrap(store->Get(keys[0], back), "get of a demoted chunk");
    if (std::memcmp(back.data(), src[0], kChunk) != 0) {
      Fail("a chunk demoted to the file tier reads back different bytes");
    }
  }
  RemoveFile(pool);

  // The same bytes: the chunks demoted first are the first ones put (LRU, none read).
  const std::size_t count = out.demoted_bytes / kChunk;
  auto copy_into_fresh_file = [&](const char* name, bool persist) {
    const std::string path = dir.File(std::string(name) + "-" + std::to_string(run) + ".pool");
    double gbps = 0;
    {
      auto region = MapFile(path, count * kChunk);
      const auto t0 = Clock::now();
      for (std::size_t k = 0; k < count; ++k) {
        std::byte* dst = region->data() + k * kChunk;
        if (persist) {
          region->CopyAndPersist(dst, src[k], kChunk);
        } else {
          std::memcpy(dst, src[k], kChunk);
        }
      }
      gbps = static_cast<double>(count * kChunk) / 1e9 / Seconds(t0);
    }
    RemoveFile(path);  // an unlinked file's dirty pages are dropped, not written back later
    return gbps;
  };
  out.memcpy_gbps = copy_into_fresh_file("memcpy", /*persist=*/false);
  out.persist_gbps = copy_into_fresh_file("persist", /*persist=*/true);
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
  std::vector<double> store, memcpy_gbps, persist;
  std::uint64_t demoted = 0;
  for (int r = 0; r < o.repeats; ++r) {
    const DemotionRun run = MeasureOnce(o, dir, r, keys, src);
    store.push_back(run.store_gbps);
    memcpy_gbps.push_back(run.memcpy_gbps);
    persist.push_back(run.persist_gbps);
    demoted = run.demoted_bytes;
  }
  const double s = Median(store), m = Median(memcpy_gbps), p = Median(persist);
  std::printf("\nDemotion DRAM (%s) -> file tier (%s), 2 MiB chunks, %s demoted per run, "
              "median of %d runs\n",
              SizeName(o.demote_dram).c_str(), dir.path().c_str(), SizeName(demoted).c_str(),
              o.repeats);
  std::printf("  demoted %.2f GB/s; memcpy into a file mapping %.2f GB/s (%.2fx); "
              "CopyAndPersist into a file mapping %.2f GB/s (%.2fx)\n",
              s, m, s / m, p, s / p);
  csv.Add({"demotion", 1, kChunk, "GB/s", s, m, "", -1,
           "baseline memcpy into a fresh file mapping"});
  csv.Add({"demotion_vs_persist", 1, kChunk, "GB/s", s, p, "", -1,
           "baseline CopyAndPersist into a fresh file mapping"});
}

}  // namespace cxlkv::bench
