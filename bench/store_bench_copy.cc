// bench_store, copy methods per tier kind: which copy should the store use into (puts,
// demotions) and out of (gets) each kind of region?
//
// Kinds: dram (MemorySource::Dram, THP), numa (MemorySource::NumaNode, the node of
// --numa-node: a CXL expander's node on a machine with one), file (MemorySource::File on a
// temporary file: libpmem2) and, with --devdax, devdax. Each region is mapped and pre-faulted
// (written once; a file region is also persisted once, so its blocks are allocated and clean).
// For 128 KiB, 2 MiB and 32 MiB chunks, Options::copy_region bytes are copied as consecutive
// chunks from a DRAM buffer into the region ("write") and back into another DRAM buffer
// ("read"), with:
//   memcpy  std::memcpy
//   nt      CopyNonTemporal: streaming stores at every size (CopyBytes(kNonTemporal) uses them
//           from kNonTemporalMinBytes = 256 KiB up; the 128 KiB row checks that threshold)
// and for persistent kinds, writes that also persist (Options::persist_region bytes, since a
// file's persist is an msync to disk), each chunk made durable before the next:
//   memcpy+persist  memcpy, then the region's Persist of the chunk
//   nt+persist      CopyNonTemporal, then Persist
//   pmem2 persist   the region's CopyAndPersist (libpmem2's memcpy function, what Put calls)
//   pmem2 nodrain   the region's CopyNoDrain per chunk, one Drain at the end
// The pick per kind and direction is the faster of memcpy and nt on the geometric mean of the
// 2 MiB and 32 MiB cells. Every cell is the median of Options::repeats runs; within a run the
// methods alternate, so slow phases of the machine spread over all of them.
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "alloc/numa.h"
#include "alloc/os_memory.h"
#include "bench/store_bench.h"
#include "util/copy.h"

