// The spill tier in the store: demotion from memory into the log, reads back (Get, batched,
// Pin), promotion, segment eviction, corruption on the device, TTL, and reopening.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <vector>

#include "backends/store_test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;  // NOLINT(google-build-using-namespace): test helpers

constexpr std::uint64_t kSegment = 256 * kKiB;  // about a dozen 16 KiB chunks each

// One DRAM tier of 16 chunks over a spill log of `segments` segments.
StoreOptions WithSpill(const testing::TempDir& dir, int segments, bool format = true) {
  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(4)));
  o.spill.path = dir.File("spill.log");
  o.spill.capacity = 64 * kKiB + segments * kSegment;
  o.spill.segment_size = kSegment;
  o.spill.queue_depth = 4;
  o.spill.format = format;
  o.slab_size = kSlab;  // for the tests that call Store::Open themselves
  return o;
}

constexpr std::size_t kSpill = 1;  // the spill tier's index in Stats().tiers

// How many of Key(from) .. Key(to - 1) are stored, each checked byte for byte.
std::size_t ExpectStoredIntact(Store& s, int from, int to) {
  std::size_t stored = 0;
  for (int i = from; i < to; ++i) {
    if (!s.Contains(Key(i))) continue;
    ++stored;
    ExpectChunk(s, i);
  }
  return stored;
}

TEST(StoreSpillTest, DemotesIntoTheLogAndReadsEveryByteBack) {
  testing::TempDir dir;
  auto s = OpenStore(WithSpill(dir, 8));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 48; ++i) PutChunk(*s, i);  // 16 stay in DRAM, 32 go to the log
  StoreStats st = s->Stats();
  ASSERT_EQ(st.tiers.size(), 2u);
  EXPECT_EQ(st.tiers[kSpill].name, "spill");
  EXPECT_EQ(st.tiers[0].demotions, 32u);
  EXPECT_EQ(st.tiers[kSpill].chunks, 32u);
  EXPECT_EQ(st.tiers[kSpill].bytes_in, 32 * kChunk);
  EXPECT_GE(st.spill_write_amplification, 1.0);
  for (int i = 0; i < 48; ++i) {
    ChunkMeta meta;
    std::vector<std::byte> dst(kChunk);
    auto n = s->Get(Key(i), dst, &meta);
    ASSERT_TRUE(n.ok()) << Key(i) << ": " << n.status().ToString();
    EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), kChunk, Seed(i)), -1) << i;
  }
  st = s->Stats();
  EXPECT_EQ(st.tiers[kSpill].hits, 32u);
  std::printf("%s", st.ToString().c_str());
}

TEST(StoreSpillTest, MetadataTravelsThroughTheLog) {
  testing::TempDir dir;
  auto s = OpenStore(WithSpill(dir, 8));
  ASSERT_NE(s, nullptr);
  const std::string m = "dtype=bf16 shape=[2,32,256,128]";
  auto meta = ChunkMeta::From(std::as_bytes(std::span(m.data(), m.size())));
  ASSERT_TRUE(meta.ok());
  ASSERT_TRUE(s->Put("with-meta", Bytes(kChunk, 5), *meta).ok());
  for (int i = 0; i < 20; ++i) PutChunk(*s, i);  // pushes "with-meta" into the log
  ChunkMeta got;
  std::vector<std::byte> dst(kChunk);
  ASSERT_TRUE(s->Get("with-meta", dst, &got).ok());
  EXPECT_EQ(got, *meta);
  EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), kChunk, 5), -1);
}

TEST(StoreSpillTest, SecondReadPromotesAndPinBringsBack) {
  testing::TempDir dir;
  auto s = OpenStore(WithSpill(dir, 8));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 24; ++i) PutChunk(*s, i);  // 0..7 spilled
  ASSERT_TRUE(s->Remove(Key(23)).ok());  // a free DRAM slot for the promotion
  ExpectChunk(*s, 0);
  EXPECT_EQ(s->Stats().tiers[kSpill].promotions, 0u);
  ExpectChunk(*s, 0);  // the second read: copied back from the bytes just read
  EXPECT_EQ(s->Stats().tiers[kSpill].promotions, 1u);
  EXPECT_EQ(TierOf(*s, 0), 0u);
  ExpectChunk(*s, 0);

  auto lease = s->Pin(Key(1));  // spilled: brought back to DRAM first (evicting if need be)
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(lease->tier(), 0u);
  EXPECT_EQ(testing::FirstPatternMismatch(lease->data(), kChunk, Seed(1)), -1);
}

