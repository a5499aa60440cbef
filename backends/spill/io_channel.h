// The segment log's I/O channel: one io_uring (uring.h) and its staging memory, cut into slots,
// with the two ways the log moves bytes through it: SlotWriter keeps writes in flight slot by
// slot, PipelinedRead keeps reads in flight and hands their pieces back job by job. Every
// byte a channel moves is counted in the IoCounters it was made with (the log's statistics).
//
// Internal to backends/spill/ (segment_log.cc, the superblock, recovery, record I/O).
//
// Thread-safety: an IoChannel and the SlotWriter over it are used by one thread at a time (the
// log serialises each channel under its own mutex); IoCounters may be read from any thread.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "alloc/os_memory.h"
#include "backends/spill/uring.h"
#include "cxlkv/status.h"
#include "util/xxh3.h"

namespace cxlkv::internal::spill {

// Device bytes moved, for SegmentLogStats (relaxed: statistics only).
struct IoCounters {
  std::atomic<std::uint64_t> read{0};
  std::atomic<std::uint64_t> written{0};
  // Bytes written straight from the caller's memory (no staging copy), and the direct writes
  // the kernel refused (EFAULT, EINVAL: memory it cannot pin for O_DIRECT) and that were
  // written again through staging.
  std::atomic<std::uint64_t> written_direct{0};
  std::atomic<std::uint64_t> direct_fallbacks{0};
};

// XXH3-64 streaming state, owned. The update calls fail only for a null pointer with a
// non-zero length; the first failure is remembered and reported by Digest.
class Hasher {
 public:
  Hasher() : state_(XXH3_createState()) {}
  ~Hasher() { static_cast<void>(XXH3_freeState(state_)); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  bool valid() const { return state_ != nullptr; }
  void Reset() { ok_ = XXH3_64bits_reset(state_) == XXH_OK; }
  void Update(const std::byte* p, std::size_t n) {
    if (n != 0) ok_ = ok_ && XXH3_64bits_update(state_, p, n) == XXH_OK;
  }
  Result<std::uint64_t> Digest() const {
    if (!ok_) return Status::IOError("xxhash refused its input");
    return static_cast<std::uint64_t>(XXH3_64bits_digest(state_));
  }

 private:
  XXH3_state_t* state_;
  bool ok_ = false;
};

// A device range read into memory.
struct RangeRead {
  std::uint64_t dev_offset = 0;
  std::uint64_t length = 0;  // a multiple of 4 KiB
  std::byte* dst = nullptr;
  Status status;
};

class IoChannel {
 public:
  struct Options {
    int fd = -1;        // kept open by the caller for the channel's lifetime
    std::string path;   // for messages
    unsigned slots = 0;  // I/Os in flight at most
    std::uint32_t slot_size = 0;  // bytes per I/O; a multiple of 4 KiB
    bool use_io_uring = true;
    // SlotWriter::Stream's disk unit (a power of two, 4 KiB to slot_size; 0: none).
    std::uint32_t write_unit = 0;
  };
  // What the log has already warned about, so each fallback is one line however many channels.
  struct Warned {
    bool uring = false;
    bool registration = false;
  };
  // A ring over options.fd with its staging registered where the kernel allows it; a fallback
  // (synchronous I/O, unregistered buffers) is warned about once per `warned`.
  static Result<std::unique_ptr<IoChannel>> Create(const Options& options, IoCounters* counters,
                                                   Warned* warned);
  IoChannel(const IoChannel&) = delete;
  IoChannel& operator=(const IoChannel&) = delete;

  IoRing& ring() { return *ring_; }
  const IoRing& ring() const { return *ring_; }
  const std::string& path() const { return path_; }
  std::uint32_t slots() const { return slots_; }
  std::uint32_t slot_size() const { return slot_size_; }
  std::byte* slot(std::uint32_t i) const { return staging_.data() + std::size_t{i} * slot_size_; }
  bool in_staging(const std::byte* p) const {
    return p >= staging_.data() && p < staging_.data() + std::size_t{slots_} * slot_size_;
  }
  std::uint32_t write_unit() const { return write_unit_; }
  Hasher& hasher() { return hasher_; }
  IoCounters& counters() { return *counters_; }

