// libFuzzer target: the decoders of the durable pool format (pool_format.h) over arbitrary
// bytes: superblocks, the superblock pair, slab records, chunk headers and index snapshots.
//
// Besides "no crash, no sanitizer report", it checks what the decoders promise: whatever
// decodes re-encodes to the same thing; a superblock that decodes has fields in the ranges the
// scan relies on (its size class table builds); a header counts only when committed, whole and
// in range; a snapshot survives no truncation and no damaged byte outside its reserved bytes.
// A broken promise traps, which libFuzzer reports as a crash with the input saved.
//
// The input format is in fuzz_input.h. Built by -DCXLKV_FUZZ=ON with clang; the normal builds
// compile it into backends_pool_fuzz_replay_test, which replays the corpus.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "backends/pool/fuzz/fuzz_input.h"
#include "backends/pool/pool_format.h"

namespace cxlkv::internal::fuzz {
namespace {

std::span<const std::byte> AsBytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

bool SameGeometry(const PoolGeometry& a, const PoolGeometry& b) {
  // Compared bit for bit: growth_factor passes through unchanged, NaN never decodes.
  return a.region_size == b.region_size && a.slab_size == b.slab_size &&
         a.reserved_slabs == b.reserved_slabs && a.slot_alignment == b.slot_alignment &&
         a.min_slot_size == b.min_slot_size && a.max_slot_size == b.max_slot_size &&
         std::memcmp(&a.growth_factor, &b.growth_factor, sizeof(double)) == 0 &&
         a.exact_sizes == b.exact_sizes;
}

bool SameSuperblock(const Superblock& a, const Superblock& b) {
  return a.generation == b.generation && a.uuid == b.uuid && a.version == b.version &&
         a.durability == b.durability && SameGeometry(a.geometry, b.geometry) &&
         a.created_unix_s == b.created_unix_s && a.clean == b.clean &&
         a.snapshot_offset == b.snapshot_offset && a.snapshot_bytes == b.snapshot_bytes &&
         a.snapshot_xxh3 == b.snapshot_xxh3 && a.next_sequence == b.next_sequence;
}

bool SameRecords(const std::vector<SnapshotRecord>& a, const std::vector<SnapshotRecord>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(SnapshotRecord)) == 0);
}

// What every decoded superblock must satisfy, and that re-encoding it changes nothing.
void CheckDecodedSuperblock(const Superblock& sb) {
  const PoolGeometry& g = sb.geometry;
  CHECK(sb.version >= 1 && sb.version <= kPoolFormatVersion);
  CHECK(static_cast<int>(sb.durability) <= static_cast<int>(Durability::kBackground));
  CHECK(g.slab_size >= (64u << 10) && g.slab_size <= (32u << 20));
  CHECK((g.slab_size & (g.slab_size - 1)) == 0);
  CHECK(g.region_size >= g.slab_size);
  CHECK(g.reserved_slabs < g.slab_count());
  CHECK(g.reserved_slabs == ReservedSlabsFor(g.slab_count(), g.slab_size));
  CHECK(g.slot_alignment >= 64 && g.slot_alignment <= g.slab_size);
  CHECK(g.min_slot_size >= g.slot_alignment && g.max_slot_size >= g.min_slot_size);
  CHECK(g.max_slot_size <= 16 * g.slab_size);
  CHECK(g.growth_factor >= 1.05 && g.growth_factor <= 2.0);
  CHECK(g.exact_sizes.size() <= kMaxExactSizes);
  for (const std::uint64_t e : g.exact_sizes) CHECK(e != 0 && e <= g.max_slot_size);

  std::array<std::byte, kSuperblockSize> again{};
  EncodeSuperblock(sb, again);
  Result<Superblock> redecoded = DecodeSuperblock(again);
  CHECK(redecoded.ok());
  CHECK(SameSuperblock(sb, *redecoded));
}

