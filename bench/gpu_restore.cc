// bench_gpu_restore: host to GPU restore from the store's tiers against the raw copy engine,
// in one run. For 128 KiB, 2 MiB and 32 MiB chunks:
//   raw      cudaMemcpyAsync H2D of the chunks from one cudaHostAlloc buffer: the ceiling;
//   dram     GpuRestorer::GetToDevice from a registered DRAM tier;
//   numa     the same from a tier bound to NUMA node --numa-node (a CXL expander's node);
//   staged   the same DRAM tier, never registered: through the pinned double buffer;
// and the store path, device to host: raw cudaMemcpyAsync D2H into pinned memory against
// GpuRestorer::PutFromDevice into the registered DRAM tier.
//
// Each cell moves --total-mib MiB of distinct chunks into (or out of) one device buffer; the
// time is wall time from the first call to the end of the stream's work (Wait or
// cudaStreamSynchronize), so pinning, events and lease release are inside it. Median of
// --repeats runs, each source run right after a raw run so that a slow phase hits both. Every
// source's bytes are checked on the device once. Goals (docs/gpu.md): registered tiers >= 0.9x
// raw, staging >= 0.7x raw, for chunks of 2 MiB and more.
//
// Where no GPU is visible it prints one line, "no GPU visible: skipped (...)", and exits 0.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backends/gpu/cuda_runtime.h"
#include "cxlkv/gpu_restore.h"
#include "cxlkv/store.h"
#include "util/format.h"

