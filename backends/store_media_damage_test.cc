// Damaged media, tried as an attacker would: single-byte flips over every byte of a chunk
// header of a durable pool (after a clean close, so the reopen takes the index snapshot, and in
// a crash image, so it scans headers), random damage anywhere in a pool checked against what
// `cxlkv fsck` reports. Each reopened store is read in full: nothing may crash (these also run
// under ASan), no chunk may come back with another size, other bytes or other metadata, and
// every chunk the damage made unreadable must be dropped and counted.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backends/key.h"
#include "backends/pool/pool_format.h"
#include "backends/pool/pool_fsck.h"
#include "backends/pool/pool_scan.h"
#include "backends/spill/chunk_record.h"
#include "backends/store_test_util.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/store.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;
namespace fs = std::filesystem;
using internal::ChunkHeader;

void WriteFile(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Chunk i: a size from a mix of classes and metadata that reads like a layout (fmt, dtype,
// shape), different for every chunk, so a header that lends another chunk's bytes shows.
constexpr int kChunks = 12;
const std::size_t kSizes[] = {1, 300, 4000, kChunk, kChunk - 7, 3 * kChunk + 5};
std::size_t SizeOf(int i) { return kSizes[i % std::size(kSizes)]; }
ChunkMeta MetaOf(int i) {
  std::vector<std::byte> m(static_cast<std::size_t>(8 + (i * 5) % 57));
  for (std::size_t b = 0; b < m.size(); ++b) m[b] = std::byte(static_cast<unsigned char>(i * 31 + b));
  return *ChunkMeta::From(m);
}

StoreOptions PoolOptions(const std::string& path) {
  StoreOptions o;
  TierOptions t;
  t.name = "pool";
  t.source_spec = "file:" + path;
  t.capacity = Slabs(12);
  t.durability = "persist-on-put";
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = {kChunk};
  o.slab_size = kSlab;
  o.background_thread = false;
  return o;
}

void PutChunks(Store& s) {
  for (int i = 0; i < kChunks; ++i) {
    ASSERT_TRUE(s.Put(Key(i), Bytes(SizeOf(i), Seed(i)), MetaOf(i)).ok()) << i;
  }
}

// A pool image after a clean close (clean=true) or as a kill -9 leaves it (the file copied
// while the store has it open).
std::vector<std::byte> MakeImage(const testing::TempDir& dir, bool clean) {
  const std::string path = dir.File(clean ? "clean.pool" : "open.pool");
  auto s = Store::Open(PoolOptions(path));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  PutChunks(**s);
  if (clean) {
    s->reset();
    return ReadWholeFile(path);
  }
  std::vector<std::byte> image = ReadWholeFile(path);
  return image;
}

// What a reopen gives back for each chunk.
struct ReadBack {
  int intact = 0;                  // exact size, bytes and metadata
  std::set<int> lost;              // NotFound or Corruption
  std::vector<std::string> wrong;  // anything else: the failure this test exists for
  std::uint64_t corrupt_dropped = 0;
  bool from_snapshot = false;
  Status open;
};

ReadBack ReopenAndReadAll(const std::string& path) {
  ReadBack r;
  auto s = Store::Open(PoolOptions(path));
  if (!s.ok()) {
    r.open = s.status();
    return r;
  }
  Store& store = **s;
  for (int i = 0; i < kChunks; ++i) {
    std::vector<std::byte> dst(4 * kChunk);
    ChunkMeta meta;
    Result<std::size_t> got = store.Get(Key(i), dst, &meta);
    if (!got.ok()) {
      if (got.status().IsNotFound() || got.status().IsCorruption()) {
        r.lost.insert(i);
      } else {
        r.wrong.push_back(Key(i) + ": " + got.status().ToString());
      }
      continue;
    }
    if (*got != SizeOf(i) || testing::FirstPatternMismatch(dst.data(), SizeOf(i), Seed(i)) != -1 ||
        !(meta == MetaOf(i))) {
      r.wrong.push_back(Key(i) + ": returned with another size, bytes or metadata");
      continue;
    }
    ++r.intact;
  }
  const TierStats t = store.Stats().tiers[0];
  r.corrupt_dropped = t.corrupt_dropped;
  r.from_snapshot = t.recovered_from_snapshot;
  return r;
}

// Where chunk `key`'s header lies in the image.
std::size_t HeaderOffset(const std::vector<std::byte>& image, int key) {
  internal::ScanOptions so;
  so.use_snapshot = false;
  auto scan = internal::ScanPool(image, so);
  EXPECT_TRUE(scan.ok()) << scan.status().ToString();
  if (!scan.ok()) return 0;
  const internal::KeyHash h = internal::HashKey(Key(key));
  for (const auto& c : scan->chunks) {
    if (c.hash == h) return std::size_t{c.header_ref} * ChunkHeader::kSize;
  }
  ADD_FAILURE() << "no header for " << Key(key);
  return 0;
}

// The bytes of a header its check word does not cover: expires_s, which every open rewrites
// from its own clock (a flip there changes nothing a reader sees).
bool CoveredByCheck(std::size_t at) {
  return at < offsetof(ChunkHeader, expires_s) || at >= offsetof(ChunkHeader, size);
}

// Failures by kind over many cases, reported once each with the first few cases.
class Tally {
 public:
  void Add(const std::string& kind, const std::string& where) {
    auto& v = cases_[kind];
    if (v.size() < 4) v.push_back(where);
    ++counts_[kind];
  }
  void ExpectNone() const {
    for (const auto& [kind, n] : counts_) {
      std::string first;
      for (const std::string& w : cases_.at(kind)) first += "\n  " + w;
      ADD_FAILURE() << n << " cases: " << kind << "; the first:" << first;
    }
  }

 private:
  std::map<std::string, int> counts_;
  std::map<std::string, std::vector<std::string>> cases_;
};

void FlipEveryHeaderByte(bool clean) {
  testing::TempDir dir("/dev/shm");  // msync is cheap there: many reopens
  const std::vector<std::byte> image = MakeImage(dir, clean);
  ASSERT_FALSE(image.empty());
  constexpr int kTarget = 5;
  const std::size_t header = HeaderOffset(image, kTarget);
  ASSERT_NE(header, 0u);
  const std::string trial = dir.File("trial.pool");
  Tally tally;
  int cases = 0;
  for (std::size_t at = 0; at < ChunkHeader::kSize; ++at) {
    for (const unsigned x : {0x01u, 0x80u, 0xFFu}) {
      const std::string where = "header byte " + std::to_string(at) + " ^ " + std::to_string(x);
      std::vector<std::byte> damaged = image;
      damaged[header + at] ^= static_cast<std::byte>(x);
      WriteFile(trial, damaged);
      const ReadBack r = ReopenAndReadAll(trial);
      ++cases;
      if (!r.open.ok()) {
        tally.Add("the reopen failed", where + ": " + r.open.ToString());
        continue;
      }
      if (r.from_snapshot != clean) tally.Add("not the path under test", where);
      for (const std::string& w : r.wrong) tally.Add("a chunk returned wrong", where + ": " + w);
      if (!CoveredByCheck(at)) {
        if (r.intact != kChunks) tally.Add("a flip outside the check lost a chunk", where);
        continue;
      }
      // Exactly the damaged chunk is gone, and counted.
      if (r.lost != std::set<int>{kTarget} || r.intact != kChunks - 1) {
        tally.Add("not exactly the damaged chunk lost", where);
      }
      if (r.corrupt_dropped != 1) {
        tally.Add("the damaged chunk not counted in corrupt_dropped", where);
      }
    }
  }
  EXPECT_EQ(cases, 3 * static_cast<int>(ChunkHeader::kSize));
  tally.ExpectNone();
}

TEST(StoreMediaDamageTest, EveryHeaderByteFlippedAfterACleanClose) { FlipEveryHeaderByte(true); }

TEST(StoreMediaDamageTest, EveryHeaderByteFlippedInACrashImage) { FlipEveryHeaderByte(false); }

// --- fsck against the reopen ---

// What fsck says of the pool at path: every header slot it names, and whether it is clean.
struct FsckSays {
  Status status;
  std::set<std::uint32_t> headers;
  bool clean = false;
  std::string text;
};

FsckSays Fsck(const std::string& path) {
  FsckSays f;
  FileOptions fo;
  fo.path = path;
  fo.create = false;
  auto region = MemorySource::File(fo)->Map(fs::file_size(path));
  if (!region.ok()) {
    f.status = region.status();
    return f;
  }
  auto report = internal::FsckPool(**region, /*repair=*/false, 2);
  if (!report.ok()) {
    f.status = report.status();
    return f;
  }
  for (const internal::FsckProblem& p : report->problems) f.headers.insert(p.header_ref);
  f.clean = report->clean();
  f.text = report->ToString();
  return f;
}

// Header slot of every chunk in an undamaged image, by chunk number.
std::map<int, std::uint32_t> HeaderRefs(const std::vector<std::byte>& image) {
  std::map<int, std::uint32_t> refs;
  internal::ScanOptions so;
  so.use_snapshot = false;
  auto scan = internal::ScanPool(image, so);
  EXPECT_TRUE(scan.ok()) << scan.status().ToString();
  if (!scan.ok()) return refs;
  for (int i = 0; i < kChunks; ++i) {
    for (const auto& c : scan->chunks) {
      if (c.hash == internal::HashKey(Key(i))) refs[i] = c.header_ref;
    }
  }
  EXPECT_EQ(refs.size(), static_cast<std::size_t>(kChunks));
  return refs;
}

// Damages the image at path as `damage` says, then holds fsck to the reopen: everything the
// reopen cannot return is named by fsck (by header slot), fsck is not clean when anything is
// lost, a pool fsck cannot read is one the reopen refuses, and nothing comes back wrong.
void ExpectFsckCoversReopen(const std::string& path, const std::map<int, std::uint32_t>& refs,
                            const std::string& damage, Tally& tally) {
  const FsckSays f = Fsck(path);
  const ReadBack r = ReopenAndReadAll(path);
  for (const std::string& w : r.wrong) tally.Add("a chunk returned wrong", damage + ": " + w);
  if (!f.status.ok()) {
    if (r.open.ok()) tally.Add("fsck failed on a pool the store opens", damage + ": " + f.status.ToString());
    return;
  }
  if (!r.open.ok()) {
    tally.Add("the reopen failed where fsck did not", damage + ": " + r.open.ToString());
    return;
  }
  for (const int i : r.lost) {
    if (!f.headers.count(refs.at(i))) {
      tally.Add("a chunk the reopen lost is not in fsck's report",
                damage + ": " + Key(i) + "\n" + f.text);
    }
  }
  if (!r.lost.empty() && f.clean) tally.Add("fsck clean while the reopen lost chunks", damage);
}

TEST(StoreMediaDamageTest, FsckNamesEveryHeaderByteFlip) {
  testing::TempDir dir("/dev/shm");
  Tally tally;
  for (const bool clean : {true, false}) {
    const std::vector<std::byte> image = MakeImage(dir, clean);
    ASSERT_FALSE(image.empty());
    const std::map<int, std::uint32_t> refs = HeaderRefs(image);
    const std::string trial = dir.File("trial.pool");
    for (const int target : {clean ? 2 : 9}) {
      for (std::size_t at = 0; at < ChunkHeader::kSize; ++at) {
        if (!CoveredByCheck(at)) continue;
        std::vector<std::byte> damaged = image;
        damaged[std::size_t{refs.at(target)} * ChunkHeader::kSize + at] ^= std::byte{0x20};
        WriteFile(trial, damaged);
        const std::string what = std::string(clean ? "clean" : "crash") + " image, " +
                                 Key(target) + " header byte " + std::to_string(at);
        const FsckSays f = Fsck(trial);
        if (!f.status.ok() || f.clean || !f.headers.count(refs.at(target))) {
          tally.Add("fsck missed a flipped header byte", what + "\n" + f.text);
        }
        ExpectFsckCoversReopen(trial, refs, what, tally);
      }
    }
  }
  tally.ExpectNone();
}

// Random damage where it hurts most: superblocks, the slab table, headers (random bytes, or a
// zeroed 4 KiB page of them), chunk bytes, the snapshot, anywhere.
TEST(StoreMediaDamageTest, FsckReportsEverythingARandomDamageMakesTheReopenDrop) {
  testing::TempDir dir("/dev/shm");
  Tally tally;
  int trials = 0, with_losses = 0;
  for (const bool clean : {true, false}) {
    const std::vector<std::byte> image = MakeImage(dir, clean);
    ASSERT_FALSE(image.empty());
    const std::map<int, std::uint32_t> refs = HeaderRefs(image);
    internal::ScanOptions so;
    so.use_snapshot = false;
    auto scan = internal::ScanPool(image, so);
    ASSERT_TRUE(scan.ok());
    const auto sb = internal::ReadSuperblocks(image);
    ASSERT_TRUE(sb.ok());
    const std::string trial = dir.File("trial.pool");
    std::mt19937_64 rng(clean ? 68 : 86);
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    for (int t = 0; t < 60; ++t) {
      std::vector<std::byte> damaged = image;
      std::string what = std::string(clean ? "clean" : "crash") + " image, trial " +
                         std::to_string(t) + ":";
      const int hits = 1 + static_cast<int>(pick(3));
      for (int h = 0; h < hits; ++h) {
        std::size_t at = 0, len = 1 + pick(16);
        bool zero = false;
        const auto& c = scan->chunks[pick(scan->chunks.size())];
        switch (pick(7)) {
          case 0: at = pick(2 * internal::kSuperblockSize); what += " superblock"; break;
          case 1:
            at = internal::SlabRecordOffset(sb->sb.geometry.reserved_slabs + pick(12));
            what += " slab table";
            break;
          case 2: at = std::size_t{c.header_ref} * ChunkHeader::kSize + pick(ChunkHeader::kSize); what += " header"; break;
          case 3:
            at = std::size_t{c.header_ref} * ChunkHeader::kSize / 4096 * 4096;
            len = 4096;
            zero = true;
            what += " zeroed header page";
            break;
          case 4: at = std::size_t{c.data_ref} * ChunkHeader::kSize + pick(c.size); what += " chunk bytes"; break;
          case 5:
            if (sb->sb.snapshot_offset != 0) {
              at = sb->sb.snapshot_offset + pick(sb->sb.snapshot_bytes);
              what += " snapshot";
              break;
            }
            [[fallthrough]];
          default: at = pick(image.size()); what += " anywhere"; break;
        }
        len = std::min(len, image.size() - at);
        what += "@" + std::to_string(at) + "+" + std::to_string(len);
        for (std::size_t i = at; i < at + len; ++i) {
          damaged[i] = zero ? std::byte{0} : static_cast<std::byte>(rng());
        }
      }
      WriteFile(trial, damaged);
      ExpectFsckCoversReopen(trial, refs, what, tally);
      ++trials;
      if (!ReopenAndReadAll(trial).lost.empty()) ++with_losses;
    }
  }
  tally.ExpectNone();
  // The trials are worth something only if many of them lost chunks.
  EXPECT_GE(with_losses, trials / 4) << with_losses << " of " << trials;
}

// --- the spill log ---

constexpr std::size_t kSpillChunk = 3000;  // one 4 KiB block per record
constexpr int kSpillChunks = 60;
constexpr std::uint64_t kSegmentSize = 64 * kKiB;

StoreOptions SpillOptions(const std::string& path) {
  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(1)));
  o.spill.path = path;
  o.spill.capacity = internal::spill::kDataOffset + 12 * kSegmentSize;
  o.spill.segment_size = kSegmentSize;
  o.spill.queue_depth = 4;
  o.spill.promote_after_hits = 0;  // reads leave the log as it is
  o.chunk_sizes = {kChunk};
  o.slab_size = kSlab;
  o.background_thread = false;
  return o;
}

