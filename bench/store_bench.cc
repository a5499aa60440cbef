// bench_store: the Store against memcpy of the same bytes, measured in the same run.
//
// Sections (each a terminal table and rows of the CSV, docs/benchmarks.md has the method):
//  1. put/get (this file): for 128 KiB (the CXL-SSD study's chunk), 2 MiB and 32 MiB (a
//     256-token Llama-3.1-8B chunk), put N distinct chunks into a DRAM tier large enough to hold
//     them all (no eviction), get them back, with 1 and 2 threads (each thread its own keys,
//     the same total bytes). Baselines: the same threads memcpy the same sources into distinct
//     destinations (what a put does) and into one buffer per thread (what these gets do).
//  2. batched get (store_bench_batch.cc): SubmitGets of 32 chunks of 2 MiB with 2 copy threads
//     (and 1) against one thread's memcpy of the same bytes.
//  3. fixed cost (this file): 64-byte chunks, put and get ns per operation; index lookups per
//     second by full key (Contains); DRAM bytes per index entry as Stats counts it; then the
//     index at scale (Options::index_chunks chunks): Stats' bytes per entry, the resident-set
//     growth per chunk, and lookups (one at a time and batched; cold and warm keys) beside
//     the ceilings this machine's memory allows, measured in the same run.
//  4. demotion (store_bench_demote.cc): DRAM tier over a file tier, one Maintain() pass that
//     demotes, in bytes per second, against memcpy, nt and CopyAndPersist into a file mapping.
//  5. copy methods per tier kind (store_bench_copy.cc): memcpy against streaming stores and
//     libpmem2's copies, into and out of DRAM, a NUMA node and a file mapping.
// Sources are written and destinations faulted in before timing. Each cell is the median of
// Options::repeats interleaved runs (median, not best: it is what a run typically gets on the
// shared machine, and one lucky run cannot make a goal look met).
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <malloc.h>

#include "bench/store_bench.h"
#include "cxlkv/store.h"
#include "util/format.h"

namespace cxlkv::bench {
namespace {

// chunk == 0: no exact size class.
std::unique_ptr<Store> OpenDram(std::size_t capacity, std::size_t chunk) {
  StoreOptions o;
  TierOptions t;
  t.name = "dram";
  t.source = MemorySource::Dram(DramOptions{HugePages::kTransparent, /*populate=*/true});
  t.capacity = capacity;
  o.tiers.push_back(std::move(t));
  if (chunk != 0) o.chunk_sizes = {chunk};
  return Unwrap(Store::Open(std::move(o)), "opening a DRAM store of " + SizeName(capacity));
}

// Runs work(t) on `threads` threads released together; returns the wall time from the first
// start to the last finish. work returns a Status; the first failure ends the bench.
template <typename F>
double TimeThreads(int threads, const std::string& what, F&& work) {
  if (threads == 1) {
    const auto t0 = Clock::now();
    const Status s = work(0);
    const double secs = Seconds(t0);
    Check(s, what);
    return secs;
  }
  std::latch ready(threads);
  std::vector<Clock::time_point> start(threads), end(threads);
  std::vector<Status> status(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.arrive_and_wait();
      start[t] = Clock::now();
      status[t] = work(t);
      end[t] = Clock::now();
    });
  }
  for (auto& th : pool) th.join();
  for (const Status& s : status) Check(s, what);
  return std::chrono::duration<double>(*std::max_element(end.begin(), end.end()) -
                                       *std::min_element(start.begin(), start.end()))
      .count();
}

struct PutGetCell {
  double put = 0, get = 0, memcpy_spread = 0, memcpy_one = 0;  // GB/s
};

// Thread t handles chunks [n*t/threads, n*(t+1)/threads).
std::size_t Begin(std::size_t n, int t, int threads) { return n * t / threads; }

