// bench_alloc: alloc+free pairs per second of the slab allocator against glibc malloc and
// mimalloc, on the same KV-cache size mix, in the same run.
//
// The mix is what LMCache stores for one model: 256-token chunks, 80% full (the exact size the
// slab allocator registers) and 20% partial tails of 1..255 tokens. Each thread keeps a window
// of live allocations and, per step, frees a random one and allocates a new one. Every
// allocator replays the same pre-drawn sequence. Bytes are not touched: this measures the
// allocators' bookkeeping, which is what a store pays per chunk on top of its copies.
//
// mimalloc is loaded with dlopen(RTLD_LOCAL) and called through mi_malloc/mi_free, so that it
// cannot replace malloc for the glibc column: linking libmimalloc (Debian builds it with
// MI_OVERRIDE) would make every malloc in the process mimalloc's. CMake's find_package(mimalloc)
// supplies the library's path as CXLKV_MIMALLOC_PATH; without it the column is skipped.
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/slab_allocator.h"
#include "util/format.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kWindow = 64;     // live allocations per thread
constexpr std::size_t kOps = 1 << 16;   // pre-drawn steps per thread, replayed in a loop
constexpr std::size_t kTokensPerChunk = 256;

struct Mix {
  const char* name;
  std::size_t bytes_per_token;
  std::size_t full_chunk() const { return bytes_per_token * kTokensPerChunk; }
};
// 512 B/token: the CXL-SSD study's 128 KiB chunks; 8 KiB/token: 2 MiB chunks (a ~1B model);
// 128 KiB/token: Llama-3.1-8B, 32 MiB chunks.
constexpr Mix kMixes[] = {{"128KiB-chunks", 512}, {"2MiB-chunks", 8192},
                          {"32MiB-chunks(llama-8b)", 131072}};

struct Step {
  std::uint32_t victim;  // window index to free then refill
  std::size_t size;
};

std::vector<Step> DrawSteps(const Mix& mix, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Step> steps(kOps);
  for (Step& s : steps) {
    s.victim = static_cast<std::uint32_t>(rng() % kWindow);
    s.size = rng() % 100 < 80 ? mix.full_chunk()
                              : mix.bytes_per_token * (1 + rng() % (kTokensPerChunk - 1));
  }
  return steps;
}

// A generic allocator for the harness: allocate returns an opaque handle slot.
struct Allocator {
  std::string name;
  std::function<void*(std::size_t, void** cookie)> alloc;  // cookie: per-slot extra state
  std::function<void(void*, void* cookie, std::size_t)> free;
};

