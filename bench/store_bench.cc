// bench_store: Store put and get against memcpy of the same bytes, in the same run.
//
// For each chunk size (128 KiB: the CXL-SSD study's chunk; 2 MiB; 32 MiB: a 256-token
// Llama-3.1-8B chunk) the bench puts N distinct chunks into a DRAM tier large enough to hold
// them all (no eviction), gets them back into one destination buffer, and times memcpy of the
// same sources into the same destinations. Sources are written before timing and the tier is
// populated at map time, so first-touch page faults are in neither side. It also measures the
// fixed cost per operation with 64-byte chunks and index lookups per second (Contains by the
// full LMCache-style key string). Single thread; the rest of issue 4's benchmark comes later.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cxlkv/store.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = kKiB * kKiB;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Key(std::size_t i) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "vllm@meta-llama/Llama-3.1-8B@1@0@%016llx%016zx",
                static_cast<unsigned long long>(i) * 0x9e3779b97f4a7c15ULL, i);
  return buf;
}

std::unique_ptr<cxlkv::Store> OpenDram(std::size_t capacity, std::size_t chunk) {
  cxlkv::StoreOptions o;
  cxlkv::TierOptions t;
  t.name = "dram";
  t.source = cxlkv::MemorySource::Dram(cxlkv::DramOptions{cxlkv::HugePages::kTransparent, true});
  t.capacity = capacity;
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = {chunk};
  auto store = cxlkv::Store::Open(std::move(o));
  if (!store.ok()) {
    std::fprintf(stderr, "bench_store: %s\n", store.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

void Check(const cxlkv::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_store: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

struct Row {
  std::size_t chunk;
  double put_gbps, get_gbps;
  double memcpy_spread_gbps;  // into distinct destinations, as a put writes fresh slots
  double memcpy_one_gbps;     // into one destination, as the gets here do
};

Row MeasureSize(std::size_t chunk, std::size_t total_bytes, int repeats) {
  const std::size_t n = std::max<std::size_t>(4, total_bytes / chunk);
  std::vector<std::vector<std::byte>> src(n, std::vector<std::byte>(chunk));
  for (std::size_t i = 0; i < n; ++i) std::memset(src[i].data(), static_cast<int>(i + 1), chunk);
  std::vector<std::byte> dst(chunk, std::byte{0});
  std::vector<std::byte> sink(n * chunk, std::byte{0});  // written once: no page faults timed
  const double bytes = static_cast<double>(n * chunk);
  std::vector<double> put, get, spread, one;
  for (int r = 0; r < repeats; ++r) {
    auto store = OpenDram(((n * chunk + 64 * kMiB) / (4 * kMiB) + 1) * (4 * kMiB), chunk);
    auto t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) Check(store->Put(Key(i), src[i]), "put");
    put.push_back(bytes / Seconds(t0) / 1e9);
    t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) std::memcpy(sink.data() + i * chunk, src[i].data(), chunk);
    spread.push_back(bytes / Seconds(t0) / 1e9);
    t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      if (!store->Get(Key(i), dst).ok()) Check(cxlkv::Status::IOError("get missed"), "get");
    }
    get.push_back(bytes / Seconds(t0) / 1e9);
    t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) std::memcpy(dst.data(), sink.data() + i * chunk, chunk);
    one.push_back(bytes / Seconds(t0) / 1e9);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return Row{chunk, median(put), median(get), median(spread), median(one)};
}

// Fixed cost: 64-byte chunks, so the copy is negligible and what is left is the store's own
// work (key hash, shard lock, allocator, index). Returns {put ns, get ns, lookups per second}.
struct FixedCost {
  double put_ns, get_ns, lookups_per_s, index_bytes_per_entry;
};

FixedCost MeasureFixedCost(std::size_t n) {
  auto store = OpenDram(256 * kMiB, 4096);
  std::vector<std::string> keys(n);
  for (std::size_t i = 0; i < n; ++i) keys[i] = Key(i);
  std::byte payload[64] = {};
  std::byte out[64];
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) Check(store->Put(keys[i], payload), "put 64 B");
  const double put_ns = Seconds(t0) * 1e9 / static_cast<double>(n);
  t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    if (!store->Get(keys[i], out).ok()) Check(cxlkv::Status::IOError("get missed"), "get 64 B");
  }
  const double get_ns = Seconds(t0) * 1e9 / static_cast<double>(n);
  std::size_t found = 0;
  t0 = Clock::now();
  for (int round = 0; round < 5; ++round) {
    for (std::size_t i = 0; i < n; ++i) found += store->Contains(keys[i]) ? 1 : 0;
  }
  const double lookups = static_cast<double>(5 * n) / Seconds(t0);
  if (found != 5 * n) Check(cxlkv::Status::IOError("lookups missed"), "contains");
  return FixedCost{put_ns, get_ns, lookups, store->Stats().index_bytes_per_entry};
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t total = 512 * kMiB;
  int repeats = 3;
  const char* csv_path = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--total-mib" && i + 1 < argc) total = std::strtoull(argv[++i], nullptr, 10) * kMiB;
    else if (arg == "--repeats" && i + 1 < argc) repeats = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--csv" && i + 1 < argc) csv_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_store [--total-mib N (512)] [--repeats N (3)] [--csv PATH]\n");
      return 2;
    }
  }
  if (total == 0) {
    std::fprintf(stderr, "bench_store: --total-mib must be > 0\n");
    return 2;
  }
  std::FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  if (csv_path && csv == nullptr) {
    std::fprintf(stderr, "bench_store: cannot write %s\n", csv_path);
    return 2;
  }
  if (csv) std::fprintf(csv, "chunk_bytes,put_gbps,get_gbps,memcpy_spread_gbps,memcpy_one_gbps\n");
  std::printf("Store on one DRAM tier, 1 thread, %zu MiB per size, median of %d runs\n",
              total / kMiB, repeats);
  std::printf("%10s %10s %10s %12s %12s %12s %12s\n", "chunk", "put GB/s", "get GB/s",
              "memcpy GB/s", "put/memcpy", "memcpy1 GB/s", "get/memcpy");
  for (std::size_t chunk : {128 * kKiB, 2 * kMiB, 32 * kMiB}) {
    const Row r = MeasureSize(chunk, total, repeats);
    std::printf("%8zuKiB %10.2f %10.2f %12.2f %11.2fx %12.2f %11.2fx\n", chunk / kKiB,
                r.put_gbps, r.get_gbps, r.memcpy_spread_gbps, r.put_gbps / r.memcpy_spread_gbps,
                r.memcpy_one_gbps, r.get_gbps / r.memcpy_one_gbps);
    if (csv) {
      std::fprintf(csv, "%zu,%.3f,%.3f,%.3f,%.3f\n", chunk, r.put_gbps, r.get_gbps,
                   r.memcpy_spread_gbps, r.memcpy_one_gbps);
    }
  }
  if (csv) std::fclose(csv);
  // 50,000 chunks of 64 B take 4 KiB slots each: 195 MiB, inside the 256 MiB tier (no eviction).
  const FixedCost f = MeasureFixedCost(50000);
  std::printf("64 B chunks: put %.0f ns, get %.0f ns per operation (goal < 1000 ns each)\n",
              f.put_ns, f.get_ns);
  std::printf("index: %.2f M lookups/s by full key (goal >= 10 M/s), %.0f B of DRAM per chunk "
              "as Stats counts it (goal <= 64)\n",
              f.lookups_per_s / 1e6, f.index_bytes_per_entry);
  return 0;
}
