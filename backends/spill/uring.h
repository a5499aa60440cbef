// io_uring through liburing: the one place in cxlkv that talks to it.
//
// An IoRing serves one file descriptor: it registers the descriptor as fixed file 0 and, when
// asked, one staging buffer as fixed buffer 0, so the kernel neither looks the file up nor pins
// the buffer's pages on every I/O. Callers queue reads and writes, then reap completions one at
// a time; WaitOne submits whatever is queued first, so a batch of queued operations reaches the
// kernel in one system call.
//
// Where io_uring cannot be used (a kernel without it, or one that refuses it: seccomp filters
// in containers, kernel.io_uring_disabled) the ring runs in a synchronous mode instead: each
// queued operation becomes a pread/pwrite when it is reaped, in queue order. The interface and
// the results are the same; only the parallelism is lost. Registration failures likewise fall
// back to plain descriptors and buffers; the caller reads what it got from fixed_file() and
// fixed_buffer().
//
// Every liburing return code is checked: a failure is a Status naming the operation, and a
// failed operation's completion carries -errno in its result, as the kernel reports it.
//
// Thread-safety: an IoRing is used by one thread at a time (the caller serialises; io_uring's
// submission and completion queues are single-producer, single-consumer). Distinct rings are
// independent.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "alloc/os_memory.h"
#include "cxlkv/status.h"

struct io_uring;  // liburing's ring; only uring.cc includes liburing.h

namespace cxlkv::internal::spill {

// Staging memory for O_DIRECT is an os::AnonymousMapping (alloc/os_memory.h, the one place that
// maps anonymous memory): page-aligned and zero-filled, and unmapped when freed, so an I/O that
// outlived its ring (only after a failure to drain one) can never write into reused memory.


class IoRing {
 public:
  struct Completion {
    std::uint64_t user_data = 0;
    std::int32_t result = 0;  // bytes transferred, or -errno
  };

  // A ring of `entries` submission slots for I/O on `fd` (which the caller keeps open for the
  // ring's lifetime). With use_io_uring false, or where the kernel refuses io_uring (ENOSYS,
  // EPERM, EACCES, ENOMEM), the ring runs synchronously as described above; `fallback_reason`
  // then says why (empty otherwise).
  static Result<std::unique_ptr<IoRing>> Create(int fd, unsigned entries, bool use_io_uring);
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  // Registers [base, base + size) as fixed buffer 0: later operations whose buffer lies inside
  // it use READ_FIXED/WRITE_FIXED. A refusal (NoSpace for RLIMIT_MEMLOCK, Unsupported) leaves
  // plain operations in place and is returned for the caller to report.
  Status RegisterBuffer(std::byte* base, std::size_t size);

  // Queues one operation; nothing reaches the kernel before WaitOne. The caller keeps at most
  // `entries` operations in flight (queued and not yet reaped) and keeps `buf` alive and
  // untouched until the operation's completion has been reaped.
  Status QueueRead(std::byte* buf, std::uint32_t len, std::uint64_t offset,
                   std::uint64_t user_data);
  Status QueueWrite(const std::byte* buf, std::uint32_t len, std::uint64_t offset,
                    std::uint64_t user_data);
  // One write of `count` buffers, back to back from `offset` (never registered buffers). The
  // caller keeps iov[] and the buffers alive until the completion has been reaped.
  Status QueueWritev(const iovec* iov, unsigned count, std::uint64_t offset,
                     std::uint64_t user_data);
  // One read into `count` buffers, likewise.
  Status QueueReadv(const iovec* iov, unsigned count, std::uint64_t offset,
                    std::uint64_t user_data);

  // Hands what is queued to the kernel without waiting, so the device starts on it while the
  // caller prepares more (where the kernel has no room right now, WaitOne hands it over
  // later). A no-op in synchronous mode. An error means the ring failed (broken()).
  Status Submit();

  // Submits what is queued, then waits for and returns one completion (in any order).
  // An error here (not in the completion) means the ring itself failed: it refuses further
  // work (broken()), and the operations in flight are abandoned, but not before the kernel has
  // finished every one it was handed. Their completions still reach the completion queue,
  // which is read without a system call, so the ring waits for them there (the block layer
  // ends a stuck request with an error after its timeout). A read straight into a caller's
  // memory therefore never lands after the caller was told it failed. Should the kernel hold
  // one past kQuiesceLimit, the process stops (abort, with the reason logged) rather than
  // hand that memory back for reuse.
  Result<Completion> WaitOne();

  static constexpr std::chrono::seconds kQuiesceLimit{120};

  // Tests only: the next wait for a completion fails with `err` as if the kernel had refused
  // it, after what is queued has been handed over, so the failure path runs with I/O in flight.
  void FailNextWaitForTesting(int err) { injected_wait_error_ = err; }
  // Tests only: WaitOne lets every operation in flight complete, then hands the completions
  // back the first reaped first and the others newest first, so that callers meet completions
  // out of issue order every time (a device reorders them only now and then).
  void ScrambleCompletionsForTesting(bool on) { scramble_for_testing_ = on; }

  // Tests only: every write queued from now on appends its device offset and its buffers'
  // lengths to *shapes (null: stops).
  struct WriteShape {
    std::uint64_t offset = 0;
    std::vector<std::size_t> buffers;
  };
  void RecordWritesForTesting(std::vector<WriteShape>* shapes) { write_shapes_ = shapes; }

  unsigned in_flight() const { return in_flight_; }
  // Of those, queued and not yet handed to the kernel (io_uring mode; Submit or WaitOne does).
  unsigned unsubmitted() const { return unsubmitted_; }
  unsigned entries() const { return entries_; }
  bool uses_io_uring() const { return ring_ != nullptr; }
  bool fixed_file() const { return fixed_file_; }
  bool fixed_buffer() const { return buffer_base_ != nullptr; }
  bool broken() const { return broken_; }
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  IoRing(int fd, unsigned entries);
  Status Queue(bool write, std::byte* buf, std::uint32_t len, std::uint64_t offset,
               std::uint64_t user_data, const iovec* iov = nullptr, unsigned iov_count = 0);
  Result<Completion> WaitOneSync();
  Result<Completion> WaitOneUring();
  // Marks the ring broken, waits until the kernel holds none of its operations, and returns
  // `why`. See WaitOne.
  Status Break(Status why);
  int buffer_index(const std::byte* buf, std::uint32_t len) const;

  struct PendingOp {  // synchronous mode only
    bool write;
    std::byte* buf;
    std::uint32_t len;
    std::uint64_t offset;
    std::uint64_t user_data;
    const iovec* iov;  // a QueueWritev's buffers (buf unused), else null
    unsigned iov_count;
  };

  int fd_;
  unsigned entries_;
  std::unique_ptr<io_uring> ring_;  // null in synchronous mode
  bool fixed_file_ = false;
  std::byte* buffer_base_ = nullptr;
  std::size_t buffer_size_ = 0;
  unsigned unsubmitted_ = 0;  // queued in the SQ ring, not yet handed to the kernel
  unsigned in_flight_ = 0;
  bool broken_ = false;
  int injected_wait_error_ = 0;
  bool scramble_for_testing_ = false;
  std::vector<WriteShape>* write_shapes_ = nullptr;
  std::vector<Completion> held_;  // scramble_for_testing_: complete, not yet handed back
  std::string fallback_reason_;
  std::deque<PendingOp> pending_;
};

}  // namespace cxlkv::internal::spill