namespace cxlkv {
namespace {

namespace cuda = internal::cuda;
using Clock = std::chrono::steady_clock;
constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = kKiB * kKiB;

struct Options {
  bool quick = false;
  std::size_t total = 1024 * kMiB;
  int repeats = 5;
  int numa_node = 0;
  std::string csv;
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "bench_gpu_restore: %s\n", what.c_str());
  std::exit(1);
}
void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Fail(what + ": " + s.ToString());
}
template <typename T>
T Unwrap(Result<T> r, const std::string& what) {
  Check(r.status(), what);
  return std::move(r).value();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::uint8_t PatternByte(std::size_t chunk, std::size_t i) {
  return static_cast<std::uint8_t>((chunk * 131 + i * 7 + (i >> 12)) & 0xFF);
}
void Fill(std::byte* p, std::size_t n, std::size_t chunk) {
  for (std::size_t i = 0; i < n; ++i) p[i] = std::byte{PatternByte(chunk, i)};
}

std::string Key(std::size_t size, std::size_t i, const char* space = "r") {
  return "vllm@bench@" + std::string(space) + "@" + std::to_string(size) + "@" + std::to_string(i);
}

// A store of one tier over `spec`, holding `count` chunks of `size` and as many again.
struct Source {
  std::string name;
  std::string skipped;  // why the source is not measured; empty when it is
  std::unique_ptr<Store> store;
  std::unique_ptr<GpuRestorer> gpu;
  std::vector<std::string> keys;
  std::vector<double> gbps;
};

Source OpenSource(std::string name, const std::string& spec, bool staged, std::size_t size,
                  std::size_t count) {
  Source s;
  s.name = std::move(name);
  const std::size_t slab = size > 4 * kMiB ? 32 * kMiB : 4 * kMiB;
  StoreOptions o;
  TierOptions t;
  t.name = s.name;
  t.source_spec = spec;
  t.capacity = 2 * count * size + 4 * slab;
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = {size};
  o.slab_size = slab;
  o.background_thread = false;
  Result<std::unique_ptr<Store>> store = Store::Open(std::move(o));
  if (!store.ok()) {
    s.skipped = store.status().ToString();
    return s;
  }
  s.store = std::move(store).value();
  GpuRestoreOptions g;
  if (staged) g.staged_tiers = {0};
  s.gpu = Unwrap(GpuRestorer::Create(*s.store, g), "GpuRestorer for " + s.name);
  const GpuRegion& r = s.gpu->regions()[0];
  if (!staged && r.registered_pieces != r.pieces) {
    std::printf("  note: %s tier is staged in part: %s\n", s.name.c_str(), r.note.c_str());
  }
  std::vector<std::byte> chunk(size);
  for (std::size_t i = 0; i < count; ++i) {
    Fill(chunk.data(), size, i);
    s.keys.push_back(Key(size, i));
    Check(s.store->Put(s.keys.back(), chunk), "put into " + s.name);
  }
  return s;
}

double Gbps(std::size_t bytes, Clock::time_point start) {
  const double sec = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(bytes) / sec / 1e9;
}

void CheckDevice(const std::byte* dev, std::size_t size, std::size_t count, const char* what) {
  std::vector<std::byte> host(size);
  for (std::size_t i : {std::size_t{0}, count / 2, count - 1}) {
    Check(cuda::Memcpy(host.data(), dev + i * size, size), "reading back");
    for (std::size_t b = 0; b < size; ++b) {
      if (host[b] != std::byte{PatternByte(i, b)}) {
        Fail(std::string(what) + ": chunk " + std::to_string(i) + " differs at byte " +
             std::to_string(b));
      }
    }
  }
}

struct Row {
  std::string section;
  std::size_t chunk = 0;
  double ours = 0;
  double baseline = 0;
  double goal = 0;  // 0: none
  std::string note;
};

class Report {
 public:
  explicit Report(const std::string& csv) {
    if (csv.empty()) return;
    f_ = std::fopen(csv.c_str(), "w");
    if (f_ == nullptr) Fail("cannot write " + csv);
    std::fprintf(f_, "section,threads,chunk_bytes,unit,ours,baseline,ratio,goal,met,note\n");
  }
  ~Report() {
    if (f_ != nullptr) std::fclose(f_);
  }
  void Add(const Row& r) {
    const double ratio = r.baseline > 0 ? r.ours / r.baseline : 0;
    std::string goal = "-", met = "-";
    if (r.goal > 0) {
      char g[32];
      std::snprintf(g, sizeof g, ">=%.2fx", r.goal);
      goal = g;
      met = ratio >= r.goal ? "yes" : "NO";
      worst_ = std::min(worst_, ratio / r.goal);
    }
    std::printf("  %-8s %-16s %8.2f GB/s  %6.3fx  %-7s %s%s%s\n", FormatBytes(r.chunk).c_str(),
                r.section.c_str(), r.ours, ratio, goal.c_str(), met.c_str(),
                r.note.empty() ? "" : "  ", r.note.c_str());
    if (f_ != nullptr) {
      std::fprintf(f_, "%s,1,%zu,GB/s,%.4g,%.4g,%.4f,%s,%s,%s\n", r.section.c_str(), r.chunk,
                   r.ours, r.baseline, ratio, goal.c_str(),
                   r.goal > 0 ? (ratio >= r.goal ? "yes" : "no") : "", r.note.c_str());
    }
  }
  double worst() const { return worst_; }

 private:
  std::FILE* f_ = nullptr;
  double worst_ = 1e9;
};

void RunSize(const Options& opt, std::size_t size, Report& report, cudaStream_t stream) {
  const std::size_t count = std::max<std::size_t>(4, opt.total / size);
  const std::size_t bytes = count * size;
  cuda::PinnedBuffer pinned = Unwrap(cuda::PinnedBuffer::Allocate(bytes), "pinned buffer");
  for (std::size_t i = 0; i < count; ++i) Fill(pinned.data() + i * size, size, i);
  cuda::DeviceBuffer dev = Unwrap(cuda::DeviceBuffer::Allocate(bytes), "device buffer");

  std::vector<Source> sources;
  sources.push_back(OpenSource("dram", "dram", false, size, count));
  sources.push_back(
      OpenSource("numa:" + std::to_string(opt.numa_node), "numa:" + std::to_string(opt.numa_node),
                 false, size, count));
  sources.push_back(OpenSource("staged", "dram", true, size, count));

  auto raw_h2d = [&] {
    const auto start = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
      Check(cuda::MemcpyAsync(dev.data() + i * size, pinned.data() + i * size, size, stream),
            "raw H2D");
    }
    Check(cuda::StreamSynchronize(stream), "raw H2D");
    return Gbps(bytes, start);
  };
  auto restore = [&](Source& s) {
    std::vector<DeviceGet> gets(count);
    for (std::size_t i = 0; i < count; ++i) gets[i] = {s.keys[i], dev.data() + i * size, size};
    const auto start = Clock::now();
    GpuTransfer t = Unwrap(s.gpu->GetToDevice(gets, stream), "GetToDevice from " + s.name);
    Check(t.Wait(), "GetToDevice from " + s.name);
    return Gbps(bytes, start);
  };

  std::vector<double> raw;
  for (int r = 0; r < opt.repeats; ++r) {
    for (Source& s : sources) {
      if (!s.skipped.empty()) continue;
      raw.push_back(raw_h2d());
      Check(cuda::Memset(dev.data(), 0, bytes), "clearing the device buffer");
      s.gbps.push_back(restore(s));
      if (r == 0) CheckDevice(dev.data(), size, count, s.name.c_str());
    }
  }
  if (raw.empty()) raw.push_back(raw_h2d());
  const double raw_gbps = Median(raw);
  report.Add({"h2d:raw_pinned", size, raw_gbps, raw_gbps, 0, "the ceiling"});
  for (Source& s : sources) {
    if (!s.skipped.empty()) {
      std::printf("  %-8s %-16s skipped: %s\n", FormatBytes(size).c_str(), s.name.c_str(),
                  s.skipped.c_str());
      continue;
    }
    const bool staged = s.name == "staged";
    const double goal = size >= 2 * kMiB ? (staged ? 0.7 : 0.9) : 0;
    report.Add({"h2d:" + s.name, size, Median(s.gbps), raw_gbps, goal,
                staged ? "pinned double buffer" : "registered tier"});
  }

  // Device to store: raw D2H into pinned memory vs PutFromDevice into the registered DRAM tier.
  Source& dram = sources[0];
  if (!dram.skipped.empty()) return;
  std::vector<double> raw_d2h, put;
  for (int r = 0; r < opt.repeats; ++r) {
    auto start = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
      Check(cuda::MemcpyAsync(pinned.data() + i * size, dev.data() + i * size, size, stream),
            "raw D2H");
    }
    Check(cuda::StreamSynchronize(stream), "raw D2H");
    raw_d2h.push_back(Gbps(bytes, start));

    std::vector<std::string> keys(count);
    std::vector<DevicePut> puts(count);
    for (std::size_t i = 0; i < count; ++i) {
      keys[i] = Key(size, i, ("p" + std::to_string(r)).c_str());
      puts[i].key = keys[i];
      puts[i].src = dev.data() + i * size;
      puts[i].size = size;
    }
    start = Clock::now();
    GpuTransfer t = Unwrap(dram.gpu->PutFromDevice(puts, stream), "PutFromDevice");
    Check(t.Wait(), "PutFromDevice");
    put.push_back(Gbps(bytes, start));
    if (r == 0) {
      std::vector<std::byte> got(size);
      Check(dram.store->Get(keys[count - 1], got).status(), "get after PutFromDevice");
      for (std::size_t b = 0; b < size; ++b) {
        if (got[b] != std::byte{PatternByte(count - 1, b)}) Fail("PutFromDevice: bytes differ");
      }
    }
    for (const std::string& k : keys) Check(dram.store->Remove(k), "remove");
  }
  report.Add({"d2h:raw_pinned", size, Median(raw_d2h), Median(raw_d2h), 0, "the ceiling"});
  report.Add({"d2h:dram", size, Median(put), Median(raw_d2h), 0, "PutFromDevice, registered"});
}

