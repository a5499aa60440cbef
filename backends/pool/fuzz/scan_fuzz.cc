// libFuzzer target: ScanPool (pool_scan.h) over pool images built from the input.
//
// Arbitrary bytes never get past a superblock checksum, so the input describes an image
// instead (fuzz_input.h): a small geometry (64 KiB slabs, 16..64 of them) whose superblocks the
// target encodes, then commands that write slab records, chunk headers and index snapshots with
// valid check words, or with input-chosen damage, and raw byte patches anywhere.
//
// After a successful scan it checks what pool_scan.h promises and DurablePool::Recover relies
// on (every span restores and every chunk's two slots claim without a conflict):
//  - spans lie in the region past the reserved slabs, do not overlap, and have the slot size
//    and length of a class of the geometry;
//  - every chunk's header_ref is a slot of a 256-byte span, its data_ref a slot of a span of at
//    least kMinDurableDataSlot bytes that holds its (non-zero) size;
//  - no two chunks share a header slot, a data slot or a key hash;
//  - losers are header slots, distinct, and none of them a chunk's header;
//  - max_sequence is at least every chunk's sequence.
// A broken promise traps, which libFuzzer reports as a crash with the input saved.
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "alloc/size_classes.h"
#include "backends/key.h"
#include "backends/pool/fuzz/fuzz_input.h"
#include "backends/pool/pool_format.h"
#include "backends/pool/pool_scan.h"
#include "util/xxh3.h"

namespace cxlkv::internal::fuzz {
namespace {

constexpr std::size_t kUnit = ChunkHeader::kSize;

// The image lives at the end of one buffer kept for the whole run: a fresh multi-MiB buffer per
// input costs more in page faults than the scan itself (40 inputs/s instead of thousands). The
// bytes before the image are poisoned and those after it are the heap's red zone, so ASan still
// catches a scan that reads outside the image.
std::span<std::byte> ImageBuffer(std::size_t size) {
  static constexpr std::size_t kMax = 64 * kScanSlabSize + 15 * ChunkHeader::kSize;
  static std::byte* buffer = new std::byte[kMax];
  CHECK(size <= kMax);
  ASAN_UNPOISON_MEMORY_REGION(buffer, kMax);
  ASAN_POISON_MEMORY_REGION(buffer, kMax - size);
  std::byte* image = buffer + (kMax - size);
  std::memset(image, 0, size);
  return {image, size};
}

struct Builder {
  std::span<std::byte> image;
  Superblock sb;
  std::uint8_t flags = 0;
  std::size_t slabs = 0;

  // The current superblock, and the one before it (or zeros) in the other slot.
  void WriteSuperblocks() {
    const int current = flags & kScanCurrentInB ? 1 : 0;
    auto slot = [&](int i) {
      return std::span<std::byte, kSuperblockSize>(image.data() + i * kSuperblockSize,
                                                   kSuperblockSize);
    };
    EncodeSuperblock(sb, slot(current));
    if (flags & kScanOnlyOneCopy) {
      std::memset(slot(1 - current).data(), 0, kSuperblockSize);
      return;
    }
    Superblock older = sb;  // the pool as it was before its last clean close: in use
    --older.generation;
    older.clean = false;
    older.snapshot_offset = older.snapshot_bytes = older.snapshot_xxh3 = 0;
    EncodeSuperblock(older, slot(1 - current));
  }

  void Record(std::size_t slab, std::uint32_t head, std::uint32_t slot_size) {
    if (slab >= slabs) return;
    EncodeSlabRecord(slab, SlabRecord{head, slot_size},
                     std::span<std::byte, kSlabRecordSize>(image.data() + SlabRecordOffset(slab),
                                                           kSlabRecordSize));
  }

  static void Key(ChunkHeader& h, std::uint8_t len, std::uint8_t seed) {
    h.key_len = len;
    for (std::size_t i = 0; i < std::min<std::size_t>(len, kMaxKeySize); ++i) {
      h.key[i] = static_cast<char>(seed + i);
    }
  }

  void Header(Reader& in) {
    const std::size_t units = sb.geometry.region_size / kUnit;
    const std::size_t ref = in.U16() % units;
    ChunkHeader h;
    const std::uint8_t key_len = in.U8();
    Key(h, key_len, in.U8());
    h.meta_len = in.U8();
    h.size = in.U32();
    h.data_ref = in.U16();
    h.sequence = in.U16();
    h.data_xxh3 = h.sequence * 0x9e3779b97f4a7c15ULL;
    const std::uint32_t check = HeaderCheck(h);
    switch (in.U8() % kCommitCount) {
      case kCommitValid: StoreCommitWord(&h, CommitWord(kHeaderCommitted, check)); break;
      case kCommitTorn: StoreCommitWord(&h, CommitWord(kHeaderCommitted, check ^ 2)); break;
      case kCommitPending: StoreCommitWord(&h, CommitWord(kHeaderPending, 0)); break;
      default: StoreCommitWord(&h, FreeCommitWord()); break;
    }
    std::memcpy(image.data() + ref * kUnit, &h, sizeof h);
  }

