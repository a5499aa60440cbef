// The file or raw block device under a segment log: opening it (O_DIRECT where the file system
// allows it), its size, growing a file with fallocate, and fdatasync. The one place in the
// spill tier that calls open/fstat/ioctl/fallocate on the log's path; the I/O itself goes
// through uring.h.
//
// Thread-safety: a LogDevice is immutable after Open, except the fallocate fallback flag, which
// only the (single) writer touches; Sync may be called from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "cxlkv/status.h"
#include "util/unique_fd.h"

namespace cxlkv::internal::spill {

class LogDevice {
 public:
  struct Options {
    std::string path;
    bool direct_io = true;  // O_DIRECT; refused (EINVAL) -> buffered, with a one-line warning
    bool create = true;     // create a regular file that does not exist
  };

  // Opens `path`: a block device read-write, O_DIRECT and O_EXCL (so a mounted file system or
  // another log on it is refused with Busy); a regular file read-write, created when missing.
  // Anything else is InvalidArgument. A block device whose logical block size exceeds 4 KiB is
  // Unsupported. Either is locked while open (util/media_lock.h): Busy, naming the holder, when
  // another open holds it, in this process or another.
  static Result<LogDevice> Open(const Options& options);

  LogDevice(LogDevice&&) noexcept = default;
  LogDevice& operator=(LogDevice&&) noexcept = default;

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  bool is_block_device() const { return block_device_; }
  bool direct_io() const { return direct_io_; }
  // Why O_DIRECT is not in use although requested; empty otherwise.
  const std::string& direct_io_fallback() const { return direct_fallback_; }

  // A block device's size (BLKGETSIZE64), or a file's current length.
  Result<std::uint64_t> Size() const;

  // Makes [offset, offset + len) of a file allocated, extending the file when needed
  // (fallocate mode 0), so later writes there cannot fail for space. ENOSPC/EDQUOT/EFBIG give
  // NoSpace and change nothing stored. Where the file system has no fallocate (EOPNOTSUPP),
  // the file is extended with ftruncate instead and space is found (or not: NoSpace) at write
  // time. A no-op on a block device.
  Status Allocate(std::uint64_t offset, std::uint64_t len);

  // Where the disk below holds a file's bytes at `offset`: (physical - logical offset) mod
  // `align` (a power of two) of the extent that holds them (FIEMAP), so that writes can be cut
  // on the disk's boundaries rather than the file's. 0 on a block device (the two are the same),
  // for align 0, and where the file system does not say (no FIEMAP, a hole, an inline, encoded
  // or delayed extent).
  std::uint64_t PhysicalPhase(std::uint64_t offset, std::uint64_t align) const;

  // Empties a file (ftruncate to 0); on a block device, nothing (its blocks are simply
  // overwritten).
  Status Truncate();

  // fdatasync: what was written before this call survives power loss once it returns (on a
  // block device it also flushes the device's volatile write cache).
  Status Sync() const;

 private:
  LogDevice() = default;
  UniqueFd fd_;
  std::string path_;
  bool block_device_ = false;
  bool direct_io_ = false;
  bool fallocate_unsupported_ = false;
  std::string direct_fallback_;
};

}  // namespace cxlkv::internal::spill