int Main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_gpu_restore: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      opt.quick = true;
      opt.total = 128 * kMiB;
      opt.repeats = 1;
    } else if (a == "--total-mib") {
      opt.total = std::stoul(next()) * kMiB;
    } else if (a == "--repeats") {
      opt.repeats = std::max(1, std::stoi(next()));
    } else if (a == "--numa-node") {
      opt.numa_node = std::stoi(next());
    } else if (a == "--csv") {
      opt.csv = next();
    } else {
      std::fprintf(stderr,
                   "usage: bench_gpu_restore [--quick] [--total-mib N] [--repeats N] "
                   "[--numa-node N] [--csv PATH]\n");
      return 2;
    }
  }
  const Status visible = CudaDeviceVisible();
  if (!visible.ok()) {
    std::printf("bench_gpu_restore: no GPU visible: skipped (%s)\n", visible.message().c_str());
    return 0;
  }
  cudaDeviceProp prop{};
  Check(cuda::Check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties"), "device");
  std::printf("bench_gpu_restore: %s, %s per cell, median of %d; GB/s = 1e9 bytes/s\n", prop.name,
              FormatBytes(opt.total).c_str(), opt.repeats);
  cuda::Stream stream = Unwrap(cuda::Stream::Create(), "stream");
  Report report(opt.csv);
  std::printf("  %-8s %-16s %13s  %7s  %-7s %s\n", "chunk", "source", "throughput", "vs raw",
              "goal", "met");
  for (std::size_t size : {128 * kKiB, 2 * kMiB, 32 * kMiB}) RunSize(opt, size, report, stream.get());
  std::printf("worst ratio against its goal: %.3f (>= 1 means every goal met)\n", report.worst());
  return 0;
}

}  // namespace
}  // namespace cxlkv

int main(int argc, char** argv) { return cxlkv::Main(argc, argv); }
