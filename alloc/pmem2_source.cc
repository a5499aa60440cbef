// File and device DAX sources, mapped shared through PMDK libpmem2.
//
// libpmem2 decides how a mapping is made persistent (MAP_SYNC + cache flushes on DAX, msync on a
// page-cache file system) and hands back matching flush/drain/memcpy functions, which the region
// exposes so tiers can write headers with a commit order. Defines MemorySource::File and
// MemorySource::DevDax.
//
// One exception: a device DAX that no nvdimm namespace carries (a soft-reserved range bound to
// dax_hmem, which is how firmware hands out CXL memory, or a CXL ram region) is mapped here with
// mmap, because libpmem2 1.12 (Debian 12) dereferences a null namespace while reading the size
// of such a device and crashes (pmem/pmdk#6160; found by the QEMU devdax mode, tools/qemu).
#include <fcntl.h>
#include <libpmem2.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "alloc/os_memory.h"
#include "cxlkv/devices.h"
#include "cxlkv/memory_source.h"
#include "util/format.h"
#include "util/log.h"
#include "util/media_lock.h"
#include "util/unique_fd.h"

namespace cxlkv {
namespace {


// libpmem2's *_delete functions take a pointer to the handle and null it. config and source
// deletion cannot fail; map and reservation deletion can only when munmap does.
struct ConfigDeleter {
  void operator()(pmem2_config* c) const { static_cast<void>(pmem2_config_delete(&c)); }
};
struct SourceDeleter {
  void operator()(pmem2_source* s) const { static_cast<void>(pmem2_source_delete(&s)); }
};
struct MapDeleter {
  void operator()(pmem2_map* m) const {
    if (const int ret = pmem2_map_delete(&m); ret != 0) {
      internal::LogF("cxlkv: pmem2_map_delete failed (%d): %s", ret, pmem2_errormsg());
    }
  }
};
struct ReservationDeleter {
  void operator()(pmem2_vm_reservation* r) const {
    if (const int ret = pmem2_vm_reservation_delete(&r); ret != 0) {
      internal::LogF("cxlkv: pmem2_vm_reservation_delete failed (%d): %s", ret,
                     pmem2_errormsg());
    }
  }
};
using ConfigPtr = std::unique_ptr<pmem2_config, ConfigDeleter>;
using SourcePtr = std::unique_ptr<pmem2_source, SourceDeleter>;
using MapPtr = std::unique_ptr<pmem2_map, MapDeleter>;
using ReservationPtr = std::unique_ptr<pmem2_vm_reservation, ReservationDeleter>;

// A failed libpmem2 call as a Status: `what` says what was attempted, the message adds
// pmem2_errormsg(). libpmem2 returns either -errno or one of its PMEM2_E_* codes.
// libpmem2 does not set a message on every path (and then the last one stays), so its words
// are an addition, never the whole message.
Status Pmem2Status(const std::string& what, int ret) {
  const std::string detail = pmem2_errormsg();
  const std::string message = detail.empty() ? what : what + " (libpmem2: " + detail + ")";
  switch (ret) {
    case PMEM2_E_NOSUPP:
    case PMEM2_E_GRANULARITY_NOT_SUPPORTED:
    case PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED:
      return Status::Unsupported(message);
    case PMEM2_E_NO_ACCESS:
      return Status::PermissionDenied(message);
    case PMEM2_E_MAPPING_EXISTS:
    case PMEM2_E_MAP_EXISTS:
      return Status::Busy(message);
    case PMEM2_E_INVALID_FILE_HANDLE:
    case PMEM2_E_INVALID_FILE_TYPE:
    case PMEM2_E_MAP_RANGE:
    case PMEM2_E_OFFSET_OUT_OF_RANGE:
    case PMEM2_E_OFFSET_UNALIGNED:
    case PMEM2_E_INVALID_ALIGNMENT_VALUE:
    case PMEM2_E_LENGTH_UNALIGNED:
    case PMEM2_E_LENGTH_OUT_OF_RANGE:
    case PMEM2_E_SOURCE_EMPTY:
    case PMEM2_E_ADDRESS_UNALIGNED:
    case PMEM2_E_SRC_DEVDAX_PRIVATE:
      return Status::InvalidArgument(message);
    default:
      break;
  }
  if (ret < 0 && ret > -4096) {  // -errno: the code and words errno implies, then libpmem2's
    const Status from_errno = Status::FromErrno(what, -ret);
    return Status(from_errno.code(),
                  from_errno.message() + (detail.empty() ? "" : " (libpmem2: " + detail + ")"));
  }
  return Status::IOError(message + " (libpmem2 error " + std::to_string(ret) + ")");
}

PersistGranularity FromPmem2(pmem2_granularity g) {
  switch (g) {
    case PMEM2_GRANULARITY_BYTE: return PersistGranularity::kByte;
    case PMEM2_GRANULARITY_CACHE_LINE: return PersistGranularity::kCacheLine;
    case PMEM2_GRANULARITY_PAGE: return PersistGranularity::kPage;
  }
  return PersistGranularity::kPage;
}

// One libpmem2 mapping and everything it needs kept alive.
// Thread-safety: immutable; libpmem2's flush/drain/memcpy functions are thread-safe.
class Pmem2Region final : public MemoryRegion {
 public:
  Pmem2Region(UniqueFd fd, ReservationPtr reservation, MapPtr map, std::size_t size,
              RegionInfo info)
      : MemoryRegion(static_cast<std::byte*>(pmem2_map_get_address(map.get())), size,
                     std::move(info)),
        flush_(pmem2_get_flush_fn(map.get())),
        drain_(pmem2_get_drain_fn(map.get())),
        memcpy_(pmem2_get_memcpy_fn(map.get())),
        fd_(std::move(fd)),
        reservation_(std::move(reservation)),
        map_(std::move(map)) {}

