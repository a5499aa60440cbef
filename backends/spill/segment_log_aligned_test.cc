// Format version 2's block-aligned records: block-aligned sources go to the device straight
// from their memory (and what the kernel refuses to take from there is staged instead), a torn
// data write under a valid header is found by the payload checksum, and a version 1 log is
// refused with a message naming both versions.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/spill/chunk_record.h"
#include "backends/spill/segment_log.h"
#include "backends/spill/spill_test_util.h"
#include "tests/test_util.h"

namespace cxlkv::testing {
namespace {

namespace sp = internal::spill;
using internal::ChunkRead;

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte[], FreeDeleter>;

// `size` bytes of the key's pattern at a 4 KiB-aligned address plus `shift`.
AlignedBuffer PatternAt(std::string_view key, std::size_t size, std::size_t shift = 0) {
  void* p = std::aligned_alloc(sp::kBlockSize, sp::RoundUpToBlock(size + shift + 1));
  EXPECT_NE(p, nullptr);
  auto* b = static_cast<std::byte*>(p);
  FillPattern(b + shift, size, SeedOf(key));
  return AlignedBuffer(b);
}

std::unique_ptr<SegmentLog> OpenOrDie(const SegmentLogOptions& o,
                                      RecoveredMap* recovered = nullptr) {
  auto log = SegmentLog::Open(o, recovered ? Collect(recovered) : SegmentLog::RecoveryCallback{});
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  return log.ok() ? std::move(log).value() : nullptr;
}

// Reads into a block-aligned destination (so whole blocks are read straight into it) and
// checks bytes and size, and that nothing was written past the destination's end.
Status ReadAndCheck(SegmentLog& log, std::uint64_t location, const std::string& key,
                    std::size_t size) {
  const std::size_t room = sp::RoundUpToBlock(size + 1) + sp::kBlockSize;
  AlignedBuffer dst(static_cast<std::byte*>(std::aligned_alloc(sp::kBlockSize, room)));
  std::memset(dst.get(), 0xee, room);
  auto n = log.Read(location, key, std::span<std::byte>(dst.get(), size + 1));
  for (std::size_t b = size + 1; b < room; ++b) {
    if (dst[b] != std::byte{0xee}) {
      ADD_FAILURE() << key << ": byte " << b << " written past the destination";
      break;
    }
  }
  if (!n.ok()) return n.status();
  EXPECT_EQ(*n, size) << key;
  EXPECT_EQ(FirstPatternMismatch(dst.get(), size, SeedOf(key)), -1) << key;
  return Status::Ok();
}

// Location -> key and size of what a test appended.
using Appended = std::map<std::uint64_t, std::pair<std::string, std::size_t>>;

// Reopens the log: recovery finds every appended record (with its MetaFor meta, if asked) and
// each reads back.
void ExpectRecoveredAndReadable(const SegmentLogOptions& o, const Appended& appended,
                                bool with_meta) {
  RecoveredMap recovered;
  auto log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  ASSERT_EQ(recovered.size(), appended.size());
  for (const auto& [loc, a] : appended) {
    ASSERT_TRUE(recovered.count(loc)) << a.first;
    EXPECT_EQ(recovered[loc].key, a.first);
    if (with_meta) {
      EXPECT_EQ(recovered[loc].meta, MetaFor(a.first));
    }
    EXPECT_TRUE(ReadAndCheck(*log, loc, a.first, a.second).ok()) << a.first;
  }
}

// One AppendItem per key, each of one part.
std::vector<SegmentLog::AppendItem> BatchOf(const std::vector<std::string>& keys,
                                            const std::vector<iovec>& parts) {
  std::vector<SegmentLog::AppendItem> items(keys.size());
  for (std::size_t k = 0; k < keys.size(); ++k) {
    items[k].key = keys[k];
    items[k].parts = std::span(&parts[k], 1);
  }
  return items;
}

class AlignedAppend : public ::testing::TestWithParam<bool> {};

// Aligned whole-block chunks, aligned chunks with an unaligned tail, gathers whose parts are
// aligned, misaligned, or aligned only from a later block: all read back and recover exactly,
// and the aligned blocks (only those) were written from the caller's memory. Without write
// units (write_unit 0), so that exactly those blocks are: with them, the units two records
// share are copied too (io_channel_test.cc; the next test reads such a log back).
TEST_P(AlignedAppend, AlignedRunsAreWrittenFromTheSourceAndReadBack) {
  TempDir dir;
  auto o = SmallLog(dir.File("log"), 64 * kMiB, 4 * kMiB);
  o.use_io_uring = GetParam();
  o.write_unit = 0;
  Appended appended;
  std::uint64_t direct_expected = 0;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    int i = 0;
    // (size, address shift from a block boundary, bytes expected to go direct)
    const std::array<std::array<std::size_t, 3>, 7> cases = {{
        {4096, 0, 4096},
        {128 * kKiB, 0, 128 * kKiB},
        {2 * kMiB, 0, 2 * kMiB},
        {2 * kMiB + 100, 0, 2 * kMiB},  // the 100-byte tail through staging
        {3000, 0, 0},                   // less than a block
        {128 * kKiB, 16, 0},            // misaligned throughout
        {0, 0, 0},
    }};
    for (const auto& [size, shift, direct] : cases) {
      const std::string key = "aligned/" + std::to_string(i++);
      auto src = PatternAt(key, size, shift);
      auto loc = log->Append(key, std::span<const std::byte>(src.get() + shift, size),
                             MetaFor(key));
      ASSERT_TRUE(loc.ok()) << key << ": " << loc.status().ToString();
      appended[*loc] = {key, size};
      direct_expected += direct;
    }
    // A gather: 100 bytes (staged), then 8092 bytes at an address in phase with their record
    // offset modulo a block (3996 staged up to the block boundary, then one block direct),
    // then an aligned 64 KiB part, at a block boundary of the record again (direct).
    {
      const std::string key = "aligned/gather";
      const std::size_t size = 100 + 8092 + 64 * kKiB;
      auto whole = PatternAt(key, size);
      std::vector<std::byte> bytes(whole.get(), whole.get() + size);
      auto a = PatternAt("", 100);
      std::memcpy(a.get(), bytes.data(), 100);
      // Part b at an address congruent to its record offset (4096 + 100) modulo 4 KiB.
      auto b_mem = PatternAt("", 8092 + 200);
      std::memcpy(b_mem.get() + 100, bytes.data() + 100, 8092);
      auto c = PatternAt("", 64 * kKiB);
      std::memcpy(c.get(), bytes.data() + 8192, 64 * kKiB);
      const iovec parts[] = {{a.get(), 100}, {b_mem.get() + 100, 8092}, {c.get(), 64 * kKiB}};
      auto loc = log->Append(key, std::span<const iovec>(parts), MetaFor(key));
      ASSERT_TRUE(loc.ok()) << loc.status().ToString();
      appended[*loc] = {key, size};
      direct_expected += 4096 + 64 * kKiB;
    }
    // Batched, as demotion appends from slab slots.
    std::vector<AlignedBuffer> sources;
    std::vector<iovec> parts;
    std::vector<std::string> keys;
    std::vector<std::vector<std::byte>> metas;
    for (int k = 0; k < 6; ++k) {
      keys.push_back("aligned/batch/" + std::to_string(k));
      sources.push_back(PatternAt(keys.back(), 256 * kKiB));
      metas.push_back(MetaFor(keys.back()));
    }
    for (int k = 0; k < 6; ++k) parts.push_back({sources[k].get(), 256 * kKiB});
    std::vector<SegmentLog::AppendItem> items(6);
    for (int k = 0; k < 6; ++k) {
      items[k].key = keys[k];
      items[k].parts = std::span(&parts[k], 1);
      items[k].meta = metas[k];
    }
    ASSERT_TRUE(log->AppendBatch(items).ok());
    for (int k = 0; k < 6; ++k) appended[items[k].location] = {keys[k], 256 * kKiB};
    direct_expected += 6 * 256 * kKiB;

    for (const auto& [loc, a] : appended) {
      EXPECT_TRUE(ReadAndCheck(*log, loc, a.first, a.second).ok()) << a.first;
    }
    const auto st = log->GetStats();
    EXPECT_EQ(st.direct_bytes_written, direct_expected);
    EXPECT_EQ(st.direct_fallbacks, 0u);
    EXPECT_LT(st.write_amplification(), 1.05);
  }
  ExpectRecoveredAndReadable(o, appended, /*with_meta=*/true);
}

// With write units (64 KiB, the default), batches and single appends of chunks from one block
// to past a write's 2 MiB, some ending inside a block, some inside a unit, one batch filling
// more than the slots hold in header blocks: every record reads back and recovers, and most
// bytes still went from the caller's memory.
TEST_P(AlignedAppend, WriteUnitsKeepEveryRecordReadableAndRecoverable) {
  TempDir dir;
  auto o = SmallLog(dir.File("log"), 64 * kMiB, 4 * kMiB);
  o.use_io_uring = GetParam();
  ASSERT_EQ(o.write_unit, 64 * kKiB);
  Appended appended;
  std::uint64_t total = 0;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    const std::size_t sizes[] = {4096,       100 * kKiB + 4096, 2 * kMiB + 100, 60 * kKiB,
                                 128 * kKiB, 8192,              3 * kMiB,       64 * kKiB + 1};
    std::vector<AlignedBuffer> sources;
    std::vector<iovec> parts;
    std::vector<std::string> keys;
    for (int round = 0; round < 3; ++round) {
      const std::size_t n = round == 2 ? 40 : std::size(sizes);  // 40: more than the slots
      sources.clear();
      parts.clear();
      keys.clear();
      for (std::size_t k = 0; k < n; ++k) {
        keys.push_back("unit/" + std::to_string(round) + "/" + std::to_string(k));
        const std::size_t size = round == 2 ? 4096 * (1 + k % 3) : sizes[k];
        sources.push_back(PatternAt(keys.back(), size));
        parts.push_back({sources.back().get(), size});
      }
      if (round == 1) {  // one at a time
        for (std::size_t k = 0; k < n; ++k) {
          auto loc = log->Append(keys[k], std::span<const iovec>(&parts[k], 1));
          ASSERT_TRUE(loc.ok()) << keys[k] << ": " << loc.status().ToString();
          appended[*loc] = {keys[k], parts[k].iov_len};
          total += parts[k].iov_len;
        }
        continue;
      }
      std::vector<SegmentLog::AppendItem> items = BatchOf(keys, parts);
      ASSERT_TRUE(log->AppendBatch(items).ok());
      for (std::size_t k = 0; k < n; ++k) {
        appended[items[k].location] = {keys[k], parts[k].iov_len};
        total += parts[k].iov_len;
      }
    }
    for (const auto& [loc, a] : appended) {
      EXPECT_TRUE(ReadAndCheck(*log, loc, a.first, a.second).ok()) << a.first;
    }
    const auto st = log->GetStats();
    if (st.direct_io) {
      EXPECT_GT(st.direct_bytes_written, total / 2);
      EXPECT_LT(st.direct_bytes_written, total);
    }
    EXPECT_EQ(st.direct_fallbacks, 0u);
  }
  ExpectRecoveredAndReadable(o, appended, /*with_meta=*/false);
}

