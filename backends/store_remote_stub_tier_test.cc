// A third kind of tier, added the way any kind is: one file implementing TierBackend (here an
// UnmappedTier standing in for a remote store: records kept in this process, FIFO eviction of
// whole records) and one RegisterTierKind line. The tests then drive the store through it:
// demotion into it, reads back (Get, batched, Pin), promotion, its evictions, Remove, and a
// corrupt record; each fails if the store treats the tier as anything but an UnmappedTier.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/key.h"
#include "backends/store_test_util.h"
#include "backends/tier_backend.h"
#include "backends/tier_factory.h"

namespace cxlkv {
namespace {

using namespace store_testing;  // NOLINT(google-build-using-namespace): test helpers
using internal::TierChunk;
using internal::UnmappedTier;

// Thread-safety: evict_mu_ excludes reads from evictions (taken before any shard mutex, as the
// log's segment lock is); mu_ guards the records and is a leaf.
class RemoteStubTier final : public UnmappedTier {
 public:
  static Result<std::unique_ptr<internal::TierBackend>> Open(TierOptions& options,
                                                             const internal::TierPlace&) {
    std::unique_ptr<RemoteStubTier> tier(
        new RemoteStubTier(options.name.empty() ? "remote" : options.name, options.capacity));
    tier->promote_after_hits_ = options.promote_after_hits.value_or(0);
    last_opened = tier.get();
    return std::unique_ptr<internal::TierBackend>(std::move(tier));
  }
  static inline RemoteStubTier* last_opened = nullptr;

  std::size_t max_chunk() const override { return capacity_; }
  std::size_t Charge(std::size_t size) const override { return size; }
  void Release(std::uint64_t locator, std::uint32_t, std::uint16_t) override {
    std::lock_guard lock(mu_);
    auto it = records_.find(locator);
    if (it == records_.end()) return;  // evicted already
    held_ -= it->second.bytes.size();
    records_.erase(it);
  }
  std::vector<TierChunk> TakeRecovered() override { return {}; }

  void Append(std::span<AppendItem> items, const SettledFn& settled, const LeftFn& left) override {
    // As the log does: no eviction (this Append's or a concurrent one's) between an item's
    // store and its settle.
    for (std::size_t i = 0; i < items.size(); ++i) {
      AppendItem& item = items[i];
      for (;;) {
        {
          std::shared_lock no_eviction(evict_mu_);
          if (Store(item)) {
            settled(i);
            break;
          }
        }
        if (!EvictOldest(left)) {
          item.status = Status::NoSpace("remote stub full");
          settled(i);
          break;
        }
      }
    }
  }

  void Read(std::span<ReadItem> reads, const CurrentFn& current) override {
    std::shared_lock exclude(evict_mu_);
    for (std::size_t i = 0; i < reads.size(); ++i) {
      ReadItem& r = reads[i];
      if (!current(i)) {
        r.stale = true;
        r.status = Status::NotFound("left the remote stub");
        continue;
      }
      std::lock_guard lock(mu_);
      auto it = records_.find(r.locator);
      if (it == records_.end()) {
        r.status = Status::NotFound("no such record");
        continue;
      }
      const Record& rec = it->second;
      if (rec.key != r.key || rec.sum != Sum(rec.bytes)) {
        r.status = Status::Corruption("remote record fails its check");
        continue;
      }
      std::memcpy(r.dst.data(), rec.bytes.data(), rec.bytes.size());
      std::memcpy(r.meta_dst.data(), rec.meta.data(), rec.meta.size());
      r.size = rec.bytes.size();
      r.meta_size = rec.meta.size();
      r.status = Status::Ok();
    }
  }

  // Test hooks.
  void CorruptRecordOf(const std::string& key) {
    std::lock_guard lock(mu_);
    for (auto& [locator, rec] : records_) {
      if (rec.key == key) rec.bytes[7] ^= std::byte{1};
    }
  }
  std::size_t records() {
    std::lock_guard lock(mu_);
    return records_.size();
  }

