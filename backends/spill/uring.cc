#include "util/log.h"
#include "backends/spill/uring.h"

#include <liburing.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

namespace cxlkv::internal::spill {

// ---- IoRing ----

// Out of line: it destroys the io_uring member on a throw, which needs liburing's type.
IoRing::IoRing(int fd, unsigned entries) : fd_(fd), entries_(entries) {}

Result<std::unique_ptr<IoRing>> IoRing::Create(int fd, unsigned entries, bool use_io_uring) {
  if (entries == 0) return Status::InvalidArgument("an io_uring of 0 entries");
  std::unique_ptr<IoRing> ring(new IoRing(fd, entries));
  if (!use_io_uring) {
    ring->fallback_reason_ = "io_uring turned off by the options";
    return ring;
  }
  auto uring = std::make_unique<io_uring>();
  if (const int ret = io_uring_queue_init(entries, uring.get(), 0); ret < 0) {
    switch (-ret) {
      case ENOSYS:  // kernel built without io_uring
      case EPERM:   // kernel.io_uring_disabled, or a seccomp filter
      case EACCES:
      case ENOMEM:  // ring memory charged to RLIMIT_MEMLOCK (kernels before 5.12)
        ring->fallback_reason_ =
            std::string("io_uring_queue_init refused (") + std::strerror(-ret) + ")";
        return ring;
      default:
        return Status::FromErrno("io_uring_queue_init(" + std::to_string(entries) + ")", -ret);
    }
  }
  ring->ring_ = std::move(uring);
  // A fixed file saves a descriptor-table lookup and reference per I/O. Refusal costs only
  // that, so the plain descriptor is kept without a word.
  if (io_uring_register_files(ring->ring_.get(), &fd, 1) == 0) ring->fixed_file_ = true;
  return ring;
}

IoRing::~IoRing() {
  if (ring_ == nullptr) return;
  // Unregistering explicitly drops the ring's references to the file and the buffer now, in
  // this call; left to io_uring_queue_exit, the kernel drops them later from a work queue, and
  // a block device opened O_EXCL would stay busy for a moment after the log is closed.
  if (buffer_base_ != nullptr) {
    if (const int ret = io_uring_unregister_buffers(ring_.get()); ret < 0) {
      internal::LogF("cxlkv: io_uring_unregister_buffers failed: %s", std::strerror(-ret));
    }
  }
  if (fixed_file_) {
    if (const int ret = io_uring_unregister_files(ring_.get()); ret < 0) {
      internal::LogF("cxlkv: io_uring_unregister_files failed: %s", std::strerror(-ret));
    }
  }
  io_uring_queue_exit(ring_.get());
}

Status IoRing::RegisterBuffer(std::byte* base, std::size_t size) {
  if (ring_ == nullptr) return Status::Unsupported("no io_uring to register a buffer with");
  if (buffer_base_ != nullptr) return Status::InvalidArgument("a buffer is already registered");
  const iovec iov{base, size};
  if (const int ret = io_uring_register_buffers(ring_.get(), &iov, 1); ret < 0) {
    return Status::FromErrno("io_uring_register_buffers(" + std::to_string(size) + " bytes)", -ret);
  }
  buffer_base_ = base;
  buffer_size_ = size;
  return Status::Ok();
}

int IoRing::buffer_index(const std::byte* buf, std::uint32_t len) const {
  if (buffer_base_ == nullptr) return -1;
  const auto b = reinterpret_cast<std::uintptr_t>(buf);
  const auto base = reinterpret_cast<std::uintptr_t>(buffer_base_);
  return b >= base && b - base <= buffer_size_ && len <= buffer_size_ - (b - base) ? 0 : -1;
}

Status IoRing::QueueRead(std::byte* buf, std::uint32_t len, std::uint64_t offset,
                         std::uint64_t user_data) {
  return Queue(false, buf, len, offset, user_data);
}

Status IoRing::QueueWrite(const std::byte* buf, std::uint32_t len, std::uint64_t offset,
                          std::uint64_t user_data) {
  // The kernel only reads the buffer of a write; the cast lets one queue serve both.
  return Queue(true, const_cast<std::byte*>(buf), len, offset, user_data);
}

Status IoRing::QueueWritev(const iovec* iov, unsigned count, std::uint64_t offset,
                           std::uint64_t user_data) {
  return Queue(true, nullptr, 0, offset, user_data, iov, count);
}

Status IoRing::QueueReadv(const iovec* iov, unsigned count, std::uint64_t offset,
                          std::uint64_t user_data) {
  return Queue(false, nullptr, 0, offset, user_data, iov, count);
}

Status IoRing::Queue(bool write, std::byte* buf, std::uint32_t len, std::uint64_t offset,
                     std::uint64_t user_data, const iovec* iov, unsigned iov_count) {
  if (broken_) return Status::IOError("the io_uring failed earlier and takes no more work");
  if (in_flight_ >= entries_) {
    return Status::InvalidArgument("more than " + std::to_string(entries_) +
                                   " operations in flight");
  }
  if (write && write_shapes_ != nullptr) {
    WriteShape& shape = write_shapes_->emplace_back();
    shape.offset = offset;
    if (iov == nullptr) shape.buffers.push_back(len);
    for (unsigned i = 0; iov != nullptr && i < iov_count; ++i) {
      shape.buffers.push_back(iov[i].iov_len);
    }
  }
  if (ring_ == nullptr) {
    pending_.push_back(PendingOp{write, buf, len, offset, user_data, iov, iov_count});
    ++in_flight_;
    return Status::Ok();
  }
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {
    // Cannot happen while in_flight_ < entries_ (the SQ ring has `entries` slots), but an SQE
    // is never used unchecked.
    return Status::IOError("io_uring submission queue full");
  }
  const int file = fixed_file_ ? 0 : fd_;
  const int index = iov != nullptr ? -1 : buffer_index(buf, len);
  if (iov != nullptr && write) {
    io_uring_prep_writev(sqe, file, iov, iov_count, offset);
  } else if (iov != nullptr) {
    io_uring_prep_readv(sqe, file, iov, iov_count, offset);
  } else if (write) {
    if (index >= 0) {
      io_uring_prep_write_fixed(sqe, file, buf, len, offset, index);
    } else {
      io_uring_prep_write(sqe, file, buf, len, offset);
    }
  } else {
    if (index >= 0) {
      io_uring_prep_read_fixed(sqe, file, buf, len, offset, index);
    } else {
      io_uring_prep_read(sqe, file, buf, len, offset);
    }
  }
  // No IOSQE_ASYNC for large writes. Handing them to io_uring's workers, so that the submitting
  // thread would not block in the block layer while the device's queue is full, made batched
  // 2 MiB appends 0.78x of raw writes on this VM's 2 vCPUs against 0.90x without, once records
  // went out in 2 MiB runs (five runs each, docs/benchmarks.md). The workers run on the same
  // CPUs as the thread that hashes the next record.
  io_uring_sqe_set_flags(sqe, fixed_file_ ? IOSQE_FIXED_FILE : 0);
  io_uring_sqe_set_data64(sqe, user_data);
  ++unsubmitted_;
  ++in_flight_;
  return Status::Ok();
}

Result<IoRing::Completion> IoRing::WaitOne() {
  if (broken_) return Status::IOError("the io_uring failed earlier and takes no more work");
  if (in_flight_ == 0) return Status::InvalidArgument("waiting on an idle io_uring");
  if (!scramble_for_testing_) return ring_ == nullptr ? WaitOneSync() : WaitOneUring();
  if (held_.empty()) {
    // Every operation in flight completed, then handed back oldest first and the rest newest
    // first (held_ is popped from the back). The kernel's order of completion is not the order
    // of issue, but it is close to it; the user data tells which was issued first only to the
    // caller, so this goes by order of reaping.
    const unsigned n = in_flight_;
    while (in_flight_ > 0) {
      Result<Completion> c = ring_ == nullptr ? WaitOneSync() : WaitOneUring();
      if (!c.ok()) return c;
      held_.push_back(*c);
    }
    in_flight_ = n;  // until handed back
    std::rotate(held_.begin(), held_.begin() + 1, held_.end());
  }
  const Completion c = held_.back();
  held_.pop_back();
  --in_flight_;
  return c;
}

Result<IoRing::Completion> IoRing::WaitOneUring() {
  // Hand the queued operations to the kernel and wait for a completion in the same system call.
  // EAGAIN/EBUSY mean it has no room for more right now: reaping a completion makes room, so
  // wait when anything is already in the kernel, and otherwise yield and try again.
  for (int attempts = 0; unsubmitted_ > 0; ++attempts) {
    const int ret = io_uring_submit_and_wait(ring_.get(), 1);
    if (ret >= 0) {
      unsubmitted_ -= std::min<unsigned>(unsubmitted_, static_cast<unsigned>(ret));
      if (ret == 0 && attempts > 1000) {
        return Break(Status::IOError("io_uring_submit_and_wait accepts nothing"));
      }
      continue;
    }
    if (ret == -EINTR) continue;
    if ((ret == -EAGAIN || ret == -EBUSY) && attempts < 1000) {
      if (in_flight_ > unsubmitted_) break;
      sched_yield();
      continue;
    }
    return Break(Status::FromErrno("io_uring_submit_and_wait", -ret));
  }

  io_uring_cqe* cqe = nullptr;
  for (;;) {
    int ret;
    if (injected_wait_error_ != 0) {
      ret = -std::exchange(injected_wait_error_, 0);
    } else {
      ret = io_uring_wait_cqe(ring_.get(), &cqe);
    }
    if (ret == 0 && cqe != nullptr) break;
    if (ret == -EINTR || ret == -EAGAIN) continue;
    return Break(Status::FromErrno("io_uring_wait_cqe", ret < 0 ? -ret : EIO));
  }
  const Completion c{io_uring_cqe_get_data64(cqe), cqe->res};
  io_uring_cqe_seen(ring_.get(), cqe);
  --in_flight_;
  return c;
}

Status IoRing::Submit() {
  if (broken_) return Status::IOError("the io_uring failed earlier and takes no more work");
  while (ring_ != nullptr && unsubmitted_ > 0) {
    const int ret = io_uring_submit(ring_.get());
    if (ret > 0) {
      unsubmitted_ -= std::min<unsigned>(unsubmitted_, static_cast<unsigned>(ret));
      continue;
    }
    if (ret == -EINTR) continue;
    if (ret == 0 || ret == -EAGAIN || ret == -EBUSY) break;  // no room now: WaitOne retries
    return Break(Status::FromErrno("io_uring_submit", -ret));
  }
  return Status::Ok();
}

Status IoRing::Break(Status why) {
  broken_ = true;
  // What the kernel was handed: queued entries it has not consumed from the submission ring
  // never run (nothing submits on a broken ring, and io_uring_queue_exit drops them).
  const unsigned not_consumed = std::min(io_uring_sq_ready(ring_.get()), in_flight_);
  unsigned held = in_flight_ - not_consumed;
  in_flight_ = 0;
  unsubmitted_ = 0;
  if (held == 0) return why;
  internal::LogF("cxlkv: %s; waiting for the %u I/O operations the kernel holds before giving "
                 "their memory back",
                 why.ToString().c_str(), held);
  const auto deadline = std::chrono::steady_clock::now() + kQuiesceLimit;
  auto pause = std::chrono::microseconds(50);
  while (held > 0) {
    io_uring_cqe* cqe = nullptr;
    // Reads the completion queue in memory (a system call only to flush an overflow, whose
    // failure is one more turn of this loop).
    if (io_uring_peek_cqe(ring_.get(), &cqe) == 0 && cqe != nullptr) {
      io_uring_cqe_seen(ring_.get(), cqe);
      --held;
      continue;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      internal::LogF("cxlkv: the kernel still holds %u I/O operations of a failed io_uring after "
                     "%lld s; stopping the process rather than let them land in memory already "
                     "handed back",
                     held, static_cast<long long>(kQuiesceLimit.count()));
      std::abort();
    }
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(2 * pause, std::chrono::milliseconds(10));
  }
  return why;
}

Result<IoRing::Completion> IoRing::WaitOneSync() {
  const PendingOp op = pending_.front();
  pending_.pop_front();
  --in_flight_;
  const auto offset = static_cast<off_t>(op.offset);
  ssize_t n;
  do {
    const int count = static_cast<int>(op.iov_count);
    n = op.iov != nullptr ? (op.write ? pwritev(fd_, op.iov, count, offset)
                                      : preadv(fd_, op.iov, count, offset))
        : op.write        ? pwrite(fd_, op.buf, op.len, offset)
                          : pread(fd_, op.buf, op.len, offset);
  } while (n < 0 && errno == EINTR);
  return Completion{op.user_data, n < 0 ? -errno : static_cast<std::int32_t>(n)};
}

}  // namespace cxlkv::internal::spill
