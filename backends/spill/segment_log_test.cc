#include "backends/spill/segment_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "backends/spill/chunk_record.h"
#include "backends/spill/spill_test_util.h"
#include "tests/test_util.h"

namespace cxlkv::testing {
namespace {

using internal::SegmentEviction;
using internal::spill::ChunkLocation;
using internal::spill::kBlockSize;
using internal::spill::kDataOffset;

std::string Key(int i) { return "vllm@llama-3.1-8b@1@0@" + std::to_string(i); }

std::unique_ptr<SegmentLog> OpenOrDie(const SegmentLogOptions& o,
                                      RecoveredMap* recovered = nullptr) {
  auto log = SegmentLog::Open(o, recovered ? Collect(recovered) : SegmentLog::RecoveryCallback{});
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  return log.ok() ? std::move(log).value() : nullptr;
}

// What a test appended: key and size by location.
struct Appended {
  std::string key;
  std::size_t size = 0;
};

std::uint64_t AppendChunk(SegmentLog& log, const std::string& key, std::size_t size) {
  const auto data = ChunkBytes(key, size);
  const auto meta = MetaFor(key);
  auto loc = log.Append(key, std::span<const std::byte>(data), meta);
  EXPECT_TRUE(loc.ok()) << key << ": " << loc.status().ToString();
  return loc.ok() ? *loc : 0;
}

// Reads the chunk and checks size, bytes and meta; returns the read's status.
Status ReadAndCheck(SegmentLog& log, std::uint64_t location, const std::string& key,
                    std::size_t size) {
  std::vector<std::byte> dst(size + 1);
  std::array<std::byte, 64> meta{};
  ChunkRead r;
  r.location = location;
  r.key = key;
  r.dst = dst;
  r.meta_dst = meta;
  const Status s = log.ReadBatch({&r, 1});
  if (!s.ok()) return s;
  EXPECT_EQ(r.size, size) << key;
  EXPECT_EQ(FirstPatternMismatch(dst.data(), size, SeedOf(key)), -1) << key;
  const auto want_meta = MetaFor(key);
  EXPECT_EQ(r.meta_size, want_meta.size());
  EXPECT_TRUE(std::equal(want_meta.begin(), want_meta.end(), meta.begin())) << key;
  return s;
}

void ExpectRecoveredExactly(const RecoveredMap& recovered,
                            const std::map<std::uint64_t, Appended>& appended) {
  ASSERT_EQ(recovered.size(), appended.size());
  for (const auto& [loc, a] : appended) {
    auto it = recovered.find(loc);
    ASSERT_NE(it, recovered.end()) << a.key;
    EXPECT_EQ(it->second.key, a.key);
    EXPECT_EQ(it->second.size, a.size);
    EXPECT_EQ(it->second.meta, MetaFor(a.key));
  }
}

class SegmentLogModes : public ::testing::TestWithParam<bool> {};

// Sizes around every boundary: empty, one byte, the end of the first block, slot (64 KiB) and
// multi-slot sizes, odd ones; through io_uring and through the synchronous fallback.
TEST_P(SegmentLogModes, AppendReadRoundTripOfManySizes) {
  TempDir dir;
  auto o = SmallLog(dir.File("log"), 64 * kMiB, 4 * kMiB);
  o.use_io_uring = GetParam();
  auto log = OpenOrDie(o);
  ASSERT_NE(log, nullptr);
  const std::size_t sizes[] = {
      0,     1,     7,          4096 - 80 - 30, 4096,         4097,     65535,
      65536, 65537, 128 * kKiB, 128 * kKiB + 1, 2 * kMiB - 1, 2 * kMiB, 3 * kMiB + 17};
  std::map<std::uint64_t, Appended> appended;
  int i = 0;
  for (std::size_t size : sizes) {
    const std::string key = Key(i++);
    appended[AppendChunk(*log, key, size)] = {key, size};
  }
  // Gathered from three parts.
  {
    const std::string key = Key(i++);
    const auto data = ChunkBytes(key, 300000);
    const auto meta = MetaFor(key);
    const iovec parts[] = {{const_cast<std::byte*>(data.data()), 1},
                           {const_cast<std::byte*>(data.data()) + 1, 150000},
                           {const_cast<std::byte*>(data.data()) + 150001, 149999}};
    auto loc = log->Append(key, std::span<const iovec>(parts), meta);
    ASSERT_TRUE(loc.ok()) << loc.status().ToString();
    appended[*loc] = {key, data.size()};
  }
  for (const auto& [loc, a] : appended) {
    EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok()) << a.key << " size " << a.size;
  }
  const auto stats = log->GetStats();
  EXPECT_EQ(stats.chunks_appended, appended.size());
  EXPECT_EQ(stats.chunks_read, appended.size());
  EXPECT_EQ(stats.io_uring, GetParam());
  EXPECT_GE(stats.write_amplification(), 1.0);
  EXPECT_LT(stats.write_amplification(), 1.1) << "records are padded to 4 KiB, no more";
  EXPECT_TRUE(log->Sync().ok());
}

INSTANTIATE_TEST_SUITE_P(Io, SegmentLogModes, ::testing::Values(true, false),
                         [](const auto& param_info) {
                           return param_info.param ? "io_uring" : "sync";
                         });

TEST(SegmentLogTest, ReadBatchGivesEachReadItsOwnStatus) {
  TempDir dir;
  auto log = OpenOrDie(SmallLog(dir.File("log")));
  ASSERT_NE(log, nullptr);
  std::vector<std::uint64_t> locs;
  for (int i = 0; i < 20; ++i) locs.push_back(AppendChunk(*log, Key(i), 10000 + 3000 * i));

  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back(Key(i));
  std::vector<std::vector<std::byte>> bufs(24, std::vector<std::byte>(80000));
  std::vector<ChunkRead> reads(24);
  auto set = [&](int i, std::uint64_t location, std::string_view key) {
    reads[i].location = location;
    reads[i].key = key;
    reads[i].dst = bufs[i];
  };
  for (int i = 0; i < 20; ++i) set(i, locs[i], keys[i]);
  set(7, locs[7], "someone else's key");
  reads[3].dst = std::span(bufs[3]).first(100);             // too small
  set(20, locs[0] + (std::uint64_t{1000} << 40), keys[0]);  // no such segment
  set(21, 0, keys[0]);                                      // block 0 is never a record
  set(22, locs[5], keys[5]);                                // a second read of one chunk
  set(23, locs[6], keys[5]);                                // right place, wrong key

  const Status s = log->ReadBatch(reads);
  EXPECT_FALSE(s.ok());
  for (int i = 0; i < 20; ++i) {
    if (i == 3) {
      EXPECT_TRUE(reads[i].status.IsInvalidArgument()) << reads[i].status.ToString();
    } else if (i == 7) {
      EXPECT_TRUE(reads[i].status.IsCorruption()) << reads[i].status.ToString();
    } else {
      ASSERT_TRUE(reads[i].status.ok()) << i << ": " << reads[i].status.ToString();
      EXPECT_EQ(reads[i].size, 10000u + 3000u * i);
      EXPECT_EQ(FirstPatternMismatch(bufs[i].data(), reads[i].size, SeedOf(keys[i])), -1);
    }
  }
  EXPECT_TRUE(reads[20].status.IsInvalidArgument()) << reads[20].status.ToString();
  EXPECT_TRUE(reads[21].status.IsInvalidArgument()) << reads[21].status.ToString();
  EXPECT_TRUE(reads[22].status.ok());
  EXPECT_TRUE(reads[23].status.IsCorruption()) << reads[23].status.ToString();
  EXPECT_EQ(log->GetStats().read_errors, 5u);
}

// Chunks fill several segments (sealed on the way) and part of one more (unsealed at close);
// a reopen reports exactly what was appended, reads it all back, and appends continue.
TEST(SegmentLogTest, ReopenRebuildsSealedAndUnsealedSegmentsExactly) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"));
  std::map<std::uint64_t, Appended> appended;
  std::uint32_t sealed_before = 0;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 60; ++i) {
      const std::size_t size = 1 + (static_cast<std::size_t>(i) * 7919) % 40000;
      appended[AppendChunk(*log, Key(i), size)] = {Key(i), size};
    }
    const auto st = log->GetStats();
    sealed_before = st.sealed_segments;
    EXPECT_GE(st.sealed_segments, 3u);
    EXPECT_TRUE(st.open_segment);
  }
  {
    RecoveredMap recovered;
    auto log = OpenOrDie(o, &recovered);
    ASSERT_NE(log, nullptr);
    ExpectRecoveredExactly(recovered, appended);
    for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
    const auto st = log->GetStats();
    EXPECT_EQ(st.recovered_chunks, appended.size());
    EXPECT_EQ(st.live_chunks, appended.size());
    // The unsealed segment was scanned and sealed by recovery.
    EXPECT_EQ(st.sealed_segments, sealed_before + 1);
    EXPECT_FALSE(st.open_segment);
    for (int i = 60; i < 70; ++i) appended[AppendChunk(*log, Key(i), 5000)] = {Key(i), 5000};
  }
  {
    RecoveredMap recovered;
    auto log = OpenOrDie(o, &recovered);
    ASSERT_NE(log, nullptr);
    ExpectRecoveredExactly(recovered, appended);
    const std::uint32_t free_before = log->GetStats().free_segments;
    log.reset();
    // A reopen without appends in between uses no segment.
    log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->GetStats().free_segments, free_before);
  }
}

