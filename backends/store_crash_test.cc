// kill -9 of a store putting chunks from several threads into a durable file pool with a
// spill tier below it, 200 times over (CXLKV_CRASH_CYCLES changes it): after each kill the
// pool is reopened (a header scan: the child never shut down cleanly) and
//  - every chunk whose Put returned in the child (acknowledged through a pipe) is there, every
//    byte and its metadata intact, whichever tier it had reached;
//  - every chunk the child had started to put is either absent or intact: no Get ever
//    returns other bytes, and no recovered chunk fails its checksum;
// then the parent removes the cycle's chunks and closes cleanly, so the next child opens from
// the index snapshot.
//
// Not labelled "concurrent": it forks, which ThreadSanitizer does not follow reliably.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends/store_test_util.h"
#include "cxlkv/store.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;

// One fixed-size message per event, written whole (a pipe write of at most PIPE_BUF bytes is
// atomic), so the parent never sees half of one even when the child dies mid-write.
struct Message {
  char type = 0;  // 'R' ready, 'S' starting a put, 'A' put returned Ok, 'F' failed
  std::uint32_t cycle = 0;
  std::uint32_t id = 0;  // thread << 16 | index
};

constexpr int kThreads = 3;
constexpr std::uint32_t kPerThread = 40;  // puts per thread and cycle: never evicted

std::string CrashKey(std::uint32_t cycle, std::uint32_t id) {
  return "vllm@crash@" + std::to_string(cycle) + "@" + std::to_string(id);
}
std::uint64_t CrashSeed(std::uint32_t cycle, std::uint32_t id) {
  return (std::uint64_t{cycle} << 32 | id) * 0x9e3779b97f4a7c15ULL + 1;
}
std::size_t CrashSize(std::uint32_t cycle, std::uint32_t id) {
  return 1 + static_cast<std::size_t>(CrashSeed(cycle, id) >> 40) % (40 * kKiB);
}
ChunkMeta CrashMeta(std::uint32_t cycle, std::uint32_t id) {
  const std::uint64_t words[2] = {cycle, id};
  return *ChunkMeta::From(std::as_bytes(std::span(words)));
}

StoreOptions Options(const testing::TempDir& dir) {
  StoreOptions o;
  TierOptions t;
  t.name = "pool";
  t.source_spec = "file:" + dir.File("pool");
  t.capacity = Slabs(24);  // about 1.5 MiB: a cycle's 3 MiB goes partly to the spill tier
  t.durability = "persist-on-put";
  o.tiers.push_back(std::move(t));
  o.spill.path = dir.File("spill");
  o.spill.capacity = 32ull << 20;  // ten cycles of chunks: the oldest segments go first
  o.spill.segment_size = 1 << 20;
  o.spill.direct_io = false;
  o.chunk_sizes = {kChunk};
  o.slab_size = kSlab;
  return o;
}

void Send(int fd, const Message& m) {
  if (write(fd, &m, sizeof m) != static_cast<ssize_t>(sizeof m)) _exit(3);
}

[[noreturn]] void RunChild(const testing::TempDir& dir, std::uint32_t cycle, int fd) {
  auto store = Store::Open(Options(dir));
  if (!store.ok()) {
    std::fprintf(stderr, "child %u: %s\n", cycle, store.status().ToString().c_str());
    Send(fd, Message{'F', cycle, 0});
    _exit(1);
  }
  Send(fd, Message{'R', cycle, 0});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < kPerThread; ++i) {
        const std::uint32_t id = static_cast<std::uint32_t>(t) << 16 | i;
        const auto bytes = Bytes(CrashSize(cycle, id), CrashSeed(cycle, id));
        Send(fd, Message{'S', cycle, id});
        const Status s = (*store)->Put(CrashKey(cycle, id), bytes, CrashMeta(cycle, id));
        if (!s.ok()) {
          std::fprintf(stderr, "child %u: put %u: %s\n", cycle, id, s.ToString().c_str());
          Send(fd, Message{'F', cycle, id});
          _exit(1);
        }
        Send(fd, Message{'A', cycle, id});
      }
    });
  }
  for (std::thread& th : threads) th.join();
  pause();  // done: wait for the kill
  _exit(0);
}

