// Prefetcher: host-side prefetch of chunks a reader has announced it will read, in order.
//
// A reader (the store's batched get) announces a stream: the byte ranges it will read, in
// order, and then says which range it has started. Prefetch threads touch pages of the ranges
// ahead of the reader, so that a page the device must fetch (a CXL-SSD whose DRAM cache
// missed, memory behind a slow link) is fetched while earlier ones are copied.
//
// It works through ordinary loads on any mapped memory and knows nothing of what is behind it;
// everything it knows about the device it learns from how long its own touches take:
//   - Sampling. While touches are fast (the pages are resident), it touches one page in
//     `fast_stride_pages` with one thread per half window: nearly free where nothing misses.
//   - Misses in flight. After a run of slow touches it keeps many misses outstanding at once.
//     A thread has one miss in flight (a load that faults blocks it), so the number of threads
//     touching is the number of misses in flight. That number is not a constant: it grows
//     while the measured miss latency stays near its minimum (the device has idle
//     parallelism) and shrinks when latency climbs well above it (misses queue in the device),
//     within [1, threads] (see "in-flight limit" in docs/cxl_ssd.md).
//   - Run length. A device that reads ahead by itself (device next-N) brings pages p..p+N-1
//     with a miss on p. Probes touch a few consecutive pages one by one and measure the
//     distance between slow touches; the median of recent probes is the run length R. Misses
//     then go to one page in R only (the head of each run the device would fetch), and the
//     pages in between are touched a window later, when they should be resident: a cheap
//     check that fills any gap. With no device read-ahead R is 1: every page is a miss.
//   - Distance. It keeps ahead = 4 x (reader's rate x miss latency) + 2 x (misses in flight x
//     R) pages ahead of the reader, never more than max_ahead_bytes: set that below what the
//     device cache can hold beside the chunks being copied, or prefetched pages evict each
//     other before they are read.
//   - What it learnt (miss latency, reader rate, R, the in-flight limit) outlives a stream, and
//     a stream announced shortly after one that ended chasing misses starts out doing so.
//   - Optionally, `max_misses_per_cpu` caps the misses in flight per CPU its threads run on:
//     a model of the loads one core can have outstanding (line-fill buffers, 10-16 on current
//     x86), for comparison with prefetch by loads rather than threads.
// A prefetch that fails or comes late changes nothing but speed: readers read the bytes
// themselves.
//
// Thread-safety: Prefetcher and Stream are thread-safe. The announced ranges must stay mapped
// until the stream is finished (Finish waits for touches in progress).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv {

struct PrefetchOptions {
  unsigned threads = 64;            // prefetch threads: the most misses in flight (1..1024)
  std::size_t max_ahead_bytes = std::size_t{64} << 20;  // the budget: never further ahead
  std::size_t min_ahead_bytes = std::size_t{1} << 20;
  std::size_t page_size = 4096;     // the unit touched
  unsigned fast_stride_pages = 64;  // while sampling, one page in this many is touched
  unsigned max_misses_per_cpu = 0;  // cap on misses in flight per CPU used; 0: none
  std::vector<int> cpus;            // pin threads round-robin to these; empty: every allowed CPU
};

struct PrefetchStats {
  std::uint64_t streams = 0;
  std::uint64_t pages_touched = 0;
  std::uint64_t slow_touches = 0;       // touches that took longer than a resident page can
  std::uint64_t touch_ns = 0;           // summed over touches
  std::uint64_t max_ahead_seen = 0;     // largest distance claimed ahead of the reader, bytes
  std::uint64_t wakeups = 0;            // prefetch threads woken to work
  std::uint64_t probes = 0;             // run-length probes made
  // What it has learnt, now.
  unsigned inflight_limit = 0;          // threads allowed to touch at once (misses in flight)
  unsigned inflight_limit_max = 0;      // the largest it has been
  unsigned run_pages = 1;               // device run length R (pages a miss brings)
  std::uint64_t miss_ns = 0;            // mean latency of a slow touch (recent)
};

class Prefetcher {
 public:
  class Stream;

  static Result<std::unique_ptr<Prefetcher>> Create(const PrefetchOptions& options);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Announces ranges to be read in this order; the window starts at range 0.
  std::shared_ptr<Stream> Announce(std::span<const std::span<const std::byte>> ranges);

  PrefetchStats Stats() const;
  const PrefetchOptions& options() const;

  class Impl;

 private:
  explicit Prefetcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Prefetcher::Stream {
 public:
  // The reader has started range k (calls may come from several threads, in any order: the
  // furthest one counts). Ranges before k are no longer touched.
  void Started(std::size_t k);
  // Stops prefetching and waits for touches in progress: afterwards the ranges may go away.
  void Finish();
  // The furthest the stream has claimed ahead of the reader, in bytes, over its life.
  std::size_t max_ahead_seen() const;

  class State;
  explicit Stream(std::shared_ptr<State> state) : state_(std::move(state)) {}
  ~Stream();

 private:
  std::shared_ptr<State> state_;
};

}  // namespace cxlkv
