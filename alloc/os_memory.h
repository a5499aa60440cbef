// Anonymous memory straight from the kernel, and the kernel's huge-page settings.
//
// This is the one place in cxlkv that calls mmap/munmap/madvise on anonymous memory and reads
// /sys/kernel/mm, so that alignment by over-mapping, huge-page flags and population are done
// (and checked) one way. Sources above it decide policy: which page size, which node.
//
// Thread-safety: the functions are thread-safe. An AnonymousMapping is a move-only owner; one
// object needs external synchronisation, distinct objects do not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cxlkv/status.h"
#include "util/unique_fd.h"

namespace cxlkv::os {

// The PMD size on x86-64 and arm64 with 4 KiB base pages: what THP and the default hugetlb
// pool use.
inline constexpr std::size_t kHugePageSize = std::size_t{2} << 20;

inline constexpr const char* kThpEnabledPath = "/sys/kernel/mm/transparent_hugepage/enabled";
inline constexpr const char* kHugetlbSysfsDir = "/sys/kernel/mm/hugepages";

// The base page size (sysconf(_SC_PAGESIZE)), read once.
std::size_t BasePageSize();

// The system-wide transparent huge page mode, the bracketed word of
// /sys/kernel/mm/transparent_hugepage/enabled ("always [madvise] never").
enum class ThpMode : std::uint8_t {
  kAlways,       // every suitable anonymous mapping gets huge pages
  kMadvise,      // only ranges given MADV_HUGEPAGE
  kNever,        // none
  kUnavailable,  // the file is missing or unreadable (THP not built in)
};
std::string_view ThpModeName(ThpMode mode);  // "always", "madvise", "never", "unavailable"
ThpMode ParseThpMode(std::string_view sysfs_text);
ThpMode ReadThpMode(const std::string& path = kThpEnabledPath);

// One hugetlb pool: /sys/kernel/mm/hugepages/hugepages-<size>kB.
struct HugetlbPool {
  std::size_t page_size = 0;
  bool present = false;             // the kernel has a pool of this page size
  std::uint64_t total_pages = 0;    // nr_hugepages
  std::uint64_t free_pages = 0;     // free_hugepages, reserved ones included
  std::uint64_t reserved_pages = 0; // resv_hugepages: free but promised to existing mappings
  // Pages a new mapping can still reserve.
  std::uint64_t available_pages() const {
    return free_pages > reserved_pages ? free_pages - reserved_pages : 0;
  }
  // Whether a mapping of `bytes` (rounded up to whole pages) fits in the available pages.
  bool CanHold(std::size_t bytes) const;
};
HugetlbPool ReadHugetlbPool(std::size_t page_size = kHugePageSize,
                            const std::string& sysfs_dir = kHugetlbSysfsDir);

// Owns one anonymous mapping and unmaps it on destruction.
class AnonymousMapping {
 public:
  AnonymousMapping() = default;
  AnonymousMapping(void* addr, std::size_t length) : addr_(addr), length_(length) {}
  ~AnonymousMapping() { Reset(); }
  AnonymousMapping(AnonymousMapping&& other) noexcept;
  AnonymousMapping& operator=(AnonymousMapping&& other) noexcept;
  AnonymousMapping(const AnonymousMapping&) = delete;
  AnonymousMapping& operator=(const AnonymousMapping&) = delete;

  std::byte* data() const { return static_cast<std::byte*>(addr_); }
  // The mapped length: the requested size rounded up to whole pages.
  std::size_t length() const { return length_; }

 private:
  void Reset();
  void* addr_ = nullptr;
  std::size_t length_ = 0;
};

// Maps `size` bytes (rounded up to whole pages) of private, read-write anonymous memory whose
// start is a multiple of `alignment` (a power of two; 0 or anything up to the page size means
// page alignment). With `hugetlb` the pages come from the default 2 MiB hugetlb pool and the
// pool reserves them now, so a short pool fails here (NoSpace) rather than with SIGBUS later.
Result<AnonymousMapping> MapAnonymous(std::size_t size, std::size_t alignment, bool hugetlb);

// madvise(MADV_HUGEPAGE) on [addr, addr+len).
Status AdviseHugePages(void* addr, std::size_t len);

// Faults in every page of [addr, addr+len) for writing: MADV_POPULATE_WRITE (Linux 5.14+), or
// one store per page where the kernel does not know it. With MADV_POPULATE_WRITE, memory the
// range's policy cannot supply (a full NUMA node, an empty hugetlb pool) is NoSpace rather
// than a signal; the store fallback has no such protection.
Status Populate(void* addr, std::size_t len, std::size_t page_size);

// A memfd (shmem file) of `size` bytes whose pages are all allocated now (fallocate), so that
// a shared mapping of it can be mapped page by page from the page cache (userfaultfd MINOR
// faults). NoSpace when the memory is not there.
Result<UniqueFd> CreateAllocatedMemfd(const char* name, std::size_t size);

// Maps `size` bytes of fd from offset 0, shared and read-write. The AnonymousMapping owner
// unmaps it like any other mapping.
Result<AnonymousMapping> MapSharedFd(int fd, std::size_t size);

// Drops the page-table entries of [addr, addr+len) (MADV_DONTNEED). On a shared mapping of a
// memfd the bytes stay in the file; the next access faults.
Status DropMappedPages(void* addr, std::size_t len);

// Bytes of [addr, addr+len) that are resident in RAM, per mincore(); for tests and the CLI.
Result<std::size_t> ResidentBytes(const void* addr, std::size_t len);

}  // namespace cxlkv::os