 private:
  struct Record {
    std::string key;
    internal::KeyHash hash;
    std::vector<std::byte> bytes;
    std::vector<std::byte> meta;
    std::uint64_t sum = 0;
  };
  RemoteStubTier(std::string name, std::size_t capacity)
      : UnmappedTier(std::move(name)), capacity_(capacity) {}
  static std::uint64_t Sum(const std::vector<std::byte>& b) {
    std::uint64_t s = 1469598103934665603ull;
    for (std::byte x : b) s = (s ^ static_cast<std::uint64_t>(x)) * 1099511628211ull;
    return s;
  }
  void Describe(TierStats& ts, StoreStats&) const override {
    ts.source = "remote-stub";
    ts.eviction = "fifo";
    ts.capacity = capacity_;
  }
  bool Store(AppendItem& item) {
    std::lock_guard lock(mu_);
    if (held_ + item.bytes.size() > capacity_) return false;
    Record rec{std::string(item.key), internal::HashKey(item.key),
               {item.bytes.begin(), item.bytes.end()}, {item.meta.begin(), item.meta.end()}, 0};
    rec.sum = Sum(rec.bytes);
    held_ += rec.bytes.size();
    item.locator = next_++;
    item.status = Status::Ok();
    records_.emplace(item.locator, std::move(rec));
    return true;
  }
  bool EvictOldest(const LeftFn& left) {
    std::unique_lock exclude(evict_mu_);
    TierChunk gone;
    {
      std::lock_guard lock(mu_);
      if (records_.empty()) return false;
      auto oldest = records_.begin();
      gone = {oldest->second.hash, oldest->first,
              static_cast<std::uint32_t>(oldest->second.bytes.size()), 0, false};
      held_ -= oldest->second.bytes.size();
      records_.erase(oldest);
    }
    left({&gone, 1});
    return true;
  }

  const std::size_t capacity_;
  std::shared_mutex evict_mu_;
  std::mutex mu_;
  std::map<std::uint64_t, Record> records_;  // by locator: oldest first
  std::size_t held_ = 0;
  std::uint64_t next_ = 1;
};

// The one line that makes the kind openable.
const bool kRemoteStubRegistered = internal::RegisterTierKind("remote-stub", &RemoteStubTier::Open);

constexpr std::size_t kRemote = 1;  // the stub's index in Stats().tiers

// DRAM of 16 chunks over a remote stub of 24.
std::unique_ptr<Store> OpenWithStub(int promote_after_hits = 0) {
  EXPECT_TRUE(kRemoteStubRegistered);
  TierOptions remote;
  remote.name = "remote";
  remote.source_spec = "remote-stub";
  remote.capacity = 24 * kChunk;
  if (promote_after_hits != 0) remote.promote_after_hits = promote_after_hits;
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(Slabs(4)));
  tiers.push_back(std::move(remote));
  return OpenTiers(std::move(tiers));
}

ChunkMeta MetaOf(int i) {
  const std::string text = "meta-" + std::to_string(i);
  return *ChunkMeta::From({reinterpret_cast<const std::byte*>(text.data()), text.size()});
}

// 48 chunks: 32..47 stay in DRAM, 8..31 are in the stub, 0..7 left the stub to make room.
void Fill(Store& s) {
  for (int i = 0; i < 48; ++i) {
    ASSERT_TRUE(s.Put(Key(i), Bytes(kChunk, Seed(i)), MetaOf(i)).ok()) << i;
  }
}

TEST(StoreRemoteStubTierTest, DemotedChunksReadBackAndTheOnesThatLeftAreGone) {
  auto s = OpenWithStub();
  ASSERT_NE(s, nullptr);
  Fill(*s);
  StoreStats st = s->Stats();
  ASSERT_EQ(st.tiers.size(), 2u);
  EXPECT_EQ(st.tiers[kRemote].name, "remote");
  EXPECT_EQ(st.tiers[kRemote].source, "remote-stub");
  EXPECT_EQ(st.tiers[0].demotions, 32u);
  EXPECT_EQ(st.tiers[kRemote].bytes_in, 32 * kChunk);
  EXPECT_EQ(st.tiers[kRemote].evictions, 8u);
  EXPECT_EQ(st.tiers[kRemote].chunks, 24u);
  EXPECT_EQ(st.tiers[kRemote].used_bytes, 24 * kChunk);
  EXPECT_EQ(RemoteStubTier::last_opened->records(), 24u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_FALSE(s->Contains(Key(i))) << i;
    std::vector<std::byte> dst(kChunk);
    EXPECT_TRUE(s->Get(Key(i), dst).status().IsNotFound()) << i;
  }
  for (int i = 8; i < 48; ++i) {
    ChunkMeta meta;
    std::vector<std::byte> dst(kChunk);
    auto n = s->Get(Key(i), dst, &meta);
    ASSERT_TRUE(n.ok()) << i << ": " << n.status().ToString();
    EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), kChunk, Seed(i)), -1) << i;
    EXPECT_EQ(meta, MetaOf(i)) << i;
  }
  EXPECT_EQ(s->Stats().tiers[kRemote].hits, 24u);
  EXPECT_EQ(s->Stats().tiers[kRemote].bytes_out, 24 * kChunk);
}

