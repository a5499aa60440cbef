// The timing and cache model of an emulated CXL-SSD: NAND dies behind a small device DRAM
// cache, in device pages.
//
// Pure bookkeeping, no OS calls and no clock of its own: every call is given the current time,
// so tests drive it with a fake clock and the emulator (cxl_ssd.cc) with CLOCK_MONOTONIC.
//
// The model, page by page:
//   - A page is in NAND, in flight (a NAND read issued, done at a known time), or cached.
//   - A page lives on die (page % dies): consecutive pages stripe over channels x dies, as an
//     SSD's FTL spreads a sequential write. A read or program occupies its die: it starts when
//     the die is free and the request has arrived, and lasts read_ns or program_ns. So misses to
//     different dies overlap and misses to one die queue.
//   - A read miss on page p fetches p and, with next-N device prefetch, every page of p+1..p+N
//     still in NAND (as the CXL-SSD study's device prefetch did). The fault completes when all
//     pages of its run are read: the emulator maps the run in one step.
//   - A write miss allocates the page in the cache without reading NAND (the device buffers the
//     write) and marks it dirty; evicting a dirty page programs it on its die, which delays the
//     reads queued behind it there.
//   - The cache holds cache_pages pages (in flight ones included). When a fetch needs room, the
//     policy picks victims, evict_batch at least, so the emulator unmaps whole ranges.
//   - Time dilation: every modelled device time (read, program) is multiplied by `dilation`.
//     The emulator's own cost per fault is fixed CPU time on the host, so a large enough D
//     makes it small beside the modelled latencies; which dies overlap and which queue, the
//     cache and next-N are the same at any D (docs/cxl_ssd.md, "Time dilation").
//
// Hits are plain loads that the emulator never sees. So that LRU and CLOCK still learn which
// cached pages were used, `observe_by_unmapping` makes the model unmap a page where the policy
// would clear its reference bit; the next access to it faults once more ("soft fault": no NAND
// time) and sets the bit again. FIFO needs no references. In a test the caller reports hits
// itself with Touch and leaves observe_by_unmapping off.
//
// Thread-safety: none; the emulator serialises calls with a mutex.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::internal {

enum class DeviceCachePolicy : std::uint8_t { kFifo, kLru, kClock };
std::string_view DeviceCachePolicyName(DeviceCachePolicy p);  // "fifo", "lru", "clock"
Result<DeviceCachePolicy> ParseDeviceCachePolicy(std::string_view name);

struct CxlSsdModelConfig {
  std::uint64_t pages = 0;        // device capacity in device pages
  std::uint64_t cache_pages = 0;  // device DRAM cache in device pages; at least 1
  std::uint32_t dies = 32;        // channels x dies per channel
  std::uint64_t read_ns = 40'000;
  std::uint64_t program_ns = 200'000;
  DeviceCachePolicy policy = DeviceCachePolicy::kFifo;
  std::uint32_t next_n = 0;       // device-side prefetch of p+1..p+N on a read miss
  std::uint32_t evict_batch = 256;  // victims chosen at least this many at a time
  bool observe_by_unmapping = false;
  std::uint32_t dilation = 1;     // every modelled device time x this; 1 to kMaxDilation
};

// Beyond this a 40 us read lasts over 0.4 s: no sweep would finish.
inline constexpr std::uint32_t kMaxDilation = 10'000;

struct PageRun {
  std::uint64_t first = 0;
  std::uint64_t count = 0;
};

// A NAND read (or a write allocation) whose pages the emulator maps at ready_ns.
struct Fetch {
  PageRun run;
  std::uint64_t ready_ns = 0;
};

struct FaultOutcome {
  enum class Kind : std::uint8_t {
    kMiss,       // fetches[0] holds the page; the access completes at fetches[0].ready_ns
    kSoftFault,  // cached but unmapped to observe a reference: map it now
    kInFlight,   // a fetch in progress holds the page; its mapping will wake the access
    kMapped,     // the model has it mapped already (a fault that raced a mapping): wake it
  };
  Kind kind = Kind::kMiss;
  std::vector<Fetch> fetches;  // kMiss: the run of the page first, then further prefetch runs
  std::vector<PageRun> unmap;  // ranges to unmap now: evicted pages and pages being observed
};

struct CxlSsdModelStats {
  std::uint64_t faults = 0;         // every OnFault
  std::uint64_t read_misses = 0;    // demand reads that went to NAND
  std::uint64_t write_misses = 0;   // write allocations
  std::uint64_t soft_faults = 0;    // references observed through unmapping
  std::uint64_t inflight_faults = 0;  // faults on a page a fetch was already bringing in
  std::uint64_t nand_reads = 0;     // pages read from NAND (demand and prefetch)
  std::uint64_t prefetch_reads = 0;  // of which by device next-N
  std::uint64_t nand_programs = 0;  // dirty pages written back
  std::uint64_t evictions = 0;
  std::uint64_t die_busy_ns = 0;    // summed over dies
  std::uint64_t touches = 0;        // hits reported through Touch (tests)
};