PutGetCell MeasurePutGetOnce(std::size_t chunk, const std::vector<std::vector<std::byte>>& src,
                             const std::vector<std::string>& keys, std::byte* sink,
                             std::vector<std::vector<std::byte>>& dst, int threads) {
  const std::size_t n = src.size();
  const double bytes = static_cast<double>(n * chunk);
  // No eviction: the tier holds every chunk with a slab of slack per thread's CPU cache.
  const std::size_t slab = 4 * kMiB;
  auto store = OpenDram(((n * chunk + 64 * kMiB) / slab + 1) * slab, chunk);
  PutGetCell c;
  c.put = bytes / 1e9 / TimeThreads(threads, "put " + SizeName(chunk), [&](int t) {
    for (std::size_t i = Begin(n, t, threads); i < Begin(n, t + 1, threads); ++i) {
      CXLKV_RETURN_IF_ERROR(store->Put(keys[i], src[i]));
    }
    return Status::Ok();
  });
  c.memcpy_spread = bytes / 1e9 / TimeThreads(threads, "memcpy", [&](int t) {
    for (std::size_t i = Begin(n, t, threads); i < Begin(n, t + 1, threads); ++i) {
      std::memcpy(sink + i * chunk, src[i].data(), chunk);
    }
    return Status::Ok();
  });
  c.get = bytes / 1e9 / TimeThreads(threads, "get " + SizeName(chunk), [&](int t) {
    for (std::size_t i = Begin(n, t, threads); i < Begin(n, t + 1, threads); ++i) {
      CXLKV_ASSIGN_OR_RETURN(const std::size_t got, store->Get(keys[i], dst[t]));
      if (got != chunk) {
        return Status::Corruption("get of " + keys[i] + " returned " + std::to_string(got) +
                                  " bytes, not " + std::to_string(chunk));
      }
    }
    return Status::Ok();
  });
  // Before the baseline overwrites dst: the last get of each thread must have returned the
  // bytes put (a cheap end-to-end check).
  for (int t = 0; t < threads; ++t) {
    const std::size_t last = Begin(n, t + 1, threads) - 1;
    if (std::memcmp(dst[t].data(), src[last].data(), chunk) != 0) {
      Fail("get of " + keys[last] + " returned bytes that differ from those put");
    }
  }
  c.memcpy_one = bytes / 1e9 / TimeThreads(threads, "memcpy", [&](int t) {
    for (std::size_t i = Begin(n, t, threads); i < Begin(n, t + 1, threads); ++i) {
      std::memcpy(dst[t].data(), sink + i * chunk, chunk);
    }
    return Status::Ok();
  });
  return c;
}

// A random cycle (Sattolo's shuffle) over `bytes` of DRAM: next[i] is the slot after i, so a
// chase through it defeats the caches and the prefetchers.
std::vector<std::size_t> RandomCycle(std::size_t bytes) {
  const std::size_t n = bytes / sizeof(std::size_t);
  std::vector<std::size_t> next(n);
  std::iota(next.begin(), next.end(), std::size_t{0});
  std::mt19937_64 rng(7);
  for (std::size_t i = n - 1; i > 0; --i) {
    std::swap(next[i], next[std::uniform_int_distribution<std::size_t>(0, i - 1)(rng)]);
  }
  return next;
}

// Nanoseconds per load of `chains` chases through `next` run side by side: with 1 chain, the
// latency of one load whose address depends on the last; with many, the time per load when
// that many independent misses are in flight (what this core's memory parallelism allows).
double ChaseNanoseconds(const std::vector<std::size_t>& next, int chains, std::size_t loads) {
  constexpr int kMaxChains = 32;
  std::size_t at[kMaxChains];
  for (int c = 0; c < chains; ++c) at[c] = next.size() / static_cast<std::size_t>(chains) * c;
  const std::size_t steps = loads / static_cast<std::size_t>(chains);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < steps; ++i) {
    for (int c = 0; c < chains; ++c) at[c] = next[at[c]];
  }
  const double ns = Seconds(t0) * 1e9 / static_cast<double>(steps * chains);
  std::size_t sum = 0;
  for (int c = 0; c < chains; ++c) sum += at[c];
  if (sum == ~std::size_t{0}) Fail("unreachable: keeps the chase from being optimised away");
  return ns;
}