// Many tiny records in one batch through few slots (queue depth 5: the run holds each record's
// header block in a slot until the unit it lies in goes out, and a unit holds up to eight of
// them): every record still goes out and reads back.
TEST_P(AlignedAppend, TinyRecordsThroughFewSlotsAllGoOut) {
  TempDir dir;
  auto o = SmallLog(dir.File("log"), 64 * kMiB, 4 * kMiB);
  o.use_io_uring = GetParam();
  o.queue_depth = 5;
  auto log = OpenOrDie(o);
  ASSERT_NE(log, nullptr);
  constexpr std::size_t kCount = 300;
  std::vector<AlignedBuffer> sources;
  std::vector<iovec> parts;
  std::vector<std::string> keys;
  for (std::size_t k = 0; k < kCount; ++k) {
    keys.push_back("tiny/" + std::to_string(k));
    const std::size_t size = k % 3 == 0 ? 4096 : k % 3 == 1 ? 4096 + 1 : 8192;
    sources.push_back(PatternAt(keys.back(), size));
    parts.push_back({sources.back().get(), size});
  }
  std::vector<SegmentLog::AppendItem> items = BatchOf(keys, parts);
  ASSERT_TRUE(log->AppendBatch(items).ok());
  for (std::size_t k = 0; k < kCount; ++k) {
    EXPECT_TRUE(ReadAndCheck(*log, items[k].location, keys[k], parts[k].iov_len).ok()) << k;
  }
}

