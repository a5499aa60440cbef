#include "backends/memory_tier.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "util/format.h"
#include "util/log.h"
#include "util/xxh3.h"

namespace cxlkv::internal {
namespace {

[[noreturn]] void BookkeepingBroken(const std::string& tier, const Status& s) {
  internal::LogF("cxlkv store: freeing a slot of tier %s: %s", tier.c_str(),
                 s.ToString().c_str());
  std::abort();
}

}  // namespace

// Measured by bench_store's copy table (docs/benchmarks.md) on the development VM: streaming
// stores beat memcpy by 1.16-1.19x at 2 and 32 MiB for every kind here (DRAM, NUMA node 0, a
// file mapping) when writing into the tier, because this VM's glibc never
// streams on its own (its threshold follows a 480 MiB L3). CopyBytes still uses memcpy below
// 256 KiB, where the destination may well be read back from cache. Kinds with no measurement
// yet (devdax) follow the file mapping, their nearest relative; rerun the table with --devdax
// on such a machine and change this line if it disagrees.
CopyMethod AutoCopyMethod(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kDram:
    case MemoryKind::kNumaNode:
    case MemoryKind::kFile:
    case MemoryKind::kDevDax:
    case MemoryKind::kEmulatedCxlSsd:
      return CopyMethod::kNonTemporal;
  }
  return CopyMethod::kMemcpy;
}

MemoryTier::MemoryTier(std::string name, std::unique_ptr<MemorySource> source,
                       std::unique_ptr<MemoryRegion> region)
    : MappedTier(std::move(name), region->data()),
      source_(std::move(source)),
      region_(std::move(region)) {}

Result<std::unique_ptr<TierBackend>> MemoryTier::Open(TierOptions& options,
                                                      const TierPlace& place) {
  const std::size_t index = place.index;
  const std::size_t slab_size = place.slab_size;
  std::string name = options.name.empty() ? "tier" + std::to_string(index) : options.name;
  const bool last = index + 1 == place.count;
  if (options.capacity < slab_size) {
    return Status::InvalidArgument("capacity of " + FormatBytes(options.capacity) +
                                   " is below one slab (" + FormatBytes(slab_size) + ")");
  }
  // Header slots are named by a 32-bit count of 256-byte units.
  if (options.capacity > (std::size_t{1} << 32) * ChunkHeader::kSize) {
    return Status::InvalidArgument("capacity of " + FormatBytes(options.capacity) +
                                   " is above the 1 TiB a tier can address");
  }
  const double high = options.high_watermark.value_or(last ? 1.0 : 0.95);
  const double low = options.low_watermark.value_or(last ? 1.0 : std::min(high, 0.85));
  if (!(high > 0 && high <= 1 && low > 0 && low <= high)) {
    return Status::InvalidArgument("watermarks high " + std::to_string(high) + ", low " +
                                   std::to_string(low) + " must satisfy 0 < low <= high <= 1");
  }
  const int promote = options.promote_after_hits.value_or(index == 0 || last ? 0 : 2);
  if (promote < 0 || promote > 63) {
    return Status::InvalidArgument("promote_after_hits " + std::to_string(promote) +
                                   " must be 0 (never) to 63");
  }
  CXLKV_ASSIGN_OR_RETURN(const Durability durability, ParseDurability(options.durability));

  std::unique_ptr<MemorySource> source = std::move(options.source);
  if (source == nullptr) {
    CXLKV_ASSIGN_OR_RETURN(source, MemorySource::Parse(options.source_spec));
  }
  CopyMethod copy_method = CopyMethod::kMemcpy;
  if (options.copy == "auto") {
    copy_method = AutoCopyMethod(source->kind());
  } else {
    CXLKV_ASSIGN_OR_RETURN(copy_method, ParseCopyMethod(options.copy));
  }
  CXLKV_ASSIGN_OR_RETURN(
      std::unique_ptr<EvictionPolicy> policy,
      EvictionPolicy::Create(options.eviction, *place.entries, options.capacity));
  CXLKV_ASSIGN_OR_RETURN(std::unique_ptr<MemoryRegion> region, source->Map(options.capacity));
  std::unique_ptr<MemoryTier> tier(
      new MemoryTier(std::move(name), std::move(source), std::move(region)));
  tier->promote_after_hits_ = index == 0 ? 0 : promote;
  tier->copy_method_ = copy_method;
  tier->policy_ = std::move(policy);
  tier->source_spec_ = tier->source_->spec();
  tier->capacity_ = options.capacity;
  tier->high_bytes_ = static_cast<std::size_t>(high * static_cast<double>(options.capacity));
  tier->low_bytes_ = static_cast<std::size_t>(low * static_cast<double>(options.capacity));

  SlabAllocatorOptions slab;
  slab.slab_size = slab_size;
  // 256-byte granules: the header's size. Chunk slots of a registered size that is a multiple
  // of 4 KiB (every real KV chunk) still start 4 KiB aligned, since slabs are.
  slab.slot_alignment = ChunkHeader::kSize;
  slab.min_slot_size = ChunkHeader::kSize;
  // No slot larger than the region: a chunk that could never fit is then refused up front
  // (InvalidArgument) instead of emptying the tier before NoSpace.
  slab.max_slot_size = std::min(16 * slab_size, options.capacity / slab_size * slab_size);
  for (std::size_t size : *place.chunk_sizes) {
    if (size <= slab.max_slot_size) slab.exact_sizes.push_back(size);
  }
  if (durability != Durability::kVolatile) {
    DurablePoolOptions po;
    po.durability = durability;
    po.format = options.format;
    po.flush_interval = options.flush_interval;
    CXLKV_ASSIGN_OR_RETURN(tier->pool_, DurablePool::Open(*tier->region_, slab, po));
  }
  CXLKV_ASSIGN_OR_RETURN(tier->allocator_, SlabAllocator::Create(*tier->region_, slab));
  if (tier->pool_ != nullptr) {
    CXLKV_ASSIGN_OR_RETURN(tier->recovered_, tier->pool_->Recover(*tier->allocator_));
    // Damaged headers dropped at open count with the chunks whose bytes fail on first read.
    tier->corrupt_dropped.store(tier->pool_->open_report().damaged);
  }
  // The header class, learnt from one allocation (classes are fixed by the options).
  CXLKV_ASSIGN_OR_RETURN(Allocation probe, tier->allocator_->Allocate(ChunkHeader::kSize));
  tier->header_class_ = probe.class_id;
  tier->header_slot_bytes_ = probe.capacity;
  CXLKV_RETURN_IF_ERROR(tier->allocator_->Free(probe));
  return std::unique_ptr<TierBackend>(std::move(tier));
}

Result<ChunkSlots> MemoryTier::Allocate(std::size_t size) {
  ChunkSlots slots;
  CXLKV_ASSIGN_OR_RETURN(slots.data, allocator_->Allocate(AllocSize(size)));
  Result<Allocation> header = allocator_->Allocate(ChunkHeader::kSize);
  if (!header.ok()) {
    Status s = allocator_->Free(slots.data);
    if (!s.ok()) BookkeepingBroken(name(), s);
    return header.status();
  }
  slots.header = *header;
  slots.data.size = size;  // the chunk's; FreeSlots asks the allocator for AllocSize again
  return slots;
}

void MemoryTier::FreeSlots(const ChunkSlots& slots) {
  if (pool_ != nullptr) pool_->Release(reinterpret_cast<ChunkHeader*>(slots.header.data));
  Allocation data = slots.data;
  data.size = AllocSize(data.size);
  Status s = allocator_->Free(data);
  if (s.ok()) s = allocator_->Free(slots.header);
  if (!s.ok()) BookkeepingBroken(name(), s);
}

void MemoryTier::Release(std::uint64_t locator, std::uint32_t size, std::uint16_t class_id) {
  ChunkSlots slots;
  slots.data =
      Allocation{DataAt(locator), size, allocator_->SlotSizeFor(AllocSize(size)), class_id};
  slots.header = Allocation{reinterpret_cast<std::byte*>(HeaderAt(locator)), ChunkHeader::kSize,
                            header_slot_bytes_, header_class_};
  FreeSlots(slots);
}

std::size_t MemoryTier::Charge(std::size_t size) const {
  return allocator_->SlotSizeFor(AllocSize(size)) + header_slot_bytes_;
}

void MemoryTier::Write(const ChunkSlots& slots,
                       std::span<const std::span<const std::byte>> parts, const ChunkHeader& h) {
  std::byte* dst = slots.data.data;
  if (pool_ == nullptr) {
    for (std::span<const std::byte> part : parts) {
      if (part.empty()) continue;
      CopyBytes(dst, part.data(), part.size(), copy_method_);
      dst += part.size();
    }
    std::memcpy(slots.header.data, &h, sizeof(h));
    return;
  }
  // Durable: the checksum is taken piece by piece just before each piece is copied, so the
  // source is read from memory once and hashed from cache. Under persist-on-put on pmem-like
  // memory (devdax, byte or cache-line persistence) the region's own copy writes the bytes
  // (libpmem2: non-temporal stores, which need no flush afterwards); elsewhere a plain copy,
  // flushed once for the whole chunk (one msync of a page-cache file, not one per piece) or,
  // under background durability, later by the flusher.
  constexpr std::size_t kPiece = std::size_t{512} << 10;
  const bool flush_now = pool_->durability() == Durability::kPersistOnPut &&
                         region_->info().persistence != PersistGranularity::kPage;
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  if (parts.empty()) {  // a reserved slot: the bytes are already in place
    XXH3_64bits_update(&state, dst, h.size);
  }
  for (std::span<const std::byte> part : parts) {
    for (std::size_t off = 0; off < part.size(); off += kPiece) {
      const std::size_t n = std::min(kPiece, part.size() - off);
      XXH3_64bits_update(&state, part.data() + off, n);
      if (flush_now) {
        region_->CopyNoDrain(dst, part.data() + off, n);
      } else {
        CopyBytes(dst, part.data() + off, n, copy_method_);
      }
      dst += n;
    }
  }
  ChunkHeader header = h;
  header.data_xxh3 = XXH3_64bits_digest(&state);
  pool_->Commit(reinterpret_cast<ChunkHeader*>(slots.header.data), header, slots.data.data,
                h.size, /*data_flushed=*/flush_now && !parts.empty());
}

bool MemoryTier::Intact(std::uint64_t locator, std::size_t size) const {
  return XXH3_64bits(DataAt(locator), size) == HeaderAt(locator)->data_xxh3;
}

std::vector<TierChunk> MemoryTier::TakeRecovered() {
  std::vector<TierChunk> found;
  found.reserve(recovered_.size());
  for (const PoolChunk& c : recovered_) {
    const ChunkSlots slots{c.data, Allocation{reinterpret_cast<std::byte*>(c.header),
                                              ChunkHeader::kSize}};
    found.push_back({c.hash, Locator(slots), static_cast<std::uint32_t>(c.data.size),
                      static_cast<std::uint16_t>(c.data.class_id), /*unverified=*/true});
  }
  recovered_.clear();
  return found;
}

Status MemoryTier::Close(std::span<const TierChunk> stored) {
  if (pool_ == nullptr) return Status::Ok();
  std::vector<SnapshotRecord> records;
  records.reserve(stored.size());
  for (const TierChunk& c : stored) {
    SnapshotRecord r;
    r.hash_lo = c.hash.lo;
    r.hash_hi = c.hash.hi;
    r.header_ref = static_cast<std::uint32_t>(c.locator >> 32);
    r.data_ref = static_cast<std::uint32_t>(c.locator);
    r.size = c.size;
    records.push_back(r);
  }
  return pool_->Close(*allocator_, records);
}

void MemoryTier::Sync() {
  if (pool_ != nullptr) pool_->Flush();
}

void MemoryTier::Describe(TierStats& ts, StoreStats& stats) const {
  (void)stats;
  ts.source = source_spec_;
  ts.copy = CopyMethodName(copy_method_);
  ts.capacity = capacity_;
  ts.durability = pool_ != nullptr ? DurabilityName(pool_->durability()) : "volatile";
  if (pool_ != nullptr) {
    ts.recovery_seconds = pool_->open_report().seconds;
    ts.recovered_from_snapshot = pool_->open_report().counts.used_snapshot;
  }
}

}  // namespace cxlkv::internal