  void Flush(const void* addr, std::size_t len) const override { flush_(addr, len); }
  void Drain() const override { drain_(); }
  void CopyAndPersist(void* dst, const void* src, std::size_t len) const override {
    memcpy_(dst, src, len, 0);
  }
  void CopyNoDrain(void* dst, const void* src, std::size_t len) const override {
    memcpy_(dst, src, len, PMEM2_F_MEM_NODRAIN);
  }

 private:
  pmem2_flush_fn flush_;
  pmem2_drain_fn drain_;
  pmem2_memcpy_fn memcpy_;
  // Destroyed bottom-up: the map, then the reservation it sits in, then the descriptor.
  UniqueFd fd_;
  ReservationPtr reservation_;
  MapPtr map_;
};

// A device DAX mapped with mmap, without libpmem2 (see the top of the file). Stores reach the
// device through the CPU caches: Flush writes the lines back with CLFLUSH (baseline x86-64;
// CLWB would need a CPU check) and Drain fences.
// Thread-safety: immutable.
class DirectDaxRegion final : public MemoryRegion {
 public:
  DirectDaxRegion(UniqueFd fd, void* reservation, std::size_t reserved, std::byte* data,
                  std::size_t size, RegionInfo info)
      : MemoryRegion(data, size, std::move(info)),
        fd_(std::move(fd)),
        reservation_(reservation),
        reserved_(reserved) {}
  ~DirectDaxRegion() override { munmap(reservation_, reserved_); }

  void Flush(const void* addr, std::size_t len) const override {
#if defined(__x86_64__)
    constexpr std::uintptr_t kLine = 64;
    const auto end = reinterpret_cast<std::uintptr_t>(addr) + len;
    for (std::uintptr_t p = reinterpret_cast<std::uintptr_t>(addr) & ~(kLine - 1); p < end;
         p += kLine) {
      _mm_clflush(reinterpret_cast<const void*>(p));
    }
#else
    static_cast<void>(addr);
    static_cast<void>(len);
#endif
  }
  void Drain() const override {
#if defined(__x86_64__)
    _mm_sfence();
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  }
  void CopyAndPersist(void* dst, const void* src, std::size_t len) const override {
    std::memcpy(dst, src, len);
    Flush(dst, len);
    Drain();
  }
  void CopyNoDrain(void* dst, const void* src, std::size_t len) const override {
    std::memcpy(dst, src, len);
    Flush(dst, len);
  }