struct SpillRecord {
  std::size_t offset = 0;  // of its header in the file
  int chunk = -1;
  std::size_t key_and_meta = 0;  // bytes after the header: key, then meta
  bool sealed = false;
  std::size_t summary_entry = 0;  // its summary entry's offset in the file (sealed only)
  std::size_t summary_entry_size = 0;
  std::size_t trailer = 0;        // its segment's trailer block (sealed only)
};

// Every record of the log image, with where its segment's summary entry and trailer lie.
std::vector<SpillRecord> SpillRecords(const std::vector<std::byte>& image) {
  namespace sp = internal::spill;
  std::vector<SpillRecord> out;
  for (std::size_t seg = sp::kDataOffset; seg + kSegmentSize <= image.size(); seg += kSegmentSize) {
    const std::span<const std::byte> segment(image.data() + seg, kSegmentSize);
    if (!sp::DecodeSegmentHeader(segment.first(sp::kBlockSize)).ok()) continue;
    auto trailer = sp::DecodeSegmentTrailer(segment.last(sp::kBlockSize));
    std::size_t entry = trailer.ok() ? seg + trailer->summary_offset : 0;
    for (std::size_t b = 1; b + 1 < kSegmentSize / sp::kBlockSize; ++b) {
      auto h = sp::DecodeRecordHeader(segment.subspan(b * sp::kBlockSize));
      if (!h.ok()) continue;
      SpillRecord r;
      r.offset = seg + b * sp::kBlockSize;
      const std::string key(reinterpret_cast<const char*>(image.data() + r.offset +
                                                          sp::RecordHeader::kEncodedSize),
                            h->key_size);
      r.chunk = std::stoi(key.substr(key.rfind('@') + 1));
      r.key_and_meta = std::size_t{h->key_size} + h->meta_size;
      if (trailer.ok()) {
        r.sealed = true;
        r.summary_entry = entry;
        r.summary_entry_size = sp::SummaryEntrySize(h->key_size, h->meta_size);
        r.trailer = seg + kSegmentSize - sp::kBlockSize;
        entry += r.summary_entry_size;
      }
      out.push_back(r);
    }
  }
  return out;
}

