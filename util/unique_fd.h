// UniqueFd: owns one file descriptor and closes it when destroyed. Move-only.
//
// The one fd owner in cxlkv. Nothing durable ever rests on close(): pools persist through
// libpmem2 and the spill log through O_DIRECT writes and fdatasync. A failed close is still
// reported on stderr, since it can mean an earlier write was lost on some file systems.
//
// Thread-safety: an object needs external synchronisation; distinct objects do not.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "util/log.h"

namespace cxlkv {

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }

 private:
  void Reset() {
    if (fd_ >= 0 && ::close(fd_) != 0) {
      const int err = errno;
      internal::LogF("cxlkv: close(%d) failed: %s", fd_, std::strerror(err));
    }
    fd_ = -1;
  }
  int fd_;
};

}  // namespace cxlkv