void FuzzRaw(const std::uint8_t* data, std::size_t size) {
  const auto bytes = AsBytes(data, size);

  Result<Superblock> sb = DecodeSuperblock(bytes);
  if (sb.ok()) CheckDecodedSuperblock(*sb);

  Result<SuperblockChoice> choice = ReadSuperblocks(bytes);
  if (choice.ok()) {
    CheckDecodedSuperblock(choice->sb);
    CHECK(choice->slot == 0 || choice->slot == 1);
    Result<Superblock> chosen = DecodeSuperblock(
        bytes.subspan(static_cast<std::size_t>(choice->slot) * kSuperblockSize, kSuperblockSize));
    CHECK(chosen.ok() && SameSuperblock(*chosen, choice->sb));
    Result<Superblock> other = DecodeSuperblock(
        bytes.subspan(static_cast<std::size_t>(1 - choice->slot) * kSuperblockSize,
                      kSuperblockSize));
    if (other.ok()) CHECK(other->generation <= choice->sb.generation);
  }

  // A slab record: the first 16 bytes, for the slab named by the next 4.
  if (size >= kSlabRecordSize) {
    std::size_t slab = 0;
    if (size >= kSlabRecordSize + 4) {
      std::uint32_t s;
      std::memcpy(&s, data + kSlabRecordSize, sizeof s);
      slab = s;
    }
    SlabRecord r;
    if (DecodeSlabRecord(slab, bytes, &r)) {
      CHECK(r.slot_size != 0);
      std::array<std::byte, kSlabRecordSize> again{};
      EncodeSlabRecord(slab, r, again);
      CHECK(std::memcmp(again.data(), data, kSlabRecordSize) == 0);
    }
  }

  // A chunk header: the input's first bytes, zero-padded.
  ChunkHeader h;
  std::memcpy(&h, data, std::min(size, sizeof h));
  const std::string problem = HeaderProblem(h);
  if (problem.empty()) {
    CHECK(h.state == kHeaderCommitted && h.check == HeaderCheck(h));
    CHECK(h.key_len >= 1 && h.key_len <= kMaxKeySize && h.meta_len <= ChunkMeta::kMaxSize);
    CHECK(h.size > 0);
  }

  // A snapshot, asked for the generation it carries (bytes 8..16), so that it gets past that.
  std::uint64_t generation = 0;
  if (size >= 16) std::memcpy(&generation, data + 8, sizeof generation);
  Result<std::vector<SnapshotRecord>> records = DecodeSnapshot(bytes, generation);
  if (records.ok()) {
    CHECK(records->size() <= (size - kSnapshotHeaderSize) / sizeof(SnapshotRecord));
    const std::vector<std::byte> again = EncodeSnapshot(generation, *records);
    Result<std::vector<SnapshotRecord>> redecoded = DecodeSnapshot(again, generation);
    CHECK(redecoded.ok() && SameRecords(*records, *redecoded));
  }
}

// Superblock fields from the input, each either a value near the valid range or raw (bit i of
// the selector), so the fuzzer reaches every range check with a valid checksum.
void FuzzSuperblock(Reader& in) {
  const std::uint8_t sel = in.U8();
  Superblock sb;
  sb.generation = in.U64();
  for (auto& b : sb.uuid) b = in.U8();
  sb.version = in.U8() % 4;
  sb.durability = static_cast<Durability>(in.U8() % 4);
  PoolGeometry& g = sb.geometry;
  g.slab_size = sel & 1 ? in.U64() : std::uint64_t{1} << (15 + in.U8() % 13);
  g.region_size = sel & 2 ? in.U64() : g.slab_size * (1 + in.U16() % 4096) + in.U8();
  g.reserved_slabs = sel & 4 ? in.U64()
                             : ReservedSlabsFor(g.region_size / (g.slab_size ? g.slab_size : 1),
                                                g.slab_size ? g.slab_size : 1) +
                                   in.U8() % 3 - std::uint64_t{1};  // one off either way
  g.slot_alignment = sel & 8 ? in.U64() : std::uint64_t{32} << (in.U8() % 14);
  g.min_slot_size = sel & 16 ? in.U64() : g.slot_alignment * (in.U8() % 9);
  g.max_slot_size = sel & 32 ? in.U64() : g.min_slot_size * (1 + in.U16() % 1024);
  if (sel & 64) {
    const std::uint64_t bits = in.U64();
    std::memcpy(&g.growth_factor, &bits, sizeof bits);
  } else {
    g.growth_factor = 1.0 + in.U8() / 200.0;
  }
  const std::size_t exact = in.U8() % (kMaxExactSizes + 4);
  for (std::size_t i = 0; i < exact; ++i) g.exact_sizes.push_back(in.U32());
  sb.clean = in.U8() & 1;
  sb.created_unix_s = in.U64();
  sb.snapshot_offset = in.U64();
  sb.snapshot_bytes = in.U64();
  sb.snapshot_xxh3 = in.U64();
  sb.next_sequence = in.U64();

  std::array<std::byte, 2 * kSuperblockSize> pair{};
  auto a = std::span<std::byte, kSuperblockSize>(pair.data(), kSuperblockSize);
  auto b = std::span<std::byte, kSuperblockSize>(pair.data() + kSuperblockSize, kSuperblockSize);
  EncodeSuperblock(sb, a);
  Result<Superblock> decoded = DecodeSuperblock(a);
  CHECK(!decoded.status().IsNotFound());  // an encoded superblock has its magic
  if (decoded.ok()) {
    CheckDecodedSuperblock(*decoded);
    Superblock expect = sb;
    expect.geometry.exact_sizes.resize(std::min(sb.geometry.exact_sizes.size(), kMaxExactSizes));
    CHECK(SameSuperblock(*decoded, expect));
  }

  // The pair: B one generation on, with one byte of it damaged (or not, past the fields).
  Superblock next = sb;
  ++next.generation;
  EncodeSuperblock(next, b);
  const std::size_t at = in.U16() % kSuperblockSize;
  const auto flip = static_cast<std::byte>(in.U8());
  b[at] ^= flip;
  Result<Superblock> b_decoded = DecodeSuperblock(b);
  Result<SuperblockChoice> choice = ReadSuperblocks(pair);
  if (decoded.ok() || b_decoded.ok()) {
    CHECK(choice.ok());
    CheckDecodedSuperblock(choice->sb);
    if (decoded.ok() && b_decoded.ok()) {
      CHECK(choice->sb.generation == std::max(decoded->generation, b_decoded->generation));
    }
  } else {
    CHECK(!choice.ok() && !choice.status().IsNotFound());
  }
}

