// Anonymous memory sources: DRAM with the kernel's default placement, and memory bound
// strictly to one NUMA node (how a CXL memory expander, a CPU-less node, becomes a tier).
//
// Both map through os::MapAnonymous and differ only in the policy applied before the pages are
// faulted in. Defines MemorySource::Dram and MemorySource::NumaNode.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "alloc/numa.h"
#include "alloc/os_memory.h"
#include "cxlkv/memory_source.h"
#include "util/format.h"

namespace cxlkv {
namespace {

// Thread-safety: immutable after construction.
class AnonymousRegion final : public MemoryRegion {
 public:
  AnonymousRegion(os::AnonymousMapping mapping, std::size_t size, RegionInfo info)
      : MemoryRegion(mapping.data(), size, std::move(info)), mapping_(std::move(mapping)) {}

 private:
  os::AnonymousMapping mapping_;  // unmapped by its destructor
};

Status CheckSizeAndAlignment(std::string_view source, std::size_t size, std::size_t alignment) {
  if (size == 0) {
    return Status::InvalidArgument(std::string(source) + ": cannot map a region of 0 bytes");
  }
  if (alignment != 0 && !IsPowerOfTwo(alignment)) {
    return Status::InvalidArgument(std::string(source) + ": alignment " +
                                   std::to_string(alignment) + " B is not a power of two");
  }
  return Status::Ok();
}

std::string HugetlbShortMessage(const os::HugetlbPool& pool, std::size_t size) {
  const std::uint64_t needed = AlignUp(size, os::kHugePageSize) / os::kHugePageSize;
  if (!pool.present) {
    return "explicit huge pages: this kernel has no hugetlb pool of " +
           FormatBytes(os::kHugePageSize) + " pages (no " + os::kHugetlbSysfsDir +
           "/hugepages-2048kB); use HugePages::kTransparent";
  }
  return "explicit huge pages: the hugetlb pool has " + std::to_string(pool.available_pages()) +
         " free " + FormatBytes(os::kHugePageSize) + " pages (" +
         FormatBytes(pool.available_pages() * os::kHugePageSize) + "), the " +
         FormatBytes(size) + " region needs " + std::to_string(needed) +
         "; raise /proc/sys/vm/nr_hugepages or use HugePages::kTransparent";
}

// Explicit huge pages from the hugetlb pool; Unsupported when the pool cannot hold the region.
Result<os::AnonymousMapping> MapHugetlb(std::size_t size, std::size_t alignment,
                                        RegionInfo* info) {
  const os::HugetlbPool pool = os::ReadHugetlbPool();
  if (!pool.CanHold(size)) return Status::Unsupported(HugetlbShortMessage(pool, size));
  Result<os::AnonymousMapping> mapping = os::MapAnonymous(size, alignment, /*hugetlb=*/true);
  if (!mapping.ok() && mapping.status().IsNoSpace()) {
    // Another process took the pages between the check and the mmap.
    return Status::Unsupported(HugetlbShortMessage(os::ReadHugetlbPool(), size) + " (" +
                               mapping.status().message() + ")");
  }
  if (mapping.ok()) info->page_size = os::kHugePageSize;
  return mapping;
}

// 4 KiB pages aligned to 2 MiB so the kernel can back them with transparent huge pages, and
// MADV_HUGEPAGE unless THP is off. A refusal is not an error: the region keeps 4 KiB pages.
Result<os::AnonymousMapping> MapTransparent(std::size_t size, std::size_t alignment,
                                            RegionInfo* info) {
  CXLKV_ASSIGN_OR_RETURN(
      os::AnonymousMapping mapping,
      os::MapAnonymous(size, std::max(alignment, os::kHugePageSize), /*hugetlb=*/false));
  info->page_size = os::BasePageSize();
  info->transparent_huge_pages = os::ReadThpMode() != os::ThpMode::kNever &&
                                 os::AdviseHugePages(mapping.data(), mapping.length()).ok();
  return mapping;
}

Result<os::AnonymousMapping> MapWithHugePages(std::size_t size, std::size_t alignment,
                                              HugePages policy, RegionInfo* info) {
  switch (policy) {
    case HugePages::kNone:
      info->page_size = os::BasePageSize();
      return os::MapAnonymous(size, alignment, /*hugetlb=*/false);
    case HugePages::kExplicit:
      return MapHugetlb(size, alignment, info);
    case HugePages::kAuto:
      if (os::ReadHugetlbPool().CanHold(size)) {
        Result<os::AnonymousMapping> mapping = MapHugetlb(size, alignment, info);
        if (mapping.ok()) return mapping;
        // Lost a race for the pool: transparent pages are the documented fallback.
      }
      return MapTransparent(size, alignment, info);
    case HugePages::kTransparent:
      return MapTransparent(size, alignment, info);
  }
  return Status::InvalidArgument("unknown HugePages value " +
                                 std::to_string(static_cast<int>(policy)));
}

std::unique_ptr<MemoryRegion> MakeRegion(os::AnonymousMapping mapping, std::size_t size,
                                         RegionInfo info) {
  return std::make_unique<AnonymousRegion>(std::move(mapping), size, std::move(info));
}

// Thread-safety: immutable; Map may run on several threads at once.
class DramSource final : public MemorySource {
 public:
  explicit DramSource(DramOptions options) : options_(options) {}