// PinWithoutIo (for event loops) pins a chunk in memory at once, and refuses one in the log
// as Busy without reading, pinning or counting anything; Pin then reads it in, after which
// PinWithoutIo finds it in memory.
TEST(StoreSpillTest, PinWithoutIoRefusesASpilledChunkAndTouchesNothing) {
  testing::TempDir dir;
  auto s = OpenStore(WithSpill(dir, 8));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 24; ++i) PutChunk(*s, i);  // 0..7 spilled
  ASSERT_EQ(s->Stats().tiers[kSpill].chunks, 8u);
  auto in_memory = s->PinWithoutIo(Key(20));
  ASSERT_TRUE(in_memory.ok()) << in_memory.status().ToString();
  EXPECT_EQ(testing::FirstPatternMismatch(in_memory->data(), kChunk, Seed(20)), -1);
  in_memory->Release();

  const StoreStats before = s->Stats();
  auto spilled = s->PinWithoutIo(Key(1));
  ASSERT_FALSE(spilled.ok());
  EXPECT_EQ(spilled.status().code(), StatusCode::kBusy) << spilled.status().ToString();
  const StoreStats after = s->Stats();
  EXPECT_EQ(after.tiers[kSpill].hits, before.tiers[kSpill].hits);
  EXPECT_EQ(after.tiers[kSpill].bytes_out, before.tiers[kSpill].bytes_out);
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.tiers[kSpill].chunks, 8u);
  EXPECT_EQ(s->PinWithoutIo(Key(1)).status().code(), StatusCode::kBusy);  // still in the log
  EXPECT_EQ(s->PinWithoutIo("absent").status().code(), StatusCode::kNotFound);

  auto lease = s->Pin(Key(1));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  lease->Release();
  auto now_in_memory = s->PinWithoutIo(Key(1));
  ASSERT_TRUE(now_in_memory.ok()) << now_in_memory.status().ToString();
  EXPECT_EQ(now_in_memory->tier(), 0u);
  EXPECT_EQ(testing::FirstPatternMismatch(now_in_memory->data(), kChunk, Seed(1)), -1);
}

TEST(StoreSpillTest, AFullLogDropsItsOldestSegment) {
  testing::TempDir dir;
  auto s = OpenStore(WithSpill(dir, 3));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 120; ++i) PutChunk(*s, i);
  const StoreStats st = s->Stats();
  EXPECT_GT(st.tiers[kSpill].evictions, 0u);
  // FIFO of segments: the oldest chunks went, the newest are all there, every byte intact.
  EXPECT_FALSE(s->Contains(Key(0)));
  EXPECT_EQ(ExpectStoredIntact(*s, 0, 120), st.index_entries);
  for (int i = 104; i < 120; ++i) EXPECT_TRUE(s->Contains(Key(i))) << i;
}

// A prefix policy drops the chunks whose predecessor left the store (the engine stops at the
// first miss of a prompt, so they could never be read again). That holds when the predecessor
// leaves from the log, with its segment, as when it leaves from memory. Prompt A (40 chunks)
// fills the DRAM tier (16) and half the log (3 segments of about 12); prompt B's chunks then push
// A's into the log until its oldest segment, A's head, is dropped: none of A may stay.
TEST(StoreSpillTest, APrefixPolicyDropsTheOrphansOfASegmentsChunks) {
  testing::TempDir dir;
  StoreOptions o = WithSpill(dir, 3);
  o.tiers[0].eviction = "prefix-chains";
  auto s = OpenStore(std::move(o));
  ASSERT_NE(s, nullptr);
  const auto request = [&](int first, int count) {
    ASSERT_EQ(LongestPrefix(*s, Keys(first, first + count)), 0u);  // the request, in order
    for (int i = first; i < first + count; ++i) PutChunk(*s, i);
  };
  request(0, 40);
  ASSERT_EQ(s->Stats().tiers[kSpill].evictions, 0u);
  ASSERT_TRUE(s->Contains(Key(0)));
  request(1000, 40);
  const StoreStats st = s->Stats();
  ASSERT_GT(st.tiers[kSpill].evictions, 0u) << "no segment was dropped: the test shows nothing";
  ASSERT_FALSE(s->Contains(Key(0))) << "A's head is still stored: the test shows nothing";
  for (int i = 1; i < 40; ++i) EXPECT_FALSE(s->Contains(Key(i))) << "an orphan of A: " << Key(i);
  EXPECT_EQ(ExpectStoredIntact(*s, 1000, 1040), st.index_entries);
}