TEST(StoreCrashTest, KillNineDuringPutsLosesNoAcknowledgedChunk) {
  // tmpfs when there is one: a kill -9 leaves the page cache as it was on any file system,
  // and tmpfs spares the disk writes of msync, which change nothing this test checks.
  testing::TempDir dir("/dev/shm");
  { ASSERT_TRUE(Store::Open(Options(dir)).ok()); }  // format the pool and create the log

  const char* seed_env = std::getenv("CXLKV_CRASH_SEED");
  const std::uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 20261202;
  const char* cycles_env = std::getenv("CXLKV_CRASH_CYCLES");
  const std::uint32_t cycles =
      cycles_env ? static_cast<std::uint32_t>(std::strtoul(cycles_env, nullptr, 10)) : 200;
  SCOPED_TRACE("CXLKV_CRASH_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uint64_t acknowledged = 0, in_flight_found = 0, in_flight_absent = 0, spilled = 0;
  const auto start = std::chrono::steady_clock::now();

  for (std::uint32_t cycle = 0; cycle < cycles; ++cycle) {
    int pipe_fds[2];
    ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
    static_cast<void>(fcntl(pipe_fds[1], F_SETPIPE_SZ, 1 << 20));  // the child never blocks
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(pipe_fds[0]);
      RunChild(dir, cycle, pipe_fds[1]);
    }
    close(pipe_fds[1]);
    // Every fourth cycle the kill may land anywhere, the child's open included.
    const bool anywhere = cycle % 4 == 3;
    std::vector<Message> messages;
    if (!anywhere) {
      Message m;
      if (read(pipe_fds[0], &m, sizeof m) == static_cast<ssize_t>(sizeof m)) messages.push_back(m);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(
        std::uniform_int_distribution<int>(anywhere ? 0 : 100, 25000)(rng)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    Message m;
    while (read(pipe_fds[0], &m, sizeof m) == static_cast<ssize_t>(sizeof m)) messages.push_back(m);
    close(pipe_fds[0]);

    std::set<std::uint32_t> started, acked;
    bool opened = false;
    for (const Message& msg : messages) {
      if (msg.type == 'R') opened = true;
      ASSERT_NE(msg.type, 'F') << "the child failed in cycle " << cycle << " at " << msg.id;
      if (msg.type == 'S') started.insert(msg.id);
      if (msg.type == 'A') acked.insert(msg.id);
    }
    acknowledged += acked.size();

    auto store = Store::Open(Options(dir));
    ASSERT_TRUE(store.ok()) << "cycle " << cycle << ": " << store.status().ToString();
    Store& s = **store;
    // A child that opened the pool marked it in use: its snapshot must not be trusted.
    if (opened) {
      ASSERT_FALSE(s.Stats().tiers[0].recovered_from_snapshot) << "cycle " << cycle;
    }
    std::vector<std::byte> dst(40 * kKiB);
    for (const std::uint32_t id : started) {
      const std::string key = CrashKey(cycle, id);
      ChunkMeta meta;
      auto got = s.Get(key, dst, &meta);
      if (!got.ok()) {
        ASSERT_TRUE(got.status().IsNotFound())
            << "cycle " << cycle << ": " << key << ": " << got.status().ToString();
        ASSERT_FALSE(acked.count(id)) << "cycle " << cycle << ": acknowledged " << key << " lost";
        ++in_flight_absent;
        continue;
      }
      if (!acked.count(id)) ++in_flight_found;
      ASSERT_EQ(*got, CrashSize(cycle, id)) << key;
      ASSERT_EQ(testing::FirstPatternMismatch(dst.data(), *got, CrashSeed(cycle, id)), -1) << key;
      ASSERT_EQ(meta, CrashMeta(cycle, id)) << key;
      ASSERT_TRUE(s.Remove(key).ok()) << key;
    }
    const StoreStats st = s.Stats();
    ASSERT_EQ(st.tiers[0].corrupt_dropped, 0u) << "cycle " << cycle;
    spilled += st.tiers.back().hits;  // reads the spill tier served: it was part of it
    ASSERT_EQ(st.tiers[0].chunks, 0u) << "cycle " << cycle << ": chunks the child never put";
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%u cycles in %.2f s: %llu puts acknowledged (all found), %llu in flight found "
              "whole, %llu in flight absent, %llu read from the spill tier\n",
              cycles, seconds, static_cast<unsigned long long>(acknowledged),
              static_cast<unsigned long long>(in_flight_found),
              static_cast<unsigned long long>(in_flight_absent),
              static_cast<unsigned long long>(spilled));
  EXPECT_GT(acknowledged, 2ull * cycles) << "the children should have done real work";
  EXPECT_GT(spilled, 0u) << "no chunk ever reached the spill tier";
}

}  // namespace
}  // namespace cxlkv