 private:
  UniqueFd fd_;
  void* reservation_;  // the whole address-space reservation; the mapping sits inside it
  std::size_t reserved_;
};

// True when libndctl lists a namespace whose device DAX is `path`: libpmem2 can map it.
bool BehindNamespace(const std::string& path) {
  for (const NamespaceInfo& ns : DiscoverNamespaces()) {
    if (ns.dax_device == path) return true;
  }
  return false;
}

struct MapRequest {
  std::size_t offset = 0;            // in the file or device
  std::size_t length = 0;            // a multiple of source_alignment
  std::size_t size = 0;              // what the region reports (<= length)
  std::size_t alignment = 0;         // of the start address; 0: the source's own
  std::size_t source_alignment = 0;  // pmem2_source_alignment
  RegionInfo info;                   // kind, path, node and page size; persistence is filled in
};

std::string Describe(const MapRequest& r) {
  std::string out = FormatBytes(r.length) + " of " + r.info.path;
  if (r.offset != 0) out += " at offset " + FormatBytes(r.offset);
  return out;
}

Result<std::unique_ptr<MemoryRegion>> MapThroughPmem2(UniqueFd fd, const pmem2_source* source,
                                                       MapRequest request) {
  const std::string what = Describe(request);
  pmem2_config* raw_config = nullptr;
  if (const int ret = pmem2_config_new(&raw_config); ret != 0) {
    return Pmem2Status("creating a libpmem2 config to map " + what, ret);
  }
  ConfigPtr config(raw_config);
  // PAGE is the coarsest granularity there is, so every mapping qualifies; the granularity
  // libpmem2 actually provides is read back below.
  if (const int ret =
          pmem2_config_set_required_store_granularity(config.get(), PMEM2_GRANULARITY_PAGE);
      ret != 0) {
    return Pmem2Status("setting the store granularity to map " + what, ret);
  }
  if (const int ret = pmem2_config_set_offset(config.get(), request.offset); ret != 0) {
    return Pmem2Status("setting the offset to map " + what, ret);
  }
  if (const int ret = pmem2_config_set_length(config.get(), request.length); ret != 0) {
    return Pmem2Status("setting the length to map " + what, ret);
  }

  // libpmem2 aligns a mapping to the source's alignment by itself. For a stricter alignment,
  // reserve length + alignment of address space and place the mapping at the aligned offset.
  ReservationPtr reservation;
  if (request.alignment > request.source_alignment) {
    pmem2_vm_reservation* raw = nullptr;
    const std::size_t reserve_length = request.length + request.alignment;
    if (const int ret = pmem2_vm_reservation_new(&raw, nullptr, reserve_length); ret != 0) {
      return Pmem2Status("reserving " + FormatBytes(reserve_length) + " of address space to " +
                             "align " + what + " to " + FormatBytes(request.alignment),
                         ret);
    }
    reservation.reset(raw);
    const auto base = reinterpret_cast<std::uintptr_t>(pmem2_vm_reservation_get_address(raw));
    const std::size_t offset = AlignUp(base, request.alignment) - base;
    if (const int ret = pmem2_config_set_vm_reservation(config.get(), raw, offset); ret != 0) {
      return Pmem2Status("placing " + what + " in its address-space reservation", ret);
    }
  }

  pmem2_map* raw_map = nullptr;
  if (const int ret = pmem2_map_new(&raw_map, config.get(), source); ret != 0) {
    return Pmem2Status("mapping " + what, ret);
  }
  MapPtr map(raw_map);
  const auto address = reinterpret_cast<std::uintptr_t>(pmem2_map_get_address(raw_map));
  const std::size_t alignment = std::max(request.alignment, request.source_alignment);
  if (address % alignment != 0 || pmem2_map_get_size(raw_map) < request.size) {
    return Status::IOError("libpmem2 mapped " + what + " at a start or size that breaks the " +
                           FormatBytes(alignment) + " alignment asked for");
  }
  request.info.persistence = FromPmem2(pmem2_map_get_store_granularity(raw_map));
  return std::unique_ptr<MemoryRegion>(std::make_unique<Pmem2Region>(
      std::move(fd), std::move(reservation), std::move(map), request.size,
      std::move(request.info)));
}

// Maps request.length bytes of the device at request.offset, its start aligned to
// request.alignment, with MAP_SYNC where the kernel takes it.
Result<std::unique_ptr<MemoryRegion>> MapDirect(UniqueFd fd, MapRequest request) {
  const std::string what = Describe(request);
  const std::size_t reserved = request.length + request.alignment;
  void* base = mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1, 0);
  if (base == MAP_FAILED) {
    return Status::FromErrno("reserving " + FormatBytes(reserved) + " of address space for " +
                                 what,
                             errno);
  }
  void* aligned = reinterpret_cast<void*>(
      AlignUp(reinterpret_cast<std::uintptr_t>(base), request.alignment));
  const auto offset = static_cast<off_t>(request.offset);
  void* p = mmap(aligned, request.length, PROT_READ | PROT_WRITE,
                 MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED, fd.get(), offset);
  if (p == MAP_FAILED && (errno == EOPNOTSUPP || errno == EINVAL)) {
    p = mmap(aligned, request.length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd.get(),
             offset);
  }
  if (p == MAP_FAILED) {
    const int err = errno;
    munmap(base, reserved);
    return Status::FromErrno("mapping " + what, err);
  }
  request.info.persistence = PersistGranularity::kCacheLine;
  return std::unique_ptr<MemoryRegion>(std::make_unique<DirectDaxRegion>(
      std::move(fd), base, reserved, static_cast<std::byte*>(p), request.size,
      std::move(request.info)));
}

Result<SourcePtr> SourceFromFd(const UniqueFd& fd, const std::string& path) {
  pmem2_source* raw = nullptr;
  if (const int ret = pmem2_source_from_fd(&raw, fd.get()); ret != 0) {
    if (ret == PMEM2_E_INVALID_FILE_TYPE) {  // a character device outside the dax subsystem
      return Status::InvalidArgument(path + " is a character device but not a device DAX " +
                                     "(its /sys/dev/char subsystem is not dax)");
    }
    return Pmem2Status("creating a libpmem2 source for " + path, ret);
  }
  return SourcePtr(raw);
}

// A file cxlkv creates is its owner's alone (0600): a pool holds KV caches, which give away
// the prompts they came from, and whoever may open it can also lock it (util/media_lock.h).
Result<UniqueFd> OpenReadWrite(const std::string& path, bool create) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
  if (fd >= 0) return UniqueFd(fd);
  const int err = errno;
  if (err == EISDIR) return Status::InvalidArgument(path + " is a directory, not a file");
  if (err == ENOENT) {
    return Status::NotFound(create ? "cannot create " + path + ": its directory does not exist"
                                   : path + " does not exist (create=false)");
  }
  return Status::FromErrno("opening " + path + " read-write", err);
}