  Result<std::unique_ptr<MemoryRegion>> Map(std::size_t size, std::size_t alignment) override {
    CXLKV_RETURN_IF_ERROR(CheckSizeAndAlignment("dram", size, alignment));
    RegionInfo info;
    info.kind = MemoryKind::kDram;
    info.persistence = PersistGranularity::kNone;
    CXLKV_ASSIGN_OR_RETURN(os::AnonymousMapping mapping,
                           MapWithHugePages(size, alignment, options_.huge_pages, &info));
    if (options_.populate) {
      CXLKV_RETURN_IF_ERROR(os::Populate(mapping.data(), mapping.length(), info.page_size)
                                .WithContext("dram"));
    }
    return MakeRegion(std::move(mapping), size, std::move(info));
  }

  MemoryKind kind() const override { return MemoryKind::kDram; }
  std::string spec() const override { return "dram"; }

 private:
  const DramOptions options_;
};

// Thread-safety: immutable; Map may run on several threads at once.
class NumaNodeSource final : public MemorySource {
 public:
  explicit NumaNodeSource(NumaOptions options) : options_(options) {}

  Result<std::unique_ptr<MemoryRegion>> Map(std::size_t size, std::size_t alignment) override {
    const std::string name = spec();
    CXLKV_RETURN_IF_ERROR(CheckSizeAndAlignment(name, size, alignment));
    CXLKV_RETURN_IF_ERROR(numa::CheckNodeCanHold(options_.node, size));
    RegionInfo info;
    info.kind = MemoryKind::kNumaNode;
    info.numa_node = options_.node;
    info.persistence = PersistGranularity::kNone;
    // Hugetlb pages come from per-node pools sized separately; a tier on a node uses THP.
    const HugePages pages =
        options_.huge_pages == HugePages::kNone ? HugePages::kNone : HugePages::kTransparent;
    CXLKV_ASSIGN_OR_RETURN(os::AnonymousMapping mapping,
                           MapWithHugePages(size, alignment, pages, &info));
    // Bind before the first touch, so no page is ever placed elsewhere.
    CXLKV_RETURN_IF_ERROR(numa::BindToNode(mapping.data(), mapping.length(), options_.node));
    if (options_.populate) {
      CXLKV_RETURN_IF_ERROR(
          os::Populate(mapping.data(), mapping.length(), info.page_size)
              .WithContext("NUMA node " + std::to_string(options_.node) + " cannot supply " +
                           FormatBytes(mapping.length())));
    }
    return MakeRegion(std::move(mapping), size, std::move(info));
  }

  MemoryKind kind() const override { return MemoryKind::kNumaNode; }
  std::string spec() const override { return "numa:" + std::to_string(options_.node); }

 private:
  const NumaOptions options_;
};

}  // namespace

std::unique_ptr<MemorySource> MemorySource::Dram(DramOptions options) {
  return std::make_unique<DramSource>(options);
}

std::unique_ptr<MemorySource> MemorySource::NumaNode(NumaOptions options) {
  return std::make_unique<NumaNodeSource>(options);
}

}  // namespace cxlkv
