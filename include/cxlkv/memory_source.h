// Memory sources: where the bytes of a tier live.
//
// A MemorySource maps a MemoryRegion of a given size and alignment and says what it is: DRAM,
// memory bound to one NUMA node (a CXL memory expander is a CPU-less node), a file or a
// /dev/dax device mapped through PMDK libpmem2. Everything above this layer (slab allocator,
// tiers) sees only MemoryRegion, so a test can stand a memfd or a temporary file in for a device.
//
// Thread-safety: a MemorySource may be used from several threads (Map is thread-safe). A
// MemoryRegion's bytes are the caller's to synchronise; its accessors and its Persist/Flush/
// Drain/Copy functions are thread-safe (they touch no shared state of the region).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cxlkv/status.h"

namespace cxlkv {

enum class MemoryKind : std::uint8_t {
  kDram,      // anonymous memory, the kernel's default placement
  kNumaNode,  // anonymous memory bound strictly to one NUMA node (MPOL_BIND)
  kFile,      // a file on any file system, mapped shared through libpmem2
  kDevDax,    // a /dev/daxX.Y character device, mapped through libpmem2
  kEmulatedCxlSsd,  // a CXL-SSD emulated in DRAM with userfaultfd (cxlkv/cxl_ssd.h)
};
// "dram", "numa", "file", "devdax", "cxlssd"
std::string_view MemoryKindName(MemoryKind kind);

// Smallest unit the region needs flushed for stores to survive a crash, as libpmem2 reports it.
enum class PersistGranularity : std::uint8_t {
  kNone,       // volatile memory: nothing survives the process
  kByte,       // persistent at the store (eADR pmem, CXL with a flush-on-fail domain)
  kCacheLine,  // persistent after a cache-line flush + fence (ADR pmem, devdax)
  kPage,       // persistent after msync of the page (a file on a page-cache file system)
};
std::string_view PersistGranularityName(PersistGranularity g);  // "none", "byte", ...

// What a region is; printed by the CLI and used by tiers to pick copy paths.
struct RegionInfo {
  MemoryKind kind = MemoryKind::kDram;
  int numa_node = -1;          // node holding the memory; -1 when unknown or spread
  std::size_t page_size = 0;   // mapping page size: 4 KiB, 2 MiB (hugetlb/devdax), 1 GiB
  bool transparent_huge_pages = false;  // DRAM/NUMA: MADV_HUGEPAGE was accepted
  PersistGranularity persistence = PersistGranularity::kNone;
  std::string path;            // file or device path; empty for anonymous memory
  std::string ToString() const;  // "file /tmp/x 64.0 MiB page 4.0 KiB persist=page node -1"
};

// One mapping. Unmapped (and its file descriptors closed) when destroyed.
class MemoryRegion {
 public:
  virtual ~MemoryRegion() = default;
  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;

  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const RegionInfo& info() const { return info_; }

  // Persistence primitives of this mapping (libpmem2's for file/devdax; memcpy and no-ops for
  // volatile memory), exposed so that tiers can write headers with a commit order.
  // Flush: start writing back [addr, addr+len). Drain: wait for all flushes. Persist: both.
  virtual void Flush(const void* addr, std::size_t len) const;
  virtual void Drain() const;
  void Persist(const void* addr, std::size_t len) const {
    Flush(addr, len);
    Drain();
  }
  // Copies len bytes into the region at dst (dst inside the region) and makes them persistent
  // where the region is persistent. Large copies use non-temporal stores on pmem-like mappings.
  virtual void CopyAndPersist(void* dst, const void* src, std::size_t len) const;
  // Copies without the final drain: the caller batches several copies before one Drain().
  virtual void CopyNoDrain(void* dst, const void* src, std::size_t len) const;

 protected:
  MemoryRegion(std::byte* data, std::size_t size, RegionInfo info)
      : data_(data), size_(size), info_(std::move(info)) {}

 private:
  std::byte* data_;
  std::size_t size_;
  RegionInfo info_;
};

// Huge-page policy for anonymous memory.
enum class HugePages : std::uint8_t {
  kNone,         // 4 KiB pages only
  kTransparent,  // align to 2 MiB and madvise(MADV_HUGEPAGE); silently 4 KiB where THP is off
  kExplicit,     // MAP_HUGETLB from the hugetlb pool; Unsupported when the pool is too small
  kAuto,         // explicit if the pool can hold the region, else transparent
};

struct DramOptions {
  HugePages huge_pages = HugePages::kAuto;
  bool populate = false;  // fault every page in at Map time instead of on first touch
};

struct NumaOptions {
  int node = 0;
  HugePages huge_pages = HugePages::kTransparent;  // kExplicit/kAuto behave as kTransparent
  bool populate = true;  // populate so placement is decided (and verifiable) at Map time
};

struct FileOptions {
  std::string path;
  bool create = true;    // create the file, or grow it to the mapped size, when needed
  std::size_t offset = 0;  // start of the mapping in the file; a multiple of the page size
};

struct DevDaxOptions {
  std::string path;      // /dev/daxX.Y
  std::size_t offset = 0;  // a multiple of the device alignment
};

class MemorySource {
 public:
  virtual ~MemorySource() = default;

  // Maps `size` bytes whose start is aligned to `alignment` (a power of two; 0 means the
  // source's natural alignment). size 0 means "all of it" for a device, InvalidArgument else.
  virtual Result<std::unique_ptr<MemoryRegion>> Map(std::size_t size,
                                                    std::size_t alignment = 0) = 0;

  virtual MemoryKind kind() const = 0;
  // "dram", "numa:1", "file:/tmp/pool", "devdax:/dev/dax0.0": the same form Parse accepts.
  virtual std::string spec() const = 0;

  static std::unique_ptr<MemorySource> Dram(DramOptions options = {});
  static std::unique_ptr<MemorySource> NumaNode(NumaOptions options);
  static std::unique_ptr<MemorySource> File(FileOptions options);
  static std::unique_ptr<MemorySource> DevDax(DevDaxOptions options);

  // Parses a source spec ("dram", "numa:N", "file:PATH", "devdax:PATH") with default options.
  static Result<std::unique_ptr<MemorySource>> Parse(std::string_view spec);
};

}  // namespace cxlkv