Status CheckAlignmentValue(const std::string& path, std::size_t alignment) {
  if (alignment != 0 && !IsPowerOfTwo(alignment)) {
    return Status::InvalidArgument("alignment " + std::to_string(alignment) + " B for " + path +
                                   " is not a power of two");
  }
  return Status::Ok();
}

// Grows the file behind fd to `bytes` with real blocks, so a full file system fails now
// (NoSpace) and not as SIGBUS on a store into the mapping later.
Status GrowFile(int fd, const std::string& path, std::size_t bytes) {
  int err = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (err == EOPNOTSUPP || err == EINVAL) {
    // The file system cannot allocate ahead (some FUSE and network file systems): a sparse
    // extension is the best it offers.
    err = ftruncate(fd, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
  }
  if (err != 0) return Status::FromErrno("growing " + path + " to " + FormatBytes(bytes), err);
  return Status::Ok();
}

// Thread-safety: immutable; Map may run on several threads at once (two Maps that grow the same
// file both ask for the same size).
class FileSource final : public MemorySource {
 public:
  explicit FileSource(FileOptions options) : options_(std::move(options)) {}

  Result<std::unique_ptr<MemoryRegion>> Map(std::size_t size, std::size_t alignment) override {
    const std::string& path = options_.path;
    if (path.empty()) return Status::InvalidArgument("file source with an empty path");
    if (size == 0) {
      return Status::InvalidArgument("cannot map 0 bytes of file " + path +
                                     " (size 0 means the whole device only for devdax)");
    }
    CXLKV_RETURN_IF_ERROR(CheckAlignmentValue(path, alignment));
    const std::size_t page = os::BasePageSize();
    if (options_.offset % page != 0) {
      return Status::InvalidArgument("offset " + std::to_string(options_.offset) + " in " + path +
                                     " is not a multiple of the page size " + FormatBytes(page));
    }
    const std::size_t max = std::numeric_limits<std::size_t>::max();
    if (size > max - page || AlignUp(size, page) > max - options_.offset) {
      return Status::InvalidArgument("offset " + FormatBytes(options_.offset) + " + size " +
                                     std::to_string(size) + " overflows for " + path);
    }
    const std::size_t length = AlignUp(size, page);
    const std::size_t end = options_.offset + length;

    CXLKV_ASSIGN_OR_RETURN(UniqueFd fd, OpenReadWrite(path, options_.create));
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) return Status::FromErrno("fstat " + path, errno);
    if (!S_ISREG(st.st_mode)) {
      return Status::InvalidArgument(path + " is not a regular file" +
                                     (S_ISCHR(st.st_mode) ? " (map a device DAX with devdax:)"
                                                          : ""));
    }
    // Before the file is grown or read: one store (or fsck, format) at a time.
    CXLKV_RETURN_IF_ERROR(LockMedia(fd.get(), path, options_.offset, length));
    const auto file_size = static_cast<std::size_t>(st.st_size);
    if (file_size < end) {
      if (!options_.create) {
        std::string need = "the " + FormatBytes(length) + " to map";
        if (options_.offset != 0) need = "offset " + FormatBytes(options_.offset) + " + " + need;
        return Status::InvalidArgument("file " + path + " is " + FormatBytes(file_size) +
                                       ", smaller than " + need + " (create=false)");
      }
      CXLKV_RETURN_IF_ERROR(GrowFile(fd.get(), path, end));
    }

    CXLKV_ASSIGN_OR_RETURN(SourcePtr source, SourceFromFd(fd, path));
    MapRequest request;
    if (const int ret = pmem2_source_alignment(source.get(), &request.source_alignment);
        ret != 0) {
      return Pmem2Status("reading the mapping alignment of " + path, ret);
    }
    request.offset = options_.offset;
    request.length = AlignUp(length, request.source_alignment);
    request.size = size;
    request.alignment = alignment;
    request.info.kind = MemoryKind::kFile;
    request.info.path = path;
    request.info.page_size = page;
    return MapThroughPmem2(std::move(fd), source.get(), std::move(request));
  }

  MemoryKind kind() const override { return MemoryKind::kFile; }
  std::string spec() const override { return "file:" + options_.path; }

 private:
  const FileOptions options_;
};