// The chunks of an AppendBatch and the storage its items point into.
struct Batch {
  std::vector<std::string> keys;
  std::vector<std::vector<std::byte>> data, metas;
  std::vector<iovec> parts;
  std::vector<SegmentLog::AppendItem> items;
  // One chunk per (key, size): bytes and meta as AppendChunk makes them.
  explicit Batch(const std::vector<std::pair<std::string, std::size_t>>& chunks) {
    for (const auto& [key, size] : chunks) {
      keys.push_back(key);
      data.push_back(ChunkBytes(key, size));
      metas.push_back(MetaFor(key));
    }
    for (auto& d : data) parts.push_back({d.data(), d.size()});
    items.resize(chunks.size());
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      items[i].key = keys[i];
      items[i].parts = std::span(&parts[i], 1);
      items[i].meta = metas[i];
    }
  }
};

// A batch whose records span several segments (small ones), with bad items among them: every
// good item is readable at its location and comes back on reopen exactly; the bad ones fail
// alone and take no room.
TEST_P(SegmentLogModes, AppendBatchAcrossSegmentsWithBadItems) {
  TempDir dir;
  auto o = SmallLog(dir.File("log"));  // 256 KiB segments
  o.use_io_uring = GetParam();
  std::map<std::uint64_t, Appended> appended;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    constexpr int kItems = 40;
    std::vector<std::pair<std::string, std::size_t>> chunks;
    for (int i = 0; i < kItems; ++i) {
      chunks.emplace_back(i == 7 ? std::string() : i == 23 ? std::string(200, 'k') : Key(i),
                          i == 31 ? 300 * kKiB : 1 + (static_cast<std::size_t>(i) * 7919) % 40000);
    }
    Batch b(chunks);
    auto& items = b.items;
    const Status batch = log->AppendBatch(items);
    EXPECT_TRUE(batch.IsInvalidArgument()) << batch.ToString();  // the first failure
    for (int i = 0; i < kItems; ++i) {
      if (i == 7 || i == 23 || i == 31) {  // empty key, key too long, too big for a segment
        EXPECT_TRUE(items[i].status.IsInvalidArgument())
            << i << ": " << items[i].status.ToString();
        continue;
      }
      ASSERT_TRUE(items[i].status.ok()) << i << ": " << items[i].status.ToString();
      appended[items[i].location] = {b.keys[i], b.data[i].size()};
    }
    EXPECT_EQ(appended.size(), kItems - 3u);
    for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
    const auto st = log->GetStats();
    EXPECT_EQ(st.chunks_appended, appended.size());
    EXPECT_GE(st.sealed_segments, 2u);
    EXPECT_TRUE(log->AppendBatch({}).ok());
  }
  RecoveredMap recovered;
  auto log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  ExpectRecoveredExactly(recovered, appended);
}