// A chase shaped like one lookup after another that do not overlap:
// a load from a table of 4-byte slots the size of the index's tables (`chunks` entries at
// most 80% full in each of 16 shards), whose value names one of `chunks` 48-byte entries; a
// load from that entry, whose value picks the next step's slot. Each step is two dependent
// loads over the index's own footprint (the tables may sit in the last-level cache, the
// entries do not), so 1 / this is what lookups one at a time can reach when none overlaps the
// next. Nanoseconds(steps) is the time per step.
class LookupChain {
 public:
  explicit LookupChain(std::size_t chunks)
      : slots_(16 * std::bit_ceil((chunks + 15) / 16 * 5 / 4 + 1)), table_(slots_),
        entries_(chunks) {
    // Every entry gets a slot of its own, and the entries form one random cycle (Sattolo's
    // shuffle): a chase through a random function would soon loop within a few cached lines.
    std::mt19937_64 rng(11);
    std::vector<std::uint32_t> slot_of(slots_);
    std::iota(slot_of.begin(), slot_of.end(), 0u);
    std::shuffle(slot_of.begin(), slot_of.end(), rng);
    std::vector<std::uint32_t> succ(chunks);
    std::iota(succ.begin(), succ.end(), 0u);
    for (std::size_t i = chunks - 1; i > 0; --i) {
      std::swap(succ[i], succ[std::uniform_int_distribution<std::size_t>(0, i - 1)(rng)]);
    }
    for (std::size_t e = 0; e < chunks; ++e) {
      table_[slot_of[e]] = static_cast<std::uint32_t>(e);
      entries_[e].next = slot_of[succ[e]];
    }
  }
  double Nanoseconds(std::size_t steps) const {
    std::uint64_t at = entries_[0].next;
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < steps; ++i) at = entries_[table_[at]].next;
    const double ns = Seconds(t0) * 1e9 / static_cast<double>(steps);
    if (at == 42) std::printf(" ");  // keeps the chase from being optimised away
    return ns;
  }

 private:
  struct alignas(16) FakeEntry {
    std::uint64_t next = 0;  // the next step's slot
    std::uint64_t pad[5] = {};
  };
  static_assert(sizeof(FakeEntry) == 48);
  std::size_t slots_;
  std::vector<std::uint32_t> table_;
  std::vector<FakeEntry> entries_;
};