namespace cxlkv::bench {
namespace {

constexpr std::size_t kSizes[] = {128 * kKiB, 2 * kMiB, 32 * kMiB};
constexpr int kNumSizes = 3;

using CopyFn = std::function<void(const MemoryRegion&, std::byte* dst, const std::byte* src,
                                  std::size_t n)>;
struct Method {
  const char* name;
  CopyFn copy;
  bool drain_at_end = false;
};

const Method kMemcpy{"memcpy",
                     [](const MemoryRegion&, std::byte* d, const std::byte* s, std::size_t n) {
                       std::memcpy(d, s, n);
                     }};
const Method kNt{"nt", [](const MemoryRegion&, std::byte* d, const std::byte* s, std::size_t n) {
                   CopyNonTemporal(d, s, n);
                 }};
const std::vector<Method>& PersistMethods() {
  static const std::vector<Method> m = {
      {"memcpy+persist",
       [](const MemoryRegion& r, std::byte* d, const std::byte* s, std::size_t n) {
         std::memcpy(d, s, n);
         r.Persist(d, n);
       }},
      {"nt+persist",
       [](const MemoryRegion& r, std::byte* d, const std::byte* s, std::size_t n) {
         CopyNonTemporal(d, s, n);
         r.Persist(d, n);
       }},
      {"pmem2 persist",
       [](const MemoryRegion& r, std::byte* d, const std::byte* s, std::size_t n) {
         r.CopyAndPersist(d, s, n);
       }},
      {"pmem2 nodrain",
       [](const MemoryRegion& r, std::byte* d, const std::byte* s, std::size_t n) {
         r.CopyNoDrain(d, s, n);
       },
       /*drain_at_end=*/true},
  };
  return m;
}

// GB/s of copying `bytes` as consecutive chunks of `chunk` (bytes rounded down to chunks).
double TimeCopies(const Method& m, const MemoryRegion& region, std::byte* dst,
                  const std::byte* src, std::size_t bytes, std::size_t chunk) {
  const std::size_t count = std::max<std::size_t>(1, bytes / chunk);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < count; ++i) m.copy(region, dst + i * chunk, src + i * chunk, chunk);
  if (m.drain_at_end) region.Drain();
  return static_cast<double>(count * chunk) / 1e9 / Seconds(t0);
}

double GeoMean(double a, double b) { return std::sqrt(a * b); }

struct Kind {
  std::string name;  // "dram", "numa0", "file", "devdax"
  std::unique_ptr<MemorySource> source;
  bool optional = false;  // absent hardware (numa node, devdax) skips instead of failing
};

// Where the region's pages are, as move_pages reports them: "node 1" or "node 0 75%, node 1
// 25%". Under `numactl --membind=1` the dram and file kinds land on node 1 too; this line is
// how a run shows it.
std::string Placement(const MemoryRegion& region) {
  Result<std::vector<int>> pages =
      numa::PageNodes(region.data(), region.size(), os::BasePageSize());
  if (!pages.ok()) return "unknown (" + pages.status().ToString() + ")";
  std::map<int, std::size_t> per_node;  // a negative key: a page move_pages could not place
  for (int n : *pages) ++per_node[n];
  std::string out;
  for (const auto& [node, count] : per_node) {
    if (!out.empty()) out += ", ";
    out += node >= 0 ? "node " + std::to_string(node) : "no node (" + std::to_string(node) + ")";
    if (per_node.size() > 1) out += " " + std::to_string(100 * count / pages->size()) + "%";
  }
  return out;
}

void MeasureKind(const Options& o, Kind& kind, std::byte* dram_src, std::byte* dram_dst,
                 Csv& csv) {
  const std::size_t bytes = o.copy_region;
  Result<std::unique_ptr<MemoryRegion>> mapped = kind.source->Map(bytes);
  if (!mapped.ok() && kind.optional &&
      (mapped.status().IsNotFound() || mapped.status().IsUnsupported() ||
       mapped.status().code() == StatusCode::kPermissionDenied)) {
    std::printf("%-7s skipped: %s\n", kind.name.c_str(), mapped.status().ToString().c_str());
    csv.Add({"copy_skipped:" + kind.name, 1, 0, "", 0, 0, "", -1, "mapping failed"});
    return;
  }
  auto region = Unwrap(std::move(mapped), "mapping " + SizeName(bytes) + " of " +
                                              kind.source->spec() + " for the copy table");
  const RegionInfo& info = region->info();
  const bool persistent = info.persistence != PersistGranularity::kNone;
  // Pre-fault; persist once so that a file's blocks are allocated and its pages clean.
  std::memset(region->data(), 0x5a, bytes);
  region->Persist(region->data(), bytes);
  std::printf("%-7s pages on %s\n", kind.name.c_str(), Placement(*region).c_str());

  // w/rd[method][size]: runs of writes into and reads out of the region; pcell likewise.
  std::vector<double> w[2][kNumSizes], rd[2][kNumSizes];
  std::vector<std::array<std::vector<double>, kNumSizes>> pcell(PersistMethods().size());
  const Method* both[2] = {&kMemcpy, &kNt};
  const std::size_t pbytes = std::min(o.persist_region, bytes);
  for (int r = 0; r < o.repeats; ++r) {
    for (int si = 0; si < kNumSizes; ++si) {
      const std::size_t chunk = kSizes[si];
      if (persistent) {
        // After a persist (msync) the kernel write-protects the clean pages of a shared file
        // mapping, and the next store to each page faults. Dirty them untimed, so that the
        // plain writes of both methods run on writable pages (whichever comes first).
        std::memset(region->data(), 0x5a, bytes);
      }
      for (int k = 0; k < 2; ++k) {
        const int m = (r + k) % 2;  // alternate which method goes first
        w[m][si].push_back(TimeCopies(*both[m], *region, region->data(), dram_src, bytes, chunk));
        rd[m][si].push_back(TimeCopies(*both[m], *region, dram_dst, region->data(), bytes, chunk));
      }
      if (persistent) {
        // Leave no dirty pages from the plain writes for a persisting method to write back.
        // Each persisting method then writes to clean, write-protected pages, as a put into a
        // reused slot of a file tier does.
        region->Persist(region->data(), bytes);
        const std::size_t methods = PersistMethods().size();
        for (std::size_t k = 0; k < methods; ++k) {
          const std::size_t m = (r + k) % methods;  // rotate which method goes first
          pcell[m][si].push_back(
              TimeCopies(PersistMethods()[m], *region, region->data(), dram_src, pbytes, chunk));
        }
      }
    }
  }
  std::printf("%-7s %s\n", kind.name.c_str(), info.ToString().c_str());
  double pick_ratio[2] = {1, 1};
  const char* dir_names[2] = {"write", "read"};
  for (int d = 0; d < 2; ++d) {
    auto& cells = d == 0 ? w : rd;
    double ratio_big[2] = {0, 0};
    for (int si = 0; si < kNumSizes; ++si) {
      const double mc = Median(cells[0][si]), nt = Median(cells[1][si]);
      std::printf("  %-5s %8s %9.2f %9.2f %9.2fx\n", dir_names[d], SizeName(kSizes[si]).c_str(),
                  mc, nt, nt / mc);
      csv.Add({std::string("copy_") + dir_names[d] + ":" + kind.name, 1, kSizes[si], "GB/s", nt,
               mc, "", -1, "ours=nt (streaming at every size) baseline=memcpy"});
      if (si >= 1) ratio_big[si - 1] = nt / mc;
    }
    pick_ratio[d] = GeoMean(ratio_big[0], ratio_big[1]);
  }
  if (persistent) {
    const std::string_view granularity = PersistGranularityName(info.persistence);
    std::printf("  persisting writes (%s per cell; persist=%.*s):\n", SizeName(pbytes).c_str(),
                static_cast<int>(granularity.size()), granularity.data());
    std::printf("  %8s", "chunk");
    for (const Method& m : PersistMethods()) std::printf(" %15s", m.name);
    std::printf("   (GB/s; ratio to memcpy+persist)\n");
    for (int si = 0; si < kNumSizes; ++si) {
      const double base = Median(pcell[0][si]);
      std::printf("  %8s", SizeName(kSizes[si]).c_str());
      for (std::size_t m = 0; m < PersistMethods().size(); ++m) {
        const double v = Median(pcell[m][si]);
        char cell[32];
        std::snprintf(cell, sizeof(cell), "%.2f (%.2fx)", v, v / base);
        std::printf(" %15s", cell);
        if (m > 0) {
          std::string method = PersistMethods()[m].name;
          for (char& c : method) c = c == ' ' ? '_' : c;
          csv.Add({"copy_persist:" + kind.name + ":" + method, 1, kSizes[si], "GB/s", v, base, "",
                   -1, "baseline memcpy+persist"});
        }
      }
      std::printf("\n");
    }
  }
  const char* pick_write = pick_ratio[0] > 1 ? "nt" : "memcpy";
  const char* pick_read = pick_ratio[1] > 1 ? "nt" : "memcpy";
  // Within 5% the pick is a coin toss on this shared machine: say so.
  auto noise = [](double ratio) { return std::abs(ratio - 1) < 0.05 ? ", within noise" : ""; };
  std::printf("  pick %s: write %s (nt/memcpy %.2fx at >= 2 MiB%s), read %s (%.2fx%s)\n",
              kind.name.c_str(), pick_write, pick_ratio[0], noise(pick_ratio[0]), pick_read,
              pick_ratio[1], noise(pick_ratio[1]));
  if (persistent) {
    // The fastest persisting write, on the geometric mean of its 2 and 32 MiB cells.
    std::size_t best = 0;
    double best_gm = 0;
    for (std::size_t m = 0; m < PersistMethods().size(); ++m) {
      const double gm = GeoMean(Median(pcell[m][1]), Median(pcell[m][2]));
      if (gm > best_gm) {
        best = m;
        best_gm = gm;
      }
    }
    const double base_gm = GeoMean(Median(pcell[0][1]), Median(pcell[0][2]));
    std::printf("  pick %s, persisting write: %s (%.2fx memcpy+persist at >= 2 MiB)\n",
                kind.name.c_str(), PersistMethods()[best].name, best_gm / base_gm);
    std::string name = PersistMethods()[best].name;
    for (char& c : name) c = c == ' ' ? '_' : c;
    csv.Add({"copy_pick_persist:" + kind.name, 1, 2 * kMiB, "x", best_gm / base_gm, 0, "", -1,
             "pick=" + name + " (geomean at 2 and 32 MiB vs memcpy+persist)"});
  }
  csv.Add({"copy_pick_write:" + kind.name, 1, 2 * kMiB, "x", pick_ratio[0], 0, "", -1,
           std::string("pick=") + pick_write + " (geomean nt/memcpy at 2 and 32 MiB)"});
  csv.Add({"copy_pick_read:" + kind.name, 1, 2 * kMiB, "x", pick_ratio[1], 0, "", -1,
           std::string("pick=") + pick_read + " (geomean nt/memcpy at 2 and 32 MiB)"});
}

}  // namespace