// One batch of many more reads than the log has slots, mixing reads in one piece (a block-aligned
// destination with room for the record's padded data, which PipelinedRead may hand over ahead
// of older reads) with reads in many pieces through the slots (an unaligned destination, handed
// over piece by piece through the one hasher). Every read gets its own bytes, size and meta,
// round after round, in whatever order the device completes them (io_channel_test.cc forces
// the orders that matter), and under caps on the bytes at the device (read_bytes_in_flight):
// none, 4 KiB (every piece alone), 200 KiB (a few pieces).
TEST_P(AlignedAppend, ManyMixedReadsInOneBatchEachGetTheirOwnRecord) {
  TempDir dir;
  SegmentLogOptions o = SmallLog(dir.File("log"), 32 * kMiB);
  o.use_io_uring = GetParam();
  auto log = OpenOrDie(o);
  ASSERT_NE(log, nullptr);
  constexpr int kChunks = 64;
  std::vector<std::string> keys;
  std::vector<std::size_t> sizes;
  std::vector<std::uint64_t> locs;
  for (int i = 0; i < kChunks; ++i) {
    keys.push_back("overtake-" + std::to_string(i));
    sizes.push_back(i % 3 == 0 ? 150 * kKiB + 123 * i : 8 * kKiB * (1 + i % 5) + 17 * i);
    AlignedBuffer src = PatternAt(keys.back(), sizes.back());
    const auto meta = MetaFor(keys.back());
    auto loc = log->Append(keys.back(), std::span<const std::byte>(src.get(), sizes.back()), meta);
    ASSERT_TRUE(loc.ok()) << loc.status().ToString();
    locs.push_back(*loc);
  }
  ASSERT_LT(o.queue_depth, static_cast<unsigned>(kChunks));
  for (int round = 0; round < 6; ++round) {
    const std::uint64_t cap = std::array<std::uint64_t, 3>{0, 4 * kKiB, 200 * kKiB}[round % 3];
    log->SetReadBytesInFlight(cap);
    ASSERT_EQ(log->GetStats().read_bytes_in_flight, cap);
    std::vector<AlignedBuffer> dsts;
    std::vector<std::array<std::byte, 64>> metas(kChunks);
    std::vector<ChunkRead> reads(kChunks);
    for (int i = 0; i < kChunks; ++i) {
      const bool one_piece = (i + round) % 2 == 0;
      const std::size_t room = sp::RoundUpToBlock(sizes[i]) + sp::kBlockSize;
      dsts.push_back(AlignedBuffer(static_cast<std::byte*>(std::aligned_alloc(sp::kBlockSize, room))));
      std::memset(dsts.back().get(), 0xee, room);
      reads[i].location = locs[i];
      reads[i].key = keys[i];
      // One piece: the whole padded data fits. In pieces: one byte off the alignment.
      reads[i].dst = one_piece ? std::span<std::byte>(dsts.back().get(), room - sp::kBlockSize)
                               : std::span<std::byte>(dsts.back().get() + 1, sizes[i]);
      reads[i].meta_dst = metas[i];
    }
    ASSERT_TRUE(log->ReadBatch(reads).ok());
    for (int i = 0; i < kChunks; ++i) {
      ASSERT_TRUE(reads[i].status.ok()) << keys[i] << ": " << reads[i].status.ToString();
      EXPECT_EQ(reads[i].size, sizes[i]) << keys[i];
      EXPECT_EQ(FirstPatternMismatch(reads[i].dst.data(), sizes[i], SeedOf(keys[i])), -1)
          << keys[i] << " in round " << round << ", cap " << cap;
      const auto meta = MetaFor(keys[i]);
      ASSERT_EQ(reads[i].meta_size, meta.size());
      EXPECT_EQ(std::memcmp(metas[i].data(), meta.data(), meta.size()), 0) << keys[i];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Io, AlignedAppend, ::testing::Values(true, false),
                         [](const auto& param_info) {
                           return param_info.param ? "io_uring" : "sync";
                         });

// The record's layout on the device: header, key and meta in its first block, the data from
// the next block on, block-padded.
TEST(AlignedRecordTest, DataStartsOnTheBlockAfterTheHeader) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"));
  const std::string key = "layout";
  auto src = PatternAt(key, 10000);
  std::uint64_t loc = 0;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    auto got = log->Append(key, std::span<const std::byte>(src.get(), 10000), MetaFor(key));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    loc = *got;
  }
  EXPECT_EQ(sp::ChunkLocation::Unpack(loc).blocks, 1 + 3u);
  const auto record = ReadAt(o.path, RecordOffset(loc, o.segment_size), 4 * sp::kBlockSize);
  ASSERT_EQ(record.size(), 4 * sp::kBlockSize);
  auto h = sp::DecodeRecordHeader(record);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->data_size, 10000u);
  EXPECT_EQ(std::memcmp(record.data() + sp::RecordHeader::kEncodedSize, key.data(), key.size()),
            0);
  EXPECT_EQ(std::memcmp(record.data() + sp::kRecordDataOffset, src.get(), 10000), 0);
  for (std::size_t b = sp::kRecordDataOffset + 10000; b < record.size(); ++b) {
    ASSERT_EQ(record[b], std::byte{0}) << "padding at " << b;
  }
}

