// An emulated CXL-SSD: a byte-addressable mapping whose pages sit either in a modelled device
// DRAM cache (plain loads and stores, no extra cost) or in modelled NAND, where the first
// access faults and completes only after the NAND time the model gives it.
//
// The bytes live in a memfd and never move; what is emulated is *when* an access may proceed.
// A page out of the device cache has no page-table entry, so touching it raises a userfaultfd
// MINOR fault. Handler threads (one per CPU, pinned, each serving the faults of threads pinned
// to its CPU) ask the model (channels x dies, per-die busy time, read/program latency, cache
// policy, write-back, device next-N prefetch) when the page is ready, keep a completion queue
// ordered by that time, and map the page when it is due; they busy-poll while completions are
// pending (timer wake-ups are ~26 us late on this VM) and sleep when there are none. Evicted
// pages are unmapped in ranges. See docs/cxl_ssd.md for the model and its measured ceiling.
//
// Time dilation (`dilation` D): every modelled device time is multiplied by D, so the
// emulator's fixed CPU cost per fault, which a real device does not charge, shrinks beside
// the modelled latencies. Die parallelism, the cache policy and next-N are the same at any D;
// bandwidths measured at D are D times lower than the device's (docs/cxl_ssd.md).
//
// Hits are invisible to the emulator (they are plain loads), so FIFO is exact while LRU and
// CLOCK learn about hits by unmapping a page where they would clear its reference bit: the next
// access to it faults once more without NAND time.
//
// Thread-safety: CxlSsd is thread-safe; its bytes are the caller's to synchronise, like any
// memory. Threads that access the region are best pinned to one CPU each: a fault served from
// another CPU's handler costs a cross-CPU wake-up, which is expensive in a VM.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/status.h"

namespace cxlkv {

struct CxlSsdOptions {
  std::size_t capacity = 0;      // NAND bytes: the size of the mapping; a multiple of page_size
  std::size_t cache_bytes = 0;   // device DRAM cache; at least one page
  std::size_t page_size = 4096;  // device page: 4 KiB or 16 KiB
  unsigned channels = 8;
  unsigned dies_per_channel = 4;
  std::chrono::nanoseconds read_latency = std::chrono::microseconds(40);
  std::chrono::nanoseconds program_latency = std::chrono::microseconds(200);
  std::string cache_policy = "fifo";  // "fifo", "lru" or "clock"
  unsigned next_n = 0;           // device-side prefetch: a read miss on p also reads p+1..p+N
  unsigned dilation = 1;         // time dilation D: read and program last D times longer; 1-10000
  // Pages evicted (and unmapped) at least at a time: unmapping costs far less per page in
  // ranges (a 4 KiB unmap costs a third of a fault here, 2 MiB 0.13 us a page).
  unsigned evict_batch = 256;
  std::vector<int> handler_cpus;  // CPUs to serve faults on; empty: every CPU allowed to us
};

struct CxlSsdStats {
  // The model's view.
  std::uint64_t faults = 0;          // faults seen (misses, soft faults, faults on pages in flight)
  std::uint64_t read_misses = 0;     // demand reads that went to NAND
  std::uint64_t write_misses = 0;    // writes that allocated a cache page
  std::uint64_t soft_faults = 0;     // references observed by unmapping (LRU, CLOCK)
  std::uint64_t inflight_faults = 0;  // faults on a page already on its way
  std::uint64_t nand_reads = 0;      // pages read from NAND (demand and device prefetch)
  std::uint64_t prefetch_reads = 0;  // of which by device next-N
  std::uint64_t nand_programs = 0;   // dirty pages written back on eviction
  std::uint64_t evictions = 0;
  std::uint64_t cached_pages = 0;
  double die_utilisation = 0;        // busy time / (dies x elapsed) since ResetStats
  std::vector<double> die_utilisation_per_die;  // the same, die by die
  // The emulator's own cost.
  std::uint64_t forwarded = 0;       // faults handed to the handler of the faulting thread's CPU
  std::uint64_t unmap_calls = 0;     // madvise calls that dropped evicted pages
  std::uint64_t late_ns = 0;         // sum over mappings of (time mapped - time due)
  std::uint64_t mappings = 0;        // mappings made (one per fetch run or soft fault)
  std::uint64_t handler_busy_ns = 0;  // handler time spent handling, not idle-polling
  std::chrono::nanoseconds elapsed{0};  // since ResetStats
};

class CxlSsd {
 public:
  // Creates the device: allocates `capacity` bytes of memfd, maps it, registers it with
  // userfaultfd and starts the handlers. Unsupported (with the reason) where userfaultfd MINOR
  // faults are unavailable; InvalidArgument for a bad option.
  static Result<std::shared_ptr<CxlSsd>> Create(const CxlSsdOptions& options);
  ~CxlSsd();
  CxlSsd(const CxlSsd&) = delete;
  CxlSsd& operator=(const CxlSsd&) = delete;

  std::byte* data() const;
  std::size_t size() const;
  const CxlSsdOptions& options() const;

  // With timing off, misses complete at once (fast fills and checks); the cache and dirty
  // state are still kept. On by default.
  void SetTiming(bool on);
  // Changes device next-N prefetch, or the NAND latencies (between runs: the emulator's own
  // ceiling is measured with latencies 0 on the same device).
  void SetNextN(unsigned n);
  void SetLatencies(std::chrono::nanoseconds read, std::chrono::nanoseconds program);
  // Changes the time dilation D (between runs); InvalidArgument outside 1-10000.
  Status SetDilation(unsigned d);
  unsigned dilation() const;
  // Evicts every cached page (programming the dirty ones): the cache starts cold.
  Status DropCache();
  // Zeroes the statistics and makes every die idle from now.
  void ResetStats();
  CxlSsdStats Stats() const;
  // The first error a handler met (a failed map or unmap), if any. A handler that fails
  // wakes the faulting thread anyway: the bytes are intact, only the timing is lost.
  Status health() const;

  // NAND-parallelism bound: dies x page / (read latency x D), in bytes per second: the bound
  // in the dilated time the device runs at now (options' read latency, current D).
  double NandReadBound() const;

  // A MemorySource whose Map hands out this device's mapping (size <= capacity, once at a
  // time), so a store tier can live on it. The source keeps the device alive.
  static std::unique_ptr<MemorySource> Source(std::shared_ptr<CxlSsd> device);

  class Impl;

 private:
  explicit CxlSsd(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv
