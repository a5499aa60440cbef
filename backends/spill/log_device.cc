#include "backends/spill/log_device.h"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "util/log.h"
#include "util/media_lock.h"

namespace cxlkv::internal::spill {

namespace {

// A log cxlkv creates is its owner's alone: it holds KV caches, which give away the prompts
// they came from, and whoever may open it can also lock it (util/media_lock.h).
constexpr mode_t kNewFileMode = 0600;

int OpenRetrying(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Some file systems accept O_DIRECT at open and refuse it at the first I/O instead. One aligned
// read of the first block finds them (reading past the end of an empty file is fine: 0 bytes).
// Returns 0 or the errno of the refusal.
int ProbeDirectRead(int fd) {
  constexpr std::size_t kBlock = 4096;
  std::unique_ptr<void, decltype(&std::free)> buf(std::aligned_alloc(kBlock, kBlock), &std::free);
  if (buf == nullptr) return ENOMEM;
  ssize_t n;
  do {
    n = pread(fd, buf.get(), kBlock, 0);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? errno : 0;
}

}  // namespace

Result<LogDevice> LogDevice::Open(const Options& options) {
  if (options.path.empty()) return Status::InvalidArgument("empty spill log path");
  const char* path = options.path.c_str();

  LogDevice dev;
  dev.path_ = options.path;
  int flags = O_RDWR | O_CLOEXEC;
  struct stat st {};
  if (stat(path, &st) == 0) {
    if (S_ISBLK(st.st_mode)) {
      // O_EXCL on a block device: refuse one that is mounted or held by another log.
      dev.block_device_ = true;
      flags |= O_EXCL;
    } else if (!S_ISREG(st.st_mode)) {
      return Status::InvalidArgument(options.path +
                                     " is neither a regular file nor a block device");
    }
  } else if (errno == ENOENT && options.create) {
    flags |= O_CREAT;
  } else {
    return Status::FromErrno("stat " + options.path, errno);
  }

  if (options.direct_io) {
    int fd = OpenRetrying(path, flags | O_DIRECT, kNewFileMode);
    int refused = fd < 0 ? errno : ProbeDirectRead(fd);
    if (fd >= 0 && refused != 0) {
      UniqueFd closing(fd);
      fd = -1;
    }
    if (fd >= 0) {
      dev.fd_ = UniqueFd(fd);
      dev.direct_io_ = true;
    } else if (refused != EINVAL || dev.block_device_) {
      // EINVAL is how Linux says "this file system does no direct I/O" (tmpfs before 6.6,
      // ramfs, some FUSE); anything else, or any refusal on a block device, is a real error.
      return Status::FromErrno("open " + options.path + " with O_DIRECT", refused);
    } else {
      dev.direct_fallback_ = std::string("O_DIRECT refused (") + std::strerror(refused) + ")";
      internal::LogF("cxlkv: %s: %s; using buffered I/O", path,
                     dev.direct_fallback_.c_str());
    }
  }
  if (dev.fd_.get() < 0) {
    const int fd = OpenRetrying(path, flags, kNewFileMode);
    if (fd < 0) return Status::FromErrno("open " + options.path, errno);
    dev.fd_ = UniqueFd(fd);
  }
  // The whole file or device, however far it grows, before the log reads its superblocks: one
  // log per path (O_EXCL keeps out a second opener of a block device only).
  CXLKV_RETURN_IF_ERROR(LockMedia(dev.fd(), options.path, 0, 0));

  if (dev.block_device_) {
    int logical_block = 0;
    if (ioctl(dev.fd(), BLKSSZGET, &logical_block) != 0) {
      return Status::FromErrno("BLKSSZGET on " + options.path, errno);
    }
    if (logical_block <= 0 || logical_block > 4096) {
      return Status::Unsupported(options.path + " has " + std::to_string(logical_block) +
                                 "-byte logical blocks; the spill log writes 4 KiB blocks");
    }
  }
  return dev;
}

Result<std::uint64_t> LogDevice::Size() const {
  if (block_device_) {
    std::uint64_t bytes = 0;
    if (ioctl(fd(), BLKGETSIZE64, &bytes) != 0) {
      return Status::FromErrno("BLKGETSIZE64 on " + path_, errno);
    }
    return bytes;
  }
  struct stat st {};
  if (fstat(fd(), &st) != 0) return Status::FromErrno("fstat " + path_, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

Status LogDevice::Allocate(std::uint64_t offset, std::uint64_t len) {
  if (block_device_ || len == 0) return Status::Ok();
  const std::string what = "allocating " + std::to_string(len) + " bytes at offset " +
                           std::to_string(offset) + " of " + path_;
  if (!fallocate_unsupported_) {
    int ret;
    do {
      ret = fallocate(fd(), 0, static_cast<off_t>(offset), static_cast<off_t>(len));
    } while (ret != 0 && errno == EINTR);
    if (ret == 0) return Status::Ok();
    if (errno != EOPNOTSUPP) return Status::FromErrno(what, errno);  // ENOSPC -> NoSpace
    fallocate_unsupported_ = true;
  }
  CXLKV_ASSIGN_OR_RETURN(const std::uint64_t size, Size());
  if (size >= offset + len) return Status::Ok();
  if (ftruncate(fd(), static_cast<off_t>(offset + len)) != 0) {
    return Status::FromErrno(what + " (ftruncate: no fallocate here)", errno);
  }
  return Status::Ok();
}

std::uint64_t LogDevice::PhysicalPhase(std::uint64_t offset, std::uint64_t align) const {
  if (block_device_ || align == 0) return 0;
  // The request, with room for the one extent asked for.
  alignas(fiemap) std::byte buf[sizeof(fiemap) + sizeof(fiemap_extent)]{};
  auto* map = reinterpret_cast<fiemap*>(buf);
  map->fm_start = offset;
  map->fm_length = 1;
  map->fm_extent_count = 1;
  if (ioctl(fd(), FS_IOC_FIEMAP, map) != 0 || map->fm_mapped_extents != 1) return 0;
  const fiemap_extent& e = map->fm_extents[0];
  constexpr std::uint32_t kUnplaced = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
                                      FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_INLINE |
                                      FIEMAP_EXTENT_NOT_ALIGNED;
  if ((e.fe_flags & kUnplaced) != 0 || e.fe_logical > offset) return 0;
  return (e.fe_physical % align + align - e.fe_logical % align) % align;
}

Status LogDevice::Truncate() {
  if (block_device_) return Status::Ok();
  if (ftruncate(fd(), 0) != 0) return Status::FromErrno("ftruncate " + path_ + " to 0", errno);
  return Status::Ok();
}

Status LogDevice::Sync() const {
  int ret;
  do {
    ret = fdatasync(fd());
  } while (ret != 0 && errno == EINTR);
  if (ret != 0) return Status::FromErrno("fdatasync " + path_, errno);
  return Status::Ok();
}

}  // namespace cxlkv::internal::spill
