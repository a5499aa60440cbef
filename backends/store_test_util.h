// Helpers shared by the store's test suites: small tiers, keys, chunks with checkable bytes.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/store.h"
#include "tests/test_util.h"

namespace cxlkv::store_testing {

inline constexpr std::size_t kKiB = 1024;
inline constexpr std::size_t kSlab = 64 * kKiB;
inline constexpr std::size_t kChunk = 16 * kKiB;  // an exact class: 4 per slab

// Capacity for n slabs of chunks: chunk headers (256 B each) take one more slab of their own.
constexpr std::size_t Slabs(std::size_t n) { return (n + 1) * kSlab; }

inline TierOptions Dram(std::size_t capacity, std::string eviction = "lru") {
  TierOptions t;
  t.name = "dram";
  t.source = MemorySource::Dram(DramOptions{HugePages::kNone, false});
  t.capacity = capacity;
  t.eviction = std::move(eviction);
  return t;
}

inline TierOptions FilePool(const testing::TempDir& dir, std::size_t capacity,
                            std::string eviction = "lru") {
  TierOptions t;
  t.name = "file";
  t.source_spec = "file:" + dir.File("pool");
  t.capacity = capacity;
  t.eviction = std::move(eviction);
  return t;
}

// A whole file's bytes (empty when it cannot be read).
inline std::vector<std::byte> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  std::vector<std::byte> out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

inline std::string Key(int i) { return "vllm@llama@1@0@" + std::to_string(i); }
inline std::uint64_t Seed(int i) { return 1000 + static_cast<std::uint64_t>(i); }

inline std::vector<std::byte> Bytes(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> b(size);
  testing::FillPattern(b.data(), size, seed);
  return b;
}

// Opens a store with the test slab size; background work runs only in Maintain() unless
// `background` is set, so counts are exact.
inline std::unique_ptr<Store> OpenStore(StoreOptions o, bool background = false) {
  o.chunk_sizes = {kChunk};
  o.slab_size = kSlab;
  o.background_thread = background;
  auto store = Store::Open(std::move(o));
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

inline std::unique_ptr<Store> OpenTiers(std::vector<TierOptions> tiers, bool background = false) {
  StoreOptions o;
  o.tiers = std::move(tiers);
  return OpenStore(std::move(o), background);
}

inline void PutChunk(Store& s, int i, std::size_t size = kChunk) {
  ASSERT_TRUE(s.Put(Key(i), Bytes(size, Seed(i))).ok()) << Key(i);
}

// Gets key i and checks every byte against its pattern.
inline void ExpectChunk(Store& s, int i, std::size_t size = kChunk) {
  std::vector<std::byte> dst(size + 100);
  auto n = s.Get(Key(i), dst);
  ASSERT_TRUE(n.ok()) << Key(i) << ": " << n.status().ToString();
  EXPECT_EQ(*n, size) << Key(i);
  EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), size, Seed(i)), -1) << Key(i);
}

// Submits gets and waits (20 s at most) for all their completions, in the order they came.
inline std::vector<Completion> GetAll(Store& s, std::span<const GetRequest> reqs) {
  auto cq = CompletionQueue::Create();
  EXPECT_TRUE(cq.ok());
  if (!cq.ok()) return {};
  EXPECT_TRUE(s.SubmitGets(reqs, **cq).ok());
  std::vector<Completion> done(reqs.size());
  std::size_t got = 0;
  while (got < reqs.size()) {
    const std::size_t n = (*cq)->Wait(std::span(done).subspan(got), reqs.size() - got,
                                      std::chrono::seconds(20));
    EXPECT_GT(n, 0u);
    if (n == 0) break;
    got += n;
  }
  done.resize(got);
  return done;
}

// Key(from) .. Key(to - 1): a prompt's chunks, in order.
inline std::vector<std::string> Keys(int from, int to) {
  std::vector<std::string> keys;
  for (int i = from; i < to; ++i) keys.push_back(Key(i));
  return keys;
}

// Store::LongestPrefix over owned keys: for a prefix policy, the start of a request.
inline std::size_t LongestPrefix(Store& s, const std::vector<std::string>& keys) {
  const std::vector<std::string_view> views(keys.begin(), keys.end());
  return s.LongestPrefix(views);
}

// The tier holding key i, from a short lease.
inline std::size_t TierOf(Store& s, int i) {
  auto p = s.Pin(Key(i));
  EXPECT_TRUE(p.ok()) << Key(i);
  return p.ok() ? p->tier() : 999;
}

}  // namespace cxlkv::store_testing