struct SpillReadBack {
  std::set<int> intact, lost;
  std::vector<std::string> wrong;
  std::uint64_t corrupt_dropped = 0;
  Status open;
};

SpillReadBack ReopenSpillAndReadAll(const std::string& path) {
  SpillReadBack r;
  auto s = Store::Open(SpillOptions(path));
  if (!s.ok()) {
    r.open = s.status();
    return r;
  }
  for (int i = 0; i < kSpillChunks; ++i) {
    std::vector<std::byte> dst(kSpillChunk + 100);
    ChunkMeta meta;
    Result<std::size_t> got = (*s)->Get(Key(i), dst, &meta);
    if (!got.ok()) {
      if (got.status().IsNotFound() || got.status().IsCorruption()) {
        r.lost.insert(i);
      } else {
        r.wrong.push_back(Key(i) + ": " + got.status().ToString());
      }
    } else if (*got != kSpillChunk ||
               testing::FirstPatternMismatch(dst.data(), kSpillChunk, Seed(i)) != -1 ||
               !(meta == MetaOf(i))) {
      r.wrong.push_back(Key(i) + ": returned with another size, bytes or metadata");
    } else {
      r.intact.insert(i);
    }
  }
  r.corrupt_dropped = (*s)->Stats().tiers[1].corrupt_dropped;
  return r;
}