// Zeroes `len` bytes of a file at `offset`: what a write that never reached the device leaves
// on a fresh (fallocated) file.
bool ZeroAt(const std::string& path, std::uint64_t offset, std::size_t len) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  const std::vector<std::byte> zeros(len);
  const bool ok = pwrite(fd, zeros.data(), len, static_cast<off_t>(offset)) ==
                  static_cast<ssize_t>(len);
  return close(fd) == 0 && ok;
}

// A crash between a record's data writes and its header write can leave a valid header over
// data that never arrived (writes in flight complete in any order). Such a record is found by
// its payload checksum: its read is Corruption and recovery's scan leaves it out, in a sealed
// segment (listed from the summary, read fails) and in the unsealed one.
TEST(AlignedRecordTest, TornDataUnderAValidHeaderIsDetected) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"), 16 * kMiB, 1 * kMiB);
  std::vector<std::uint64_t> locs;
  std::vector<std::string> keys;
  {
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 12; ++i) {
      keys.push_back("torn/" + std::to_string(i));
      auto src = PatternAt(keys.back(), 128 * kKiB);
      auto loc = log->Append(keys.back(), std::span<const std::byte>(src.get(), 128 * kKiB));
      ASSERT_TRUE(loc.ok()) << loc.status().ToString();
      locs.push_back(*loc);
    }
    ASSERT_GE(log->GetStats().sealed_segments, 1u);
    ASSERT_TRUE(log->GetStats().open_segment);
  }
  const std::size_t sealed = 1, unsealed = locs.size() - 1;
  ASSERT_EQ(sp::ChunkLocation::Unpack(locs[sealed]).segment, 0u);
  ASSERT_NE(sp::ChunkLocation::Unpack(locs[unsealed]).segment, 0u);
  for (std::size_t i : {sealed, unsealed}) {
    const std::uint64_t record = RecordOffset(locs[i], o.segment_size);
    // One data block lost, the header intact.
    ASSERT_TRUE(ZeroAt(o.path, record + sp::kRecordDataOffset + 7 * sp::kBlockSize,
                       sp::kBlockSize));
    const auto header = ReadAt(o.path, record, sp::kBlockSize);
    ASSERT_TRUE(sp::DecodeRecordHeader(header).ok()) << "the header must still be valid";
  }
  RecoveredMap recovered;
  auto log = OpenOrDie(o, &recovered);
  ASSERT_NE(log, nullptr);
  for (std::size_t i = 0; i < locs.size(); ++i) {
    const Status s = ReadAndCheck(*log, locs[i], keys[i], 128 * kKiB);
    if (i == sealed || i == unsealed) {
      EXPECT_TRUE(s.IsCorruption()) << i << ": " << s.ToString();
    } else {
      EXPECT_TRUE(s.ok()) << i << ": " << s.ToString();
      EXPECT_TRUE(recovered.count(locs[i])) << i;
    }
  }
  EXPECT_TRUE(recovered.count(locs[sealed])) << "listed by its sealed segment's summary";
  EXPECT_FALSE(recovered.count(locs[unsealed])) << "the scan verifies the payload checksum";
}