// When the segments run out mid-batch, the items before stay stored and readable, the rest get
// NoSpace and store nothing; after an eviction the rest goes in.
TEST(SegmentLogTest, AppendBatchRunningOutOfSegments) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"), kDataOffset + 3 * 256 * kKiB);
  auto log = OpenOrDie(o);
  ASSERT_NE(log, nullptr);
  constexpr int kItems = 40;  // 40 x 24000 B: about 4 segments' worth
  std::vector<std::pair<std::string, std::size_t>> chunks;
  for (int i = 0; i < kItems; ++i) chunks.emplace_back(Key(i), 24000);
  Batch b(chunks);
  auto& items = b.items;
  const auto& keys = b.keys;
  EXPECT_TRUE(log->AppendBatch(items).IsNoSpace());
  int stored = 0;
  while (stored < kItems && items[stored].status.ok()) ++stored;
  ASSERT_GT(stored, 0);
  ASSERT_LT(stored, kItems);
  for (int i = stored; i < kItems; ++i) EXPECT_TRUE(items[i].status.IsNoSpace()) << i;
  for (int i = 0; i < stored; ++i) {
    EXPECT_TRUE(ReadAndCheck(*log, items[i].location, keys[i], 24000).ok()) << i;
  }
  EXPECT_EQ(log->GetStats().chunks_appended, static_cast<std::uint64_t>(stored));
  auto evicted = log->EvictOldestSegment();
  ASSERT_TRUE(evicted.ok());
  std::vector<SegmentLog::AppendItem> rest(items.begin() + stored, items.end());
  const Status again = log->AppendBatch(rest);
  int more = 0;
  while (more < static_cast<int>(rest.size()) && rest[more].status.ok()) ++more;
  EXPECT_GT(more, 0) << again.ToString();
  for (int i = 0; i < more; ++i) {
    EXPECT_TRUE(ReadAndCheck(*log, rest[i].location, keys[stored + i], 24000).ok()) << i;
  }
}