// Thread-safety: immutable; Map may run on several threads at once.
class DevDaxSource final : public MemorySource {
 public:
  explicit DevDaxSource(DevDaxOptions options) : options_(std::move(options)) {}

  Result<std::unique_ptr<MemoryRegion>> Map(std::size_t size, std::size_t alignment) override {
    const std::string& path = options_.path;
    if (path.empty()) return Status::InvalidArgument("devdax source with an empty path");
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      const int err = errno;
      if (err == ENOENT) return Status::NotFound("device DAX " + path + " does not exist");
      return Status::FromErrno("stat " + path, err);
    }
    if (!S_ISCHR(st.st_mode)) {
      return Status::InvalidArgument(path + " is not a character device (devdax: wants " +
                                     "/dev/daxX.Y; map a regular file with file:)");
    }
    CXLKV_RETURN_IF_ERROR(CheckAlignmentValue(path, alignment));
    // libdaxctl knows the device's node; it may not know the device at all where /sys is
    // partial (containers), and then libpmem2's view of size and alignment is all there is.
    const Result<DaxDeviceInfo> dax = FindDaxDevice(path);

    CXLKV_ASSIGN_OR_RETURN(UniqueFd fd, OpenReadWrite(path, /*create=*/false));
    // Without a namespace, libpmem2 would crash (top of the file): libdaxctl's size and
    // alignment, and mmap.
    const bool direct = dax.ok() && dax->size > 0 && IsPowerOfTwo(dax->alignment) &&
                        !BehindNamespace(path);
    SourcePtr source;
    std::size_t device_size = 0;
    std::size_t device_alignment = 0;
    if (direct) {
      device_size = dax->size;
      device_alignment = dax->alignment;
    } else {
      CXLKV_ASSIGN_OR_RETURN(source, SourceFromFd(fd, path));
      if (const int ret = pmem2_source_size(source.get(), &device_size); ret != 0) {
        return Pmem2Status("reading the size of " + path, ret);
      }
      if (const int ret = pmem2_source_alignment(source.get(), &device_alignment); ret != 0) {
        return Pmem2Status("reading the alignment of " + path, ret);
      }
    }
    const std::size_t pmem2_alignment = device_alignment;
    if (dax.ok() && dax->alignment > device_alignment && IsPowerOfTwo(dax->alignment)) {
      device_alignment = dax->alignment;  // both must hold; the larger power of two does
    }
    const std::string align_text = FormatBytes(device_alignment);
    const std::size_t offset = options_.offset;
    if (offset % device_alignment != 0) {
      return Status::InvalidArgument("offset " + FormatBytes(offset) + " for " + path +
                                     " is not a multiple of the device alignment " + align_text);
    }
    if (alignment % device_alignment != 0) {
      return Status::InvalidArgument("alignment " + FormatBytes(alignment) + " for " + path +
                                     " is not a multiple of the device alignment " + align_text);
    }
    if (offset >= device_size) {
      return Status::InvalidArgument("offset " + FormatBytes(offset) + " is beyond the end of " +
                                     path + " (" + FormatBytes(device_size) + ")");
    }
    const std::size_t available = device_size - offset;
    const std::size_t wanted = size == 0 ? available : size;
    if (wanted > available || AlignUp(wanted, device_alignment) > available) {
      std::string have = path + " has " + FormatBytes(available);
      if (offset != 0) have += " after offset " + FormatBytes(offset);
      return Status::NoSpace(have + ", less than the " +
                             FormatBytes(AlignUp(wanted, device_alignment)) + " to map");
    }

