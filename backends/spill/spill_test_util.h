// Helpers shared by the spill tests: options for small logs, chunk contents derived from the
// key (so any process can check any chunk it finds), byte surgery on the log file, and
// mounts/loop devices that skip the test with a reason where the machine does not allow them.
#pragma once

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/key.h"
#include "backends/spill/chunk_record.h"
#include "backends/spill/segment_log.h"
#include "tests/test_util.h"

namespace cxlkv::testing {

using internal::ChunkRead;
using internal::RecoveredChunk;
using internal::SegmentChunk;
using internal::SegmentLog;
using internal::SegmentLogOptions;

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * kKiB;

inline SegmentLogOptions SmallLog(const std::string& path, std::uint64_t capacity = 16 * kMiB,
                                  std::uint64_t segment = 256 * kKiB) {
  SegmentLogOptions o;
  o.path = path;
  o.capacity = capacity;
  o.segment_size = segment;
  o.queue_depth = 8;
  o.io_size = 64 * kKiB;  // small slots: multi-piece records at small sizes
  return o;
}

// A chunk's bytes follow from its key: a pattern seeded by the key's hash.
inline std::uint64_t SeedOf(std::string_view key) { return internal::HashKey(key).lo; }
inline std::vector<std::byte> ChunkBytes(std::string_view key, std::size_t size) {
  std::vector<std::byte> b(size);
  FillPattern(b.data(), b.size(), SeedOf(key));
  return b;
}
inline std::vector<std::byte> MetaFor(std::string_view key) {
  std::vector<std::byte> m(key.size() % 65);
  FillPattern(m.data(), m.size(), SeedOf(key) ^ 0x5a5a);
  return m;
}

// What a recovery reported, by location.
struct Recovered {
  std::string key;
  std::uint64_t size = 0;
  std::vector<std::byte> meta;
};
using RecoveredMap = std::map<std::uint64_t, Recovered>;

inline SegmentLog::RecoveryCallback Collect(RecoveredMap* out) {
  return [out](const RecoveredChunk& c) {
    (*out)[c.location] =
        Recovered{std::string(c.key), c.size, std::vector<std::byte>(c.meta.begin(), c.meta.end())};
  };
}

// Byte offset of a location's record in the log file.
inline std::uint64_t RecordOffset(std::uint64_t location, std::uint64_t segment_size) {
  const auto loc = internal::spill::ChunkLocation::Unpack(location);
  return internal::spill::kDataOffset + std::uint64_t{loc.segment} * segment_size +
         std::uint64_t{loc.block} * internal::spill::kBlockSize;
}

// XORs one byte of a file (buffered I/O; the log's next O_DIRECT read sees it).
inline bool FlipByte(const std::string& path, std::uint64_t offset) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char b = 0;
  bool ok = pread(fd, &b, 1, static_cast<off_t>(offset)) == 1;
  b ^= 0x40;
  ok = ok && pwrite(fd, &b, 1, static_cast<off_t>(offset)) == 1;
  return close(fd) == 0 && ok;
}

inline std::vector<std::byte> ReadAt(const std::string& path, std::uint64_t offset,
                                     std::size_t len) {
  std::vector<std::byte> out(len);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  const ssize_t n = pread(fd, out.data(), len, static_cast<off_t>(offset));
  close(fd);
  if (n != static_cast<ssize_t>(len)) return {};
  return out;
}

// A file system mounted on a fresh directory for the test's lifetime (root only).
class ScratchMount {
 public:
  // Mounts `fstype` with `data` (e.g. "size=2m") on a new directory; check ok() / error().
  ScratchMount(const char* fstype, const std::string& data) {
    if (geteuid() != 0) {
      error_ = std::string("mounting ") + fstype + " needs root";
      return;
    }
    if (mount(fstype, dir_.path().c_str(), fstype, 0, data.c_str()) != 0) {
      error_ = std::string("mount -t ") + fstype + " failed: " + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~ScratchMount() {
    if (mounted_ && umount2(dir_.path().c_str(), MNT_DETACH) != 0) {
      std::fprintf(stderr, "umount %s: %s\n", dir_.path().c_str(), std::strerror(errno));
    }
  }
  ScratchMount(const ScratchMount&) = delete;
  ScratchMount& operator=(const ScratchMount&) = delete;
  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  std::string File(const std::string& name) const { return dir_.File(name); }

 private:
  TempDir dir_;
  bool mounted_ = false;
  std::string error_;
};

// A loop device over `file` for the test's lifetime (root only): a raw block device without a
// file system, which is what the log sees on /dev/nvme0n1.
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& file) {
    const int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
      error_ = std::string("open /dev/loop-control: ") + std::strerror(errno);
      return;
    }
    const int backing = open(file.c_str(), O_RDWR | O_CLOEXEC);
    for (int attempt = 0; backing >= 0 && attempt < 8 && fd_ < 0; ++attempt) {
      const int n = ioctl(ctl, LOOP_CTL_GET_FREE);
      if (n < 0) {
        error_ = std::string("LOOP_CTL_GET_FREE: ") + std::strerror(errno);
        break;
      }
      path_ = "/dev/loop" + std::to_string(n);
      const int fd = open(path_.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) {
        error_ = "open " + path_ + ": " + std::strerror(errno);
        break;
      }
      if (ioctl(fd, LOOP_SET_FD, backing) == 0) {
        fd_ = fd;
      } else {
        error_ = "LOOP_SET_FD on " + path_ + ": " + std::strerror(errno);
        close(fd);  // another process took it first (EBUSY): try the next free one
      }
    }
    if (backing < 0) error_ = "open " + file + ": " + std::strerror(errno);
    if (backing >= 0) close(backing);
    close(ctl);
  }
  ~LoopDevice() {
    if (fd_ >= 0) {
      if (ioctl(fd_, LOOP_CLR_FD, 0) != 0) {
        std::fprintf(stderr, "LOOP_CLR_FD %s: %s\n", path_.c_str(), std::strerror(errno));
      }
      close(fd_);
    }
  }
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
  std::string error_;
};

}  // namespace cxlkv::testing
