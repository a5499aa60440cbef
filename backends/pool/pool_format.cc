#include "backends/pool/pool_format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "util/format.h"
#include "util/xxh3.h"

namespace cxlkv::internal {
namespace {

constexpr char kSuperblockMagic[8] = {'C', 'X', 'L', 'K', 'V', 'P', 'L', '\0'};
constexpr char kSnapshotMagic[8] = {'C', 'X', 'L', 'K', 'V', 'S', 'N', 'P'};

// The superblock as it lies on the media. Fixed-width fields only; the checksum covers every
// byte before it.
struct SuperblockRaw {
  char magic[8];
  std::uint32_t version;
  std::uint32_t durability;
  std::uint64_t generation;
  std::uint8_t uuid[16];
  std::uint64_t region_size;
  std::uint64_t slab_size;
  std::uint64_t reserved_slabs;
  std::uint64_t slot_alignment;
  std::uint64_t min_slot_size;
  std::uint64_t max_slot_size;
  double growth_factor;
  std::uint32_t exact_count;
  std::uint32_t clean;
  std::uint64_t exact_sizes[kMaxExactSizes];
  std::uint64_t created_unix_s;
  std::uint64_t snapshot_offset;
  std::uint64_t snapshot_bytes;
  std::uint64_t snapshot_xxh3;
  std::uint64_t next_sequence;
  std::uint64_t checksum;
};
static_assert(sizeof(SuperblockRaw) <= kSuperblockSize);

struct SnapshotHeaderRaw {
  char magic[8];
  std::uint64_t generation;
  std::uint64_t count;
  std::uint64_t records_xxh3;
  std::uint8_t reserved[32];
};
static_assert(sizeof(SnapshotHeaderRaw) == kSnapshotHeaderSize);

bool IsPowerOfTwo(std::uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::uint32_t RecordCheck(std::size_t slab, std::uint32_t head, std::uint32_t slot_size) {
  const std::uint64_t words[3] = {slab, head, slot_size};
  return static_cast<std::uint32_t>(XXH3_64bits(words, sizeof words)) | 1u;  // never 0
}

}  // namespace

Result<Durability> ParseDurability(std::string_view name) {
  if (name == "volatile") return Durability::kVolatile;
  if (name == "persist-on-put") return Durability::kPersistOnPut;
  if (name == "background") return Durability::kBackground;
  return Status::InvalidArgument("unknown durability '" + std::string(name) +
                                 "': use volatile, persist-on-put or background");
}

std::string_view DurabilityName(Durability d) {
  switch (d) {
    case Durability::kVolatile: return "volatile";
    case Durability::kPersistOnPut: return "persist-on-put";
    case Durability::kBackground: return "background";
  }
  return "?";
}

PoolGeometry PoolGeometry::From(std::size_t region_size, const SlabAllocatorOptions& options) {
  PoolGeometry g;
  g.region_size = region_size;
  g.slab_size = options.slab_size;
  g.reserved_slabs = options.reserved_slabs;
  g.slot_alignment = options.slot_alignment;
  g.min_slot_size = options.min_slot_size;
  g.max_slot_size = options.max_slot_size;
  g.growth_factor = options.growth_factor;
  g.exact_sizes.assign(options.exact_sizes.begin(), options.exact_sizes.end());
  std::sort(g.exact_sizes.begin(), g.exact_sizes.end());
  g.exact_sizes.erase(std::unique(g.exact_sizes.begin(), g.exact_sizes.end()),
                      g.exact_sizes.end());
  return g;
}

SlabAllocatorOptions PoolGeometry::AllocatorOptions() const {
  SlabAllocatorOptions o;
  o.slab_size = slab_size;
  o.reserved_slabs = reserved_slabs;
  o.slot_alignment = slot_alignment;
  o.min_slot_size = min_slot_size;
  o.max_slot_size = max_slot_size;
  o.growth_factor = growth_factor;
  o.exact_sizes.assign(exact_sizes.begin(), exact_sizes.end());
  return o;
}

std::string PoolGeometry::Difference(const PoolGeometry& o) const {
  std::string out;
  auto diff = [&](const char* what, std::string a, std::string b) {
    if (a == b) return;
    if (!out.empty()) out += "; ";
    out += std::string(what) + " " + a + " (pool) vs " + b + " (options)";
  };
  auto bytes = [](std::uint64_t v) { return FormatBytes(v); };
  auto list = [](const std::vector<std::uint64_t>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  };
  diff("capacity", bytes(region_size), bytes(o.region_size));
  diff("slab size", bytes(slab_size), bytes(o.slab_size));
  diff("reserved slabs", std::to_string(reserved_slabs), std::to_string(o.reserved_slabs));
  diff("slot alignment", bytes(slot_alignment), bytes(o.slot_alignment));
  diff("smallest slot", bytes(min_slot_size), bytes(o.min_slot_size));
  diff("largest slot", bytes(max_slot_size), bytes(o.max_slot_size));
  char a[32], b[32];
  std::snprintf(a, sizeof a, "%.6g", growth_factor);
  std::snprintf(b, sizeof b, "%.6g", o.growth_factor);
  diff("growth factor", a, b);
  diff("chunk sizes", list(exact_sizes), list(o.exact_sizes));
  return out;
}

std::size_t SlabTableOffset() { return 2 * kSuperblockSize; }

std::size_t ReservedSlabsFor(std::size_t slab_count, std::size_t slab_size) {
  const std::size_t bytes = SlabTableOffset() + slab_count * kSlabRecordSize;
  return (bytes + slab_size - 1) / slab_size;
}

std::string Superblock::UuidString() const {
  char s[40];
  std::snprintf(s, sizeof s,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", uuid[0],
                uuid[1], uuid[2], uuid[3], uuid[4], uuid[5], uuid[6], uuid[7], uuid[8], uuid[9],
                uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15]);
  return s;
}

void EncodeSuperblock(const Superblock& sb, std::span<std::byte, kSuperblockSize> out) {
  SuperblockRaw raw{};
  std::memcpy(raw.magic, kSuperblockMagic, sizeof raw.magic);
  raw.version = sb.version;
  raw.durability = static_cast<std::uint32_t>(sb.durability);
  raw.generation = sb.generation;
  std::memcpy(raw.uuid, sb.uuid.data(), sizeof raw.uuid);
  const PoolGeometry& g = sb.geometry;
  raw.region_size = g.region_size;
  raw.slab_size = g.slab_size;
  raw.reserved_slabs = g.reserved_slabs;
  raw.slot_alignment = g.slot_alignment;
  raw.min_slot_size = g.min_slot_size;
  raw.max_slot_size = g.max_slot_size;
  raw.growth_factor = g.growth_factor;
  raw.exact_count = static_cast<std::uint32_t>(std::min(g.exact_sizes.size(), kMaxExactSizes));
  for (std::uint32_t i = 0; i < raw.exact_count; ++i) raw.exact_sizes[i] = g.exact_sizes[i];
  raw.clean = sb.clean ? 1 : 0;
  raw.created_unix_s = sb.created_unix_s;
  raw.snapshot_offset = sb.snapshot_offset;
  raw.snapshot_bytes = sb.snapshot_bytes;
  raw.snapshot_xxh3 = sb.snapshot_xxh3;
  raw.next_sequence = sb.next_sequence;
  raw.checksum = XXH3_64bits(&raw, offsetof(SuperblockRaw, checksum));
  std::memset(out.data(), 0, out.size());
  std::memcpy(out.data(), &raw, sizeof raw);
}

Result<Superblock> DecodeSuperblock(std::span<const std::byte> block) {
  if (block.size() < kSuperblockSize) {
    return Status::Corruption("superblock: " + std::to_string(block.size()) +
                              " bytes, a superblock takes " + std::to_string(kSuperblockSize));
  }
  if (AllZero(block.first(kSuperblockSize))) return Status::NotFound("superblock: all zeros");
  SuperblockRaw raw;
  std::memcpy(&raw, block.data(), sizeof raw);
  if (std::memcmp(raw.magic, kSuperblockMagic, sizeof raw.magic) != 0) {
    return Status::Corruption("superblock: no cxlkv pool magic");
  }
  if (raw.checksum != XXH3_64bits(&raw, offsetof(SuperblockRaw, checksum))) {
    return Status::Corruption("superblock: checksum mismatch");
  }
  if (raw.version > kPoolFormatVersion) {
    return Status::Unsupported("pool format version " + std::to_string(raw.version) +
                               " is newer than this cxlkv's " +
                               std::to_string(kPoolFormatVersion));
  }
  auto bad = [](const std::string& what) { return Status::Corruption("superblock: " + what); };
  if (raw.version == 0) return bad("format version 0");
  if (raw.durability > static_cast<std::uint32_t>(Durability::kBackground)) {
    return bad("unknown durability " + std::to_string(raw.durability));
  }
  if (!IsPowerOfTwo(raw.slab_size) || raw.slab_size < (64u << 10) || raw.slab_size > (32u << 20)) {
    return bad("slab size " + std::to_string(raw.slab_size) + " is not a power of two in 64 KiB..32 MiB");
  }
  if (raw.region_size < raw.slab_size || raw.region_size > (std::uint64_t{1} << 48)) {
    return bad("capacity " + std::to_string(raw.region_size) + " out of range");
  }
  const std::uint64_t slabs = raw.region_size / raw.slab_size;
  if (raw.reserved_slabs != ReservedSlabsFor(slabs, raw.slab_size) || raw.reserved_slabs >= slabs) {
    return bad("reserved slabs " + std::to_string(raw.reserved_slabs) + " do not fit " +
               std::to_string(slabs) + " slabs");
  }
  if (!IsPowerOfTwo(raw.slot_alignment) || raw.slot_alignment < 64 ||
      raw.slot_alignment > raw.slab_size) {
    return bad("slot alignment " + std::to_string(raw.slot_alignment));
  }
  // Bounds that keep the class table small: a growth factor near 1 would make millions.
  if (!(raw.growth_factor >= 1.05 && raw.growth_factor <= 2.0)) {
    return bad("growth factor out of 1.05..2");
  }
  if (raw.min_slot_size < raw.slot_alignment || raw.max_slot_size < raw.min_slot_size ||
      raw.max_slot_size > 16 * raw.slab_size) {
    return bad("slot size bounds " + std::to_string(raw.min_slot_size) + ".." +
               std::to_string(raw.max_slot_size));
  }
  if (raw.exact_count > kMaxExactSizes) return bad("too many chunk sizes");
  if (raw.clean > 1) return bad("clean flag " + std::to_string(raw.clean));
  Superblock sb;
  sb.version = raw.version;
  sb.durability = static_cast<Durability>(raw.durability);
  sb.generation = raw.generation;
  std::memcpy(sb.uuid.data(), raw.uuid, sizeof raw.uuid);
  PoolGeometry& g = sb.geometry;
  g.region_size = raw.region_size;
  g.slab_size = raw.slab_size;
  g.reserved_slabs = raw.reserved_slabs;
  g.slot_alignment = raw.slot_alignment;
  g.min_slot_size = raw.min_slot_size;
  g.max_slot_size = raw.max_slot_size;
  g.growth_factor = raw.growth_factor;
  for (std::uint32_t i = 0; i < raw.exact_count; ++i) {
    if (raw.exact_sizes[i] == 0 || raw.exact_sizes[i] > raw.max_slot_size) {
      return bad("chunk size " + std::to_string(raw.exact_sizes[i]) + " out of range");
    }
    g.exact_sizes.push_back(raw.exact_sizes[i]);
  }
  sb.clean = raw.clean == 1;
  sb.created_unix_s = raw.created_unix_s;
  sb.snapshot_offset = raw.snapshot_offset;
  sb.snapshot_bytes = raw.snapshot_bytes;
  sb.snapshot_xxh3 = raw.snapshot_xxh3;
  sb.next_sequence = raw.next_sequence;
  return sb;
}

Result<SuperblockChoice> ReadSuperblocks(std::span<const std::byte> image) {
  if (image.size() < 2 * kSuperblockSize) {
    return Status::Corruption("pool image of " + std::to_string(image.size()) +
                              " bytes is too small for its superblocks");
  }
  Result<Superblock> a = DecodeSuperblock(image.first(kSuperblockSize));
  Result<Superblock> b = DecodeSuperblock(image.subspan(kSuperblockSize, kSuperblockSize));
  if (a.ok() && b.ok()) {
    const bool take_b = b->generation > a->generation;
    return SuperblockChoice{take_b ? *b : *a, take_b ? 1 : 0};
  }
  if (a.ok()) return SuperblockChoice{*a, 0};
  if (b.ok()) return SuperblockChoice{*b, 1};
  if (a.status().IsNotFound() && b.status().IsNotFound()) {
    return Status::NotFound("not a cxlkv pool (both superblocks are zero)");
  }
  // A newer version anywhere wins over corruption: it is the more useful message.
  if (a.status().code() == StatusCode::kUnsupported) return a.status();
  if (b.status().code() == StatusCode::kUnsupported) return b.status();
  return Status::Corruption("no valid superblock: A: " + a.status().message() +
                            "; B: " + b.status().message());
}

void EncodeSlabRecord(std::size_t slab, const SlabRecord& r,
                      std::span<std::byte, kSlabRecordSize> out) {
  std::uint32_t words[4] = {r.head, r.slot_size, 0, 0};
  if (r.slot_size != 0) words[3] = RecordCheck(slab, r.head, r.slot_size);
  std::memcpy(out.data(), words, sizeof words);
}

bool DecodeSlabRecord(std::size_t slab, std::span<const std::byte> in, SlabRecord* r) {
  if (in.size() < kSlabRecordSize) return false;
  std::uint32_t words[4];
  std::memcpy(words, in.data(), sizeof words);
  if (words[1] == 0 || words[2] != 0 || words[3] != RecordCheck(slab, words[0], words[1])) {
    return false;
  }
  r->head = words[0];
  r->slot_size = words[1];
  return true;
}

std::uint32_t HeaderCheck(const ChunkHeader& h) {
  const auto* bytes = reinterpret_cast<const std::byte*>(&h);
  // [8, 12): key_len, meta_len, reserved; [16, end): size onwards. expires_s is left out: a
  // reopened store rewrites deadlines from its own clock without re-committing.
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, bytes + 8, 4);
  XXH3_64bits_update(&state, bytes + 16, sizeof(ChunkHeader) - 16);
  return static_cast<std::uint32_t>(XXH3_64bits_digest(&state)) | 1u;  // never 0
}