// Corrupting a record's data or header on disk: the read says Corruption, never bytes; the
// other chunks are unaffected, before and after a reopen.
TEST(SegmentLogTest, FlippedByteInDataOrHeaderIsCorruption) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"));
  std::vector<std::uint64_t> locs;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 30; ++i) locs.push_back(AppendChunk(*log, Key(i), 20000));
  }
  ASSERT_TRUE(FlipByte(o.path, RecordOffset(locs[4], o.segment_size) +
                                   internal::spill::kRecordDataOffset + 12345));  // data
  ASSERT_TRUE(FlipByte(o.path, RecordOffset(locs[9], o.segment_size) + 44));   // header: data size
  ASSERT_TRUE(FlipByte(o.path, RecordOffset(locs[12], o.segment_size) + 85));  // key bytes
  ASSERT_TRUE(FlipByte(o.path, RecordOffset(locs[29], o.segment_size) + 9000));  // unsealed
  RecoveredMap recovered;
  auto log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  for (int i = 0; i < 30; ++i) {
    const Status s = ReadAndCheck(*log, locs[i], Key(i), 20000);
    if (i == 4 || i == 9 || i == 12) {
      EXPECT_TRUE(s.IsCorruption()) << i << ": " << s.ToString();
      EXPECT_TRUE(recovered.count(locs[i])) << "listed by its sealed segment's summary";
    } else if (i == 29) {
      // In the unsealed segment the scan verifies every record: the damaged one is left out.
      EXPECT_FALSE(recovered.count(locs[i]));
      EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    } else {
      EXPECT_TRUE(s.ok()) << i << ": " << s.ToString();
    }
  }
}

