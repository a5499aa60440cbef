#include "backends/pool/pool_scan.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "alloc/size_classes.h"
#include "util/parallel_for.h"
#include "util/xxh3.h"

namespace cxlkv::internal {
namespace {

constexpr std::size_t kUnit = ChunkHeader::kSize;  // header_ref / data_ref units

ChunkHeader HeaderAt(std::span<const std::byte> image, std::uint64_t ref) {
  ChunkHeader h;
  std::memcpy(&h, image.data() + ref * kUnit, sizeof h);
  return h;
}

// The spans of the slab table: a head record (naming itself) followed by the records of the
// span's other slabs, all naming that head and slot size, for a class the geometry has.
std::vector<ScannedSpan> ReadSpans(std::span<const std::byte> image, const PoolGeometry& g,
                                   const SizeClassTable& table, PoolScanCounts& counts) {
  std::vector<ScannedSpan> spans;
  const std::size_t slabs = g.slab_count();
  for (std::size_t slab = g.reserved_slabs; slab < slabs;) {
    SlabRecord r;
    const auto rec = image.subspan(SlabRecordOffset(slab), kSlabRecordSize);
    if (!DecodeSlabRecord(slab, rec, &r)) {
      if (std::any_of(rec.begin(), rec.end(), [](std::byte b) { return b != std::byte{0}; })) {
        ++counts.bad_slab_records;  // not a free record either
      }
      ++slab;
      continue;
    }
    const int cls = table.ClassFor(r.slot_size);
    std::size_t k = 0;
    bool ok = r.head == slab && cls >= 0 &&
              table.at(static_cast<std::uint32_t>(cls)).slot_size == r.slot_size;
    if (ok) {
      k = table.at(static_cast<std::uint32_t>(cls)).slabs_per_span;
      ok = k <= slabs - slab;
      for (std::size_t s = slab + 1; ok && s < slab + k; ++s) {
        SlabRecord other;
        ok = DecodeSlabRecord(s, image.subspan(SlabRecordOffset(s), kSlabRecordSize), &other) &&
             other.head == r.head && other.slot_size == r.slot_size;
      }
    }
    if (!ok) {
      ++counts.bad_slab_records;
      ++slab;
      continue;
    }
    spans.push_back({slab, k, r.slot_size});
    slab += k;
  }
  return spans;
}

// Per slab: the span holding it (index into spans) or -1.
std::vector<std::int32_t> SpanOfSlab(const std::vector<ScannedSpan>& spans, std::size_t slabs) {
  std::vector<std::int32_t> of(slabs, -1);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    for (std::size_t s = spans[i].first_slab; s < spans[i].first_slab + spans[i].slabs; ++s) {
      of[s] = static_cast<std::int32_t>(i);
    }
  }
  return of;
}

// Whether ref (256-byte units) is the start of a slot of a span whose slots are
// `want_slot_size` (0: any data span, i.e. one of at least kMinDurableDataSlot) and hold size.
bool IsSlot(std::uint64_t ref, std::size_t size, std::size_t want_slot_size,
            const PoolGeometry& g, const std::vector<ScannedSpan>& spans,
            const std::vector<std::int32_t>& span_of, const SizeClassTable& table) {
  const std::uint64_t offset = ref * kUnit;
  if (offset >= g.slab_count() * g.slab_size) return false;
  const std::int32_t si = span_of[offset / g.slab_size];
  if (si < 0) return false;
  const ScannedSpan& sp = spans[static_cast<std::size_t>(si)];
  if (want_slot_size != 0 ? sp.slot_size != want_slot_size
                          : sp.slot_size < kMinDurableDataSlot) {
    return false;
  }
  const std::uint64_t in_span = offset - sp.first_slab * g.slab_size;
  const int cls = table.ClassFor(sp.slot_size);
  const std::size_t slots = table.at(static_cast<std::uint32_t>(cls)).slots_per_span;
  return in_span % sp.slot_size == 0 && in_span / sp.slot_size < slots && size <= sp.slot_size;
}

// Scans the header slots of spans[header_spans[first..last)] into out.
void ScanHeaders(std::span<const std::byte> image, const std::vector<ScannedSpan>& spans,
                 const std::vector<std::size_t>& header_spans, std::size_t first,
                 std::size_t last, const PoolGeometry& g, std::uint32_t version,
                 const std::vector<std::int32_t>& span_of, const SizeClassTable& table,
                 std::vector<ScannedChunk>& out, std::vector<DroppedHeader>& dropped,
                 PoolScanCounts& counts) {
  for (std::size_t i = first; i < last; ++i) {
    const ScannedSpan& sp = spans[header_spans[i]];
    const std::size_t begin = sp.first_slab * g.slab_size;
    const int cls = table.ClassFor(sp.slot_size);
    const std::size_t slots = table.at(static_cast<std::uint32_t>(cls)).slots_per_span;
    for (std::size_t slot = 0; slot < slots; ++slot) {
      const std::size_t offset = begin + slot * kUnit;
      ++counts.header_slots;
      const ChunkHeader h = HeaderAt(image, offset / kUnit);
      const auto ref = static_cast<std::uint32_t>(offset / kUnit);
      if (h.state == kHeaderFree) {
        if (!FreeSlotMarked(h, version)) {
          ++counts.wiped;
          dropped.push_back({ref, DropReason::kWipedSlot});
        }
        continue;
      }
      if (h.state == kHeaderPending) {
        ++counts.pending;
        continue;
      }
      if (OldSnapshotInHeaderSlot(h, version)) continue;
      const std::string problem = HeaderProblem(h);
      if (!problem.empty()) {
        if (h.state == kHeaderCommitted && h.check != HeaderCheck(h)) {
          ++counts.torn;
          dropped.push_back({ref, DropReason::kTorn});
        } else {
          ++counts.bad_fields;
          dropped.push_back({ref, DropReason::kBadFields});
        }
        continue;
      }
      if (!IsSlot(h.data_ref, h.size, 0, g, spans, span_of, table)) {
        ++counts.bad_data_slot;
        dropped.push_back({ref, DropReason::kBadDataSlot});
        continue;
      }
      ScannedChunk c;
      c.hash = HashKey(h.key_view());
      c.header_ref = ref;
      c.data_ref = h.data_ref;
      c.size = h.size;
      c.sequence = h.sequence;
      out.push_back(c);
    }
  }
}

// Keeps, among chunks with equal key_of, the one with the highest sequence; the others'
// header slots go to losers.
template <typename Key, typename Hasher, typename KeyOf>
void KeepNewest(PoolScan& scan, KeyOf key_of) {
  std::unordered_map<Key, std::size_t, Hasher> winner;  // key -> index in kept
  std::vector<ScannedChunk> kept;
  kept.reserve(scan.chunks.size());
  for (const ScannedChunk& c : scan.chunks) {
    auto [it, inserted] = winner.try_emplace(key_of(c), kept.size());
    if (inserted) {
      kept.push_back(c);
      continue;
    }
    ScannedChunk& old = kept[it->second];
    ++scan.counts.conflicts;
    if (c.sequence > old.sequence) {
      scan.losers.push_back(old.header_ref);
      old = c;
    } else {
      scan.losers.push_back(c.header_ref);
    }
  }
  scan.chunks = std::move(kept);
}

// One chunk per header slot, then per data slot, then per key (by its 128-bit hash: two keys
// with one hash cannot both be stored anyway), the newest winning. A header scan finds each
// header slot once; a snapshot may name one twice, and Recover could not claim it twice.
void SettleConflicts(PoolScan& scan) {
  KeepNewest<std::uint32_t, std::hash<std::uint32_t>>(
      scan, [](const ScannedChunk& c) { return c.header_ref; });
  KeepNewest<std::uint32_t, std::hash<std::uint32_t>>(
      scan, [](const ScannedChunk& c) { return c.data_ref; });
  KeepNewest<KeyHash, KeyHashHasher>(scan, [](const ScannedChunk& c) { return c.hash; });
}

// The chunks of a clean pool's snapshot, validated as headers would be (without reading them).
Status ReadSnapshot(std::span<const std::byte> image, const PoolGeometry& g,
                    const std::vector<ScannedSpan>& spans,
                    const std::vector<std::int32_t>& span_of, const SizeClassTable& table,
                    PoolScan& scan) {
  const Superblock& sb = scan.superblock;
  if (sb.snapshot_offset == 0) return Status::NotFound("no snapshot");
  const std::uint64_t offset = sb.snapshot_offset;  // a byte offset into the region
  if (offset >= image.size() || sb.snapshot_bytes > image.size() - offset ||
      sb.snapshot_bytes < kSnapshotHeaderSize) {
    return Status::Corruption("snapshot out of the region");
  }
  const auto bytes = image.subspan(offset, sb.snapshot_bytes);
  if (XXH3_64bits(bytes.data(), bytes.size()) != sb.snapshot_xxh3) {
    return Status::Corruption("snapshot checksum mismatch");
  }
  CXLKV_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> records,
                         DecodeSnapshot(bytes, sb.generation));
  std::vector<ScannedChunk> chunks;
  chunks.reserve(records.size());
  for (const SnapshotRecord& r : records) {
    if (!IsSlot(r.header_ref, kUnit, kUnit, g, spans, span_of, table) ||
        !IsSlot(r.data_ref, r.size, 0, g, spans, span_of, table) || r.size == 0) {
      return Status::Corruption("snapshot names a slot that is not one");
    }
    ScannedChunk c;
    c.hash = KeyHash{r.hash_lo, r.hash_hi};
    c.header_ref = r.header_ref;
    c.data_ref = r.data_ref;
    c.size = r.size;
    chunks.push_back(c);
  }
  scan.chunks = std::move(chunks);
  scan.max_sequence = sb.next_sequence;
  return Status::Ok();
}