  // Reads every range, up to one I/O per slot in flight; each range gets its own status. An
  // error only when the ring itself fails.
  Status ReadRanges(std::span<RangeRead> ranges);
  // Writes `bytes` (a multiple of 4 KiB) at dev_offset and waits for it.
  Status WriteRange(std::uint64_t dev_offset, std::span<const std::byte> bytes);

 private:
  IoChannel() = default;

  std::unique_ptr<IoRing> ring_;
  os::AnonymousMapping staging_;  // staging for O_DIRECT: page-aligned
  std::uint32_t slot_size_ = 0;
  std::uint32_t slots_ = 0;
  std::uint32_t write_unit_ = 0;
  Hasher hasher_;
  std::string path_;
  IoCounters* counters_ = nullptr;
};

// Writes through a channel's slots: Acquire a slot, fill it, Submit it; Finish waits for
// everything. The destructor drains what is still in flight, so no I/O outlives the writer and
// no slot is reused while the kernel may still read it. Bytes written are counted as their
// completions are reaped. SubmitFrom writes from the caller's memory instead of the slot's (the
// slot is then only the operation's ticket): a write the kernel refuses for that memory
// (EFAULT, EINVAL) is copied into the slot and written again, so it costs a copy, never data.
class SlotWriter {
 public:
  explicit SlotWriter(IoChannel& ch);
  ~SlotWriter() { static_cast<void>(Finish()); }
  SlotWriter(const SlotWriter&) = delete;
  SlotWriter& operator=(const SlotWriter&) = delete;

  Result<std::uint32_t> Acquire();
  // Writes slot[0, len) at dev_offset; len is a multiple of 4 KiB.
  Status Submit(std::uint32_t slot, std::uint32_t len, std::uint64_t dev_offset);
  // Writes src[0, len) at dev_offset straight from src (4 KiB-aligned, len a multiple of 4 KiB).
  // The caller keeps src unchanged until Finish has returned. Where the kernel refuses the
  // memory, the bytes are copied through slots and written again (before Finish returns).
  Status SubmitFrom(std::uint32_t slot, const std::byte* src, std::uint32_t len,
                    std::uint64_t dev_offset);
  // Writes slot[0, head_len) and then src[0, len) (as SubmitFrom's) as one I/O at dev_offset,
  // so a record's header block and its data reach the file system as one contiguous write.
  Status SubmitHeaded(std::uint32_t slot, std::uint32_t head_len, const std::byte* src,
                      std::uint32_t len, std::uint64_t dev_offset);
  // One piece of a run (Stream): a slot's bytes (from Acquire; the writer frees the slot once
  // they are written), or, with slot kNoSlot, the caller's, kept unchanged until Finish has
  // returned (as SubmitFrom's; memory the kernel refuses is written again through slots).
  static constexpr std::uint32_t kNoSlot = UINT32_MAX;
  struct Piece {
    std::uint32_t slot = kNoSlot;
    const std::byte* src = nullptr;  // the caller's bytes, where slot is kNoSlot
    std::uint32_t len = 0;           // a multiple of 4 KiB
  };
  // Writes `pieces` back to back from dev_offset as part of one contiguous run of the device
  // (pieces that do not continue the run first send it out). The run goes to the kernel in
  // writes of up to kStreamBytes, one record's end and the next one's start in the same write.
  // With the channel's write unit U, every buffer of those writes covers whole U-aligned units
  // of the disk (but at the run's two ends): a unit that holds parts of several pieces (where
  // one record ends and the next begins, with its header block) is copied into a slot, a unit
  // inside one piece's bytes goes from where they lie. Why: a virtual disk may write each
  // buffer of a request (a contiguous stretch of guest memory) on its own, and pay for every
  // one that starts or ends inside its host's unit; records are 4 KiB longer than their chunks,
  // so written one per I/O from the chunk's memory, their data starts 4 KiB further off a unit
  // boundary each time (on this project's VM: 2 MiB writes 4 KiB off a 64 KiB boundary ran at
  // 0.79x of aligned ones, and a 2 MiB write of three buffers, a record's tail, a header block
  // and the next record's head, at 0.76x of one buffer). Flush and Finish send the remainder.
  Status Stream(std::uint64_t dev_offset, std::span<const Piece> pieces);
  // The disk's units begin where (offset + phase) is a multiple of the unit: a file's offsets
  // differ from the disk's below by LogDevice::PhysicalPhase. Sends the run out when it changes.
  Status SetPhase(std::uint64_t phase);
  static constexpr std::uint64_t kStreamBytes = 2 << 20;
  // Hands every queued write to the kernel now (the device starts while the caller works on),
  // the run's remainder included.
  Status Flush();
  // Waits for every write in flight; the first failure, if any.
  Status Finish();