TEST(StoreRemoteStubTierTest, BatchedGetsReadFromItBesideMemory) {
  auto s = OpenWithStub();
  ASSERT_NE(s, nullptr);
  Fill(*s);
  std::vector<std::string> keys;
  for (int i = 4; i < 48; i += 2) keys.push_back(Key(i));  // 4, 6: gone; 8..30: stub; rest DRAM
  std::vector<std::vector<std::byte>> dst(keys.size(), std::vector<std::byte>(kChunk));
  std::vector<ChunkMeta> metas(keys.size());
  std::vector<GetRequest> reqs;
  for (std::size_t j = 0; j < keys.size(); ++j) reqs.push_back({keys[j], dst[j], &metas[j], j});
  const std::vector<Completion> done = GetAll(*s, reqs);
  ASSERT_EQ(done.size(), reqs.size());
  for (const Completion& c : done) {
    const int i = 4 + static_cast<int>(c.user_data) * 2;
    if (i < 8) {
      EXPECT_TRUE(c.status.IsNotFound()) << i;
      continue;
    }
    ASSERT_TRUE(c.status.ok()) << i << ": " << c.status.ToString();
    EXPECT_EQ(testing::FirstPatternMismatch(dst[c.user_data].data(), kChunk, Seed(i)), -1) << i;
    EXPECT_EQ(metas[c.user_data], MetaOf(i)) << i;
  }
  EXPECT_EQ(s->Stats().tiers[kRemote].hits, 12u);
}

TEST(StoreRemoteStubTierTest, PinAndReadsPastTheThresholdBringChunksBackToMemory) {
  auto s = OpenWithStub(/*promote_after_hits=*/1);
  ASSERT_NE(s, nullptr);
  Fill(*s);
  // DRAM is full: a reader's promotion finds no free slot, a Pin makes room.
  ExpectChunk(*s, 20);
  EXPECT_EQ(s->Stats().tiers[kRemote].promotions, 0u);
  auto pin = s->Pin(Key(20));
  ASSERT_TRUE(pin.ok()) << pin.status().ToString();
  EXPECT_EQ(pin->tier(), 0u);
  EXPECT_EQ(testing::FirstPatternMismatch(pin->data(), kChunk, Seed(20)), -1);
  EXPECT_EQ(pin->meta(), MetaOf(20));
  pin->Release();
  StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[kRemote].promotions, 1u);
  EXPECT_EQ(st.tiers[kRemote].chunks, 23u);  // the record became garbage, then was released
  EXPECT_EQ(st.tiers[kRemote].used_bytes, 23 * kChunk);
  EXPECT_EQ(RemoteStubTier::last_opened->records(), 23u);
  ExpectChunk(*s, 20);
  EXPECT_EQ(s->Stats().tiers[0].hits, 2u);  // the lease and this Get
  EXPECT_EQ(s->Stats().tiers[kRemote].hits, 2u);  // the first Get and the Pin's read
}