// Background demotion (Maintain) claims the chunks bound for the log a batch at a time and
// appends them with one AppendBatch: every demoted chunk is in the log, readable, and counted
// once; the tier ends at its low watermark.
TEST(StoreSpillTest, MaintainDemotesIntoTheLogInBatches) {
  testing::TempDir dir;
  StoreOptions o = WithSpill(dir, 8);
  o.tiers[0] = Dram(Slabs(8));  // 32 chunks
  o.tiers[0].high_watermark = 0.9;
  o.tiers[0].low_watermark = 0.2;
  auto s = OpenStore(std::move(o));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 32; ++i) PutChunk(*s, i);  // full, nothing demoted yet
  ASSERT_EQ(s->Stats().tiers[0].demotions, 0u);
  s->Maintain();
  const StoreStats st = s->Stats();
  EXPECT_GT(st.tiers[0].demotions, 16u);  // from 100% down to 20%
  EXPECT_EQ(st.tiers[kSpill].chunks, st.tiers[0].demotions);
  EXPECT_EQ(st.tiers[0].chunks + st.tiers[kSpill].chunks, 32u);
  EXPECT_EQ(st.index_entries, 32u);
  EXPECT_LE(st.tiers[0].used_bytes, Slabs(8) * 2 / 10 + kSlab);
  for (int i = 0; i < 32; ++i) ExpectChunk(*s, i);
}

// The same with a log too small for what Maintain demotes: segments are evicted between
// rounds of the batch, and whatever stays indexed reads back intact, counted once.
TEST(StoreSpillTest, MaintainBatchesIntoAFullLogEvictSegmentsBetweenRounds) {
  testing::TempDir dir;
  StoreOptions o = WithSpill(dir, 3);  // about 36 chunks of log
  o.tiers[0] = Dram(Slabs(16));        // 64 chunks
  o.tiers[0].high_watermark = 0.9;
  o.tiers[0].low_watermark = 0.05;
  auto s = OpenStore(std::move(o));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 64; ++i) PutChunk(*s, i);
  s->Maintain();
  const StoreStats st = s->Stats();
  EXPECT_GT(st.tiers[kSpill].evictions, 0u);
  EXPECT_EQ(st.tiers[0].chunks + st.tiers[kSpill].chunks, st.index_entries);
  int present = 0;
  for (int i = 0; i < 64; ++i) {
    if (!s->Contains(Key(i))) continue;
    ++present;
    ExpectChunk(*s, i);
  }
  EXPECT_EQ(static_cast<std::size_t>(present), st.index_entries);
  // Segments go one at a time, so at least a whole segment's chunks (about 12) stay in the log.
  EXPECT_GE(st.tiers[kSpill].chunks, 12u);
}

// Flips one byte of the first copy of chunk i's pattern found in the file.
bool FlipChunkByte(const std::string& path, int i) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::vector<std::byte> want = Bytes(kChunk, Seed(i));
  auto it = std::search(file.begin(), file.end(), reinterpret_cast<const char*>(want.data()),
                        reinterpret_cast<const char*>(want.data()) + 256);
  if (it == file.end()) return false;
  const off_t at = (it - file.begin()) + 1000;
  const int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) return false;
  const char flipped = static_cast<char>(file[static_cast<std::size_t>(at)] ^ 0x40);
  const bool ok = ::pwrite(fd, &flipped, 1, at) == 1 && ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

TEST(StoreSpillTest, ACorruptedChunkIsCorruptionNeverWrongBytes) {
  testing::TempDir dir;
  auto s = OpenStore(WithSpill(dir, 8));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 24; ++i) PutChunk(*s, i);  // 0..7 spilled
  ASSERT_TRUE(FlipChunkByte(dir.File("spill.log"), 3));
  std::vector<std::byte> dst(kChunk);
  auto n = s->Get(Key(3), dst);
  EXPECT_TRUE(n.status().IsCorruption()) << n.status().ToString();
  EXPECT_FALSE(s->Contains(Key(3)));  // dropped: the next lookup is a plain miss
  EXPECT_TRUE(s->Get(Key(3), dst).status().IsNotFound());
  for (int i : {2, 4}) ExpectChunk(*s, i);  // its neighbours are fine
  const TierStats spill = s->Stats().tiers[kSpill];
  EXPECT_EQ(spill.read_errors, 1u);
  EXPECT_EQ(spill.corrupt_dropped, 1u);
}