// The index with Options::index_chunks 64-byte chunks in one DRAM tier populated at map time:
// DRAM per chunk as Stats counts it (entries and hash tables), and as the process's resident
// set grew over the puts. The tier's pages are all resident before them, so that growth is the
// index plus the slab allocator's bookkeeping (a live-flag byte for every slot it carves and a
// 4-byte free-stack entry for every slot given back; a chunk takes a data and a header slot)
// and malloc's. Then lookups by full key (their table slots and entries come from DRAM, not
// cache), with the keys presented two ways:
//  - cold: the keys are the bench's std::strings, one heap block each, scattered over ~80 MB
//    and visited in random order, so each key's bytes are a DRAM miss too (the harder case);
//  - warm: before each group of 64 lookups (untimed) the group's keys are copied into one
//    small buffer, as an engine builds a request's keys just before it looks them up; only
//    the lookups are timed.
// Contains one at a time (random order cold and warm, and put order), ContainsBatch of 64 in
// random order (cold and warm). And before each, the machine's limits: the latency of one
// dependent DRAM load (a chase over 64 MiB, about the index's footprint), the time per load
// with kChains independent chases in flight, and a LookupChain step.
void RunIndexAtScale(const Options& o, Csv& csv) {
  const std::size_t n = o.index_chunks;
  std::vector<std::string> keys(n);
  for (std::size_t i = 0; i < n; ++i) keys[i] = Key(i, 3);
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
  auto store = OpenDram(AlignUp(n * 512 + 8 * kMiB, 4 * kMiB), 0);
  // Free heap pages go back to the kernel, so an index that reuses them shows as growth.
  malloc_trim(0);
  const std::size_t rss_before = ResidentBytes();
  const std::byte payload[64] = {};
  for (std::size_t i = 0; i < n; ++i) Check(store->Put(keys[i], payload), "put 64 B (at scale)");
  const std::size_t rss_after = ResidentBytes();
  const StoreStats st = store->Stats();
  if (st.index_entries != n || st.tiers[0].chunks != n) {
    Fail("the index holds " + std::to_string(st.index_entries) + " entries after " +
         std::to_string(n) + " puts: " + st.ToString());
  }
  const double stats_bytes = st.index_bytes_per_entry;
  const double rss_bytes = (static_cast<double>(rss_after) - static_cast<double>(rss_before)) /
                           static_cast<double>(n);
  const double slot_bytes = static_cast<double>(st.tiers[0].used_bytes) / static_cast<double>(n);

  constexpr std::size_t kBatch = 64;
  // Cache lines a cold key's bytes span (a batch must fetch them before it can hash).
  double key_lines = 0;
  for (const std::string& k : keys) {
    const auto a = reinterpret_cast<std::uintptr_t>(k.data());
    key_lines += static_cast<double>((a + k.size() - 1) / 64 - a / 64 + 1);
  }
  key_lines /= static_cast<double>(n);
  std::vector<std::string_view> shuffled(n);
  for (std::size_t i = 0; i < n; ++i) shuffled[i] = keys[order[i]];
  // Warm keys: group b's keys copied into `stage`, viewed by `warm`.
  constexpr std::size_t kStride = 128;
  std::vector<char> stage(kBatch * kStride);
  std::string_view warm[kBatch];
  auto stage_group = [&](std::size_t b, std::size_t len) {
    for (std::size_t j = 0; j < len; ++j) {
      const std::string_view k = shuffled[b + j];
      std::memcpy(stage.data() + j * kStride, k.data(), k.size());
      warm[j] = std::string_view(stage.data() + j * kStride, k.size());
    }
  };
  const std::vector<std::size_t> cycle = RandomCycle(std::size_t{64} << 20);
  const LookupChain chain(n);
  constexpr int kChains = 16;

  enum Mode { kRandom, kInOrder, kRandomWarm, kBatched, kBatchedWarm, kModes };
  // rate: lookups per second; share: rate over the ceiling from the chases run just before
  // it (this VM's memory latency drifts between runs, so each figure is judged against the
  // memory it ran on).
  std::vector<double> rate[kModes], share[kModes], chase_ns, parallel_ns, chain_ns;
  bool found_batch[kBatch];
  for (int r = 0; r < o.repeats; ++r) {
    for (int k = 0; k < kModes; ++k) {  // interleaved, rotating which goes first
      const int m = (r + k) % kModes;
      const double l_ns = ChaseNanoseconds(cycle, 1, 200'000);
      const double p_ns = ChaseNanoseconds(cycle, kChains, 1'000'000);
      const double c_ns = chain.Nanoseconds(200'000);
      chase_ns.push_back(l_ns);
      chain_ns.push_back(c_ns);
      parallel_ns.push_back(p_ns);
      std::size_t found = 0;
      double secs = 0;
      const auto t0 = Clock::now();
      if (m == kRandom) {
        for (std::string_view key : shuffled) found += store->Contains(key) ? 1 : 0;
        secs = Seconds(t0);
      } else if (m == kInOrder) {
        for (const std::string& key : keys) found += store->Contains(key) ? 1 : 0;
        secs = Seconds(t0);
      } else if (m == kBatched) {
        for (std::size_t b = 0; b < n; b += kBatch) {
          const std::size_t len = std::min(kBatch, n - b);
          found += store->ContainsBatch(std::span(shuffled).subspan(b, len),
                                        std::span<bool>(found_batch, len));
        }
        secs = Seconds(t0);
      } else {
        for (std::size_t b = 0; b < n; b += kBatch) {
          const std::size_t len = std::min(kBatch, n - b);
          stage_group(b, len);
          const auto g0 = Clock::now();
          if (m == kRandomWarm) {
            for (std::size_t j = 0; j < len; ++j) found += store->Contains(warm[j]) ? 1 : 0;
          } else {
            found += store->ContainsBatch(std::span<const std::string_view>(warm, len),
                                          std::span<bool>(found_batch, len));
          }
          secs += Seconds(g0);
        }
      }
      rate[m].push_back(static_cast<double>(n) / secs);
      // The ceilings, explained below: one lookup chain's time one at a time, P x lines a key
      // batched.
      const double lines = m == kBatched ? key_lines + 2 : 2;
      const double ceiling_ns = m == kBatched || m == kBatchedWarm ? p_ns * lines : c_ns;
      share[m].push_back(rate[m].back() * ceiling_ns / 1e9);
      if (found != n) {
        Fail("lookups (mode " + std::to_string(m) + ") missed " + std::to_string(n - found) +
             " stored keys");
      }
    }
  }
  const double random = Median(rate[kRandom]), in_order = Median(rate[kInOrder]);
  const double random_warm = Median(rate[kRandomWarm]);
  const double batched = Median(rate[kBatched]), batched_warm = Median(rate[kBatchedWarm]);
  const double miss_ns = Median(chase_ns), par_ns = Median(parallel_ns);
  const double lookup_ns = Median(chain_ns);
  // Ceilings. One at a time, a lookup is a chain of two dependent loads: its table slot (the
  // address comes from the key's hash) and then its entry (the address comes from the slot);
  // LookupChain times that chain over the index's footprint. A cold key's bytes need not add a
  // third load: they do not depend on the lookup before. The ceiling holds for lookups that do
  // not overlap; the share printed beside it says whether they do (over 100%: they overlap in
  // part, the core running ahead into the next lookup).
  const double one_max = 1e9 / lookup_ns;
  // Batched, the loads of many keys overlap, and what bounds them is how many lines per second
  // the core can fetch with independent misses in flight: a cold key needs its bytes' lines, a
  // slot and an entry; a warm key a slot and an entry.
  const double batch_cold_max = 1e9 / (par_ns * (key_lines + 2));
  const double batch_warm_max = 1e9 / (par_ns * 2);
  std::printf("index at scale, %zu chunks of 64 B (and %.0f B of tier slots each, not counted): "
              "DRAM per chunk %.1f B as Stats counts it, %.1f B as VmRSS grew over the puts "
              "(goal <= 64: %s, %s)\n",
              n, slot_bytes, stats_bytes, rss_bytes, MetText(stats_bytes <= 64),
              MetText(rss_bytes <= 64));
  auto pct = [&](int m) { return 100 * Median(share[m]); };
  std::printf("  this machine: a dependent random DRAM load %.0f ns; with %d independent chases "
              "in flight %.1f ns per load (pointer chases over 64 MiB); slot then entry, two "
              "dependent loads over the index's footprint, %.0f ns (all measured before each "
              "figure, median of %zu)\n",
              miss_ns, kChains, par_ns, lookup_ns, chase_ns.size());
  std::printf("  Contains one at a time on 1 core, random order: %.2f M/s with cold keys, %.2f M/s "
              "with warm keys (ceiling %.2f M/s = 1 / (slot then entry) for lookups that do not overlap; "
              "%.0f%% and %.0f%% of the ceiling measured beside each); put order %.2f M/s "
              "(goal >= 10 M/s: %s, %s, %s)\n",
              random / 1e6, random_warm / 1e6, one_max / 1e6, pct(kRandom), pct(kRandomWarm),
              in_order / 1e6, MetText(random >= 10e6), MetText(random_warm >= 10e6),
              MetText(in_order >= 10e6));
  std::printf("  ContainsBatch of %zu keys on 1 core, random order: %.2f M/s with cold keys "
              "(ceiling %.1f M/s: %.1f lines a key at %.1f ns; %.0f%%), %.2f M/s with warm keys "
              "as an engine presents them (ceiling %.1f M/s: 2 lines a key; %.0f%%) (goal >= "
              "10 M/s, judged on warm keys: %s; cold keys: %s)\n",
              kBatch, batched / 1e6, batch_cold_max / 1e6, key_lines + 2, par_ns, pct(kBatched),
              batched_warm / 1e6, batch_warm_max / 1e6, pct(kBatchedWarm),
              MetText(batched_warm >= 10e6), MetText(batched >= 10e6));
  const std::string chunks = std::to_string(n) + " chunks; ";
  csv.Add({"index_bytes_scale", 1, 64, "B/chunk", stats_bytes, 0, "<=64", stats_bytes <= 64,
           chunks + "Stats().index_bytes_per_entry"});
  csv.Add({"index_bytes_rss", 1, 64, "B/chunk", rss_bytes, 0, "<=64", rss_bytes <= 64,
           chunks + "VmRSS growth over the puts / chunks (tier populated before)"});
  csv.Add({"index_lookups_scale", 1, 64, "M/s", random / 1e6, one_max / 1e6, ">=10",
           random >= 10e6,
           chunks + "Contains in random order with cold keys; baseline: 1 / slot-then-entry chain"});
  csv.Add({"index_lookups_scale_warm", 1, 64, "M/s", random_warm / 1e6, one_max / 1e6,
           ">=10", random_warm >= 10e6,
           chunks + "Contains in random order with warm keys; baseline: 1 / slot-then-entry chain"});
  csv.Add({"index_lookups_scale_batched", 1, 64, "M/s", batched / 1e6, batch_cold_max / 1e6,
           ">=10", batched >= 10e6,
           chunks + "ContainsBatch of 64 in random order with cold keys; baseline: line ceiling"});
  csv.Add({"index_lookups_scale_batched_warm", 1, 64, "M/s", batched_warm / 1e6,
           batch_warm_max / 1e6, ">=10", batched_warm >= 10e6,
           chunks + "ContainsBatch of 64 in random order with warm keys; baseline: line ceiling"});
  csv.Add({"dram_random_load", 1, 8, "ns", miss_ns, 0, "", true,
           "pointer chase over 64 MiB: one dependent load"});
  csv.Add({"index_lookup_chain", 1, 64, "ns", lookup_ns, 0, "", true,
           chunks + "two dependent loads (slot then entry) over the index's footprint"});
  csv.Add({"dram_parallel_load", kChains, 8, "ns", par_ns, 0, "", true,
           "16 pointer chases over 64 MiB side by side: ns per load"});
  csv.Add({"index_lookups_scale_seq", 1, 64, "M/s", in_order / 1e6, 0, ">=10", in_order >= 10e6,
           chunks + "Contains in put order"});
}

}  // namespace

void RunPutGet(const Options& o, Csv& csv) {
  constexpr int kThreads[] = {1, 2};
  std::printf("Store put/get on one DRAM tier vs memcpy of the same bytes (same threads), "
              "%zu MiB per size, median of %d runs\n",
              o.total / kMiB, o.repeats);
  std::printf("%8s %3s %9s %11s %10s %9s %12s %10s  %s\n", "chunk", "thr", "put GB/s",
              "memcpy GB/s", "put/memcpy", "get GB/s", "memcpy1 GB/s", "get/memcpy",
              "goals: put >= 0.80x, get >= 0.90x (>= 2 MiB) / 0.80x (128 KiB)");
  for (std::size_t chunk : {128 * kKiB, 2 * kMiB, 32 * kMiB}) {
    const std::size_t n = std::max<std::size_t>(4, o.total / chunk);
    std::vector<std::vector<std::byte>> src(n, std::vector<std::byte>(chunk));
    std::vector<std::string> keys(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::memset(src[i].data(), static_cast<int>(i + 1), chunk);
      keys[i] = Key(i);
    }
    auto sink = DramBuffer(n * chunk, "memcpy destinations");
    std::vector<std::vector<std::byte>> dst(2, std::vector<std::byte>(chunk, std::byte{0}));
    std::vector<PutGetCell> cells[2];
    for (int r = 0; r < o.repeats; ++r) {  // interleaved: noise spreads over both columns
      for (int ti = 0; ti < 2; ++ti) {
        cells[ti].push_back(MeasurePutGetOnce(chunk, src, keys, sink->data(), dst, kThreads[ti]));
      }
    }
    for (int ti = 0; ti < 2; ++ti) {
      auto med = [&](double PutGetCell::*field) {
        std::vector<double> v;
        for (const PutGetCell& c : cells[ti]) v.push_back(c.*field);
        return Median(v);
      };
      const double put = med(&PutGetCell::put), spread = med(&PutGetCell::memcpy_spread);
      const double get = med(&PutGetCell::get), one = med(&PutGetCell::memcpy_one);
      const double put_goal = 0.8, get_goal = chunk >= 2 * kMiB ? 0.9 : 0.8;
      const bool put_met = put / spread >= put_goal, get_met = get / one >= get_goal;
      std::printf("%8s %3d %9.2f %11.2f %9.2fx %9.2f %12.2f %9.2fx  put %s, get %s\n",
                  SizeName(chunk).c_str(), kThreads[ti], put, spread, put / spread, get, one,
                  get / one, MetText(put_met), MetText(get_met));
      char goal[16];
      std::snprintf(goal, sizeof(goal), ">=%.2fx", put_goal);
      csv.Add({"put", kThreads[ti], chunk, "GB/s", put, spread, goal, put_met,
               "baseline memcpy into distinct destinations"});
      std::snprintf(goal, sizeof(goal), ">=%.2fx", get_goal);
      csv.Add({"get", kThreads[ti], chunk, "GB/s", get, one, goal, get_met,
               "baseline memcpy into one buffer per thread"});
    }
  }
}

void RunFixedCost(const Options& o, Csv& csv) {
  const std::size_t n = o.fixed_chunks;
  std::vector<std::string> keys(n);
  for (std::size_t i = 0; i < n; ++i) keys[i] = Key(i);
  std::vector<double> put_ns, get_ns, lookups, index_bytes;
  for (int r = 0; r < o.repeats; ++r) {
    // A 64-byte chunk takes a 256-byte data slot (the smallest) and a 256-byte header slot.
    auto store = OpenDram(AlignUp(n * 512 + 8 * kMiB, 4 * kMiB), 0);
    std::byte payload[64] = {};
    std::byte out[64];
    auto t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) Check(store->Put(keys[i], payload), "put 64 B");
    put_ns.push_back(Seconds(t0) * 1e9 / static_cast<double>(n));
    t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) Unwrap(store->Get(keys[i], out), "get 64 B");
    get_ns.push_back(Seconds(t0) * 1e9 / static_cast<double>(n));
    std::size_t found = 0;
    t0 = Clock::now();
    for (int round = 0; round < 5; ++round) {
      for (std::size_t i = 0; i < n; ++i) found += store->Contains(keys[i]) ? 1 : 0;
    }
    lookups.push_back(static_cast<double>(5 * n) / Seconds(t0));
    if (found != 5 * n) Fail("Contains missed " + std::to_string(5 * n - found) + " stored keys");
    index_bytes.push_back(store->Stats().index_bytes_per_entry);
  }
  const double put = Median(put_ns), get = Median(get_ns);
  const double lps = Median(lookups), bytes = Median(index_bytes);
  std::printf("64 B chunks: put %.0f ns, get %.0f ns per operation (goal < 1000 ns each: put %s, "
              "get %s; %zu chunks, median of %d runs)\n",
              put, get, MetText(put < 1000), MetText(get < 1000), n, o.repeats);
  std::printf("index, %zu chunks: %.2f M lookups/s by full key in put order on 1 core (goal >= "
              "10 M/s: %s), %.1f B of DRAM per chunk as Stats counts it (goal <= 64: %s)\n",
              n, lps / 1e6, MetText(lps >= 10e6), bytes, MetText(bytes <= 64));
  csv.Add({"fixed_put", 1, 64, "ns/op", put, 0, "<1000", put < 1000, ""});
  csv.Add({"fixed_get", 1, 64, "ns/op", get, 0, "<1000", get < 1000, ""});
  csv.Add({"index_lookups", 1, 64, "M/s", lps / 1e6, 0, ">=10", lps >= 10e6,
           "Contains by full 65-byte key"});
  csv.Add({"index_bytes", 1, 64, "B/chunk", bytes, 0, "<=64", bytes <= 64,
           "Stats().index_bytes_per_entry"});
  RunIndexAtScale(o, csv);
}

}  // namespace cxlkv::bench