// Memory the kernel will not pin for O_DIRECT (memfd_secret pages: GUP refuses them with
// EFAULT, as it may a devdax or file-backed mapping): the write is staged instead, counted,
// and the chunk is stored whole.
TEST(AlignedRecordTest, SourceTheKernelCannotPinIsStagedInstead) {
#ifdef SYS_memfd_secret
  const long fd = syscall(SYS_memfd_secret, 0);
#else
  const long fd = -1;
  errno = ENOSYS;
#endif
  if (fd < 0) GTEST_SKIP() << "no memfd_secret here: " << std::strerror(errno);
  const std::size_t size = 512 * kKiB;
  void* mem = MAP_FAILED;
  if (ftruncate(static_cast<int>(fd), static_cast<off_t>(size)) == 0) {
    mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd), 0);
  }
  close(static_cast<int>(fd));
  if (mem == MAP_FAILED) GTEST_SKIP() << "memfd_secret memory not mappable here";
  auto* src = static_cast<std::byte*>(mem);
  TempDir dir;
  for (bool uring : {true, false}) {
    auto o = SmallLog(dir.File(uring ? "uring" : "sync"), 16 * kMiB, 4 * kMiB);
    o.use_io_uring = uring;
    auto log = OpenOrDie(o);
    ASSERT_NE(log, nullptr);
    if (!log->GetStats().direct_io) {
      munmap(mem, size);
      GTEST_SKIP() << "no O_DIRECT on this file system: nothing refuses the memory";
    }
    const std::string key = "secret";
    FillPattern(src, size, SeedOf(key));
    auto one = log->Append(key, std::span<const std::byte>(src, size));
    ASSERT_TRUE(one.ok()) << one.status().ToString();
    ASSERT_TRUE(ReadAndCheck(*log, *one, key, size).ok());
    const auto st = log->GetStats();
    // One write of header block and data, refused once, then staged slot by slot (8 slots).
    EXPECT_EQ(st.direct_fallbacks, 1u);
    EXPECT_EQ(st.direct_bytes_written, 0u);
  }
  munmap(mem, size);
}