// The snapshot says where each chunk's header is; the header must say the same (committed and
// whole, that data slot, that size, a key of that hash), or the chunk is dropped: the store
// takes key, metadata and checksum from it.
void CheckSnapshotHeaders(std::span<const std::byte> image, unsigned threads, PoolScan& scan) {
  // In the order of the media, as a header scan reads them: the index's order is the hash's,
  // a random walk over the header pages (2x slower on a fresh mapping, measured).
  std::sort(scan.chunks.begin(), scan.chunks.end(),
            [](const ScannedChunk& a, const ScannedChunk& b) { return a.header_ref < b.header_ref; });
  std::vector<std::uint8_t> bad(scan.chunks.size(), 0);
  ParallelFor(scan.chunks.size(), threads, [&](std::size_t first, std::size_t last, unsigned) {
    for (std::size_t i = first; i < last; ++i) {
      ScannedChunk& c = scan.chunks[i];
      const ChunkHeader h = HeaderAt(image, c.header_ref);
      bad[i] = !HeaderProblem(h).empty() || h.data_ref != c.data_ref || h.size != c.size ||
               HashKey(h.key_view()) != c.hash;
      c.sequence = h.sequence;
    }
  });
  std::vector<ScannedChunk> kept;
  kept.reserve(scan.chunks.size());
  for (std::size_t i = 0; i < scan.chunks.size(); ++i) {
    if (bad[i]) {
      ++scan.counts.snapshot_mismatch;
      scan.dropped.push_back({scan.chunks[i].header_ref, DropReason::kSnapshotMismatch});
    } else {
      kept.push_back(scan.chunks[i]);
    }
  }
  scan.chunks = std::move(kept);
}

}  // namespace