TEST(StoreRemoteStubTierTest, RemoveReleasesTheRecord) {
  auto s = OpenWithStub();
  ASSERT_NE(s, nullptr);
  Fill(*s);
  ASSERT_TRUE(s->Remove(Key(12)).ok());
  EXPECT_FALSE(s->Contains(Key(12)));
  EXPECT_EQ(RemoteStubTier::last_opened->records(), 23u);
  EXPECT_EQ(s->Stats().tiers[kRemote].chunks, 23u);
}

TEST(StoreRemoteStubTierTest, ACorruptRecordIsDroppedNotReturned) {
  auto s = OpenWithStub();
  ASSERT_NE(s, nullptr);
  Fill(*s);
  RemoteStubTier::last_opened->CorruptRecordOf(Key(15));
  std::vector<std::byte> dst(kChunk);
  EXPECT_TRUE(s->Get(Key(15), dst).status().IsCorruption());
  EXPECT_FALSE(s->Contains(Key(15)));
  StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[kRemote].corrupt_dropped, 1u);
  EXPECT_EQ(st.tiers[kRemote].chunks, 23u);
  ExpectChunk(*s, 16);
}

// Readers, pinners, removers and writers at once, with the background thread demoting into the
// stub while its appends evict: every chunk read is whole and right, and the counters add up.
TEST(StoreRemoteStubTierTest, ConcurrentReadsWritesAndEvictionsStayConsistent) {
  TierOptions remote;
  remote.name = "remote";
  remote.source_spec = "remote-stub";
  remote.capacity = 24 * kChunk;
  remote.promote_after_hits = 2;
  std::vector<TierOptions> tiers;
  tiers.push_back(Dram(Slabs(4)));
  tiers.push_back(std::move(remote));
  auto s = OpenTiers(std::move(tiers), /*background=*/true);
  ASSERT_NE(s, nullptr);
  constexpr int kKeys = 96;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::byte> dst(kChunk);
      for (int round = 0; round < 400; ++round) {
        const int i = (round * 7 + t * 13) % kKeys;
        switch ((round + t) % 4) {
          case 0:
            (void)s->Put(Key(i), Bytes(kChunk, Seed(i)), MetaOf(i));
            break;
          case 1: {
            ChunkMeta meta;
            auto n = s->Get(Key(i), dst, &meta);
            if (n.ok() && (testing::FirstPatternMismatch(dst.data(), kChunk, Seed(i)) != -1 ||
                           !(meta == MetaOf(i)))) {
              wrong.fetch_add(1);
            }
            break;
          }
          case 2: {
            auto pin = s->Pin(Key(i));
            if (pin.ok() && testing::FirstPatternMismatch(pin->data(), kChunk, Seed(i)) != -1) {
              wrong.fetch_add(1);
            }
            break;
          }
          default:
            if (round % 16 == 3) (void)s->Remove(Key(i));
            break;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  s->Maintain();
  const StoreStats st = s->Stats();
  std::size_t contained = 0;
  for (int i = 0; i < kKeys; ++i) contained += s->Contains(Key(i)) ? 1 : 0;
  EXPECT_EQ(st.tiers[0].chunks + st.tiers[kRemote].chunks, contained);
  EXPECT_EQ(st.tiers[kRemote].used_bytes, st.tiers[kRemote].chunks * kChunk);
  EXPECT_EQ(RemoteStubTier::last_opened->records(), st.tiers[kRemote].chunks);
  EXPECT_GT(st.tiers[kRemote].bytes_in, 0u);  // the stub was in play
}

TEST(StoreRemoteStubTierTest, AMappedTierBelowItIsRefused) {
  ASSERT_TRUE(kRemoteStubRegistered);
  TierOptions remote;
  remote.name = "remote";
  remote.source_spec = "remote-stub";
  remote.capacity = 24 * kChunk;
  StoreOptions o;
  o.tiers.push_back(std::move(remote));
  o.tiers.push_back(Dram(Slabs(4)));
  o.slab_size = kSlab;
  auto s = Store::Open(std::move(o));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
}

}  // namespace
}  // namespace cxlkv