namespace {

[[noreturn]] void Usage(const char* error) {
  std::fprintf(stderr,
               "bench_store: %s\n"
               "usage: bench_store [--quick] [--total-mib N (512)] [--repeats N (3)]\n"
               "                   [--csv PATH (bench_store.csv)] [--dir DIR ($TMPDIR or /tmp)]\n"
               "                   [--numa-node N (0)] [--devdax /dev/daxX.Y]\n"
               "                   [--copy-mib N (256, at least 32: the copy table's bytes per cell)]\n"
               "                   [--only putget|batch|fixed|demotion|copy]\n",
               error);
  std::exit(2);
}

std::size_t PositiveNumber(const char* flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v == 0 || text[0] == '-') {
    Usage((std::string(flag) + ": '" + text + "' is not a positive number").c_str());
  }
  return static_cast<std::size_t>(v);
}

int NodeNumber(const char* text) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < 0 || v > 4095) {
    Usage((std::string("--numa-node: '") + text + "' is not a NUMA node number").c_str());
  }
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cxlkv::bench;
  Options o;
  // --quick sets small defaults first; explicit flags override them wherever they appear.
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--quick") {
      o.quick = true;
      o.repeats = 1;
      o.total = 32 * kMiB;
      o.fixed_chunks = 5000;
      o.index_chunks = 20000;
      o.demote_chunks = 16;
      o.copy_region = 64 * kMiB;
      o.persist_region = 32 * kMiB;
    }
  }
  std::string only;
  if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && tmp[0] != '\0') o.dir = tmp;
  else o.dir = "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--quick") continue;
    if (!has_value) Usage(("unknown flag or missing value: " + arg).c_str());
    const char* v = argv[++i];
    if (arg == "--total-mib") o.total = PositiveNumber("--total-mib", v) * kMiB;
    else if (arg == "--repeats") o.repeats = static_cast<int>(std::min<std::size_t>(
                                     PositiveNumber("--repeats", v), 100));
    else if (arg == "--csv") o.csv = v;
    else if (arg == "--dir") o.dir = v;
    else if (arg == "--numa-node") o.numa_node = NodeNumber(v);
    else if (arg == "--devdax") o.devdax = v;
    else if (arg == "--copy-mib") {
      o.copy_region = PositiveNumber("--copy-mib", v) * kMiB;
      if (o.copy_region < 32 * kMiB) Usage("--copy-mib: at least 32 (the largest chunk copied)");
      o.persist_region = std::min(o.persist_region, o.copy_region);
    }
    else if (arg == "--only") only = v;
    else Usage(("unknown flag: " + arg).c_str());
  }
  if (!only.empty() && only != "putget" && only != "batch" && only != "fixed" &&
      only != "demotion" && only != "copy") {
    Usage(("--only: unknown section '" + only + "'").c_str());
  }
  const auto t0 = Clock::now();
  Csv csv(o.csv);
  if (only.empty() || only == "putget") RunPutGet(o, csv);
  if (only.empty() || only == "batch") RunBatchGet(o, csv);
  if (only.empty() || only == "fixed") RunFixedCost(o, csv);
  if (only.empty() || only == "demotion") RunDemotion(o, csv);
  if (only.empty() || only == "copy") RunCopyMethods(o, csv);
  csv.Close();
  std::printf("wrote %s; elapsed %.1f s\n", o.csv.c_str(), Seconds(t0));
  return 0;
}