    MapRequest request;
    request.offset = offset;
    request.length = AlignUp(wanted, device_alignment);
    // Before anything reads the range: one store (or fsck, format) at a time.
    CXLKV_RETURN_IF_ERROR(LockMedia(fd.get(), path, offset, request.length));
    request.size = wanted;
    request.alignment = std::max(alignment, device_alignment);
    request.source_alignment = pmem2_alignment;
    request.info.kind = MemoryKind::kDevDax;
    request.info.path = path;
    request.info.page_size = device_alignment;
    request.info.numa_node = dax.ok() ? dax->numa_node : -1;
    if (direct) return MapDirect(std::move(fd), std::move(request));
    return MapThroughPmem2(std::move(fd), source.get(), std::move(request));
  }

  MemoryKind kind() const override { return MemoryKind::kDevDax; }
  std::string spec() const override { return "devdax:" + options_.path; }

 private:
  const DevDaxOptions options_;
};

}  // namespace

std::unique_ptr<MemorySource> MemorySource::File(FileOptions options) {
  return std::make_unique<FileSource>(std::move(options));
}

std::unique_ptr<MemorySource> MemorySource::DevDax(DevDaxOptions options) {
  return std::make_unique<DevDaxSource>(std::move(options));
}

}  // namespace cxlkv
