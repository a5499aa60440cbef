#include "tools/cxlkv/demo_tier.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "util/format.h"

namespace cxlkv::cli {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Result<std::unique_ptr<DemoTier>> DemoTier::Open(std::unique_ptr<MemorySource> source,
                                                 std::size_t capacity,
                                                 std::size_t full_chunk_bytes) {
  std::unique_ptr<DemoTier> tier(new DemoTier());
  tier->source_ = std::move(source);
  CXLKV_ASSIGN_OR_RETURN(tier->region_, tier->source_->Map(capacity));

  SlabAllocatorOptions options;
  options.slab_size = kDemoSlabSize;
  options.exact_sizes = {full_chunk_bytes};
  // 4 KiB slots: what O_DIRECT and DMA engines (a later NVMe or GPU path) need.
  options.slot_alignment = 4096;
  // Room for the largest preset's chunk (80 MiB), which spans several slabs.
  options.max_slot_size = std::max<std::size_t>(
      16 * kDemoSlabSize, static_cast<std::size_t>(AlignUp(full_chunk_bytes, kDemoSlabSize)));
  CXLKV_ASSIGN_OR_RETURN(tier->allocator_, SlabAllocator::Create(*tier->region_, options));
  return tier;
}

DemoTier::~DemoTier() = default;

void DemoTier::Write(const Allocation& allocation, std::span<const std::byte> bytes) {
  const std::size_t size = std::min(allocation.size, bytes.size());
  const auto start = std::chrono::steady_clock::now();
  region_->CopyAndPersist(allocation.data, bytes.data(), size);
  counters_.write_seconds += SecondsSince(start);
  ++counters_.chunks;
  counters_.bytes += size;
}

void DemoTier::Load(const Allocation& allocation, std::span<std::byte> out) {
  const auto start = std::chrono::steady_clock::now();
  std::memcpy(out.data(), allocation.data, std::min(allocation.size, out.size()));
  counters_.read_seconds += SecondsSince(start);
  counters_.read_bytes += allocation.size;
}

Status DemoTier::Release(const Allocation& allocation) { return allocator_->Free(allocation); }

}  // namespace cxlkv::cli
