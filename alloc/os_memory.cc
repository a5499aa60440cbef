#include "alloc/os_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include "util/format.h"
#include "util/log.h"

namespace cxlkv::os {
namespace {

// MAP_FAILED is a C-style cast in <sys/mman.h>; spell it without one.
void* const kMapFailed = reinterpret_cast<void*>(static_cast<std::intptr_t>(-1));

std::uintptr_t Address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
void* Pointer(std::uintptr_t a) { return reinterpret_cast<void*>(a); }

// A failed munmap of a range we mapped ourselves means the address space is not what we think
// it is; there is no caller to hand a Status to (destructors, cleanup paths), so say it loudly.
void UnmapOrReport(void* addr, std::size_t len) {
  if (len == 0) return;
  if (munmap(addr, len) != 0) {
    const int err = errno;
    internal::LogF("cxlkv: munmap(%p, %zu) failed: %s", addr, len, std::strerror(err));
  }
}

bool ReadUint(const std::string& path, std::uint64_t* value) {
  std::ifstream in(path);
  if (!in) return false;
  in >> *value;
  return static_cast<bool>(in);
}

std::string Describe(std::size_t size, bool hugetlb) {
  return FormatBytes(size) + (hugetlb ? " of hugetlb memory" : " of anonymous memory");
}

// Encodes the page size into MAP_HUGETLB's flags (log2 in bits 26..31) so the mapping uses the
// 2 MiB pool even where the kernel's default hugetlb size is another.
int HugetlbFlags() {
  const int log2_size = std::countr_zero(kHugePageSize);
  return MAP_HUGETLB | (log2_size << MAP_HUGE_SHIFT);
}

}  // namespace

std::size_t BasePageSize() {
  static const std::size_t size = [] {
    const long v = sysconf(_SC_PAGESIZE);
    return v > 0 ? static_cast<std::size_t>(v) : std::size_t{4096};
  }();
  return size;
}

std::string_view ThpModeName(ThpMode mode) {
  switch (mode) {
    case ThpMode::kAlways: return "always";
    case ThpMode::kMadvise: return "madvise";
    case ThpMode::kNever: return "never";
    case ThpMode::kUnavailable: return "unavailable";
  }
  return "unavailable";
}

ThpMode ParseThpMode(std::string_view text) {
  const std::size_t open = text.find('[');
  const std::size_t close = text.find(']', open);
  if (open == std::string_view::npos || close == std::string_view::npos) {
    return ThpMode::kUnavailable;
  }
  const std::string_view word = text.substr(open + 1, close - open - 1);
  if (word == "always") return ThpMode::kAlways;
  if (word == "madvise") return ThpMode::kMadvise;
  if (word == "never") return ThpMode::kNever;
  return ThpMode::kUnavailable;
}

ThpMode ReadThpMode(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ThpMode::kUnavailable;
  std::stringstream text;
  text << in.rdbuf();
  return ParseThpMode(text.str());
}

bool HugetlbPool::CanHold(std::size_t bytes) const {
  if (!present || page_size == 0) return false;
  const std::uint64_t pages = (static_cast<std::uint64_t>(bytes) + page_size - 1) / page_size;
  return pages <= available_pages();
}

HugetlbPool ReadHugetlbPool(std::size_t page_size, const std::string& sysfs_dir) {
  HugetlbPool pool;
  pool.page_size = page_size;
  const std::string dir = sysfs_dir + "/hugepages-" + std::to_string(page_size / 1024) + "kB/";
  // A pool needs its three counters; a missing one means no pool of this size (or no sysfs).
  pool.present = ReadUint(dir + "nr_hugepages", &pool.total_pages) &&
                 ReadUint(dir + "free_hugepages", &pool.free_pages) &&
                 ReadUint(dir + "resv_hugepages", &pool.reserved_pages);
  if (!pool.present) pool.total_pages = pool.free_pages = pool.reserved_pages = 0;
  return pool;
}

AnonymousMapping::AnonymousMapping(AnonymousMapping&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)), length_(std::exchange(other.length_, 0)) {}

AnonymousMapping& AnonymousMapping::operator=(AnonymousMapping&& other) noexcept {
  if (this != &other) {
    Reset();
    addr_ = std::exchange(other.addr_, nullptr);
    length_ = std::exchange(other.length_, 0);
  }
  return *this;
}

void AnonymousMapping::Reset() {
  if (addr_ != nullptr) UnmapOrReport(addr_, length_);
  addr_ = nullptr;
  length_ = 0;
}

Result<AnonymousMapping> MapAnonymous(std::size_t size, std::size_t alignment, bool hugetlb) {
  const std::size_t page = hugetlb ? kHugePageSize : BasePageSize();
  if (size == 0) return Status::InvalidArgument("cannot map 0 bytes of anonymous memory");
  if (alignment != 0 && !IsPowerOfTwo(alignment)) {
    return Status::InvalidArgument("alignment " + std::to_string(alignment) +
                                   " is not a power of two (mapping " +
                                   Describe(size, hugetlb) + ")");
  }
  const std::size_t align = std::max(alignment, page);
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  if (size > kMax - page || AlignUp(size, page) > kMax - align) {
    return Status::InvalidArgument("size " + std::to_string(size) + " with alignment " +
                                   FormatBytes(align) + " overflows the address space");
  }
  const std::size_t length = AlignUp(size, page);

  // MAP_NORESERVE: a pool may be sized far beyond what is touched; commit page by page.
  // Not for hugetlb, where it would skip the pool reservation and turn a short pool into
  // SIGBUS at first touch instead of an error now.
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (hugetlb ? HugetlbFlags() : MAP_NORESERVE);
  const int prot = PROT_READ | PROT_WRITE;

  if (align == page) {  // the kernel aligns to the page size by itself
    void* addr = mmap(nullptr, length, prot, flags, -1, 0);
    if (addr == kMapFailed) return Status::FromErrno("mmap " + Describe(length, hugetlb), errno);
    return AnonymousMapping(addr, length);
  }

  // Reserve address space (no memory) with room to align, then map the real pages at the
  // aligned address inside it with MAP_FIXED: the reservation is ours, so no other thread can
  // take the address between the two calls. Then hand back the unused head and tail.
  const std::size_t reserve_length = length + align;
  void* reserve = mmap(nullptr, reserve_length, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserve == kMapFailed) {
    return Status::FromErrno("reserving " + FormatBytes(reserve_length) +
                                 " of address space to align " + Describe(length, hugetlb) +
                                 " to " + FormatBytes(align),
                             errno);
  }
  const std::uintptr_t start = AlignUp(Address(reserve), align);
  void* addr = mmap(Pointer(start), length, prot, flags | MAP_FIXED, -1, 0);
  if (addr == kMapFailed) {
    const int err = errno;
    UnmapOrReport(reserve, reserve_length);
    return Status::FromErrno("mmap " + Describe(length, hugetlb), err);
  }
  const std::size_t head = start - Address(reserve);
  const std::size_t tail = reserve_length - head - length;
  AnonymousMapping mapping(addr, length);  // owns the pages from here on, whatever fails next
  if (head != 0 && munmap(reserve, head) != 0) {
    const int err = errno;
    UnmapOrReport(Pointer(start + length), tail);
    return Status::FromErrno("munmap of the alignment head of " + Describe(length, hugetlb), err);
  }
  if (tail != 0 && munmap(Pointer(start + length), tail) != 0) {
    return Status::FromErrno("munmap of the alignment tail of " + Describe(length, hugetlb),
                             errno);
  }
  return mapping;
}

Status AdviseHugePages(void* addr, std::size_t len) {
  if (madvise(addr, len, MADV_HUGEPAGE) != 0) {
    return Status::FromErrno("madvise(MADV_HUGEPAGE) on " + FormatBytes(len), errno);
  }
  return Status::Ok();
}

Status Populate(void* addr, std::size_t len, std::size_t page_size) {
  if (madvise(addr, len, MADV_POPULATE_WRITE) == 0) return Status::Ok();
  const int err = errno;
  if (err != EINVAL) {
    // ENOMEM: the policy's nodes or the hugetlb pool cannot supply the pages; EFAULT: the
    // same for hugetlb and MAP_NORESERVE ranges. Both mean "not enough memory there".
    const int code_err = err == EFAULT ? ENOMEM : err;
    return Status::FromErrno("populating " + FormatBytes(len) + " (MADV_POPULATE_WRITE)",
                             code_err);
  }
  // EINVAL: a kernel before 5.14. Write one byte per page; a store of the byte already there
  // faults the page in writable without changing what it holds.
  auto* bytes = static_cast<volatile unsigned char*>(addr);
  for (std::size_t off = 0; off < len; off += page_size) bytes[off] = bytes[off];
  return Status::Ok();
}

Result<std::size_t> ResidentBytes(const void* addr, std::size_t len) {
  const std::size_t page = BasePageSize();
  const std::uintptr_t begin = Address(addr) / page * page;
  const std::uintptr_t end = AlignUp(Address(addr) + len, page);
  std::vector<unsigned char> vec((end - begin) / page);
  if (mincore(Pointer(begin), end - begin, vec.data()) != 0) {
    return Status::FromErrno("mincore on " + FormatBytes(len), errno);
  }
  const auto resident = std::count_if(vec.begin(), vec.end(), [](unsigned char v) {
    return (v & 1) != 0;
  });
  return static_cast<std::size_t>(resident) * page;
}

Result<UniqueFd> CreateAllocatedMemfd(const char* name, std::size_t size) {
  UniqueFd fd(memfd_create(name, MFD_CLOEXEC));
  if (fd.get() < 0) return Status::FromErrno(std::string("memfd_create ") + name, errno);
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return Status::FromErrno("sizing memfd " + std::string(name) + " to " + FormatBytes(size),
                             errno);
  }
  const int err = posix_fallocate(fd.get(), 0, static_cast<off_t>(size));
  if (err != 0) {
    return Status::FromErrno("allocating " + FormatBytes(size) + " for memfd " + name, err);
  }
  return fd;
}

Result<AnonymousMapping> MapSharedFd(int fd, std::size_t size) {
  if (size == 0) return Status::InvalidArgument("cannot map 0 bytes of a file descriptor");
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == kMapFailed) {
    return Status::FromErrno("mmap " + FormatBytes(size) + " shared of fd " + std::to_string(fd),
                             errno);
  }
  return AnonymousMapping(addr, size);
}

Status DropMappedPages(void* addr, std::size_t len) {
  if (madvise(addr, len, MADV_DONTNEED) != 0) {
    return Status::FromErrno("madvise(MADV_DONTNEED) of " + FormatBytes(len), errno);
  }
  return Status::Ok();
}

}  // namespace cxlkv::os