void RunCopyMethods(const Options& o, Csv& csv) {
  std::printf("\nCopy methods per tier kind: GB/s of %s per cell from/to a DRAM buffer, "
              "median of %d runs (nt kernel: %s)\n",
              SizeName(o.copy_region).c_str(), o.repeats,
              NonTemporalUsesAvx2() ? "AVX2" : "SSE2");
  std::printf("  %-5s %8s %9s %9s %10s\n", "dir", "chunk", "memcpy", "nt", "nt/memcpy");
  auto src = DramBuffer(o.copy_region, "copy sources");
  auto dst = DramBuffer(o.copy_region, "copy destinations");
  for (std::size_t i = 0; i < o.copy_region; i += 8) {
    const std::uint64_t word = i * 0x9e3779b97f4a7c15ULL;
    std::memcpy(src->data() + i, &word, std::min<std::size_t>(8, o.copy_region - i));
  }
  TempDir dir(o.dir);
  std::vector<Kind> kinds;
  kinds.push_back({"dram", MemorySource::Dram(DramOptions{HugePages::kTransparent, true}), false});
  kinds.push_back({"numa" + std::to_string(o.numa_node),
                   MemorySource::NumaNode(NumaOptions{o.numa_node, HugePages::kTransparent, true}),
                   true});
  kinds.push_back({"file", MemorySource::File(FileOptions{dir.File("copy.pool"), true, 0}),
                   false});
  if (!o.devdax.empty()) {
    kinds.push_back({"devdax", MemorySource::DevDax(DevDaxOptions{o.devdax, 0}), false});
  }
  for (Kind& k : kinds) MeasureKind(o, k, src->data(), dst->data(), csv);
}

}  // namespace cxlkv::bench
