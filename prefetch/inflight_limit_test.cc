// The in-flight limit against simulated devices, on a clock of plain numbers: misses striped
// over P units that each serve one at a time in L, with the prefetcher keeping `limit` misses
// outstanding (a new one as each completes) and, now and then, a probe's miss as a sample of
// the unloaded latency, taken through the same queues.
#include "prefetch/inflight_limit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <queue>
#include <vector>

namespace cxlkv::internal {
namespace {

constexpr std::uint64_t kUs = 1000;

struct Outcome {
  unsigned final_limit;
  unsigned max_seen;
  double misses_per_ms;  // over the second half
};

// Runs `completions` misses through `units` units of service time `service_ns` each (misses
// striped over them in order, as consecutive pages over dies), with a probe's miss every
// `probe_every` completions (0: none).
Outcome Simulate(InflightLimit& limit, unsigned units, std::uint64_t service_ns, int completions,
                 int probe_every = 200) {
  std::vector<std::uint64_t> free_at(units, 0);
  std::uint64_t next_unit = 0;
  // (completion time, issue time)
  using Miss = std::pair<std::uint64_t, std::uint64_t>;
  std::priority_queue<Miss, std::vector<Miss>, std::greater<>> inflight;
  auto issue = [&](std::uint64_t now) {
    std::uint64_t& f = free_at[next_unit++ % units];
    const std::uint64_t done = std::max(f, now) + service_ns;
    f = done;
    return Miss{done, now};
  };
  std::uint64_t now = 0;
  for (unsigned i = 0; i < limit.limit(); ++i) inflight.push(issue(now));
  int done = 0, half_done = 0;
  std::uint64_t half_at = 0;
  while (done < completions) {
    const Miss m = inflight.top();
    inflight.pop();
    now = m.first;
    limit.OnMiss(m.first - m.second, now);
    if (++done == completions / 2) {
      half_at = now;
      half_done = done;
    }
    if (probe_every > 0 && done % probe_every == 0) {  // a probe: one more miss, same units
      const Miss probe = issue(now);
      limit.OnUnloadedSample(probe.first - probe.second);
    }
    while (inflight.size() < limit.limit()) inflight.push(issue(now));
  }
  return {limit.limit(), limit.max_seen(),
          static_cast<double>(done - half_done) / (static_cast<double>(now - half_at) / 1e6)};
}

// 32 dies: it climbs from 16 to the dies' number and stops just past it, at the device's
// throughput, not at its ceiling of 128 threads.
TEST(InflightLimitTest, SettlesJustPastTheDevicesParallelism) {
  InflightLimit limit(128, 16);
  const Outcome o = Simulate(limit, 32, 40 * kUs, 20000);
  EXPECT_GE(o.final_limit, 26u);
  EXPECT_LE(o.max_seen, 64u);
  // 32 dies at 40 us each: 800 misses per ms at most; it gets nearly all of them.
  EXPECT_GT(o.misses_per_ms, 0.9 * 800);
}

// The same at 40 times the latency (time dilation): the same limit.
TEST(InflightLimitTest, DilationLeavesTheLimitAlone) {
  InflightLimit fast(128, 16), slow(128, 16);
  const Outcome a = Simulate(fast, 32, 40 * kUs, 20000);
  const Outcome b = Simulate(slow, 32, 40 * 40 * kUs, 20000);
  EXPECT_EQ(a.final_limit, b.final_limit);
  EXPECT_EQ(a.max_seen, b.max_seen);
}

// One die: more misses in flight only queue. It never climbs more than a step above its
// start (one try, taken back), where a constant 128 would have been used.
TEST(InflightLimitTest, DoesNotClimbWhereMissesOnlyQueue) {
  InflightLimit limit(128, 16);
  const Outcome o = Simulate(limit, 1, 40 * kUs, 5000);
  EXPECT_LE(o.max_seen, 20u);
  EXPECT_LE(o.final_limit, 20u);
}

// A device that got slower (the unloaded samples show it only after a while): misses at 8x
// the old unloaded latency make it halve, then it climbs back once the samples catch up.
TEST(InflightLimitTest, BacksOffWhenMissesQueueFarPastTheUnloadedLatency) {
  InflightLimit limit(128, 64);
  for (int i = 0; i < 5; ++i) limit.OnUnloadedSample(40 * kUs);
  std::uint64_t now = 0;
  for (int i = 0; i < 6 * 64; ++i) limit.OnMiss(320 * kUs, now += 5 * kUs);  // one epoch
  EXPECT_EQ(limit.limit(), 32u);
  const Outcome o = Simulate(limit, 32, 320 * kUs, 20000);
  EXPECT_GE(o.final_limit, 26u);
}

// The samples of the unloaded latency come from a device 10x faster than the one now behind
// the mapping (a dilation raised, an untimed pass): the limit falls, and at 4 or less it takes
// the misses as the device's own latency and climbs back to the dies' number.
TEST(InflightLimitTest, RecoversWhenTheUnloadedSamplesAreStale) {
  InflightLimit limit(128, 32);
  for (int i = 0; i < 5; ++i) limit.OnUnloadedSample(40 * kUs);
  Simulate(limit, 32, 400 * kUs, 2000, 0);  // no probe samples: only the epochs tell
  EXPECT_GE(limit.unloaded_ns(), 400 * kUs);
  const Outcome o = Simulate(limit, 32, 400 * kUs, 20000);
  EXPECT_GE(o.final_limit, 26u);
}

TEST(InflightLimitTest, StaysWithinOneAndItsMaximum) {
  InflightLimit capped(6, 16);
  EXPECT_EQ(capped.limit(), 6u);
  Simulate(capped, 64, 40 * kUs, 5000);
  EXPECT_LE(capped.max_seen(), 6u);
  InflightLimit zero(0, 0);
  EXPECT_EQ(zero.limit(), 1u);
  Simulate(zero, 1, 40 * kUs, 1000);
  EXPECT_GE(zero.limit(), 1u);
}

}  // namespace
}  // namespace cxlkv::internal
