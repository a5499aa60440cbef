// Several threads allocating and freeing at once (run under ThreadSanitizer in CI). Each slot
// gets a pattern written over it and checked before it is freed, so two threads ever given
// overlapping slots would see each other's bytes.
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/heap_region_for_tests.h"
#include "cxlkv/slab_allocator.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = kKiB * kKiB;

struct Fixture {
  std::unique_ptr<MemoryRegion> region;
  std::unique_ptr<SlabAllocator> allocator;
};

Fixture Make(std::size_t region_size) {
  Fixture f;
  f.region = testing::HeapRegion::Make(region_size);
  EXPECT_NE(f.region, nullptr) << "mmap of " << region_size << " B failed";
  SlabAllocatorOptions o;
  o.slab_size = 256 * kKiB;
  o.min_slot_size = 4 * kKiB;
  o.max_slot_size = 1 * kMiB;
  o.exact_sizes = {128 * kKiB};
  o.slot_alignment = 4096;
  o.per_cpu_cache_bytes = 1 * kMiB;
  auto allocator = SlabAllocator::Create(*f.region, o);
  EXPECT_TRUE(allocator.ok()) << allocator.status().ToString();
  f.allocator = std::move(allocator).value();
  return f;
}

std::size_t RandomSize(std::mt19937_64& rng) {
  switch (rng() % 3) {
    case 0: return 128 * kKiB;
    case 1: return 1 + rng() % (64 * kKiB);
    default: return 1 + rng() % kMiB;
  }
}

// Only the first and last KiB of each allocation are stamped (all of it when it is smaller
// than 2 KiB): enough to catch overlapping slots cheaply.
void Stamp(const Allocation& a, std::uint64_t seed) {
  if (a.size < 2 * kKiB) {
    testing::FillPattern(a.data, a.size, seed);
    return;
  }
  testing::FillPattern(a.data, kKiB, seed);
  testing::FillPattern(a.data + a.size - kKiB, kKiB, seed + 1);
}
bool StampIntact(const Allocation& a, std::uint64_t seed) {
  if (a.size < 2 * kKiB) return testing::FirstPatternMismatch(a.data, a.size, seed) < 0;
  return testing::FirstPatternMismatch(a.data, kKiB, seed) < 0 &&
         testing::FirstPatternMismatch(a.data + a.size - kKiB, kKiB, seed + 1) < 0;
}

// The invariants any Stats snapshot must meet, however busy the allocator is.
void ExpectConsistent(const SlabAllocatorStats& stats) {
  std::size_t held_slabs = 0;
  for (const SizeClassStats& c : stats.classes) {
    held_slabs += c.slabs;
    EXPECT_LE(c.slots_used, c.slots_total) << "class " << c.slot_size;
    EXPECT_LE(c.bytes_requested, c.bytes_used) << "class " << c.slot_size;
  }
  EXPECT_EQ(held_slabs + stats.slabs_free, stats.slabs_total);
}

// Nothing live, and no slab lost: every one is free or held (empty) by a class.
void ExpectEverythingReturned(const SlabAllocator& allocator) {
  SlabAllocatorStats stats = allocator.Stats();
  ExpectConsistent(stats);
  for (const SizeClassStats& c : stats.classes) {
    EXPECT_EQ(c.slots_used, 0u) << "class " << c.slot_size;
    EXPECT_EQ(c.bytes_requested, 0u) << "class " << c.slot_size;
  }
  EXPECT_EQ(stats.internal_fragmentation, 0.0);
}

TEST(SlabAllocatorConcurrencyTest, ThreadsNeverShareASlot) {
  Fixture f = Make(32 * kMiB);
  constexpr int kThreads = 4;
  std::atomic<int> corrupt{0}, no_space{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
      std::vector<std::pair<Allocation, std::uint64_t>> held;
      for (int step = 0; step < 10000; ++step) {
        if (held.empty() || rng() % 100 < 55) {
          Result<Allocation> a = f.allocator->Allocate(RandomSize(rng));
          if (!a.ok()) {
            no_space += a.status().IsNoSpace() ? 1 : 0;
            ASSERT_TRUE(a.status().IsNoSpace()) << a.status().ToString();
            continue;
          }
          const std::uint64_t seed = rng();
          Stamp(*a, seed);
          held.emplace_back(*a, seed);
        } else {
          const std::size_t i = rng() % held.size();
          if (!StampIntact(held[i].first, held[i].second)) ++corrupt;
          ASSERT_TRUE(f.allocator->Free(held[i].first).ok());
          held[i] = held.back();
          held.pop_back();
        }
      }
      for (auto& [a, seed] : held) {
        if (!StampIntact(a, seed)) ++corrupt;
        ASSERT_TRUE(f.allocator->Free(a).ok());
      }
    });
  }
  // Stats while the workers run: each snapshot must be consistent on its own.
  std::atomic<bool> done{false};
  std::thread reader([&] {
    for (int i = 0; i < 2000 && !done.load(); ++i) {
      ExpectConsistent(f.allocator->Stats());
      std::this_thread::yield();
    }
  });
  for (auto& th : threads) th.join();
  done = true;
  reader.join();
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_GT(no_space.load(), 0) << "the 32 MiB region should run out under this load";
  ExpectEverythingReturned(*f.allocator);
}

