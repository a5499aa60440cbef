// The on-media format of a durable pool: a memory tier on a file or /dev/dax whose chunks come
// back after a restart or a crash.
//
//   slab 0 ..           [superblock A: 4 KiB][superblock B: 4 KiB][slab table: 16 B per slab]
//   (reserved slabs)    ... rounded up to whole slabs; no size class ever takes them
//   the other slabs     spans of the slab allocator: chunk slots, and 256-byte header slots
//
// Superblocks. Two copies, written alternately with a growing generation; a reader takes the
// valid one (magic, version, checksum) with the higher generation, so a torn superblock write
// leaves the other intact. A superblock records the geometry the slab allocator was built
// with (a pool is only ever reopened with the same classes), whether the pool was shut down
// cleanly, and where that shutdown left its index snapshot.
//
// Slab table. One record per slab: the head slab of the span holding it and the span's slot
// size, with a check word; a free slab's record is all zeros. A span's records are written and
// persisted before any slot of it is handed out, so every committed header lies in a span the
// table knows. A record that fails its check names no span.
//
// Chunk headers (backends/chunk_header.h) sit in spans of the 256-byte class, which holds
// nothing else in a durable pool (data slots start at 512 B). A header is written with state
// kPending; it counts only once its 8-byte {state, check} word says kCommitted with a check
// that matches the rest of the header, and that word is stored after the chunk's bytes and the
// header body are persistent. Freeing a chunk stores kFree there first.
//
// Index snapshot. At a clean shutdown the index (key hash, header, data slot, size of every
// chunk) is written into free slabs, and the superblock names it. It is used only when the
// superblock still says "clean": opening a pool clears that flag (persisted) before anything
// else is written, so a snapshot is never trusted after a crash.
//
// Everything is little-endian and plain data; x86-64 only for now.
//
// Thread-safety: the functions here are pure (they read and fill the bytes they are given).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/chunk_header.h"
#include "cxlkv/slab_allocator.h"
#include "cxlkv/status.h"

namespace cxlkv::internal {

// 2: free header slots carry kHeaderFreeMark (format 1 left them zero). Both are read.
inline constexpr std::uint32_t kPoolFormatVersion = 2;
inline constexpr std::size_t kSuperblockSize = 4096;
inline constexpr std::size_t kSlabRecordSize = 16;
inline constexpr std::size_t kMaxExactSizes = 32;
// The smallest data slot of a durable pool: the 256-byte class holds headers only.
inline constexpr std::size_t kMinDurableDataSlot = 2 * ChunkHeader::kSize;
// What a durable tier asks the allocator for, for a chunk of `size` bytes: never the header
// class.
inline std::size_t DataAllocSize(std::size_t size) {
  return size > ChunkHeader::kSize ? size : ChunkHeader::kSize + 1;
}

// How a tier makes its chunks durable (TierOptions::durability).
enum class Durability : std::uint8_t {
  kVolatile,      // no superblock, no checksums, no flushes: lost at close
  kPersistOnPut,  // durable when Put returns
  kBackground,    // durable within flush_interval of the Put
};
Result<Durability> ParseDurability(std::string_view name);
std::string_view DurabilityName(Durability d);

// The shape the slab allocator cuts the region into; equal geometries give equal classes.
struct PoolGeometry {
  std::uint64_t region_size = 0;
  std::uint64_t slab_size = 0;
  std::uint64_t reserved_slabs = 0;
  std::uint64_t slot_alignment = 0;
  std::uint64_t min_slot_size = 0;
  std::uint64_t max_slot_size = 0;
  double growth_factor = 0;
  std::vector<std::uint64_t> exact_sizes;  // at most kMaxExactSizes

  static PoolGeometry From(std::size_t region_size, const SlabAllocatorOptions& options);
  SlabAllocatorOptions AllocatorOptions() const;  // without the callbacks
  // "" when equal, else what differs ("slab size 4.0 MiB vs 2.0 MiB; ...").
  std::string Difference(const PoolGeometry& other) const;
  std::size_t slab_count() const { return region_size / slab_size; }
};

// Slabs the metadata takes for a region of `slab_count` slabs.
std::size_t ReservedSlabsFor(std::size_t slab_count, std::size_t slab_size);

struct Superblock {
  std::uint64_t generation = 0;
  std::array<std::uint8_t, 16> uuid{};
  std::uint32_t version = kPoolFormatVersion;
  Durability durability = Durability::kPersistOnPut;
  PoolGeometry geometry;
  std::uint64_t created_unix_s = 0;
  bool clean = false;              // shut down cleanly; the snapshot below is current
  std::uint64_t snapshot_offset = 0;  // byte offset of the snapshot in the region; 0: none
  std::uint64_t snapshot_bytes = 0;
  std::uint64_t snapshot_xxh3 = 0;
  std::uint64_t next_sequence = 0;  // above every header's sequence at the clean shutdown

