#include "backends/spill/io_channel.h"

#include <cerrno>

#include "backends/spill/chunk_record.h"
#include "util/log.h"

namespace cxlkv::internal::spill {

Result<std::unique_ptr<IoChannel>> IoChannel::Create(const Options& options,
                                                     IoCounters* counters, Warned* warned) {
  std::unique_ptr<IoChannel> ch(new IoChannel());
  ch->path_ = options.path;
  ch->counters_ = counters;
  // Room for a SlotWriter's slot writes and as many writes of its run (tickets of their own).
  CXLKV_ASSIGN_OR_RETURN(ch->ring_,
                         IoRing::Create(options.fd, 2 * options.slots, options.use_io_uring));
  ch->slots_ = options.slots;
  ch->slot_size_ = options.slot_size;
  ch->write_unit_ = options.write_unit;
  // In huge pages where THP allows (best effort): a unit copied into a slot is then one
  // contiguous buffer for the disk, not one per 4 KiB page.
  const std::size_t staging = std::size_t{ch->slots_} * ch->slot_size_;
  CXLKV_ASSIGN_OR_RETURN(ch->staging_, os::MapAnonymous(staging, os::kHugePageSize, false));
  static_cast<void>(os::AdviseHugePages(ch->staging_.data(), ch->staging_.length()));
  if (!ch->hasher_.valid()) return Status::NoSpace("allocating an XXH3 state");
  if (!ch->ring_->uses_io_uring()) {
    if (options.use_io_uring && !warned->uring) {
      internal::LogF("cxlkv: %s: %s; using synchronous pread/pwrite", options.path.c_str(),
                     ch->ring_->fallback_reason().c_str());
      warned->uring = true;
    }
    return ch;
  }
  if (const Status s = ch->ring_->RegisterBuffer(ch->staging_.data(), ch->staging_.length());
      !s.ok() && !warned->registration) {
    // Pinning is charged to RLIMIT_MEMLOCK for unprivileged users; unregistered buffers cost a
    // page pinning per I/O and nothing else.
    internal::LogF("cxlkv: %s: %s; using unregistered staging buffers", options.path.c_str(),
                   s.ToString().c_str());
    warned->registration = true;
  }
  return ch;
}

Status IoChannel::ReadRanges(std::span<RangeRead> ranges) {
  return PipelinedRead(
      *this, ranges.size(),
      [&](std::size_t j) {
        return std::pair{ranges[j].dev_offset, ranges[j].length};
      },
      [&](std::size_t j, std::uint64_t off, const std::byte* p, std::uint32_t len) {
        if (ranges[j].status.ok()) std::memcpy(ranges[j].dst + off, p, len);
      },
      [&](std::size_t j, const Status& st) {
        if (ranges[j].status.ok()) ranges[j].status = st;
      });
}

Status IoChannel::WriteRange(std::uint64_t dev_offset, std::span<const std::byte> bytes) {
  SlotWriter w(*this);
  for (std::size_t done = 0; done < bytes.size();) {
    const std::size_t len = std::min<std::size_t>(slot_size_, bytes.size() - done);
    CXLKV_ASSIGN_OR_RETURN(const std::uint32_t slot, w.Acquire());
    std::memcpy(this->slot(slot), bytes.data() + done, len);
    CXLKV_RETURN_IF_ERROR(w.Submit(slot, static_cast<std::uint32_t>(len), dev_offset + done));
    done += len;
  }
  return w.Finish();
}

// ---- SlotWriter ----

namespace {
// Pieces go to the kernel this many bytes at a time: together, so that the block layer can
// merge neighbours into large requests, and early, so that the device writes them while the
// caller copies the next ones (held back until the slots ran out, a batch's first pieces
// waited for all of its copies; handed over one by one, 2 MiB records lost the merging).
constexpr std::uint64_t kSubmitBytes = std::uint64_t{1} << 20;
}  // namespace

SlotWriter::SlotWriter(IoChannel& ch) : ch_(ch), ops_(2 * std::size_t{ch.slots()}) {
  free_.reserve(ch.slots());
  for (std::uint32_t i = ch.slots(); i > 0; --i) free_.push_back(i - 1);
  free_run_tickets_.reserve(ch.slots());
  for (std::uint32_t i = 2 * ch.slots(); i > ch.slots(); --i) free_run_tickets_.push_back(i - 1);
  // Copies of shared units need slots beside the run's own and the reserve.
  if (ch.write_unit() >= kBlockSize && ch.write_unit() <= ch.slot_size() &&
      ch.slots() > 2 * kRunReserve) {
    unit_ = ch.write_unit();
  }
}

Result<std::uint32_t> SlotWriter::Acquire() {
  // With units, kRunReserve slots stay for the run's copies while anything can free one.
  const std::size_t keep = unit_ != 0 ? kRunReserve : 0;
  while (free_.size() <= keep) {
    // The run's slots come back once written: its whole units go now, so that writes still
    // end on unit boundaries; the rest too where nothing in flight would free a slot (the
    // reserve covers its copies).
    if (run_.slots > 0) {
      CXLKV_RETURN_IF_ERROR(SendRun(Send::kUpToUnit));
      if (ch_.ring().in_flight() == 0 && free_.size() <= keep && run_.slots > 0) {
        CXLKV_RETURN_IF_ERROR(SendRun(Send::kAll));
      }
    }
    if (free_.size() > keep) break;
    if (ch_.ring().in_flight() == 0) {
      if (!free_.empty()) break;
      return Status::InvalidArgument("no staging slot free");
    }
    CXLKV_RETURN_IF_ERROR(ReapOne());
  }
  const std::uint32_t slot = free_.back();
  free_.pop_back();
  return slot;
}

Result<std::uint32_t> SlotWriter::AcquireForRun() {
  while (free_.empty()) {
    if (ch_.ring().in_flight() == 0) return Status::InvalidArgument("no staging slot free");
    CXLKV_RETURN_IF_ERROR(ReapOne());
  }
  const std::uint32_t slot = free_.back();
  free_.pop_back();
  return slot;
}

Status SlotWriter::Submit(std::uint32_t slot, std::uint32_t len, std::uint64_t dev_offset) {
  ops_[slot].Set(dev_offset, len, nullptr, 0);
  return Queue(slot, ch_.slot(slot), len);
}

Status SlotWriter::SubmitHeaded(std::uint32_t slot, std::uint32_t head_len, const std::byte* src,
                                std::uint32_t len, std::uint64_t dev_offset) {
  if (head_len > ch_.slot_size() || len > UINT32_MAX - head_len) {
    free_.push_back(slot);
    return Status::InvalidArgument("a headed write of " + std::to_string(head_len) + " + " +
                                   std::to_string(len) + " bytes");
  }
  Op& op = ops_[slot];
  op.Set(dev_offset, head_len + len, src, head_len);
  op.iov[0] = {ch_.slot(slot), head_len};
  op.iov[1] = {const_cast<std::byte*>(src), len};  // only read: a write
  const Status s = ch_.ring().QueueWritev(op.iov, 2, dev_offset, slot);
  if (!s.ok()) {
    free_.push_back(slot);
    return s;
  }
  unsubmitted_bytes_ += op.len;
  return SubmitQueued();
}

Status SlotWriter::SubmitFrom(std::uint32_t slot, const std::byte* src, std::uint32_t len,
                              std::uint64_t dev_offset) {
  ops_[slot].Set(dev_offset, len, src, 0);
  return Queue(slot, src, len);
}

Status SlotWriter::Queue(std::uint32_t slot, const std::byte* buf, std::uint32_t len) {
  const Status s = ch_.ring().QueueWrite(buf, len, ops_[slot].offset, slot);
  if (!s.ok()) {
    free_.push_back(slot);
    return s;
  }
  unsubmitted_bytes_ += len;
  return SubmitQueued();
}

Status SlotWriter::SubmitQueued() {
  if (unsubmitted_bytes_ < kSubmitBytes) return Status::Ok();
  unsubmitted_bytes_ = 0;
  return ch_.ring().Submit();  // on failure the ring is broken: Finish reports it
}

Status SlotWriter::Stream(std::uint64_t dev_offset, std::span<const Piece> pieces) {
  if (!run_.pieces.empty() && dev_offset != run_.end) CXLKV_RETURN_IF_ERROR(SendRun(Send::kAll));
  if (run_.pieces.empty()) run_.start = run_.end = dev_offset;
  for (const Piece& p : pieces) {
    if (p.len == 0) continue;
    run_.pieces.push_back(p);
    if (p.slot != kNoSlot) {
      run_.pieces.back().src = ch_.slot(p.slot);  // where its next byte is, as a caller's piece
      ++run_.slots;
    }
    run_.end += p.len;
  }
  return SendRun(Send::kFull);
}

Status SlotWriter::SetPhase(std::uint64_t phase) {
  if (unit_ == 0 || phase % unit_ == phase_) return Status::Ok();
  CXLKV_RETURN_IF_ERROR(SendRun(Send::kAll));
  phase_ = phase % unit_;
  return Status::Ok();
}

std::uint64_t SlotWriter::NextBoundary(std::uint64_t offset) const {
  return ((offset + phase_) / unit_ + 1) * unit_ - phase_;
}

// Appends len bytes at p to op's buffers, merged into the last one where they continue it.
void SlotWriter::TakePiece(Op& op, const std::byte* p, std::uint32_t len, bool direct) {
  if (!op.iovs.empty()) {
    iovec& last = op.iovs.back();
    const bool last_direct = !ch_.in_staging(static_cast<const std::byte*>(last.iov_base));
    if (last_direct == direct && static_cast<const std::byte*>(last.iov_base) + last.iov_len == p) {
      last.iov_len += len;
      if (direct) op.direct_bytes += len;
      return;
    }
  }
  op.iovs.push_back({const_cast<std::byte*>(p), len});  // only read: a write
  if (direct) op.direct_bytes += len;
}

Status SlotWriter::SendRun(Send send) {
  while (!run_.pieces.empty()) {
    // Up to kStreamBytes, ending on a unit boundary where one lies within them.
    const std::uint64_t limit = run_.start + kStreamBytes;
    std::uint64_t cut;
    if (run_.end <= limit) {
      if (send == Send::kFull) return Status::Ok();
      cut = run_.end;
      if (send == Send::kUpToUnit && unit_ != 0) {  // up to the last unit boundary
        cut = NextBoundary(run_.end) - unit_;
        if (cut <= run_.start) return Status::Ok();
      }
    } else {
      cut = limit;
      if (unit_ != 0 && NextBoundary(run_.start) < limit) cut = NextBoundary(limit) - unit_;
    }
    while (free_run_tickets_.empty()) CXLKV_RETURN_IF_ERROR(ReapOne());
    const std::uint32_t ticket = free_run_tickets_.back();
    free_run_tickets_.pop_back();
    Op& op = ops_[ticket];
    op.SetRun(run_.start);
    CopyPlace copies;
    Status failed;
    std::uint64_t pos = run_.start;
    while (pos < cut && op.iovs.size() < kMaxRunBuffers) {
      // The unit holding pos (or, without units, all up to the cut).
      const std::uint64_t unit_end = unit_ != 0 ? std::min(cut, NextBoundary(pos)) : cut;
      Piece& front = run_.pieces.front();
      if (front.slot == kNoSlot && (unit_ == 0 || pos + front.len >= unit_end)) {
        // The caller's bytes fill the unit (or there are no units): written from where they lie.
        const auto n =
            static_cast<std::uint32_t>(std::min<std::uint64_t>(front.len, unit_end - pos));
        TakePiece(op, front.src, n, true);
        pos += n;
        front.src += n;
        front.len -= n;
        if (front.len == 0) run_.pieces.pop_front();
        continue;
      }
      const bool slot_alone =
          unit_ == 0 ? pos + front.len <= cut : pos + front.len == unit_end;
      if (front.slot != kNoSlot && slot_alone) {
        // A slot's bytes alone (or no units): written from the slot, freed when they are.
        TakePiece(op, front.src, front.len, false);
        op.held.push_back(front.slot);
        --run_.slots;
        pos += front.len;
        run_.pieces.pop_front();
        continue;
      }
      if (unit_ == 0) break;  // a slot past the cut goes in the next write
      failed = CopySharedUnit(op, static_cast<std::uint32_t>(unit_end - pos), copies);
      if (!failed.ok()) break;
      pos = unit_end;
    }
    run_.start = pos;
    op.len = static_cast<std::uint32_t>(pos - op.offset);
    Status s = failed;
    if (op.len > 0 && s.ok()) {
      s = ch_.ring().QueueWritev(op.iovs.data(), static_cast<unsigned>(op.iovs.size()), op.offset,
                                 ticket);
    }
    if (s.ok() && op.len == 0) s = Status::InvalidArgument("a run's piece fits no write");
    if (!s.ok()) {
      // What this write took from the run is lost: the failure is the writer's, so that
      // Finish fails every record queued with it.
      ReleaseRunWrite(ticket, op);
      if (first_error_.ok()) first_error_ = s;
      return s;
    }
    unsubmitted_bytes_ += op.len;
    CXLKV_RETURN_IF_ERROR(SubmitQueued());
  }
  return Status::Ok();
}

// The next n bytes of the run, parts of several pieces that share a unit, copied together into
// a slot (the one `at` fills while it has room) and taken as one buffer of op. Slots whose
// bytes are copied out are free again.
Status SlotWriter::CopySharedUnit(Op& op, std::uint32_t n, CopyPlace& at) {
  if (at.slot == kNoSlot || at.used + n > ch_.slot_size()) {
    CXLKV_ASSIGN_OR_RETURN(at.slot, AcquireForRun());
    at.used = 0;
    op.held.push_back(at.slot);
  }
  std::byte* const dst = ch_.slot(at.slot) + at.used;
  for (std::uint32_t done = 0; done < n;) {
    Piece& p = run_.pieces.front();
    const std::uint32_t m = std::min(p.len, n - done);
    std::memcpy(dst + done, p.src, m);
    done += m;
    p.src += m;
    p.len -= m;
    if (p.len > 0) continue;
    if (p.slot != kNoSlot) {
      free_.push_back(p.slot);
      --run_.slots;
    }
    run_.pieces.pop_front();
  }
  TakePiece(op, dst, n, false);
  at.used += n;
  return Status::Ok();
}

// A run's write done with (completed, or never queued): its slots and ticket free again.
void SlotWriter::ReleaseRunWrite(std::uint32_t ticket, Op& op) {
  for (const std::uint32_t slot : op.held) free_.push_back(slot);
  op.held.clear();
  op.run = false;
  free_run_tickets_.push_back(ticket);
}

// The run's pieces, never to be written (a failure covers them): their slots free again.
void SlotWriter::DropRun() {
  for (const Piece& p : run_.pieces) {
    if (p.slot != kNoSlot) free_.push_back(p.slot);
  }
  run_ = Run{};
}

Status SlotWriter::Flush() {
  CXLKV_RETURN_IF_ERROR(SendRun(Send::kAll));
  unsubmitted_bytes_ = 0;
  return ch_.ring().Submit();  // on failure the ring is broken: Finish reports it
}

Status SlotWriter::Finish() {
  if (const Status s = SendRun(Send::kAll); !s.ok()) {
    if (first_error_.ok()) first_error_ = s;
    DropRun();
  }
  for (;;) {
    unsubmitted_bytes_ = 0;  // WaitOne hands them over
    while (ch_.ring().in_flight() > 0 && !ch_.ring().broken()) {
      if (!ReapOne().ok()) break;
    }
    if (retries_.empty() || !first_error_.ok() || ch_.ring().broken()) break;
    // Refused direct writes, the rest of them through slots (Acquire may reap more refusals).
    const Retry r = std::move(retries_.back());
    retries_.pop_back();
    for (std::uint64_t done = 0; done < r.len && first_error_.ok();) {
      const auto len =
          static_cast<std::uint32_t>(std::min<std::uint64_t>(ch_.slot_size(), r.len - done));
      auto slot = Acquire();
      if (!slot.ok()) {
        first_error_ = slot.status();
        break;
      }
      std::memcpy(ch_.slot(*slot), r.data() + done, len);
      if (const Status s = Submit(*slot, len, r.offset + done); !s.ok()) first_error_ = s;
      done += len;
    }
  }
  retries_.clear();
  return first_error_;
}

// A direct write the kernel refused: its first slot's worth again from the slot (free for it:
// the refused write never used it), the rest left to Finish.
void SlotWriter::Restage(std::uint32_t slot, Op& op) {
  ch_.counters().direct_fallbacks.fetch_add(1, std::memory_order_relaxed);
  const std::uint32_t now = std::min(op.len, ch_.slot_size());
  std::memcpy(ch_.slot(slot) + op.head_len, op.src, now - op.head_len);
  if (op.len > now) {
    retries_.push_back(Retry{op.offset + now, op.src + (now - op.head_len), op.len - now, {}});
  }
  op.src = nullptr;
  op.head_len = 0;
  op.len = now;
  const Status s = Queue(slot, ch_.slot(slot), now);
  if (!s.ok() && first_error_.ok()) first_error_ = s;
}

// Reaps one completion. A short write is not resumed: on a file it means the file system had
// room for only part of it (the rest would fail with ENOSPC, or with EINVAL under O_DIRECT at
// an unaligned offset), so it is NoSpace at once.
Status SlotWriter::ReapOne() {
  auto c = ch_.ring().WaitOne();
  if (!c.ok()) {
    if (first_error_.ok()) first_error_ = c.status();
    return c.status();
  }
  const auto slot = static_cast<std::uint32_t>(c->user_data);
  Op& op = ops_[slot];
  const std::int32_t res = c->result;
  if (op.run) return ReapRun(slot, op, res);
  if (op.src != nullptr && (res == -EFAULT || res == -EINVAL)) {
    // O_DIRECT could not use the caller's memory (a devdax or some file-backed mappings on
    // some kernels): write the same bytes again through staging.
    Restage(slot, op);
    return Status::Ok();
  }
  if (res > 0) {
    ch_.counters().written.fetch_add(static_cast<std::uint64_t>(res), std::memory_order_relaxed);
    if (op.src != nullptr && static_cast<std::uint32_t>(res) > op.head_len) {
      ch_.counters().written_direct.fetch_add(static_cast<std::uint64_t>(res) - op.head_len,
                                              std::memory_order_relaxed);
    }
  }
  NoteFailure(op, res);
  free_.push_back(slot);
  return Status::Ok();
}

void SlotWriter::NoteFailure(const Op& op, std::int32_t res) {
  if ((res >= 0 && static_cast<std::uint32_t>(res) >= op.len) || !first_error_.ok()) return;
  const std::string what = "writing " + std::to_string(op.len) + " bytes at offset " +
                           std::to_string(op.offset) + " of " + ch_.path();
  first_error_ = res < 0 ? Status::FromErrno(what, -res)
                         : Status::NoSpace(what + ": only " + std::to_string(res) +
                                           " bytes written (file system full?)");
}

// A run's write completed: its slots and ticket are free again. Memory the kernel refused (as
// in ReapOne) is written again through slots by Finish, buffer by buffer, the slots' bytes
// copied out first.
Status SlotWriter::ReapRun(std::uint32_t ticket, Op& op, std::int32_t res) {
  if (op.direct_bytes > 0 && (res == -EFAULT || res == -EINVAL)) {
    ch_.counters().direct_fallbacks.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t at = op.offset;
    for (const iovec& v : op.iovs) {
      const auto* p = static_cast<const std::byte*>(v.iov_base);
      Retry r{at, p, v.iov_len, {}};
      if (ch_.in_staging(p)) r.owned.assign(p, p + v.iov_len);
      retries_.push_back(std::move(r));
      at += v.iov_len;
    }
  } else {
    if (res > 0) {
      ch_.counters().written.fetch_add(static_cast<std::uint64_t>(res), std::memory_order_relaxed);
      if (static_cast<std::uint32_t>(res) == op.len) {
        ch_.counters().written_direct.fetch_add(op.direct_bytes, std::memory_order_relaxed);
      }
    }
    NoteFailure(op, res);
  }
  ReleaseRunWrite(ticket, op);
  return Status::Ok();
}

}  // namespace cxlkv::internal::spill
