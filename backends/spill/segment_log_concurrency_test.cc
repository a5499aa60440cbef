// One thread appends (evicting the oldest segment when the log is full) while two threads read
// batches of what it appended and a third polls stats and touches segments. A read that
// succeeds must return exactly the chunk's bytes; a read may fail only when the chunk's segment
// was evicted in the meantime. Labelled "concurrent": .ci/run runs it under ThreadSanitizer.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends/spill/segment_log.h"
#include "backends/spill/spill_test_util.h"
#include "tests/test_util.h"

namespace cxlkv::testing {
namespace {

struct Stored {
  std::uint64_t location = 0;
  std::string key;
  std::size_t size = 0;
};

TEST(SegmentLogConcurrencyTest, ReadersAppenderAndEvictionsNeverSeeWrongBytes) {
  TempDir dir;
  auto log_or = SegmentLog::Open(SmallLog(dir.File("log"), 8 * kMiB, 256 * kKiB));
  ASSERT_TRUE(log_or.ok()) << log_or.status().ToString();
  SegmentLog& log = **log_or;

  std::mutex mu;
  std::vector<Stored> stored;            // appended, in order
  std::set<std::uint32_t> evicted_ever;  // segments evicted at least once
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> good_reads{0}, failed_reads{0};
  std::atomic<int> wrong_bytes{0}, unexplained_failures{0}, bad_stats{0};

  std::thread appender([&] {
    for (int i = 0; i < 800; ++i) {
      const std::string key = "conc/" + std::to_string(i);
      const auto data = ChunkBytes(key, 1 + (static_cast<std::size_t>(i) * 7919) % 40000);
      auto loc = log.Append(key, std::span<const std::byte>(data));
      while (!loc.ok() && loc.status().IsNoSpace()) {
        const auto victim = log.OldestSegment();
        if (!victim) break;
        {
          // Announced before the eviction: a reader that fails afterwards can tell why.
          std::lock_guard<std::mutex> lock(mu);
          evicted_ever.insert(*victim);
        }
        if (!log.EvictSegment(*victim).ok()) break;
        loc = log.Append(key, std::span<const std::byte>(data));
      }
      if (!loc.ok()) {
        ADD_FAILURE() << key << ": " << loc.status().ToString();
        break;
      }
      std::lock_guard<std::mutex> lock(mu);
      stored.push_back({*loc, key, data.size()});
    }
    done = true;
  });

  auto reader = [&](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::vector<std::byte>> bufs(4, std::vector<std::byte>(40000));
    while (!done) {
      std::vector<Stored> picks;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stored.empty()) continue;
        for (int k = 0; k < 4; ++k) picks.push_back(stored[rng() % stored.size()]);
      }
      std::vector<ChunkRead> reads(picks.size());
      for (std::size_t k = 0; k < picks.size(); ++k) {
        reads[k].location = picks[k].location;
        reads[k].key = picks[k].key;
        reads[k].dst = bufs[k];
      }
      static_cast<void>(log.ReadBatch(reads));
      for (std::size_t k = 0; k < picks.size(); ++k) {
        if (reads[k].status.ok()) {
          ++good_reads;
          if (reads[k].size != picks[k].size ||
              FirstPatternMismatch(bufs[k].data(), picks[k].size, SeedOf(picks[k].key)) != -1) {
            ++wrong_bytes;
          }
        } else {
          ++failed_reads;
          std::lock_guard<std::mutex> lock(mu);
          if (!evicted_ever.count(SegmentLog::SegmentOf(picks[k].location))) {
            ++unexplained_failures;
          }
        }
      }
    }
  };
  std::thread r1(reader, 1), r2(reader, 2);
  std::thread poller([&] {
    while (!done) {
      const auto st = log.GetStats();
      if (st.free_segments + st.sealed_segments + (st.open_segment ? 1u : 0u) > st.segments) {
        ++bad_stats;
      }
      log.Touch(std::uint64_t{1} << 40 | std::uint64_t{1} << 20 | 1);
      std::this_thread::yield();
    }
  });
  appender.join();
  r1.join();
  r2.join();
  poller.join();

  EXPECT_EQ(wrong_bytes.load(), 0);
  EXPECT_EQ(unexplained_failures.load(), 0);
  EXPECT_EQ(bad_stats.load(), 0);
  EXPECT_GT(good_reads.load(), 0u);
  const auto st = log.GetStats();
  EXPECT_GT(st.segments_evicted, 0u) << "the log is small enough to need evictions";
  EXPECT_EQ(st.chunks_appended, 800u);
}

}  // namespace
}  // namespace cxlkv::testing