  void Patch(Reader& in) {
    const std::size_t at = in.U32() % image.size();
    std::size_t len = 0;
    const std::uint8_t* bytes = in.Bytes(in.U8(), &len);
    std::memcpy(image.data() + at, bytes, std::min(len, image.size() - at));
  }

  void Snapshot(Reader& in) {
    const std::size_t at = in.U32() % sb.geometry.region_size;
    const std::uint64_t generation = sb.generation + in.U8();
    std::vector<SnapshotRecord> records(in.U8());
    for (SnapshotRecord& r : records) {
      ChunkHeader h;
      const std::uint8_t key_len = in.U8();
      Key(h, key_len, in.U8());
      // At most kMaxKeySize bytes: key_view() past that would read beyond the header.
      const KeyHash hash = HashKey(h.key_view().substr(0, kMaxKeySize));
      r.hash_lo = hash.lo;
      r.hash_hi = hash.hi;
      r.header_ref = in.U16();
      r.data_ref = in.U16();
      r.size = in.U32();
    }
    const std::vector<std::byte> bytes = EncodeSnapshot(generation, records);
    std::memcpy(image.data() + at, bytes.data(), std::min(bytes.size(), image.size() - at));
    sb.clean = true;
    sb.snapshot_offset = at;
    sb.snapshot_bytes = bytes.size();
    sb.snapshot_xxh3 = XXH3_64bits(bytes.data(), bytes.size());
    WriteSuperblocks();
  }
};

// The span holding byte `offset` of the region, or nullptr.
const ScannedSpan* SpanAt(const std::vector<const ScannedSpan*>& span_of_slab,
                          std::uint64_t offset, std::size_t slab_size) {
  const std::uint64_t slab = offset / slab_size;
  return slab < span_of_slab.size() ? span_of_slab[slab] : nullptr;
}

// Whether ref is the start of a slot of sp that holds `size` bytes.
bool IsSlotOf(const ScannedSpan* sp, std::uint64_t ref, std::size_t size,
              const SizeClassTable& table, std::size_t slab_size) {
  if (sp == nullptr) return false;
  const std::uint64_t in_span = ref * kUnit - sp->first_slab * slab_size;
  const int cls = table.ClassFor(sp->slot_size);
  return cls >= 0 && in_span % sp->slot_size == 0 &&
         in_span / sp->slot_size < table.at(static_cast<std::uint32_t>(cls)).slots_per_span &&
         size <= sp->slot_size;
}

void CheckScan(const PoolScan& scan, std::span<const std::byte> image) {
  const PoolGeometry& g = scan.superblock.geometry;
  Result<SizeClassTable> table = SizeClassTable::Build(g.AllocatorOptions());
  CHECK(table.ok());
  const std::size_t slabs = g.slab_count();

  std::vector<const ScannedSpan*> span_of_slab(slabs, nullptr);
  for (const ScannedSpan& sp : scan.spans) {
    CHECK(sp.slabs > 0 && sp.first_slab >= g.reserved_slabs);
    CHECK(sp.first_slab < slabs && sp.slabs <= slabs - sp.first_slab);
    const int cls = table->ClassFor(sp.slot_size);
    CHECK(cls >= 0);
    const SizeClass& sc = table->at(static_cast<std::uint32_t>(cls));
    CHECK(sc.slot_size == sp.slot_size && sc.slabs_per_span == sp.slabs);
    for (std::size_t s = sp.first_slab; s < sp.first_slab + sp.slabs; ++s) {
      CHECK(span_of_slab[s] == nullptr);  // no two spans share a slab
      span_of_slab[s] = &sp;
    }
  }

  std::set<std::uint32_t> headers, data;
  std::set<std::pair<std::uint64_t, std::uint64_t>> hashes;
  for (const ScannedChunk& c : scan.chunks) {
    const ScannedSpan* hs = SpanAt(span_of_slab, std::uint64_t{c.header_ref} * kUnit, g.slab_size);
    CHECK(hs != nullptr && hs->slot_size == kUnit);
    CHECK(IsSlotOf(hs, c.header_ref, kUnit, *table, g.slab_size));
    const ScannedSpan* ds = SpanAt(span_of_slab, std::uint64_t{c.data_ref} * kUnit, g.slab_size);
    CHECK(ds != nullptr && ds->slot_size >= kMinDurableDataSlot);
    CHECK(c.size > 0 && IsSlotOf(ds, c.data_ref, c.size, *table, g.slab_size));
    CHECK(headers.insert(c.header_ref).second);
    CHECK(data.insert(c.data_ref).second);
    CHECK(hashes.insert({c.hash.lo, c.hash.hi}).second);
    CHECK(scan.max_sequence >= c.sequence);
    // Snapshot or header scan, every chunk has the committed, whole header that names it.
    ChunkHeader h;
    std::memcpy(&h, image.data() + std::size_t{c.header_ref} * kUnit, sizeof h);
    CHECK(HeaderProblem(h).empty() && h.data_ref == c.data_ref && h.size == c.size);
    CHECK(HashKey(h.key_view()) == c.hash);
  }
  for (const DroppedHeader& d : scan.dropped) {
    const ScannedSpan* hs = SpanAt(span_of_slab, std::uint64_t{d.header_ref} * kUnit, g.slab_size);
    CHECK(hs != nullptr && hs->slot_size == kUnit);
    CHECK(headers.count(d.header_ref) == 0);
    CHECK(!DropReasonName(d.reason).empty());
  }
  std::set<std::uint32_t> losers;
  for (const std::uint32_t ref : scan.losers) {
    const ScannedSpan* hs = SpanAt(span_of_slab, std::uint64_t{ref} * kUnit, g.slab_size);
    CHECK(hs != nullptr && hs->slot_size == kUnit);
    CHECK(losers.insert(ref).second);
    CHECK(headers.count(ref) == 0);
  }
  if (scan.counts.used_snapshot) {
    CHECK(scan.superblock.clean && scan.losers.empty());
    CHECK(scan.counts.snapshot_chunks == scan.chunks.size());
  }
}

}  // namespace
}  // namespace cxlkv::internal::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cxlkv;
  using namespace cxlkv::internal;
  using namespace cxlkv::internal::fuzz;
  if (size < kScanPrefixSize) return 0;
  Reader in(data, size);
  const std::uint8_t slabs_byte = in.U8();
  const std::uint8_t exact_bits = in.U8();
  const std::uint8_t shape = in.U8();

  Builder b;
  b.flags = in.U8();
  b.sb.geometry = ScanGeometry(slabs_byte, exact_bits, shape);
  const PoolGeometry& g = b.sb.geometry;
  b.slabs = g.slab_count();
  b.sb.generation = std::max<std::uint32_t>(in.U32(), 1);
  b.sb.durability = b.flags & kScanDurabilityBg ? Durability::kBackground
                                                 : Durability::kPersistOnPut;
  b.sb.next_sequence = 1u << 16;  // above every sequence a header command writes
  if (b.flags & kScanFormat1) b.sb.version = 1;  // free slots unmarked
  Result<SizeClassTable> table = SizeClassTable::Build(g.AllocatorOptions());
  CHECK(table.ok());

  b.image = ImageBuffer(g.region_size);
  b.WriteSuperblocks();
  while (in.left() > 0) {
    switch (in.U8() % kScanOpCount) {
      case kScanSpan: {
        const std::uint8_t first = in.U8();
        const SizeClass& sc =
            table->at(static_cast<std::uint32_t>(in.U8() % table->classes().size()));
        for (std::size_t s = first; s < first + sc.slabs_per_span; ++s) {
          b.Record(s, first, static_cast<std::uint32_t>(sc.slot_size));
        }
        break;
      }
      case kScanRecord: {
        const std::uint8_t slab = in.U8();
        const std::uint8_t head = in.U8();
        b.Record(slab, head, in.U32());
        break;
      }
      case kScanHeader: b.Header(in); break;
      case kScanPatch: b.Patch(in); break;
      case kScanSnapshot: b.Snapshot(in); break;
    }
  }

  ScanOptions options;
  options.threads = b.flags & kScanThreads ? 3 : 1;
  options.use_snapshot = !(b.flags & kScanNoSnapshot);
  std::span<const std::byte> image(b.image);
  if (b.flags & kScanShortImage) image = image.first(image.size() - kScanSlabSize);
  Result<PoolScan> scan = ScanPool(image, options);
  if (b.flags & kScanShortImage) {
    CHECK(!scan.ok());  // shorter than the capacity any valid superblock states
  } else if (scan.ok()) {
    CheckScan(*scan, image);
  }
  return 0;
}