std::uint64_t CommitWord(std::uint32_t state, std::uint32_t check) {
  return std::uint64_t{state} | std::uint64_t{check} << 32;
}

void StoreCommitWord(ChunkHeader* h, std::uint64_t word) {
  __atomic_store_n(reinterpret_cast<std::uint64_t*>(h), word, __ATOMIC_RELEASE);
}

std::string HeaderProblem(const ChunkHeader& h) {
  if (h.state == kHeaderFree) return "free";
  if (h.state == kHeaderPending) return "pending (its put never completed)";
  if (h.state != kHeaderCommitted) return "unknown state";
  if (h.check != HeaderCheck(h)) return "check mismatch (torn or corrupt)";
  if (h.key_len == 0 || h.key_len > kMaxKeySize) return "key length out of range";
  if (h.meta_len > ChunkMeta::kMaxSize) return "metadata length out of range";
  if (h.size == 0) return "empty chunk";
  return "";
}

std::vector<std::byte> EncodeSnapshot(std::uint64_t generation,
                                      std::span<const SnapshotRecord> records) {
  std::vector<std::byte> out(kSnapshotHeaderSize + records.size_bytes());
  SnapshotHeaderRaw h{};
  std::memcpy(h.magic, kSnapshotMagic, sizeof h.magic);
  h.generation = generation;
  h.count = records.size();
  h.records_xxh3 = XXH3_64bits(records.data(), records.size_bytes());
  std::memcpy(out.data(), &h, sizeof h);
  if (!records.empty()) {
    std::memcpy(out.data() + kSnapshotHeaderSize, records.data(), records.size_bytes());
  }
  return out;
}

Result<std::vector<SnapshotRecord>> DecodeSnapshot(std::span<const std::byte> bytes,
                                                   std::uint64_t generation) {
  if (bytes.size() < kSnapshotHeaderSize) return Status::Corruption("snapshot: truncated");
  SnapshotHeaderRaw h;
  std::memcpy(&h, bytes.data(), sizeof h);
  if (std::memcmp(h.magic, kSnapshotMagic, sizeof h.magic) != 0) {
    return Status::Corruption("snapshot: no magic");
  }
  if (h.generation != generation) return Status::Corruption("snapshot: of another generation");
  const std::size_t room = (bytes.size() - kSnapshotHeaderSize) / sizeof(SnapshotRecord);
  if (h.count > room) return Status::Corruption("snapshot: count past its bytes");
  std::vector<SnapshotRecord> records(h.count);
  if (h.count != 0) {
    std::memcpy(records.data(), bytes.data() + kSnapshotHeaderSize,
                h.count * sizeof(SnapshotRecord));
  }
  if (XXH3_64bits(records.data(), records.size() * sizeof(SnapshotRecord)) != h.records_xxh3) {
    return Status::Corruption("snapshot: checksum mismatch");
  }
  return records;
}

}  // namespace cxlkv::internal