// A damaged summary is not trusted: recovery scans that segment's records instead and still
// finds every chunk.
TEST(SegmentLogTest, FlippedByteInSummaryFallsBackToScanning) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"));
  std::map<std::uint64_t, Appended> appended;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 40; ++i) appended[AppendChunk(*log, Key(i), 15000)] = {Key(i), 15000};
    ASSERT_GE(log->GetStats().sealed_segments, 1u);
  }
  // Segment 0 is sealed: find its summary through its trailer and damage an entry.
  const std::uint64_t seg0_end = kDataOffset + o.segment_size;
  const auto trailer_block = ReadAt(o.path, seg0_end - kBlockSize, kBlockSize);
  auto trailer = internal::spill::DecodeSegmentTrailer(trailer_block);
  ASSERT_TRUE(trailer.ok()) << trailer.status().ToString();
  ASSERT_TRUE(FlipByte(o.path, kDataOffset + trailer->summary_offset + 40));
  RecoveredMap recovered;
  auto log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  ExpectRecoveredExactly(recovered, appended);
  for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
}

// A crash that cut the file inside the last record: recovery keeps every whole chunk before
// the cut, drops the cut one, and appends continue after it.
TEST(SegmentLogTest, TruncatedLastSegmentIsCutAtTheLastWholeChunk) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"));
  std::map<std::uint64_t, Appended> appended;
  std::uint64_t last = 0;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 25; ++i) {
      last = AppendChunk(*log, Key(i), 30000);
      appended[last] = {Key(i), 30000};
    }
  }
  ASSERT_EQ(
      truncate(o.path.c_str(), static_cast<off_t>(RecordOffset(last, o.segment_size) + 10000)), 0);
  const Appended cut = appended[last];
  appended.erase(last);
  RecoveredMap recovered;
  auto log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  ExpectRecoveredExactly(recovered, appended);
  for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
  EXPECT_FALSE(ReadAndCheck(*log, last, cut.key, cut.size).ok());
  const std::uint64_t again = AppendChunk(*log, "after-the-cut", 30000);
  EXPECT_TRUE(ReadAndCheck(*log, again, "after-the-cut", 30000).ok());
}

// Fill the log, evict the oldest segment: the eviction returns exactly the chunks appended
// into it, their reads fail with NotFound, appends succeed again, and a reopen forgets them.
TEST(SegmentLogTest, EvictOldestSegmentReturnsExactlyItsChunks) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"), kDataOffset + 6 * 256 * kKiB);
  auto log = OpenOrDie(o);
  ASSERT_NE(log, nullptr);
  ASSERT_EQ(log->GetStats().segments, 6u);
  std::map<std::uint64_t, Appended> appended;
  std::map<std::uint32_t, std::set<std::uint64_t>> by_segment;
  int i = 0;
  for (;; ++i) {
    const std::string key = Key(i);
    const auto data = ChunkBytes(key, 24000);
    auto loc = log->Append(key, std::span<const std::byte>(data), MetaFor(key));
    if (!loc.ok()) {
      EXPECT_TRUE(loc.status().IsNoSpace()) << loc.status().ToString();
      break;
    }
    appended[*loc] = {key, data.size()};
    by_segment[SegmentLog::SegmentOf(*loc)].insert(*loc);
  }
  ASSERT_EQ(by_segment.size(), 6u);
  const auto first_segment = SegmentLog::SegmentOf(appended.begin()->first);
  ASSERT_EQ(log->OldestSegment(), first_segment);
  auto listed = log->SegmentChunks(first_segment);
  ASSERT_TRUE(listed.ok());
  auto evicted = log->EvictOldestSegment();
  ASSERT_TRUE(evicted.ok()) << evicted.status().ToString();
  ASSERT_EQ(evicted->size(), listed->size());
  std::set<std::uint64_t> got;
  for (const SegmentChunk& c : *evicted) {
    got.insert(c.location);
    EXPECT_EQ(c.key_hash, internal::HashKey(appended[c.location].key));
    EXPECT_EQ(c.size, 24000u);
  }
  EXPECT_EQ(got, by_segment[first_segment]);
  for (std::uint64_t loc : got) {
    EXPECT_TRUE(ReadAndCheck(*log, loc, appended[loc].key, 24000).IsNotFound());
    appended.erase(loc);
  }
  EXPECT_TRUE(log->SegmentChunks(first_segment).status().IsNotFound());
  EXPECT_TRUE(log->EvictSegment(first_segment).status().IsNotFound());
  // Room again.
  const std::string key = "after-eviction";
  const std::uint64_t loc = AppendChunk(*log, key, 24000);
  EXPECT_EQ(SegmentLog::SegmentOf(loc), first_segment);
  appended[loc] = {key, 24000};
  for (const auto& [l, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, l, a.key, a.size).ok());
  EXPECT_EQ(log->GetStats().segments_evicted, 1u);
  log.reset();
  RecoveredMap recovered;
  log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  ExpectRecoveredExactly(recovered, appended);
}