// Single-byte flips over a record's header, key and metadata (in a sealed segment, read through
// its summary; and early in the segment left open, which the reopen scans), over its summary
// entry and over its segment's trailer. A damaged record is lost and counted, never returned;
// a damaged summary or trailer loses nothing (the segment's records are scanned instead).
TEST(StoreMediaDamageTest, SpillRecordsSummariesAndTrailersFlipped) {
  testing::TempDir dir("/dev/shm");
  const std::string log = dir.File("spill.log");
  {
    auto s = Store::Open(SpillOptions(log));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    for (int i = 0; i < kSpillChunks; ++i) {
      ASSERT_TRUE((*s)->Put(Key(i), Bytes(kSpillChunk, Seed(i)), MetaOf(i)).ok()) << i;
    }
  }
  const std::vector<std::byte> image = ReadWholeFile(log);
  const std::string trial = dir.File("trial.log");
  WriteFile(trial, image);
  const SpillReadBack base = ReopenSpillAndReadAll(trial);
  ASSERT_TRUE(base.open.ok()) << base.open.ToString();
  ASSERT_TRUE(base.lost.size() > 0 && base.wrong.empty());  // the DRAM tier's chunks are gone
  ASSERT_GE(base.intact.size(), 20u);

  const std::vector<SpillRecord> records = SpillRecords(image);
  const SpillRecord* sealed = nullptr;
  const SpillRecord* open = nullptr;
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (records[i].sealed && sealed == nullptr && i + 1 < records.size() && records[i + 1].sealed) {
      sealed = &records[i];  // not its segment's last
    }
    if (!records[i].sealed && open == nullptr && i + 1 < records.size()) open = &records[i];
  }
  ASSERT_NE(sealed, nullptr);
  ASSERT_NE(open, nullptr) << "the test wants a segment left open with two records or more";

  Tally tally;
  int cases = 0;
  auto trial_flip = [&](std::size_t at, const std::string& what, int must_lose) {
    std::vector<std::byte> damaged = image;
    damaged[at] ^= std::byte{0x5a};
    WriteFile(trial, damaged);
    const SpillReadBack r = ReopenSpillAndReadAll(trial);
    ++cases;
    const std::string where = what + " (file byte " + std::to_string(at) + ")";
    if (!r.open.ok()) return tally.Add("the reopen failed", where + ": " + r.open.ToString());
    for (const std::string& w : r.wrong) tally.Add("a chunk returned wrong", where + ": " + w);
    std::set<int> expect_lost = base.lost;
    if (must_lose >= 0) expect_lost.insert(must_lose);
    if (r.lost != expect_lost) tally.Add("not exactly the damaged chunk lost", where);
    if (r.corrupt_dropped != (must_lose >= 0 ? 1u : 0u)) {
      tally.Add("corrupt_dropped is not the damaged chunks", where + ": " +
                std::to_string(r.corrupt_dropped));
    }
  };
  const std::size_t record_bytes = internal::spill::RecordHeader::kEncodedSize;
  for (const SpillRecord* r : {sealed, open}) {
    for (std::size_t b = 0; b < record_bytes + r->key_and_meta; ++b) {
      trial_flip(r->offset + b,
                 std::string(r->sealed ? "sealed" : "open") + " record byte " + std::to_string(b),
                 r->chunk);
    }
  }
  for (std::size_t b = 0; b < sealed->summary_entry_size; ++b) {
    trial_flip(sealed->summary_entry + b, "summary entry byte " + std::to_string(b), -1);
  }
  for (std::size_t b = 0; b < internal::spill::SegmentTrailer::kEncodedSize; ++b) {
    trial_flip(sealed->trailer + b, "trailer byte " + std::to_string(b), -1);
  }
  EXPECT_GT(cases, 300);
  tally.ExpectNone();
}

}  // namespace
}  // namespace cxlkv