void FuzzSnapshot(Reader& in) {
  const std::uint64_t generation = in.U64();
  std::vector<SnapshotRecord> records;
  while (in.Has(20) && records.size() < 512) {
    SnapshotRecord r;
    r.hash_lo = in.U32() * 0x9e3779b97f4a7c15ULL;
    r.hash_hi = in.U32();
    r.header_ref = in.U32();
    r.data_ref = in.U32();
    r.size = in.U32();
    records.push_back(r);
  }
  std::vector<std::byte> bytes = EncodeSnapshot(generation, records);
  Result<std::vector<SnapshotRecord>> decoded = DecodeSnapshot(bytes, generation);
  CHECK(decoded.ok() && SameRecords(*decoded, records));
  CHECK(!DecodeSnapshot(bytes, generation + 1).ok());

  // Any truncation fails.
  const std::size_t cut = 1 + in.U16() % bytes.size();
  CHECK(!DecodeSnapshot(std::span(bytes).first(bytes.size() - cut), generation).ok());

  // A damaged byte fails, but in the 32 reserved bytes of its header, which nothing reads.
  const std::size_t at = in.U16() % bytes.size();
  bytes[at] ^= static_cast<std::byte>(in.U8() | 1);
  const bool reserved = at >= 32 && at < kSnapshotHeaderSize;
  CHECK(DecodeSnapshot(bytes, generation).ok() == reserved);
}

void FuzzHeader(Reader& in) {
  ChunkHeader h;
  h.key_len = in.U8();
  h.meta_len = in.U8();
  h.reserved = in.U16();
  h.expires_s = in.U32();
  h.size = in.U32();
  h.data_ref = in.U32();
  h.sequence = in.U64();
  h.data_xxh3 = in.U64();
  for (char& c : h.key) c = static_cast<char>(in.U8());
  for (std::byte& m : h.meta) m = static_cast<std::byte>(in.U8());
  h.check = HeaderCheck(h);
  h.state = kHeaderCommitted;

  const bool in_range = h.key_len >= 1 && h.key_len <= kMaxKeySize &&
                        h.meta_len <= ChunkMeta::kMaxSize && h.size > 0;
  CHECK(HeaderProblem(h).empty() == in_range);
  // The check leaves out the commit word and the deadline (rewritten by a reopened store).
  const std::uint32_t check = h.check;
  h.expires_s = in.U32();
  CHECK(HeaderCheck(h) == check);
  StoreCommitWord(&h, CommitWord(kHeaderPending, in.U32()));
  CHECK(HeaderCheck(h) == check);
  CHECK(!HeaderProblem(h).empty());
  StoreCommitWord(&h, CommitWord(kHeaderFree, 0));
  CHECK(HeaderProblem(h) == "free");
}

}  // namespace
}  // namespace cxlkv::internal::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cxlkv::internal::fuzz;
  if (size == 0) return 0;
  Reader in(data + 1, size - 1);
  switch (data[0] % kFormatModeCount) {
    case kFormatRaw: FuzzRaw(data + 1, size - 1); break;
    case kFormatSuperblock: FuzzSuperblock(in); break;
    case kFormatSnapshot: FuzzSnapshot(in); break;
    case kFormatHeader: FuzzHeader(in); break;
  }
  return 0;
}
