#include "alloc/userfaultfd.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "util/format.h"

namespace cxlkv::os {

namespace {

constexpr std::size_t kPage = 4096;

}  // namespace

Result<Userfaultfd> Userfaultfd::Open() {
  const int raw = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (raw < 0) {
    const int err = errno;
    if (err == EPERM || err == ENOSYS || err == EINVAL) {
      return Status::Unsupported(std::string("userfaultfd is not available to this process (") +
                                 std::strerror(err) +
                                 "; root or vm.unprivileged_userfaultfd=1 is needed)");
    }
    return Status::FromErrno("userfaultfd", err);
  }
  UniqueFd fd(raw);
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_THREAD_ID;
  if (ioctl(fd.get(), UFFDIO_API, &api) != 0) {
    const int err = errno;
    if (err == EINVAL) {
      return Status::Unsupported(
          "this kernel's userfaultfd lacks MINOR faults on shmem (Linux 5.14+ needed)");
    }
    return Status::FromErrno("UFFDIO_API", err);
  }
  if ((api.ioctls & (std::uint64_t{1} << _UFFDIO_REGISTER)) == 0) {
    return Status::Unsupported("userfaultfd offers no UFFDIO_REGISTER");
  }
  return Userfaultfd(std::move(fd));
}

Status Userfaultfd::RegisterMinor(void* addr, std::size_t len) {
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<std::uintptr_t>(addr);
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_MINOR;
  if (ioctl(fd_.get(), UFFDIO_REGISTER, &reg) != 0) {
    return Status::FromErrno("UFFDIO_REGISTER (minor) of " + FormatBytes(len), errno);
  }
  if ((reg.ioctls & (std::uint64_t{1} << _UFFDIO_CONTINUE)) == 0) {
    return Status::Unsupported("userfaultfd cannot resolve minor faults here (no UFFDIO_CONTINUE)");
  }
  return Status::Ok();
}

Status Userfaultfd::Unregister(void* addr, std::size_t len) {
  uffdio_range range{reinterpret_cast<std::uintptr_t>(addr), len};
  if (ioctl(fd_.get(), UFFDIO_UNREGISTER, &range) != 0) {
    return Status::FromErrno("UFFDIO_UNREGISTER of " + FormatBytes(len), errno);
  }
  return Status::Ok();
}

Status Userfaultfd::Continue(std::uintptr_t addr, std::size_t len) {
  while (len > 0) {
    uffdio_continue c{};
    c.range.start = addr;
    c.range.len = len;
    if (ioctl(fd_.get(), UFFDIO_CONTINUE, &c) == 0) return Status::Ok();
    const int err = errno;
    // c.mapped: bytes mapped before the failure, or a negative errno.
    const std::size_t done = c.mapped > 0 ? static_cast<std::size_t>(c.mapped) : 0;
    addr += done;
    len -= done;
    if (err == EAGAIN) continue;  // the mm changed under the call: retry the rest
    if (err == EEXIST) {
      // This page is mapped already (a racing fault, or never dropped): wake anyone waiting on
      // it and go on with the rest.
      CXLKV_RETURN_IF_ERROR(Wake(addr, kPage));
      addr += kPage;
      len -= kPage;
      continue;
    }
    return Status::FromErrno("UFFDIO_CONTINUE of " + FormatBytes(len), err);
  }
  return Status::Ok();
}

Status Userfaultfd::Wake(std::uintptr_t addr, std::size_t len) {
  uffdio_range range{addr, len};
  if (ioctl(fd_.get(), UFFDIO_WAKE, &range) != 0) {
    return Status::FromErrno("UFFDIO_WAKE of " + FormatBytes(len), errno);
  }
  return Status::Ok();
}

Result<std::size_t> Userfaultfd::ReadFaults(std::span<Fault> out) {
  std::array<uffd_msg, 64> msgs;
  const std::size_t want = std::min(out.size(), msgs.size());
  const ssize_t n = read(fd_.get(), msgs.data(), want * sizeof(uffd_msg));
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return std::size_t{0};
    return Status::FromErrno("reading userfaultfd", errno);
  }
  const std::size_t count = static_cast<std::size_t>(n) / sizeof(uffd_msg);
  std::size_t faults = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
    Fault& f = out[faults++];
    f.address = static_cast<std::uintptr_t>(msgs[i].arg.pagefault.address);
    f.write = (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
    f.tid = static_cast<pid_t>(msgs[i].arg.pagefault.feat.ptid);
  }
  return faults;
}

}  // namespace cxlkv::os