// A log of format version 1 (a superblock intact but of the old version) is refused on open
// with a message naming both versions, not taken for damage or overwritten.
TEST(AlignedRecordTest, VersionOneLogIsRefusedNamingBothVersions) {
  TempDir dir;
  const auto o = SmallLog(dir.File("log"));
  { ASSERT_NE(OpenOrDie(o), nullptr); }
  // Rewrite superblock copy 0 as version 1 would have: the same fields, version 1, checksum.
  auto block = ReadAt(o.path, 0, sp::kBlockSize);
  ASSERT_EQ(block.size(), sp::kBlockSize);
  ASSERT_TRUE(sp::DecodeSuperblock(block).ok());
  const std::uint32_t v1 = 1;
  std::memcpy(block.data() + 8, &v1, sizeof v1);  // after the 8-byte magic
  const std::uint64_t sum =
      sp::Checksum(std::span<const std::byte>(block).first(sp::Superblock::kEncodedSize - 8));
  std::memcpy(block.data() + sp::Superblock::kEncodedSize - 8, &sum, sizeof sum);
  {
    const int fd = open(o.path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, block.data(), block.size(), 0), static_cast<ssize_t>(block.size()));
    ASSERT_EQ(close(fd), 0);
  }
  EXPECT_EQ(sp::OtherSuperblockVersion(block), 1u);
  auto refused = SegmentLog::Open(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsCorruption()) << refused.status().ToString();
  const std::string& msg = refused.status().message();
  EXPECT_NE(msg.find("format version 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("format version 2"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("no valid"), std::string::npos) << "an old log, not damage: " << msg;
  // The file is untouched by the refusal: refused again, and `format` replaces it.
  EXPECT_FALSE(SegmentLog::Open(o).ok());
  auto o2 = o;
  o2.format = true;
  EXPECT_NE(OpenOrDie(o2), nullptr);
}

}  // namespace
}  // namespace cxlkv::testing
