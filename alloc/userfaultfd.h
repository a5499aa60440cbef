// userfaultfd: the one place in cxlkv that talks to it (the emulated CXL-SSD's page faults).
//
// Only the mode the emulator needs: MINOR faults on a shared mapping of a memfd. The bytes are
// always in the memfd's page cache; a page whose page-table entry is missing faults to the
// handler, which maps it (UFFDIO_CONTINUE) when the modelled device would have delivered it. No
// page is allocated or copied per fault (see ../shared/notes: MINOR is the cheapest mode).
//
// Thread-safety: every member may be called from several threads at once (the kernel
// serialises what needs it); the object itself is move-only.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "cxlkv/status.h"
#include "util/unique_fd.h"

namespace cxlkv::os {

class Userfaultfd {
 public:
  struct Fault {
    std::uintptr_t address = 0;
    bool write = false;
    pid_t tid = 0;  // the faulting thread
  };

  // A non-blocking uffd with MINOR faults on shmem and faulting thread ids. Unsupported (with
  // the reason) where the kernel or the process's privileges do not allow it.
  static Result<Userfaultfd> Open();

  // Registers [addr, addr+len) (page aligned, a shared memfd mapping) for MINOR faults.
  Status RegisterMinor(void* addr, std::size_t len);
  Status Unregister(void* addr, std::size_t len);

  // Maps the page-cache pages of [addr, addr+len) and wakes the threads waiting on them.
  // Pages already mapped are skipped (a fault that raced a mapping).
  Status Continue(std::uintptr_t addr, std::size_t len);
  // Wakes the threads waiting on [addr, addr+len) without mapping anything.
  Status Wake(std::uintptr_t addr, std::size_t len);

  // Reads pending fault messages without blocking; returns how many were written to `out`
  // (0 when none). Other message kinds are skipped.
  Result<std::size_t> ReadFaults(std::span<Fault> out);

  int fd() const { return fd_.get(); }

 private:
  explicit Userfaultfd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace cxlkv::os