// "1 thread 12.3x, 2 threads 20.1x": the geometric mean of each thread count's ratios.
std::string GeometricMeans(const std::vector<int>& thread_counts,
                           const std::vector<std::vector<double>>& ratios) {
  std::string out;
  for (std::size_t ti = 0; ti < thread_counts.size(); ++ti) {
    double log_sum = 0;
    for (double r : ratios[ti]) log_sum += std::log(r);
    char part[64];
    std::snprintf(part, sizeof(part), "%s%d thread%s %.1fx", ti == 0 ? "" : ", ",
                  thread_counts[ti], thread_counts[ti] == 1 ? "" : "s",
                  std::exp(log_sum / static_cast<double>(ratios[ti].size())));
    out += part;
  }
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Runs `threads` threads for `seconds`; returns alloc+free pairs per second.
double Measure(const Allocator& a, const Mix& mix, int threads, double seconds) {
  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};
  std::vector<std::uint64_t> pairs(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::vector<Step> steps = DrawSteps(mix, 1000 + static_cast<std::uint64_t>(t));
      void* ptr[kWindow];
      void* cookie[kWindow];
      std::size_t size[kWindow];
      for (std::size_t i = 0; i < kWindow; ++i) {
        size[i] = steps[i].size;
        ptr[i] = a.alloc(size[i], &cookie[i]);
      }
      ++ready;
      while (ready.load() < threads) std::this_thread::yield();
      std::uint64_t n = 0;
      for (std::size_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const Step& s = steps[i % kOps];
        a.free(ptr[s.victim], cookie[s.victim], size[s.victim]);
        size[s.victim] = s.size;
        ptr[s.victim] = a.alloc(s.size, &cookie[s.victim]);
        if (ptr[s.victim] == nullptr) {
          std::fprintf(stderr, "bench_alloc: %s failed to allocate %zu B\n", a.name.c_str(),
                       s.size);
          std::exit(1);
        }
        ++n;
      }
      for (std::size_t i = 0; i < kWindow; ++i) a.free(ptr[i], cookie[i], size[i]);
      pairs[static_cast<std::size_t>(t)] = n;
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::uint64_t total = 0;
  for (auto p : pairs) total += p;
  return static_cast<double>(total) / elapsed;
}

struct SlabFixture {
  std::unique_ptr<cxlkv::MemoryRegion> region;
  std::unique_ptr<cxlkv::SlabAllocator> allocator;
};

SlabFixture MakeSlab(const Mix& mix, int threads) {
  // Room for every thread's window at the largest slot three times over, plus a partly used
  // span per size class; untouched memory costs nothing (MAP_NORESERVE).
  const std::size_t bytes = cxlkv::AlignUp(
      3 * static_cast<std::size_t>(threads) * kWindow * mix.full_chunk() + (std::size_t{512} << 20),
      std::size_t{4} << 20);
  auto region = cxlkv::MemorySource::Dram(cxlkv::DramOptions{cxlkv::HugePages::kNone, false})
                    ->Map(bytes, 4096);
  if (!region.ok()) {
    std::fprintf(stderr, "bench_alloc: %s\n", region.status().ToString().c_str());
    std::exit(1);
  }
  cxlkv::SlabAllocatorOptions options;
  options.exact_sizes = {mix.full_chunk()};
  options.slot_alignment = 4096;
  options.max_slot_size = std::max(options.max_slot_size, mix.full_chunk());
  auto allocator = cxlkv::SlabAllocator::Create(**region, options);
  if (!allocator.ok()) {
    std::fprintf(stderr, "bench_alloc: %s\n", allocator.status().ToString().c_str());
    std::exit(1);
  }
  return SlabFixture{std::move(region).value(), std::move(allocator).value()};
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0.4;
  int repeats = 3;
  std::vector<int> thread_counts = {1, 2};
  const char* csv_path = nullptr;
  std::string only_mix;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_alloc: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--seconds") seconds = std::atof(next());
    else if (arg == "--repeats") repeats = std::max(1, std::atoi(next()));
    else if (arg == "--threads") thread_counts = {std::max(1, std::atoi(next()))};
    else if (arg == "--csv") csv_path = next();
    else if (arg == "--mix") only_mix = next();
    else {
      std::fprintf(stderr,
                   "usage: bench_alloc [--seconds S per cell (0.4)] [--repeats N (3)] "
                   "[--threads T (1 and 2)] [--csv PATH] [--mix NAME]\n");
      return 2;
    }
  }
  if (!(seconds > 0)) {
    std::fprintf(stderr, "bench_alloc: --seconds must be > 0\n");
    return 2;
  }
  if (!only_mix.empty() &&
      std::none_of(std::begin(kMixes), std::end(kMixes),
                   [&](const Mix& m) { return only_mix == m.name; })) {
    std::fprintf(stderr, "bench_alloc: unknown --mix %s; mixes:", only_mix.c_str());
    for (const Mix& m : kMixes) std::fprintf(stderr, " %s", m.name);
    std::fprintf(stderr, "\n");
    return 2;
  }

  using MiFn = void* (*)(std::size_t);
  using MiFree = void (*)(void*);
  MiFn mi_malloc = nullptr;
  MiFree mi_free = nullptr;
#ifdef CXLKV_MIMALLOC_PATH
  if (void* lib = dlopen(CXLKV_MIMALLOC_PATH, RTLD_NOW | RTLD_LOCAL)) {
    mi_malloc = reinterpret_cast<MiFn>(dlsym(lib, "mi_malloc"));
    mi_free = reinterpret_cast<MiFree>(dlsym(lib, "mi_free"));
  }
  if (mi_malloc == nullptr || mi_free == nullptr) {
    std::printf("mimalloc: %s not loadable (%s); its column is skipped\n", CXLKV_MIMALLOC_PATH,
                dlerror());
    mi_malloc = nullptr;
  }
#else
  std::printf("mimalloc: not found when this benchmark was built; its column is skipped\n");
#endif

  std::FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  if (csv_path && !csv) {
    std::fprintf(stderr, "bench_alloc: cannot write %s: %s\n", csv_path, std::strerror(errno));
    return 2;
  }
  if (csv) {
    std::fprintf(csv, "mix,threads,slab_pairs_per_s,glibc_pairs_per_s,mimalloc_pairs_per_s\n");
  }

  std::printf("alloc+free pairs per second (median of %d runs of %.2f s; window %zu live per "
              "thread; 80%% full chunks, 20%% tails)\n",
              repeats, seconds, kWindow);
  std::printf("%-24s %7s %12s %12s %12s %10s %10s\n", "mix", "threads", "slab", "glibc",
              "mimalloc", "slab/mi", "slab/glibc");
  std::vector<std::vector<double>> ratios_glibc(thread_counts.size());
  std::vector<std::vector<double>> ratios_mimalloc(thread_counts.size());
  // Per mix: the slab allocator's rate at 1 and at 2 threads (0 when not measured), for the
  // scaling goal; and the worst slab/mimalloc cell, for the "at least mimalloc" goal.
  std::vector<std::pair<const char*, std::pair<double, double>>> scaling;
  double worst_vs_mimalloc = 0;
  const char* worst_cell = "";
  char worst_buf[64] = "";
  for (const Mix& mix : kMixes) {
    if (only_mix.empty() || only_mix == mix.name) scaling.push_back({mix.name, {0, 0}});
    if (!only_mix.empty() && only_mix != mix.name) continue;
    for (std::size_t ti = 0; ti < thread_counts.size(); ++ti) {
      const int threads = thread_counts[ti];
      SlabFixture slab = MakeSlab(mix, threads);
      Allocator slab_alloc{
          "slab",
          [&](std::size_t n, void** cookie) -> void* {
            auto r = slab.allocator->Allocate(n);
            if (!r.ok()) return nullptr;
            // The cookie carries the class id so Free gets the whole Allocation back.
            *cookie = reinterpret_cast<void*>(static_cast<std::uintptr_t>(r->class_id));
            return r->data;
          },
          [&](void* p, void* cookie, std::size_t n) {
            const auto class_id =
                static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(cookie));
            cxlkv::Allocation a{static_cast<std::byte*>(p), n, 0, class_id};
            if (!slab.allocator->Free(a).ok()) std::abort();
          }};
      Allocator glibc{"glibc", [](std::size_t n, void**) { return std::malloc(n); },
                      [](void* p, void*, std::size_t) { std::free(p); }};
      Allocator mi{"mimalloc", [&](std::size_t n, void**) { return mi_malloc(n); },
                   [&](void* p, void*, std::size_t) { mi_free(p); }};
      std::vector<double> s, g, m;
      for (int r = 0; r < repeats; ++r) {  // interleaved, so drift hits all columns alike
        s.push_back(Measure(slab_alloc, mix, threads, seconds));
        g.push_back(Measure(glibc, mix, threads, seconds));
        if (mi_malloc) m.push_back(Measure(mi, mix, threads, seconds));
      }
      const double sm = Median(s), gm = Median(g), mm = m.empty() ? 0 : Median(m);
      ratios_glibc[ti].push_back(sm / gm);
      if (mm > 0) ratios_mimalloc[ti].push_back(sm / mm);
      if (threads == 1) scaling.back().second.first = sm;
      if (threads == 2) scaling.back().second.second = sm;
      if (mm > 0 && (worst_vs_mimalloc == 0 || sm / mm < worst_vs_mimalloc)) {
        worst_vs_mimalloc = sm / mm;
        std::snprintf(worst_buf, sizeof(worst_buf), "%s, %d thread%s", mix.name, threads,
                      threads == 1 ? "" : "s");
        worst_cell = worst_buf;
      }
      char mi_cells[64] = "           -          -";
      if (mm > 0) std::snprintf(mi_cells, sizeof(mi_cells), "%12.3g %9.1fx", mm, sm / mm);
      std::printf("%-24s %7d %12.3g %12.3g %s %9.1fx\n", mix.name, threads, sm, gm, mi_cells,
                  sm / gm);
      if (csv) std::fprintf(csv, "%s,%d,%.0f,%.0f,%.0f\n", mix.name, threads, sm, gm, mm);
    }
  }
  if (csv) std::fclose(csv);
  // Geometric means over the mixes measured.
  if (mi_malloc != nullptr) {
    std::printf("ratio slab/mimalloc: %s\n",
                GeometricMeans(thread_counts, ratios_mimalloc).c_str());
  }
  std::printf("ratio slab/glibc: %s (goal >= 2x)\n",
              GeometricMeans(thread_counts, ratios_glibc).c_str());
  // Per-CPU caches should let a second thread nearly double the rate (on 2 cores). The goal
  // is for the 128 KiB mix: at 2 and 32 MiB a CPU caches few slots or none (per_cpu_cache_bytes
  // is 8 MiB: a cached slot is tier capacity no other CPU can use), so threads meet at the
  // class lock by design.
  for (const auto& [name, rates] : scaling) {
    if (rates.first <= 0 || rates.second <= 0) continue;
    const double x = rates.second / rates.first;
    const bool goal = std::strcmp(name, kMixes[0].name) == 0;
    std::printf("slab scaling, %s: 2 threads %.2fx the 1-thread rate (%s%s)\n", name, x,
                goal ? "goal >= 1.8x: " : "no goal: few or no slots cached per CPU",
                goal ? (x >= 1.8 ? "met" : "NOT met") : "");
  }
  if (worst_vs_mimalloc > 0) {
    std::printf("slab vs mimalloc, worst cell (%s): %.2fx (goal >= 1x in every cell: %s)\n",
                worst_cell, worst_vs_mimalloc, worst_vs_mimalloc >= 1 ? "met" : "NOT met");
  }
  return 0;
}
