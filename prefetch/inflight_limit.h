// How many misses the prefetcher keeps in flight: a controller driven by the misses it times.
//
// A device-agnostic prefetcher cannot ask how many dies (or channels, or queue slots) are
// behind a mapping. It can time its misses. Per epoch (at least 16 misses, and six times
// the limit) it takes the median miss latency M, the misses completed per second T, and compares
// M with the device's unloaded miss latency W (the median of the recent samples the caller
// gives it: misses no other touch asked for; before any, only throughput decides):
//   - M > 4W: halve (misses queue deep in the device); at a limit of 4 or less, where
//     queueing cannot explain it, the device got slower: W becomes M;
//   - M > 2.5W: down by a fifth;
//   - the last step up bought under 2% more T: step back, and do not try that limit again
//     for 16 epochs (the device, or the host serving it, is saturated: more misses only
//     queue);
//   - M <= 1.5W: up by a quarter (more misses in flight finish no later);
//   - else hold.
// Medians, because some touches wait only for what is left of a miss already on its way.
// Where misses stripe over parallel units it settles just past their number; where they all
// queue on one unit, or the cost is the host's CPU, it stays near where it started.
//
// Pure bookkeeping with the time passed in (tests drive it with plain numbers).
// Thread-safety: none; the prefetcher calls it under a mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

namespace cxlkv::internal {

class InflightLimit {
 public:
  // max >= 1; the limit starts at min(max, start).
  InflightLimit(unsigned max, unsigned start);

  unsigned limit() const { return limit_; }
  unsigned max_seen() const { return max_seen_; }
  // The last epoch's median miss latency, and the unloaded one (0 while no sample came).
  std::uint64_t median_ns() const { return median_ns_; }
  std::uint64_t unloaded_ns() const;

  // A miss that took ns, completed at now_ns. Returns true when the limit grew.
  bool OnMiss(std::uint64_t ns, std::uint64_t now_ns);
  // A miss no other touch asked for (a probe's first touch): a sample of the unloaded latency.
  void OnUnloadedSample(std::uint64_t ns);

 private:
  unsigned Grow() const;
  unsigned Shrink() const;

  const unsigned max_;
  unsigned limit_;
  unsigned max_seen_;
  std::vector<std::uint64_t> epoch_;  // this epoch's miss latencies
  std::uint64_t epoch_start_ns_ = 0;
  std::uint64_t median_ns_ = 0;
  std::deque<std::uint64_t> unloaded_;  // the last few samples
  double last_rate_ = 0;                // misses per second in the last epoch
  int last_step_ = 0;                   // +1 grew, -1 shrank, 0 held
  unsigned last_limit_ = 0;             // the limit before the last epoch's step
  unsigned cap_ = 0;                    // a limit that bought nothing, not retried before
  int cap_epochs_ = 0;                  // this many epochs
};

}  // namespace cxlkv::internal