TEST(SegmentLogTest, LruEvictionSparesTouchedAndReadSegments) {
  TempDir dir;
  auto o = SmallLog(dir.File("log"), kDataOffset + 4 * 256 * kKiB);
  o.eviction = SegmentEviction::kLru;
  auto log = OpenOrDie(o);
  ASSERT_NE(log, nullptr);
  std::vector<std::pair<std::uint64_t, std::string>> first_of_segment;
  for (int i = 0;; ++i) {
    const auto data = ChunkBytes(Key(i), 50000);
    auto loc = log->Append(Key(i), std::span<const std::byte>(data));
    if (!loc.ok()) break;
    if (first_of_segment.size() <= SegmentLog::SegmentOf(*loc)) {
      first_of_segment.emplace_back(*loc, Key(i));
    }
  }
  ASSERT_EQ(first_of_segment.size(), 4u);
  EXPECT_EQ(log->OldestSegment(), 0u);
  log->Touch(first_of_segment[0].first);  // segment 0 is now the most recently used
  EXPECT_EQ(log->OldestSegment(), 1u);
  std::vector<std::byte> buf(50000);
  ASSERT_TRUE(log->Read(first_of_segment[1].first, "wrong key", buf).status().IsCorruption());
  EXPECT_EQ(log->OldestSegment(), 1u) << "a failed read does not count as use";
  ASSERT_TRUE(log->Read(first_of_segment[1].first, first_of_segment[1].second, buf).ok());
  EXPECT_EQ(log->OldestSegment(), 2u) << "a read does";
  auto evicted = log->EvictOldestSegment();
  ASSERT_TRUE(evicted.ok());
  EXPECT_EQ(SegmentLog::SegmentOf(evicted->front().location), 2u);
}

// A small tmpfs fills up: the append that finds no space gets NoSpace, and every chunk stored
// before it still reads back, also after a reopen; evicting makes room again.
TEST(SegmentLogTest, FullFileSystemGivesNoSpaceAndLosesNothing) {
  ScratchMount fs("tmpfs", "size=2m");
  if (!fs.ok()) GTEST_SKIP() << "needs a small file system: " << fs.error();
  auto o = SmallLog(fs.File("log"), 64 * kMiB, 256 * kKiB);
  std::map<std::uint64_t, Appended> appended;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    Status last;
    for (int i = 0; i < 1000; ++i) {
      const auto data = ChunkBytes(Key(i), 30000);
      auto loc = log->Append(Key(i), std::span<const std::byte>(data), MetaFor(Key(i)));
      if (!loc.ok()) {
        last = loc.status();
        break;
      }
      appended[*loc] = {Key(i), 30000};
    }
    ASSERT_TRUE(last.IsNoSpace()) << last.ToString();
    EXPECT_GT(appended.size(), 20u);
    EXPECT_LT(log->GetStats().segments - log->GetStats().free_segments, 10u);
    for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
    // Still NoSpace, and still nothing lost.
    EXPECT_TRUE(log->Append("one-more", std::span<const std::byte>(ChunkBytes("x", 30000)))
                    .status()
                    .IsNoSpace());
    auto evicted = log->EvictOldestSegment();
    ASSERT_TRUE(evicted.ok()) << evicted.status().ToString();
    for (const SegmentChunk& c : *evicted) appended.erase(c.location);
    const std::uint64_t loc = AppendChunk(*log, "after-eviction", 30000);
    appended[loc] = {"after-eviction", 30000};
  }
  RecoveredMap recovered;
  auto log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  ExpectRecoveredExactly(recovered, appended);
  for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
}