 private:
  // A write in flight. Slot writes (Submit*) use their slot's index as their ticket; the run's
  // writes take tickets of their own, after the slots', and free the slots they hold.
  struct Op {
    std::uint64_t offset = 0;
    std::uint32_t len = 0;           // bytes of the whole write
    const std::byte* src = nullptr;  // the caller's memory; null for the slot's own
    std::uint32_t head_len = 0;      // SubmitHeaded: slot bytes before src's
    iovec iov[2] = {};               // SubmitHeaded's buffers, alive until reaped
    bool run = false;                // a run's write: the fields below, not src/head_len/iov
    std::vector<iovec> iovs;         // its buffers, alive until reaped
    std::vector<std::uint32_t> held;  // slots it writes from, freed when it completes
    std::uint32_t direct_bytes = 0;  // bytes from the caller's memory
    // As a slot write (the vectors keep their capacity for a later run write).
    void Set(std::uint64_t at, std::uint32_t bytes, const std::byte* from, std::uint32_t head) {
      offset = at;
      len = bytes;
      src = from;
      head_len = head;
      run = false;
    }
    // As a run's write at `at`, empty: SendRun adds its buffers and sets len.
    void SetRun(std::uint64_t at) {
      Set(at, 0, nullptr, 0);
      run = true;
      iovs.clear();
      held.clear();
      direct_bytes = 0;
    }
  };
  // What a refused direct write leaves to write through slots, beyond the first slot's worth:
  // the caller's bytes, or `owned`, a copy of slot bytes (freed with the refused write).
  struct Retry {
    std::uint64_t offset = 0;
    const std::byte* src = nullptr;
    std::uint64_t len = 0;
    std::vector<std::byte> owned;
    const std::byte* data() const { return owned.empty() ? src : owned.data(); }
  };
  // The run Stream gathers: [start, end) of the device and its pieces in order.
  struct Run {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    std::deque<Piece> pieces;
    std::uint32_t slots = 0;  // pieces that hold a slot
  };
  // A run's write has at most this many buffers (IOV_MAX is 1024).
  static constexpr std::size_t kMaxRunBuffers = 256;
  // Slots Acquire leaves free for the run's copies of shared units.
  static constexpr std::size_t kRunReserve = 2;

  Status Queue(std::uint32_t slot, const std::byte* buf, std::uint32_t len);
  Status SubmitQueued();  // hands the ring's queue to the kernel every kSubmitBytes
  // Sends the run's writes of kStreamBytes out; kUpToUnit also what ends on the last unit
  // boundary within it, kAll everything.
  enum class Send { kFull, kUpToUnit, kAll };
  Status SendRun(Send send);
  Result<std::uint32_t> AcquireForRun();
  // Where a run's write copies the units its pieces share: a slot and the bytes it holds.
  struct CopyPlace {
    std::uint32_t slot = kNoSlot;
    std::uint32_t used = 0;
  };
  Status CopySharedUnit(Op& op, std::uint32_t n, CopyPlace& at);
  void ReleaseRunWrite(std::uint32_t ticket, Op& op);
  std::uint64_t NextBoundary(std::uint64_t offset) const;  // the first unit boundary > offset
  void TakePiece(Op& op, const std::byte* p, std::uint32_t len, bool direct);
  void DropRun();
  Status ReapOne();
  Status ReapRun(std::uint32_t ticket, Op& op, std::int32_t res);
  void NoteFailure(const Op& op, std::int32_t res);  // a failed or short write, if the first
  void Restage(std::uint32_t slot, Op& op);

