#include "python/lmcache_connector.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace cxlkv::lmcache {
namespace {

constexpr std::size_t kKiB = 1024;
using V = std::vector<std::string>;

StoreOptions DramOptions(std::size_t capacity = 64 << 20) {
  StoreOptions o;
  TierOptions t;
  t.name = "dram";
  t.source_spec = "dram";
  t.capacity = capacity;
  o.tiers.push_back(std::move(t));
  o.slab_size = 1 << 20;
  return o;
}

std::unique_ptr<LmcacheConnector> OpenConnector(StoreOptions o) {
  auto c = LmcacheConnector::Open(std::move(o));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// LMCache's key strings: <model>@<kv_rank:08x>@<group:x>@<chunk hash hex>.
std::string Key(int i) {
  char hash[33];
  std::snprintf(hash, sizeof(hash), "%032x", i * 2654435761u);
  return std::string("meta-llama/Llama-3.1-8B@00000001@0@") + hash;
}

// Waits on the connector's fd, as LMCache's demux thread does, until `id` completes; the
// completions of other batches drained on the way are kept in `others`.
BatchCompletion WaitFor(LmcacheConnector& c, std::uint64_t id,
                        std::map<std::uint64_t, BatchCompletion>* others = nullptr) {
  for (int round = 0; round < 1000; ++round) {
    pollfd p{c.event_fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
    for (BatchCompletion& d : c.Drain()) {
      if (d.future_id == id) return d;
      if (others != nullptr) others->emplace(d.future_id, std::move(d));
    }
  }
  ADD_FAILURE() << "batch " << id << " did not complete in 10 s";
  return {};
}

struct Chunks {
  std::vector<std::string> keys;
  std::vector<std::vector<std::byte>> bytes;
  std::vector<std::span<const std::byte>> Spans() const {
    return {bytes.begin(), bytes.end()};
  }
};

Chunks MakeChunks(int first, int n, std::size_t size) {
  Chunks c;
  for (int i = first; i < first + n; ++i) {
    c.keys.push_back(Key(i));
    c.bytes.emplace_back(size);
    testing::FillPattern(c.bytes.back().data(), size, static_cast<std::uint64_t>(i));
  }
  return c;
}

std::vector<std::vector<std::byte>> Buffers(std::size_t n, std::size_t size) {
  return std::vector<std::vector<std::byte>>(n, std::vector<std::byte>(size, std::byte{0}));
}

std::vector<std::span<std::byte>> Spans(std::vector<std::vector<std::byte>>& bufs) {
  return {bufs.begin(), bufs.end()};
}

TEST(LmcacheConnectorTest, SetExistsGetDeleteWithPerKeyResults) {
  auto c = OpenConnector(DramOptions());
  ASSERT_NE(c, nullptr);
  ASSERT_GE(c->event_fd(), 0);
  const Chunks put = MakeChunks(0, 8, 256 * kKiB);
  auto set_id = c->SubmitSet(put.keys, put.Spans());
  ASSERT_TRUE(set_id.ok());
  BatchCompletion set = WaitFor(*c, *set_id);
  EXPECT_TRUE(set.ok) << set.error;
  EXPECT_EQ(set.per_key, std::vector<bool>(8, true));

  // Lookup with absent keys interleaved, as LMCache's lookup_and_lock sends them.
  std::vector<std::string> mixed = {Key(100), put.keys[0], put.keys[5], Key(101), put.keys[7]};
  auto ex = WaitFor(*c, *c->SubmitExists(mixed));
  EXPECT_TRUE(ex.ok);
  EXPECT_EQ(ex.per_key, (std::vector<bool>{false, true, true, false, true}));

  // A load of [absent, stored, absent] reports the absent keys per key (LMCache marks every
  // key loaded when a completion is ok without per-key results).
  std::vector<std::string> load_keys = {Key(200), put.keys[3], Key(201)};
  auto bufs = Buffers(3, 256 * kKiB);
  auto get = WaitFor(*c, *c->SubmitGet(load_keys, Spans(bufs)));
  EXPECT_TRUE(get.ok);
  EXPECT_EQ(get.per_key, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(bufs[1], put.bytes[3]);

  // Every stored chunk, byte for byte.
  auto all = Buffers(8, 256 * kKiB);
  auto got = WaitFor(*c, *c->SubmitGet(put.keys, Spans(all)));
  EXPECT_EQ(got.per_key, std::vector<bool>(8, true));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(all[i], put.bytes[i]) << i;

  auto del = WaitFor(*c, *c->SubmitDelete(V{put.keys[0], Key(300), put.keys[1]}));
  EXPECT_TRUE(del.ok);
  EXPECT_EQ(del.per_key, (std::vector<bool>{true, false, true}));
  auto after = WaitFor(*c, *c->SubmitExists(V{put.keys[0], put.keys[1], put.keys[2]}));
  EXPECT_EQ(after.per_key, (std::vector<bool>{false, false, true}));
}

TEST(LmcacheConnectorTest, AGetIntoABufferOfAnotherSizeIsNotLoaded) {
  auto c = OpenConnector(DramOptions());
  ASSERT_NE(c, nullptr);
  // 64 KiB: copied at submit; 512 KiB: by the copy threads.
  for (std::size_t chunk : {64 * kKiB, 512 * kKiB}) {
    const Chunks put = MakeChunks(static_cast<int>(chunk / kKiB), 1, chunk);
    ASSERT_TRUE(WaitFor(*c, *c->SubmitSet(put.keys, put.Spans())).ok);
    for (std::size_t size : {chunk / 2, chunk * 2}) {
      auto bufs = Buffers(1, size);
      auto get = WaitFor(*c, *c->SubmitGet(put.keys, Spans(bufs)));
      EXPECT_EQ(get.per_key, std::vector<bool>{false}) << chunk << " into " << size;
      EXPECT_FALSE(get.error.empty());
    }
    auto bufs = Buffers(1, chunk);
    EXPECT_EQ(WaitFor(*c, *c->SubmitGet(put.keys, Spans(bufs))).per_key, std::vector<bool>{true});
    EXPECT_EQ(bufs[0], put.bytes[0]);
  }
}

TEST(LmcacheConnectorTest, SmallAndLargeBatchesGiveTheSameResults) {
  auto c = OpenConnector(DramOptions());
  ASSERT_NE(c, nullptr);
  // 4 x 16 KiB is copied at submit, 4 x 256 KiB by the copy threads: same per-key results.
  for (std::size_t chunk : {16 * kKiB, 256 * kKiB}) {
    const Chunks put = MakeChunks(static_cast<int>(chunk), 3, chunk);
    ASSERT_TRUE(WaitFor(*c, *c->SubmitSet(put.keys, put.Spans())).ok);
    V keys = {put.keys[0], Key(-1), put.keys[1], put.keys[2]};
    auto bufs = Buffers(4, chunk);
    auto get = WaitFor(*c, *c->SubmitGet(keys, Spans(bufs)));
    EXPECT_TRUE(get.ok);
    EXPECT_EQ(get.per_key, (std::vector<bool>{true, false, true, true})) << chunk;
    EXPECT_EQ(bufs[0], put.bytes[0]);
    EXPECT_EQ(bufs[3], put.bytes[2]);
  }
}

TEST(LmcacheConnectorTest, ASetIsOkOnlyWhenEveryKeyIsStored) {
  auto c = OpenConnector(DramOptions(4 << 20));
  ASSERT_NE(c, nullptr);
  // The second chunk is larger than any slot: refused, so the batch is not ok.
  std::vector<std::byte> small(64 * kKiB), huge(16 << 20);
  std::vector<std::string> keys = {Key(1), Key(2)};
  std::vector<std::span<const std::byte>> spans = {small, huge};
  auto set = WaitFor(*c, *c->SubmitSet(keys, spans));
  EXPECT_FALSE(set.ok);
  EXPECT_EQ(set.per_key, (std::vector<bool>{true, false}));
  EXPECT_FALSE(set.error.empty());
  // Write once: storing a key again is ok and keeps the first bytes.
  std::vector<std::byte> other(64 * kKiB, std::byte{7});
  std::vector<std::span<const std::byte>> again = {other};
  EXPECT_TRUE(WaitFor(*c, *c->SubmitSet(V{Key(1)}, again)).ok);
}

TEST(LmcacheConnectorTest, KeysLongerThanTheStoreTakesAreKeptApart) {
  auto c = OpenConnector(DramOptions());
  ASSERT_NE(c, nullptr);
  // Two keys of 200 bytes with the same first 180: a long model name and a cache salt.
  const std::string a = std::string(180, 'm') + "@00000001@0@aaaaaaaaaaaaaaaaaaa";
  const std::string b = std::string(180, 'm') + "@00000001@0@bbbbbbbbbbbbbbbbbbb";
  std::vector<std::byte> va(4096, std::byte{1}), vb(4096, std::byte{2});
  std::vector<std::span<const std::byte>> spans = {va, vb};
  ASSERT_TRUE(WaitFor(*c, *c->SubmitSet(V{a, b}, spans)).ok);
  auto bufs = Buffers(2, 4096);
  auto get = WaitFor(*c, *c->SubmitGet(V{b, a}, Spans(bufs)));
  EXPECT_EQ(get.per_key, (std::vector<bool>{true, true}));
  EXPECT_EQ(bufs[0], vb);
  EXPECT_EQ(bufs[1], va);
}

TEST(LmcacheConnectorTest, TheFdIsReadableExactlyWhileCompletionsWait) {
  auto c = OpenConnector(DramOptions());
  ASSERT_NE(c, nullptr);
  pollfd p{c->event_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  auto id = c->SubmitExists(V{Key(1)});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(::poll(&p, 1, 1000), 1);
  auto done = c->Drain();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].future_id, *id);
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  EXPECT_TRUE(c->Drain().empty());
}

TEST(LmcacheConnectorTest, MismatchedArgumentsAndClosedConnectorAreRefused) {
  auto c = OpenConnector(DramOptions());
  ASSERT_NE(c, nullptr);
  std::vector<std::byte> one(16);
  std::vector<std::span<const std::byte>> spans = {one};
  EXPECT_TRUE(c->SubmitSet(V{Key(1), Key(2)}, spans).status().IsInvalidArgument());
  // An empty batch completes at once.
  auto empty = c->SubmitExists(V{});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(WaitFor(*c, *empty).ok);
  c->Close();
  c->Close();  // idempotent
  EXPECT_TRUE(c->SubmitExists(V{Key(1)}).status().IsUnsupported());
  EXPECT_TRUE(c->Drain().empty());
}

TEST(LmcacheConnectorTest, ADurablePoolComesBackAfterClose) {
  testing::TempDir dir;
  auto options = [&] {
    StoreOptions o;
    TierOptions t;
    t.name = "pool";
    t.source_spec = "file:" + dir.File("pool");
    t.capacity = 32 << 20;
    t.durability = "persist-on-put";
    o.tiers.push_back(std::move(t));
    o.slab_size = 1 << 20;
    return o;
  };
  const Chunks put = MakeChunks(0, 4, 1 << 20);
  {
    auto c = OpenConnector(options());
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(WaitFor(*c, *c->SubmitSet(put.keys, put.Spans())).ok);
    c->Close();
  }
  auto c = OpenConnector(options());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(WaitFor(*c, *c->SubmitExists(put.keys)).per_key, std::vector<bool>(4, true));
  auto bufs = Buffers(4, 1 << 20);
  auto get = WaitFor(*c, *c->SubmitGet(put.keys, Spans(bufs)));
  EXPECT_EQ(get.per_key, std::vector<bool>(4, true));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(bufs[i], put.bytes[i]) << i;
}

// LMCache's shape: several threads submit while one demux thread drains.
TEST(LmcacheConnectorTest, ThreadsSubmitWhileOneThreadDrains) {
  auto c = OpenConnector(DramOptions(128 << 20));
  ASSERT_NE(c, nullptr);
  std::mutex mu;
  std::map<std::uint64_t, BatchCompletion> done;
  std::atomic<bool> stop{false};
  std::thread demux([&] {
    while (!stop.load()) {
      pollfd p{c->event_fd(), POLLIN, 0};
      ::poll(&p, 1, 5);
      for (BatchCompletion& d : c->Drain()) {
        std::lock_guard lock(mu);
        done.emplace(d.future_id, std::move(d));
      }
    }
  });
  auto wait = [&](std::uint64_t id) {
    for (int i = 0; i < 2000; ++i) {
      {
        std::lock_guard lock(mu);
        auto it = done.find(id);
        if (it != done.end()) return it->second;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << "batch " << id << " never completed";
    return BatchCompletion{};
  };
  std::atomic<int> bad{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&, t] {
      for (int round = 0; round < 8; ++round) {
        const Chunks put = MakeChunks(1000 * t + 10 * round, 8, 64 * kKiB);
        if (!wait(*c->SubmitSet(put.keys, put.Spans())).ok) ++bad;
        auto bufs = Buffers(8, 64 * kKiB);
        auto get = wait(*c->SubmitGet(put.keys, Spans(bufs)));
        for (int i = 0; i < 8; ++i) {
          if (!get.per_key[i] || bufs[i] != put.bytes[i]) ++bad;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  stop = true;
  demux.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace cxlkv::lmcache
