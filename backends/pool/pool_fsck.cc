#include "backends/pool/pool_fsck.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "backends/pool/durable_pool.h"
#include "util/cpu.h"
#include "util/format.h"
#include "util/parallel_for.h"
#include "util/xxh3.h"

namespace cxlkv::internal {
namespace {

constexpr std::size_t kUnit = ChunkHeader::kSize;
// Problems ToString and ToJson print; the report keeps them all.
constexpr std::size_t kMaxPrinted = 1000;

const ChunkHeader* HeaderAt(const MemoryRegion& region, std::size_t ref) {
  return reinterpret_cast<const ChunkHeader*>(region.data() + ref * kUnit);
}

// A header's key for a report: its bytes, unprintable ones escaped, when its length is in
// range; else "".
std::string LegibleKey(const ChunkHeader& h) {
  if (h.key_len == 0 || h.key_len > kMaxKeySize) return "";
  std::string out;
  for (const char c : h.key_view()) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && u != '\\') {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  return out;
}

bool AllZero(const std::byte* p, std::size_t n) {
  return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

std::uint64_t FsckReport::damaged() const {
  return static_cast<std::uint64_t>(std::count_if(
      problems.begin(), problems.end(), [](const FsckProblem& p) { return !p.crash_leftover; }));
}

std::uint64_t FsckReport::crash_leftovers() const { return problems.size() - damaged(); }

Result<FsckReport> FsckPool(const MemoryRegion& region, bool repair, unsigned threads) {
  const std::uint64_t start = MonotonicNs();
  threads = std::max(1u, threads);
  const std::span<const std::byte> image(region.data(), region.size());
  ScanOptions so;
  so.threads = threads;
  so.use_snapshot = true;  // as a reopen reads it: what the reopen drops, fsck reports
  CXLKV_ASSIGN_OR_RETURN(PoolScan scan, ScanPool(image, so));
  FsckReport r;
  r.superblock = scan.superblock;
  r.counts = scan.counts;
  r.spans = scan.spans.size();
  r.chunks = scan.chunks.size();
  const Superblock& sb = scan.superblock;
  const PoolGeometry& g = sb.geometry;
  auto problem = [&](std::size_t ref, std::string what, bool leftover) {
    FsckProblem p;
    p.header_ref = static_cast<std::uint32_t>(ref);
    if (ref != 0) p.key = LegibleKey(*HeaderAt(region, ref));
    p.what = std::move(what);
    p.crash_leftover = leftover;
    r.problems.push_back(std::move(p));
  };

  // The snapshot a clean close wrote must be usable (a close that found no slot for one
  // writes none: offset 0).
  if (sb.clean && sb.snapshot_offset != 0 && !scan.counts.used_snapshot) {
    problem(0, "the index snapshot of the clean close is unusable (" +
                   scan.counts.snapshot_problem + "); a reopen scans every header instead",
            false);
  }
  // Committed headers the reopen drops.
  for (const DroppedHeader& d : scan.dropped) {
    problem(d.header_ref, "header " + std::string(DropReasonName(d.reason)) + ": chunk dropped",
            CrashCanLeave(d.reason, sb));
  }
  for (const std::uint32_t ref : scan.losers) {
    problem(ref, "lost to a newer header naming its data slot or key: dropped",
            CrashCanLeaveConflicts(sb));
  }

  // Every chunk's bytes against the checksum in its header, in parallel: what a reopen
  // checks on first read.
  std::vector<std::uint8_t> bad(scan.chunks.size(), 0);
  ParallelFor(scan.chunks.size(), threads, [&](std::size_t first, std::size_t last, unsigned) {
    for (std::size_t i = first; i < last; ++i) {
      const ScannedChunk& c = scan.chunks[i];
      const std::byte* data = region.data() + std::size_t{c.data_ref} * kUnit;
      bad[i] = XXH3_64bits(data, c.size) != HeaderAt(region, c.header_ref)->data_xxh3;
    }
  });
  std::unordered_set<std::uint32_t> keep;  // header refs of whole, intact chunks
  for (std::size_t i = 0; i < scan.chunks.size(); ++i) {
    r.chunk_bytes += scan.chunks[i].size;
    if (bad[i]) {
      ++r.corrupt;
      problem(scan.chunks[i].header_ref,
              "bytes fail their checksum: chunk dropped on its first read",
              CrashCanLeaveBadBytes(sb));
    } else {
      keep.insert(scan.chunks[i].header_ref);
    }
  }

  // Slabs outside every valid span: a damaged record is a problem, and a committed, whole
  // header there is a chunk whose span's record was lost (no open looks there). In a free
  // slab of a background pool it may be a freed chunk whose free was never flushed.
  std::vector<bool> covered(g.slab_count(), false);
  for (const ScannedSpan& sp : scan.spans) {
    for (std::size_t s = sp.first_slab; s < sp.first_slab + sp.slabs; ++s) covered[s] = true;
  }
  std::vector<std::size_t> uncovered;
  for (std::size_t s = g.reserved_slabs; s < g.slab_count(); ++s) {
    if (!covered[s]) uncovered.push_back(s);
  }
  std::vector<std::vector<std::uint32_t>> orphans_of(threads);
  ParallelFor(uncovered.size(), threads, [&](std::size_t first, std::size_t last, unsigned t) {
    for (std::size_t i = first; i < last; ++i) {
      const std::size_t begin = uncovered[i] * g.slab_size;
      for (std::size_t off = begin; off < begin + g.slab_size; off += kUnit) {
        const ChunkHeader* h = HeaderAt(region, off / kUnit);
        if (h->state == kHeaderCommitted && HeaderProblem(*h).empty()) {
          orphans_of[t].push_back(static_cast<std::uint32_t>(off / kUnit));
        }
      }
    }
  });
  std::vector<std::uint32_t> orphans;
  for (const auto& o : orphans_of) orphans.insert(orphans.end(), o.begin(), o.end());
  for (const std::size_t s : uncovered) {
    if (!AllZero(region.data() + SlabRecordOffset(s), kSlabRecordSize)) {
      problem(0, "slab record " + std::to_string(s) + " is damaged: it forms no span", false);
    }
  }
  for (const std::uint32_t ref : orphans) {
    const std::size_t slab = std::size_t{ref} * kUnit / g.slab_size;
    const bool free_slab = AllZero(region.data() + SlabRecordOffset(slab), kSlabRecordSize);
    problem(ref, "committed header in slab " + std::to_string(slab) +
                     ", outside every valid span: chunk lost with its span's record",
            free_slab && sb.durability == Durability::kBackground);
  }
  r.orphans = orphans.size();

  if (repair) {
    // Every header slot that is not a kept chunk's and not free becomes free.
    for (const ScannedSpan& sp : scan.spans) {
      if (sp.slot_size != kUnit) continue;
      const std::size_t begin = sp.first_slab * g.slab_size;
      for (std::size_t off = begin; off < begin + sp.slabs * g.slab_size; off += kUnit) {
        const auto ref = static_cast<std::uint32_t>(off / kUnit);
        if (FreeSlotMarked(*HeaderAt(region, ref), sb.version) || keep.count(ref)) continue;
        FreeHeaderOnMedia(region, reinterpret_cast<ChunkHeader*>(region.data() + off));
        ++r.repaired_headers;
      }
    }
    for (const std::uint32_t ref : orphans) {
      FreeHeaderOnMedia(region,
                        reinterpret_cast<ChunkHeader*>(region.data() + std::size_t{ref} * kUnit));
      ++r.repaired_headers;
    }
    // Slab records outside every valid span: cleared, so their slabs are plainly free.
    for (const std::size_t s : uncovered) {
      std::byte* rec = region.data() + SlabRecordOffset(s);
      if (AllZero(rec, kSlabRecordSize)) continue;
      std::memset(rec, 0, kSlabRecordSize);
      region.Persist(rec, kSlabRecordSize);
      ++r.repaired_records;
    }
    // Not clean any more: the next open scans headers instead of trusting a snapshot.
    Superblock next = sb;
    next.clean = false;
    next.snapshot_offset = next.snapshot_bytes = next.snapshot_xxh3 = 0;
    ++next.generation;
    WriteSuperblockOnMedia(region, next, scan.superblock_slot ^ 1);
  }
  r.seconds = static_cast<double>(MonotonicNs() - start) * 1e-9;
  return r;
}

std::string FsckReport::ToString() const {
  const PoolGeometry& g = superblock.geometry;
  std::string chunk_sizes;
  for (std::uint64_t s : g.exact_sizes) chunk_sizes += (chunk_sizes.empty() ? "" : ",") + std::to_string(s);
  auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  char buf[1024];
  std::snprintf(
      buf, sizeof buf,
      "pool %s, format %u, %s, %s shutdown\n"
      "  capacity %s, slab %s (%llu reserved), chunk sizes [%s]\n"
      "  %llu spans; %s: %llu chunks (%s), %llu corrupt\n"
      "  pending %llu, torn %llu, bad fields %llu, bad data slot %llu, conflicts %llu, "
      "wiped %llu, snapshot mismatches %llu, bad slab records %llu, orphan headers %llu\n",
      superblock.UuidString().c_str(), superblock.version,
      std::string(DurabilityName(superblock.durability)).c_str(),
      superblock.clean ? "clean" : "unclean", FormatBytes(g.region_size).c_str(),
      FormatBytes(g.slab_size).c_str(), u(g.reserved_slabs), chunk_sizes.c_str(), u(spans),
      counts.used_snapshot ? "from the index snapshot, headers checked"
                           : (std::to_string(counts.header_slots) + " header slots scanned").c_str(),
      u(chunks), FormatBytes(chunk_bytes).c_str(), u(corrupt), u(counts.pending), u(counts.torn),
      u(counts.bad_fields), u(counts.bad_data_slot), u(counts.conflicts),
      u(counts.wiped), u(counts.snapshot_mismatch), u(counts.bad_slab_records), u(orphans));
  std::string out = buf;
  for (std::size_t i = 0; i < problems.size() && i < kMaxPrinted; ++i) {
    const FsckProblem& p = problems[i];
    out += p.crash_leftover ? "  crash leftover: " : "  DAMAGE: ";
    if (p.header_ref != 0) {
      out += "header " + std::to_string(p.header_ref) + " (byte " +
             std::to_string(std::uint64_t{p.header_ref} * kUnit) + ")";
      out += p.key.empty() ? ", key unreadable: " : ", key " + p.key + ": ";
    }
    out += p.what + "\n";
  }
  if (problems.size() > kMaxPrinted) {
    out += "  ... and " + std::to_string(problems.size() - kMaxPrinted) + " more\n";
  }
  if (repaired_headers != 0 || repaired_records != 0) {
    std::snprintf(buf, sizeof buf, "  repaired: %llu headers freed, %llu slab records cleared\n",
                  u(repaired_headers), u(repaired_records));
    out += buf;
  }
  if (clean()) {
    out += "  result: clean\n";
  } else if (damaged() == 0) {
    out += "  result: PROBLEMS FOUND: " + std::to_string(problems.size()) +
           ", all of kinds a crash under background durability leaves\n";
  } else {
    out += "  result: PROBLEMS FOUND: " + std::to_string(damaged()) + " damaged, " +
           std::to_string(crash_leftovers()) + " crash leftovers\n";
  }
  return out;
}

std::string FsckReport::ToJson() const {
  nlohmann::ordered_json j;
  j["uuid"] = superblock.UuidString();
  j["format_version"] = superblock.version;
  j["durability"] = std::string(DurabilityName(superblock.durability));
  j["clean_shutdown"] = superblock.clean;
  j["capacity"] = superblock.geometry.region_size;
  j["slab_size"] = superblock.geometry.slab_size;
  j["spans"] = spans;
  j["from_snapshot"] = counts.used_snapshot;
  j["header_slots"] = counts.header_slots;
  j["chunks"] = chunks;
  j["chunk_bytes"] = chunk_bytes;
  j["corrupt"] = corrupt;
  j["pending"] = counts.pending;
  j["torn"] = counts.torn;
  j["bad_fields"] = counts.bad_fields;
  j["bad_data_slot"] = counts.bad_data_slot;
  j["conflicts"] = counts.conflicts;
  j["wiped"] = counts.wiped;
  j["snapshot_mismatch"] = counts.snapshot_mismatch;
  j["bad_slab_records"] = counts.bad_slab_records;
  j["orphans"] = orphans;
  j["damaged"] = damaged();
  j["crash_leftovers"] = crash_leftovers();
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < problems.size() && i < kMaxPrinted; ++i) {
    const FsckProblem& p = problems[i];
    nlohmann::ordered_json o;
    o["header"] = p.header_ref;
    o["key"] = p.key;
    o["what"] = p.what;
    o["crash_leftover"] = p.crash_leftover;
    list.push_back(std::move(o));
  }
  j["problems"] = std::move(list);
  j["problems_total"] = problems.size();
  j["repaired_headers"] = repaired_headers;
  j["repaired_records"] = repaired_records;
  j["seconds"] = seconds;
  j["clean"] = clean();
  // Keys are escaped already; replace keeps dump from throwing on anything else.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace cxlkv::internal
