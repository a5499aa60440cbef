// Prefetcher: host-side prefetch of chunks a reader has announced it will read, in order.
//
// A reader (the store's batched get) announces a stream: the byte ranges it will read, in
// order, and then says which range it has started. Prefetch threads touch one byte of every
// page of the ranges ahead of the reader, so that a page the device must fetch (a CXL-SSD
// whose DRAM cache missed, memory behind a slow link) is fetched while earlier ones are copied.
// Each thread has at most one miss outstanding, so `threads` is the number of misses in flight:
// they spread over the device's dies because consecutive pages do.
//
// It works through ordinary loads on any mapped memory and knows nothing of what is behind it.
// Pages are touched in blocks: one page in `fast_stride_pages` of a block leads, the rest of
// the block trails one block later. Where the device fetches a run of pages per miss, the
// leading misses bring most of the block and the trailing touches find it resident; where it
// does not, the trailing touches take the other misses. It adapts to the touch times it sees:
//   - While touches are fast (the pages are resident), it touches only the leading pages and
//     wakes one thread per half window: nearly free where nothing misses.
//   - After a run of slow touches it touches every page, with every thread, and keeps
//     ahead = 4 x (reader's rate x miss latency) + threads pages ahead of the reader, never
//     more than max_ahead_bytes: set that below what the device cache can hold beside the chunks
//     being copied, or prefetched pages evict each other before they are read.
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
  unsigned threads = 64;            // prefetch threads = page misses in flight at most
  std::size_t max_ahead_bytes = std::size_t{64} << 20;  // the budget: never further ahead
  std::size_t min_ahead_bytes = std::size_t{1} << 20;
  std::size_t page_size = 4096;     // the unit touched
  unsigned fast_stride_pages = 16;  // one page in this many leads its block (and is sampled)
  std::vector<int> cpus;            // pin threads round-robin to these; empty: every allowed CPU
};

struct PrefetchStats {
  std::uint64_t streams = 0;
  std::uint64_t pages_touched = 0;
  std::uint64_t slow_touches = 0;       // touches that took longer than a resident page can
  std::uint64_t touch_ns = 0;           // summed over touches
  std::uint64_t max_ahead_seen = 0;     // largest distance claimed ahead of the reader, bytes
  std::uint64_t wakeups = 0;            // prefetch threads woken to work
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