  IoChannel& ch_;
  std::uint64_t unit_ = 0;  // the channel's write unit, 0 where its slots cannot hold copies
  std::uint64_t phase_ = 0;
  std::uint64_t unsubmitted_bytes_ = 0;
  std::vector<Op> ops_;  // the slots' tickets, then the run's
  std::vector<std::uint32_t> free_;
  std::vector<std::uint32_t> free_run_tickets_;
  Run run_;
  std::vector<Retry> retries_;
  Status first_error_;
};

// Where a piece of a read goes: `head` bytes into its slot, then the rest straight into `dst`
// (4 KiB-aligned memory of the caller's); dst null: all `len` bytes into the slot.
struct ReadPlacement {
  std::uint64_t len = 0;  // bytes of the piece; at most the slot's size when dst is null
  std::uint32_t head = 0;
  std::byte* dst = nullptr;
};
// PipelinedRead's default: every piece through the slots.
struct StagedReads {
  ReadPlacement operator()(std::size_t, std::uint64_t, std::uint64_t max_len) const {
    return {max_len, 0, nullptr};
  }
};

// Reads `n` jobs through a channel, up to one I/O per slot in flight, issued job by job in
// order. `extent(j)` gives job j's device range (offset, length: multiples of 4 KiB; length 0
// skips the job). `place(j, offset_in_job, remaining)` says where the next piece goes (see
// ReadPlacement; StagedReads: slot-sized pieces through the slots). `consume(j, offset_in_job,
// bytes, len)` sees every piece of a job in order, and one job's pieces together, whatever
// order the device completes them in, so it may hash as it goes (one hasher serves all jobs);
// jobs come in issue order, except that a job read in one piece is seen as soon as it
// completes between two jobs (so that its slot reads on). A placed piece is seen as its slot
// part and then its dst part. `fail(j, status)` reports a failed I/O; consume is still
// called for the job's later pieces, and must ignore them. Bytes past the end of a file read as
// zeros. `max_device_bytes` (0: no limit) caps the bytes of the reads the device holds at once,
// beyond the slots' limit; a piece larger than the cap is issued alone. A piece's bytes leave
// the device when it completes, before it is handed over, so the next read starts while the
// consumer checks this one: even a cap of one record keeps the device busy. Returns an error
// only when the ring itself fails; every unfinished job is then failed, and nothing the kernel
// was handed is still running when it returns (IoRing::WaitOne waits for it), so no dst is
// written after the return.
template <typename Extent, typename Consume, typename Fail, typename Place = StagedReads>
Status PipelinedRead(IoChannel& ch, std::size_t n, Extent extent, Consume consume, Fail fail,
                     Place place = {}, std::uint64_t max_device_bytes = 0) {
  struct Piece {
    std::size_t job = 0;
    std::uint64_t dev_offset = 0;  // of the piece's first byte
    std::uint64_t job_offset = 0;
    std::uint32_t len = 0;
    std::uint32_t head = 0;
    std::byte* dst = nullptr;
    iovec iov[2] = {};
    bool complete = false;
    bool whole = false;  // the job's only piece
  };
  std::vector<Piece> pieces(ch.slots());
  std::vector<std::uint32_t> free_slots;
  for (std::uint32_t i = ch.slots(); i > 0; --i) free_slots.push_back(i - 1);
  std::deque<std::uint32_t> order;  // slots in issue order

  std::size_t job = 0;
  std::uint64_t job_offset = 0;  // of the next piece to issue within `job`
  std::pair<std::uint64_t, std::uint64_t> ext{0, 0};
  if (n > 0) ext = extent(0);
  Status ring_error;
  std::uint64_t device_bytes = 0;  // of the pieces issued and not yet completed
  std::size_t complete_held = 0;   // pieces complete and not yet handed over

  while (true) {
    // Issue pieces while slots are free.
    bool queued = false;
    while (ring_error.ok() && !free_slots.empty() && job < n) {
      if (job_offset >= ext.second) {
        ++job;
        job_offset = 0;
        if (job < n) ext = extent(job);
        continue;
      }
      const std::uint32_t slot = free_slots.back();
      const std::uint64_t remaining = ext.second - job_offset;
      ReadPlacement at = place(job, job_offset, std::min<std::uint64_t>(ch.slot_size(), remaining));
      if (at.dst == nullptr) at.head = 0;
      const auto len = static_cast<std::uint32_t>(std::min<std::uint64_t>(
          at.dst == nullptr ? ch.slot_size() : UINT32_MAX, std::min(at.len, remaining)));
      if (max_device_bytes != 0 && device_bytes != 0 && device_bytes + len > max_device_bytes) {
        break;  // the device holds enough; this piece goes once one completes
      }
      Piece& p = pieces[slot];
      p = Piece{job, ext.first + job_offset, job_offset, len, at.head, at.dst, {}, false,
                job_offset == 0 && len == ext.second};
      Status s;
      if (p.dst == nullptr) {
        s = ch.ring().QueueRead(ch.slot(slot), len, p.dev_offset, slot);
      } else {
        unsigned count = 0;
        if (p.head > 0) p.iov[count++] = {ch.slot(slot), p.head};
        p.iov[count++] = {p.dst, len - p.head};
        s = ch.ring().QueueReadv(p.iov, count, p.dev_offset, slot);
      }
      if (!s.ok()) {
        ring_error = s;
        break;
      }
      free_slots.pop_back();
      order.push_back(slot);
      job_offset += len;
      device_bytes += len;
      queued = true;
    }
    // With completed pieces to hand over, what was just queued goes to the kernel first, so
    // that the device reads it while the consumer checks them (else it waits in the ring for
    // the next WaitOne: with one read at the device, the device would idle through each check).
    if (queued && complete_held > 0 && ring_error.ok()) {
      if (const Status st = ch.ring().Submit(); !st.ok()) ring_error = st;
    }
    // Hand completed pieces to the consumer, in issue order.
    bool progressed = false;
    const auto hand_over = [&](std::deque<std::uint32_t>::iterator at) {
      const std::uint32_t slot = *at;
      const Piece& p = pieces[slot];
      if (p.dst == nullptr) {
        consume(p.job, p.job_offset, ch.slot(slot), p.len);
      } else {
        if (p.head > 0) consume(p.job, p.job_offset, ch.slot(slot), p.head);
        consume(p.job, p.job_offset + p.head, p.dst, p.len - p.head);
      }
      free_slots.push_back(slot);
      --complete_held;
      progressed = true;
      return order.erase(at);
    };
    while (!order.empty() && pieces[order.front()].complete) hand_over(order.begin());
    // A whole job in one piece needs nothing before it: handed over as soon as it completes,
    // its slot takes the next read instead of waiting behind a slower one (with more jobs than
    // slots, waiting for the oldest read would leave the device with fewer reads than slots).
    // Only between jobs: a job whose first pieces were handed over owns the hasher until its
    // last one is.
    if (!order.empty() && pieces[order.front()].job_offset == 0) {
      for (auto it = order.begin() + 1; it != order.end();) {
        it = pieces[*it].complete && pieces[*it].whole ? hand_over(it) : it + 1;
      }
    }
    if (order.empty() && (job >= n || !ring_error.ok())) break;
    if (progressed && ring_error.ok()) continue;
    if (!ring_error.ok()) break;

    auto c = ch.ring().WaitOne();
    if (!c.ok()) {
      ring_error = c.status();
      break;
    }
    const auto slot = static_cast<std::uint32_t>(c->user_data);
    Piece& p = pieces[slot];
    const std::int32_t res = c->result;
    const std::uint32_t want = p.len;
    device_bytes -= want;
    if (res < 0) {
      fail(p.job, Status::FromErrno("reading " + std::to_string(want) + " bytes at offset " +
                                        std::to_string(p.dev_offset) + " of " + ch.path(),
                                    -res));
    } else {
      ch.counters().read.fetch_add(static_cast<std::uint64_t>(res), std::memory_order_relaxed);
      // Short: the end of the file (or device). The rest reads as zeros, as a never-written
      // region would. It is not re-read: under O_DIRECT the remainder's unaligned offset is
      // EINVAL on some file systems. Checksums reject whatever the zeros cut short.
      for (auto got = static_cast<std::uint32_t>(res); got < want;) {
        const bool in_head = p.dst != nullptr && got < p.head;
        std::byte* at = p.dst == nullptr ? ch.slot(slot) + got
                        : in_head        ? ch.slot(slot) + got
                                         : p.dst + (got - p.head);
        const std::uint32_t end = in_head ? p.head : want;
        std::memset(at, 0, end - got);
        got = end;
      }
    }
    p.complete = true;
    ++complete_held;
  }
  if (!ring_error.ok()) {
    // A broken ring has waited for what the kernel held (IoRing::WaitOne) and refuses all
    // further work. A refused queueing leaves the ring whole: what it has in flight is reaped
    // here, so that no read lands in a caller's memory after this returns.
    while (!ch.ring().broken() && ch.ring().in_flight() > 0 && ch.ring().WaitOne().ok()) {
    }
    for (std::size_t j = 0; j < n; ++j) fail(j, ring_error);
  }
  return ring_error;
}

}  // namespace cxlkv::internal::spill