// Producers allocate, a consumer on another thread (and usually another CPU cache) frees.
TEST(SlabAllocatorConcurrencyTest, CrossThreadFrees) {
  constexpr int kPerProducer = 5000;
  Fixture f = Make(16 * kMiB);
  std::mutex mu;
  std::deque<std::pair<Allocation, std::uint64_t>> queue;
  std::atomic<int> producers_left{2}, corrupt{0};
  std::atomic<std::uint64_t> freed{0};
  // A producer that finds the region full waits for the consumer to free; the deadline turns a
  // lost slot (which would starve it forever) into a failure instead of a hang.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::atomic<bool> timed_out{false};
  auto producer = [&](std::uint64_t seed0) {
    std::mt19937_64 rng(seed0);
    for (int i = 0; i < kPerProducer && !timed_out; ++i) {
      const std::size_t size = RandomSize(rng);
      Result<Allocation> a = f.allocator->Allocate(size);
      while (!a.ok()) {
        ASSERT_TRUE(a.status().IsNoSpace()) << a.status().ToString();
        if (std::chrono::steady_clock::now() > deadline) {
          timed_out = true;
          break;
        }
        std::this_thread::yield();
        a = f.allocator->Allocate(size);
      }
      if (!a.ok()) break;
      const std::uint64_t seed = rng();
      Stamp(*a, seed);
      std::lock_guard<std::mutex> lock(mu);
      queue.emplace_back(*a, seed);
    }
    --producers_left;
  };
  std::thread p1(producer, 7), p2(producer, 8);
  std::thread consumer([&] {
    while (true) {
      std::pair<Allocation, std::uint64_t> item;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (queue.empty()) {
          if (producers_left.load() == 0) break;
          continue;
        }
        item = queue.front();
        queue.pop_front();
      }
      if (!StampIntact(item.first, item.second)) ++corrupt;
      ASSERT_TRUE(f.allocator->Free(item.first).ok());
      ++freed;
    }
  });
  p1.join();
  p2.join();
  consumer.join();
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_FALSE(timed_out.load()) << "producers starved: slots were not returned";
  EXPECT_EQ(freed.load(), 2u * kPerProducer);
  ExpectEverythingReturned(*f.allocator);
}

// Two threads fight over a region too small for both, each with its own size: rebalancing
// under contention must neither deadlock nor lose slabs.
TEST(SlabAllocatorConcurrencyTest, ExhaustionAndRebalancingUnderContention) {
  Fixture f = Make(4 * kMiB);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (std::size_t size : {std::size_t{8} * kKiB, std::size_t{128} * kKiB, std::size_t{kMiB}}) {
    threads.emplace_back([&, size] {
      for (int round = 0; round < 200; ++round) {
        std::vector<Allocation> held;
        while (held.size() < 64) {
          Result<Allocation> a = f.allocator->Allocate(size);
          if (!a.ok()) {
            ++failures;
            break;
          }
          held.push_back(*a);
        }
        for (const Allocation& a : held) ASSERT_TRUE(f.allocator->Free(a).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(failures.load(), 0);
  ExpectEverythingReturned(*f.allocator);
  // With nothing live a one-slab class can take the whole region back. (A multi-slab class
  // might not: an empty span kept by a class can leave free runs too short for it.)
  std::vector<Allocation> all;
  while (true) {
    Result<Allocation> a = f.allocator->Allocate(128 * kKiB);
    if (!a.ok()) break;
    all.push_back(*a);
  }
  EXPECT_EQ(all.size(), 4 * kMiB / (128 * kKiB));
  for (const Allocation& a : all) ASSERT_TRUE(f.allocator->Free(a).ok());
}

}  // namespace
}  // namespace cxlkv