  std::string UuidString() const;
};

// Writes `sb` into a kSuperblockSize block (with its checksum).
void EncodeSuperblock(const Superblock& sb, std::span<std::byte, kSuperblockSize> out);
// Corruption (bad magic, checksum, fields out of range), NotFound (all zeros: never
// formatted), Unsupported (a newer format version).
Result<Superblock> DecodeSuperblock(std::span<const std::byte> block);

// The newer valid superblock of the two at the start of a pool image. NotFound when both are
// zero (not a pool); Corruption when neither is valid (the message names both reasons);
// Unsupported when the newest is of a newer version.
struct SuperblockChoice {
  Superblock sb;
  int slot = 0;  // 0: A, 1: B
};
Result<SuperblockChoice> ReadSuperblocks(std::span<const std::byte> image);

// One slab's record: the span holding it, or none.
struct SlabRecord {
  std::uint32_t head = 0;       // first slab of the span
  std::uint32_t slot_size = 0;  // bytes; 0 in a free slab's record
};
void EncodeSlabRecord(std::size_t slab, const SlabRecord& r,
                      std::span<std::byte, kSlabRecordSize> out);
// nullopt-like: ok=false for a free or failing record.
bool DecodeSlabRecord(std::size_t slab, std::span<const std::byte> in, SlabRecord* r);
std::size_t SlabTableOffset();  // from the region start
inline std::size_t SlabRecordOffset(std::size_t slab) {
  return SlabTableOffset() + slab * kSlabRecordSize;
}

// Header commit words (ChunkHeader::state).
inline constexpr std::uint32_t kHeaderFree = 0;
inline constexpr std::uint32_t kHeaderPending = 0x444e4550;    // "PEND"
inline constexpr std::uint32_t kHeaderCommitted = 0x4b4c5843;  // "CXLK"
// Format 2: the check word of a free header slot. A new header span is written with it in
// every slot before the slab table records the span, and every free stores it, so that in a
// recorded header span a commit word of zeros is damage (a wiped page), never a free slot.
inline constexpr std::uint32_t kHeaderFreeMark = 0x45455246;  // "FREE"
// Whether a header slot holding kHeaderFree is free as format `version` writes it; false for a
// wiped or damaged commit word.
inline bool FreeSlotMarked(const ChunkHeader& h, std::uint32_t version) {
  return h.state == kHeaderFree && (version < 2 || h.check == kHeaderFreeMark);
}
// Format 1 wrote a clean close's index snapshot of under 257 bytes into a free header slot,
// where its magic ("CXLKVSNP") reads as a committed state with this check word: a free slot
// for a scan, not a damaged header.
inline bool OldSnapshotInHeaderSlot(const ChunkHeader& h, std::uint32_t version) {
  return version < 2 && h.state == kHeaderCommitted && h.check == 0x504e5356;  // "VSNP"
}

// The check word of a header: a hash of everything but {state, check} and expires_s.
std::uint32_t HeaderCheck(const ChunkHeader& h);
// The 8-byte {state, check} word, stored with one aligned store (atomic on every platform
// cxlkv supports, and on persistent memory, whose failure atomicity is 8 bytes).
std::uint64_t CommitWord(std::uint32_t state, std::uint32_t check);
void StoreCommitWord(ChunkHeader* h, std::uint64_t word);
inline std::uint64_t FreeCommitWord() { return CommitWord(kHeaderFree, kHeaderFreeMark); }
// Why a header in a header slot does not count, or "" when it is committed and whole: its
// state, its check, and its fields against the limits (key 1..150 B, meta <= 64 B, size > 0).
std::string HeaderProblem(const ChunkHeader& h);

// An index snapshot record: what the index needs of a chunk without reading its header.
struct SnapshotRecord {
  std::uint64_t hash_lo = 0;
  std::uint64_t hash_hi = 0;
  std::uint32_t header_ref = 0;  // 256-byte units from the region start
  std::uint32_t data_ref = 0;
  std::uint32_t size = 0;
  std::uint32_t reserved = 0;
};
static_assert(sizeof(SnapshotRecord) == 32);
inline constexpr std::size_t kSnapshotHeaderSize = 64;
// The snapshot: a 64-byte header (magic, generation, count) then the records.
std::vector<std::byte> EncodeSnapshot(std::uint64_t generation,
                                      std::span<const SnapshotRecord> records);
// Corruption when the bytes are not a snapshot of that generation.
Result<std::vector<SnapshotRecord>> DecodeSnapshot(std::span<const std::byte> bytes,
                                                   std::uint64_t generation);

}  // namespace cxlkv::internal