// With a prefix policy, a chunk dropped as unreadable takes its stored successors with it.
TEST(StoreSpillTest, ACorruptedChunkTakesItsOrphansUnderAPrefixPolicy) {
  testing::TempDir dir;
  StoreOptions o = WithSpill(dir, 8);
  o.tiers[0].eviction = "prefix-chains";
  auto s = OpenStore(std::move(o));
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(LongestPrefix(*s, Keys(0, 24)), 0u);
  for (int i = 0; i < 24; ++i) PutChunk(*s, i);
  // A spilled chunk with a stored successor (PinWithoutIo is Busy for a chunk in the log, and
  // moves nothing, where Pin would promote it).
  int spilled = -1;
  for (int i = 0; i + 1 < 24 && spilled < 0; ++i) {
    if (s->PinWithoutIo(Key(i)).status().code() == StatusCode::kBusy && s->Contains(Key(i + 1))) {
      spilled = i;
    }
  }
  ASSERT_GE(spilled, 0) << "no spilled chunk with a stored successor";
  ASSERT_TRUE(FlipChunkByte(dir.File("spill.log"), spilled));
  std::vector<std::byte> dst(kChunk);
  EXPECT_TRUE(s->Get(Key(spilled), dst).status().IsCorruption());
  for (int i = spilled; i < 24; ++i) EXPECT_FALSE(s->Contains(Key(i))) << Key(i);
  for (int i = 0; i < spilled; ++i) ExpectChunk(*s, i);  // its predecessors are fine
}

TEST(StoreSpillTest, BatchedGetsMixMemoryAndLogInOrder) {
  testing::TempDir dir;
  auto s = OpenStore(WithSpill(dir, 8));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 40; ++i) PutChunk(*s, i);  // 0..23 spilled, 24..39 in DRAM
  std::vector<std::string> keys;
  for (int i = 0; i < 40; i += 3) keys.push_back(Key(i));
  keys.push_back("absent");
  std::vector<std::vector<std::byte>> dst(keys.size(), std::vector<std::byte>(kChunk));
  std::vector<GetRequest> reqs;
  for (std::size_t j = 0; j < keys.size(); ++j) reqs.push_back({keys[j], dst[j], nullptr, j});
  const std::vector<Completion> done = GetAll(*s, reqs);
  ASSERT_EQ(done.size(), reqs.size());
  for (const Completion& c : done) {
    if (c.user_data == keys.size() - 1) {
      EXPECT_TRUE(c.status.IsNotFound());
      continue;
    }
    ASSERT_TRUE(c.status.ok()) << c.status.ToString();
    const int i = static_cast<int>(c.user_data) * 3;
    EXPECT_EQ(testing::FirstPatternMismatch(dst[c.user_data].data(), kChunk, Seed(i)), -1) << i;
  }
  EXPECT_GT(s->Stats().tiers[kSpill].hits, 0u);
}

TEST(StoreSpillTest, ReopenFindsTheSpilledChunks) {
  testing::TempDir dir;
  {
    auto s = OpenStore(WithSpill(dir, 8));
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 40; ++i) PutChunk(*s, i);  // 0..23 spilled
  }
  auto s = OpenStore(WithSpill(dir, 8, /*format=*/false));
  ASSERT_NE(s, nullptr);
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[kSpill].chunks, 24u);
  EXPECT_EQ(st.tiers[kSpill].recovered, 24u);
  for (int i = 0; i < 24; ++i) ExpectChunk(*s, i);
  for (int i = 24; i < 40; ++i) EXPECT_FALSE(s->Contains(Key(i))) << i;  // DRAM is volatile
  // Write once holds across the restart: the recovered chunk is not replaced.
  ASSERT_TRUE(s->Put(Key(5), Bytes(kChunk, 999)).ok());
  ExpectChunk(*s, 5);
}

TEST(StoreSpillTest, SpilledChunksExpireAndRemove) {
  testing::TempDir dir;
  auto now = std::make_shared<std::atomic<std::int64_t>>(0);
  StoreOptions o = WithSpill(dir, 8);
  o.ttl = std::chrono::seconds(10);
  o.clock = [now] { return std::chrono::nanoseconds(now->load()); };
  auto s = OpenStore(std::move(o));
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 24; ++i) PutChunk(*s, i);  // 0..7 spilled, deadline 10 s
  ASSERT_TRUE(s->Remove(Key(1)).ok());
  EXPECT_FALSE(s->Contains(Key(1)));
  ExpectChunk(*s, 2);
  now->store(std::int64_t{10} * 1000000000);
  EXPECT_FALSE(s->Contains(Key(2)));
  s->Maintain();
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.tiers[kSpill].expirations, 7u);  // 0, 2..7
  EXPECT_EQ(st.tiers[0].expirations, 16u);
  EXPECT_EQ(st.tiers[kSpill].chunks, 0u);
}

TEST(StoreSpillTest, BadSpillOptionsAreErrors) {
  testing::TempDir dir;
  StoreOptions o = WithSpill(dir, 8);
  o.spill.eviction = "random";
  EXPECT_TRUE(Store::Open(std::move(o)).status().IsInvalidArgument());
  StoreOptions missing = WithSpill(dir, 8);
  missing.spill.path = dir.File("no/such/dir/spill.log");
  Status st = Store::Open(std::move(missing)).status();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("spill"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace cxlkv