std::string_view DropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kTorn: return "torn (committed, check word fails)";
    case DropReason::kBadFields: return "unknown state or fields out of range";
    case DropReason::kBadDataSlot: return "names no data slot of a fitting span";
    case DropReason::kSnapshotMismatch: return "not the committed header the snapshot names";
    case DropReason::kWipedSlot: return "wiped (no commit word, no free mark): a chunk may be lost";
  }
  return "?";
}

bool CrashCanLeaveConflicts(const Superblock& sb) {
  return !sb.clean && sb.durability == Durability::kBackground;
}

bool CrashCanLeaveBadBytes(const Superblock& sb) { return CrashCanLeaveConflicts(sb); }

bool CrashCanLeave(DropReason reason, const Superblock& sb) {
  return CrashCanLeaveConflicts(sb) &&
         (reason == DropReason::kTorn || reason == DropReason::kBadDataSlot);
}

Result<PoolScan> ScanPool(std::span<const std::byte> image, const ScanOptions& options) {
  CXLKV_ASSIGN_OR_RETURN(SuperblockChoice choice, ReadSuperblocks(image));
  PoolScan scan;
  scan.superblock = choice.sb;
  scan.superblock_slot = choice.slot;
  const PoolGeometry& g = scan.superblock.geometry;
  if (image.size() < g.region_size) {
    return Status::Corruption("pool image of " + std::to_string(image.size()) +
                              " bytes is shorter than its capacity of " +
                              std::to_string(g.region_size));
  }
  Result<SizeClassTable> table = SizeClassTable::Build(g.AllocatorOptions());
  if (!table.ok()) {
    return Status::Corruption("superblock geometry: " + table.status().message());
  }
  scan.spans = ReadSpans(image, g, *table, scan.counts);
  const std::vector<std::int32_t> span_of = SpanOfSlab(scan.spans, g.slab_count());

  if (options.use_snapshot && scan.superblock.clean) {
    const Status s = ReadSnapshot(image, g, scan.spans, span_of, *table, scan);
    if (s.ok()) {
      // A snapshot that settles no conflicts is one the pool wrote: trust but verify slots.
      const std::size_t before = scan.chunks.size();
      SettleConflicts(scan);
      if (scan.losers.empty() && scan.chunks.size() == before) {
        CheckSnapshotHeaders(image, options.threads, scan);
        scan.counts.used_snapshot = true;
        scan.counts.snapshot_chunks = scan.chunks.size();
        return scan;
      }
      scan.counts.snapshot_problem = "snapshot lists one slot or key twice";
    } else {
      scan.counts.snapshot_problem = s.message();
    }
    scan.chunks.clear();
    scan.losers.clear();
    scan.counts.conflicts = 0;
  } else if (options.use_snapshot) {
    scan.counts.snapshot_problem = "the pool was not shut down cleanly";
  }

  std::vector<std::size_t> header_spans;
  for (std::size_t i = 0; i < scan.spans.size(); ++i) {
    if (scan.spans[i].slot_size == kUnit) header_spans.push_back(i);
  }
  const unsigned threads = std::max(1u, options.threads);
  std::vector<std::vector<ScannedChunk>> found(threads);
  std::vector<std::vector<DroppedHeader>> dropped(threads);
  std::vector<PoolScanCounts> counts(threads);
  ParallelFor(header_spans.size(), threads, [&](std::size_t first, std::size_t last, unsigned t) {
    ScanHeaders(image, scan.spans, header_spans, first, last, g, scan.superblock.version,
                span_of, *table, found[t],
                dropped[t], counts[t]);
  });
  for (unsigned t = 0; t < threads; ++t) {
    scan.chunks.insert(scan.chunks.end(), found[t].begin(), found[t].end());
    scan.dropped.insert(scan.dropped.end(), dropped[t].begin(), dropped[t].end());
    scan.counts.header_slots += counts[t].header_slots;
    scan.counts.pending += counts[t].pending;
    scan.counts.torn += counts[t].torn;
    scan.counts.bad_fields += counts[t].bad_fields;
    scan.counts.bad_data_slot += counts[t].bad_data_slot;
    scan.counts.wiped += counts[t].wiped;
  }
  for (const ScannedChunk& c : scan.chunks) scan.max_sequence = std::max(scan.max_sequence, c.sequence);
  SettleConflicts(scan);
  return scan;
}

}  // namespace cxlkv::internal