// Where the file system refuses O_DIRECT, the log runs on buffered I/O (and says so once).
TEST(SegmentLogTest, BufferedFallbackWhereODirectIsRefused) {
  // tmpfs took O_DIRECT in Linux 6.6; ramfs never does.
  std::string path;
  std::unique_ptr<ScratchMount> ramfs;
  {
    const std::string shm = "/dev/shm/cxlkv-odirect-probe-" + std::to_string(getpid());
    const int fd = open(shm.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
    const bool shm_refuses = fd < 0 && errno == EINVAL;
    if (fd >= 0) close(fd);
    unlink(shm.c_str());
    if (shm_refuses) {
      path = shm;
    } else {
      ramfs = std::make_unique<ScratchMount>("ramfs", "");
      if (!ramfs->ok()) {
        GTEST_SKIP() << "no file system here refuses O_DIRECT (/dev/shm accepts it; "
                     << ramfs->error() << ")";
      }
      path = ramfs->File("log");
    }
  }
  std::map<std::uint64_t, Appended> appended;
  {
    auto log = OpenOrDie(SmallLog(path));
    ASSERT_NE(log, nullptr);
    EXPECT_FALSE(log->GetStats().direct_io);
    for (int i = 0; i < 30; ++i) {
      const std::size_t size = 6999 * static_cast<std::size_t>(i + 1) + 1;
      appended[AppendChunk(*log, Key(i), size)] = {Key(i), size};
    }
    for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
    EXPECT_TRUE(log->Sync().ok());
  }
  RecoveredMap recovered;
  auto log = OpenOrDie(SmallLog(path), &recovered);
  ASSERT_NE(log, nullptr);
  ExpectRecoveredExactly(recovered, appended);
  if (!ramfs) unlink(path.c_str());
}

// A raw block device without a file system: a loop device over a zeroed file.
TEST(SegmentLogTest, RawBlockDeviceThroughALoopDevice) {
  TempDir dir;
  const std::string backing = dir.File("disk.img");
  {
    const int fd = open(backing.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(8 * kMiB)), 0);
    close(fd);
  }
  LoopDevice loop(backing);
  if (!loop.ok())
    GTEST_SKIP() << "no loop device (needs root and /dev/loop-control): " << loop.error();
  SegmentLogOptions o = SmallLog(loop.path(), 0, 512 * kKiB);  // capacity: the device's size
  std::map<std::uint64_t, Appended> appended;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    const auto st = log->GetStats();
    EXPECT_EQ(st.capacity, 8 * kMiB);
    EXPECT_EQ(st.segments, (8 * kMiB - kDataOffset) / (512 * kKiB));
    EXPECT_TRUE(st.direct_io);
    for (int i = 0; i < 40; ++i)
      appended[AppendChunk(*log, Key(i), 33333 + i)] = {Key(i), 33333u + i};
    for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
    // O_EXCL: a second log on the same device is refused while this one is open.
    EXPECT_FALSE(SegmentLog::Open(o).ok());
    EXPECT_TRUE(log->Sync().ok());
  }
  RecoveredMap recovered;
  auto log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  ExpectRecoveredExactly(recovered, appended);
  for (const auto& [loc, a] : appended) EXPECT_TRUE(ReadAndCheck(*log, loc, a.key, a.size).ok());
}