class CxlSsdModel {
 public:
  static Result<CxlSsdModel> Create(const CxlSsdModelConfig& config);

  // An access to `page` that faulted at now_ns. Fills *out (cleared first).
  void OnFault(std::uint64_t page, bool write, std::uint64_t now_ns, FaultOutcome* out);
  // The pages of a fetch are mapped now: they count as cached from here on.
  void OnMapped(const PageRun& run);
  // A hit the caller observed itself (tests; the emulator cannot see hits). Returns false when
  // the page is not cached and mapped, i.e. the access must go through OnFault.
  bool Touch(std::uint64_t page, bool write);
  // Drops every cached page (dirty ones programmed at now_ns); ranges to unmap go to *unmap.
  void DropAll(std::uint64_t now_ns, std::vector<PageRun>* unmap);

  // The time die d is busy until.
  std::uint64_t die_free_ns(std::uint32_t die) const { return die_free_[die]; }
  // Time die d spent reading and programming since the last ResetStats.
  std::uint64_t die_busy_ns(std::uint32_t die) const { return die_busy_[die]; }
  std::uint64_t cached_pages() const { return cached_; }
  std::uint64_t inflight_pages() const { return inflight_; }
  bool IsCached(std::uint64_t page) const { return state_[page] == kCached; }
  bool IsMapped(std::uint64_t page) const { return IsCached(page) && (flags_[page] & kMappedBit); }
  bool IsDirty(std::uint64_t page) const { return (flags_[page] & kDirtyBit) != 0; }
  const CxlSsdModelConfig& config() const { return config_; }
  const CxlSsdModelStats& stats() const { return stats_; }
  void ResetStats() {
    stats_ = {};
    std::fill(die_busy_.begin(), die_busy_.end(), 0);
  }
  void SetNextN(std::uint32_t n) { config_.next_n = n; }
  void SetLatencies(std::uint64_t read_ns, std::uint64_t program_ns) {
    config_.read_ns = read_ns;
    config_.program_ns = program_ns;
  }
  // Callers pass 1..kMaxDilation (checked by Create and by the emulator).
  void SetDilation(std::uint32_t d) { config_.dilation = d; }
  // The modelled (dilated) time of one read and one program.
  std::uint64_t read_cost_ns() const { return config_.read_ns * config_.dilation; }
  std::uint64_t program_cost_ns() const { return config_.program_ns * config_.dilation; }
  // Makes the dies idle from now_ns (between benchmark phases); the cache keeps its pages.
  void ResetDies(std::uint64_t now_ns);

 private:
  enum State : std::uint8_t { kNand, kInFlight, kCached };
  static constexpr std::uint8_t kDirtyBit = 1, kRefBit = 2, kMappedBit = 4, kPrefetchedBit = 8;
  static constexpr std::uint32_t kNil = 0xFFFFFFFF;

  explicit CxlSsdModel(const CxlSsdModelConfig& config);
  std::uint32_t die_of(std::uint64_t page) const {
    return static_cast<std::uint32_t>(page % config_.dies);
  }
  // Occupies the die of `page` for `ns` from now_ns; returns when it is done.
  std::uint64_t Occupy(std::uint64_t page, std::uint64_t ns, std::uint64_t now_ns);
  // Makes room for `need` more pages, adding ranges to unmap to *unmap.
  void MakeRoom(std::uint64_t need, std::uint64_t now_ns, std::vector<PageRun>* unmap);
  void Evict(std::uint32_t page, std::uint64_t now_ns, std::vector<std::uint32_t>* victims);
  void ListPushBack(std::uint32_t page);
  void ListRemove(std::uint32_t page);
  std::uint32_t Next(std::uint32_t page) const;  // circular successor
  void Admit(std::uint32_t page, State state);
  static void AppendRanges(std::vector<std::uint32_t>& pages, std::vector<PageRun>* out);

  CxlSsdModelConfig config_;
  std::vector<std::uint8_t> state_;
  std::vector<std::uint8_t> flags_;
  std::vector<std::uint32_t> prev_, next_;  // the policy's list of cache residents
  std::uint32_t head_ = kNil;  // oldest (FIFO/LRU victim end); CLOCK: where the hand starts
  std::uint64_t cached_ = 0;   // pages in the list (cached and in flight)
  std::uint64_t inflight_ = 0;
  std::vector<std::uint64_t> die_free_;
  std::vector<std::uint64_t> die_busy_;
  CxlSsdModelStats stats_;
};

}  // namespace cxlkv::internal