TEST(SegmentLogTest, RefusesForeignContentUnlessFormatting) {
  TempDir dir;
  const std::string path = dir.File("not-a-log");
  {
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    std::vector<char> junk(16384, 'x');
    ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    close(fd);
  }
  auto o = SmallLog(path);
  auto refused = SegmentLog::Open(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsCorruption()) << refused.status().ToString();
  o.format = true;
  auto log = OpenOrDie(o);
  ASSERT_NE(log, nullptr);
  const std::uint64_t loc = AppendChunk(*log, "k", 100);
  EXPECT_TRUE(ReadAndCheck(*log, loc, "k", 100).ok());
}

TEST(SegmentLogTest, OptionsAreChecked) {
  TempDir dir;
  auto o = SmallLog(dir.File("log"));
  o.capacity = 0;
  EXPECT_TRUE(SegmentLog::Open(o).status().IsInvalidArgument()) << "a new file needs a capacity";
  o = SmallLog(dir.File("log"));
  o.segment_size = 100000;
  EXPECT_TRUE(SegmentLog::Open(o).status().IsInvalidArgument());
  o = SmallLog(dir.File("log"));
  o.queue_depth = 1;
  EXPECT_TRUE(SegmentLog::Open(o).status().IsInvalidArgument());
  o = SmallLog(dir.File("log"));
  o.io_size = 5000;
  EXPECT_TRUE(SegmentLog::Open(o).status().IsInvalidArgument());

  o = SmallLog(dir.File("log"));
  { ASSERT_NE(OpenOrDie(o), nullptr); }
  auto other = o;
  other.segment_size = 512 * kKiB;
  EXPECT_TRUE(SegmentLog::Open(other).status().IsInvalidArgument());
  other = o;
  other.capacity = 32 * kMiB;
  EXPECT_TRUE(SegmentLog::Open(other).status().IsInvalidArgument());
  other = o;
  other.capacity = 0;
  other.segment_size = 0;
  EXPECT_NE(OpenOrDie(other), nullptr) << "0 means: as recorded";
}

TEST(SegmentLogTest, AppendChecksItsArguments) {
  TempDir dir;
  auto log = OpenOrDie(SmallLog(dir.File("log")));
  ASSERT_NE(log, nullptr);
  const auto data = ChunkBytes("k", 1000);
  EXPECT_TRUE(log->Append("", std::span<const std::byte>(data)).status().IsInvalidArgument());
  EXPECT_TRUE(log->Append(std::string(151, 'k'), std::span<const std::byte>(data))
                  .status()
                  .IsInvalidArgument());
  const std::vector<std::byte> meta(65);
  EXPECT_TRUE(
      log->Append("k", std::span<const std::byte>(data), meta).status().IsInvalidArgument());
  const std::uint64_t max = log->MaxChunkSize(1, 0);
  EXPECT_GT(max, 200 * kKiB);
  EXPECT_LT(max, 256 * kKiB);
  const auto big = ChunkBytes("k", max + 1);
  EXPECT_TRUE(log->Append("k", std::span<const std::byte>(big)).status().IsInvalidArgument());
  const auto fits = ChunkBytes("k", max);
  auto loc = log->Append("k", std::span<const std::byte>(fits));
  ASSERT_TRUE(loc.ok()) << loc.status().ToString();
  std::vector<std::byte> dst(max);
  auto n = log->Read(*loc, "k", dst);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, max);
}

// One superblock copy damaged: the other one opens the log.
TEST(SegmentLogTest, DamagedSuperblockCopyIsSurvived) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"));
  std::map<std::uint64_t, Appended> appended;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 10; ++i) appended[AppendChunk(*log, Key(i), 7000)] = {Key(i), 7000};
  }
  { ASSERT_NE(OpenOrDie(o), nullptr); }  // now both copies hold a superblock
  for (std::uint64_t copy : {0u, 1u}) {
    ASSERT_TRUE(FlipByte(o.path, copy * kBlockSize + 20));
    RecoveredMap recovered;
    auto log = OpenOrDie(o, &recovered);
    ASSERT_NE(log, nullptr);
    ExpectRecoveredExactly(recovered, appended);
  }
}

}  // namespace
}  // namespace cxlkv::testing
