#include "backends/spill/io_channel.h"

#include <cerrno>

#include "util/log.h"

namespace cxlkv::internal::spill {

Result<std::unique_ptr<IoChannel>> IoChannel::Create(const Options& options,
                                                     IoCounters* counters, Warned* warned) {
  std::unique_ptr<IoChannel> ch(new IoChannel());
  ch->path_ = options.path;
  ch->counters_ = counters;
  CXLKV_ASSIGN_OR_RETURN(ch->ring_,
                         IoRing::Create(options.fd, options.slots, options.use_io_uring));
  ch->slots_ = options.slots;
  ch->slot_size_ = options.slot_size;
  CXLKV_ASSIGN_OR_RETURN(ch->staging_,
                         os::MapAnonymous(std::size_t{ch->slots_} * ch->slot_size_, 0, false));
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

SlotWriter::SlotWriter(IoChannel& ch) : ch_(ch), ops_(ch.slots()) {
  free_.reserve(ch.slots());
  for (std::uint32_t i = ch.slots(); i > 0; --i) free_.push_back(i - 1);
}

Result<std::uint32_t> SlotWriter::Acquire() {
  while (free_.empty()) {
    if (ch_.ring().in_flight() == 0) return Status::InvalidArgument("no staging slot free");
    CXLKV_RETURN_IF_ERROR(ReapOne());
  }
  const std::uint32_t slot = free_.back();
  free_.pop_back();
  return slot;
}

Status SlotWriter::Submit(std::uint32_t slot, std::uint32_t len, std::uint64_t dev_offset) {
  ops_[slot] = Op{dev_offset, len, nullptr, 0, {}};
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
  op = Op{dev_offset, head_len + len, src, head_len, {}};
  op.iov[0] = {ch_.slot(slot), head_len};
  op.iov[1] = {const_cast<std::byte*>(src), len};  // only read: a write
  const Status s = ch_.ring().QueueWritev(op.iov, 2, dev_offset, slot);
  if (!s.ok()) {
    free_.push_back(slot);
    return s;
  }
  unsubmitted_bytes_ += op.len;
  if (unsubmitted_bytes_ < kSubmitBytes) return Status::Ok();
  return Flush();
}

Status SlotWriter::SubmitFrom(std::uint32_t slot, const std::byte* src, std::uint32_t len,
                              std::uint64_t dev_offset) {
  ops_[slot] = Op{dev_offset, len, src, 0, {}};
  return Queue(slot, src, len);
}

Status SlotWriter::Queue(std::uint32_t slot, const std::byte* buf, std::uint32_t len) {
  const Status s = ch_.ring().QueueWrite(buf, len, ops_[slot].offset, slot);
  if (!s.ok()) {
    free_.push_back(slot);
    return s;
  }
  unsubmitted_bytes_ += len;
  if (unsubmitted_bytes_ < kSubmitBytes) return Status::Ok();
  return Flush();
}

Status SlotWriter::Flush() {
  unsubmitted_bytes_ = 0;
  return ch_.ring().Submit();  // on failure the ring is broken: Finish reports it
}

Status SlotWriter::Finish() {
  for (;;) {
    unsubmitted_bytes_ = 0;  // WaitOne hands them over
    while (ch_.ring().in_flight() > 0 && !ch_.ring().broken()) {
      if (!ReapOne().ok()) break;
    }
    if (retries_.empty() || !first_error_.ok() || ch_.ring().broken()) break;
    // Refused direct writes, the rest of them through slots (Acquire may reap more refusals).
    const Retry r = retries_.back();
    retries_.pop_back();
    for (std::uint64_t done = 0; done < r.len && first_error_.ok();) {
      const auto len =
          static_cast<std::uint32_t>(std::min<std::uint64_t>(ch_.slot_size(), r.len - done));
      auto slot = Acquire();
      if (!slot.ok()) {
        first_error_ = slot.status();
        break;
      }
      std::memcpy(ch_.slot(*slot), r.src + done, len);
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
    retries_.push_back(Retry{op.offset + now, op.src + (now - op.head_len), op.len - now});
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
  if ((res < 0 || static_cast<std::uint32_t>(res) < op.len) && first_error_.ok()) {
    const std::string what = "writing " + std::to_string(op.len) + " bytes at offset " +
                             std::to_string(op.offset) + " of " + ch_.path();
    first_error_ = res < 0 ? Status::FromErrno(what, -res)
                           : Status::NoSpace(what + ": only " + std::to_string(res) +
                                             " bytes written (file system full?)");
  }
  free_.push_back(slot);
  return Status::Ok();
}

}  // namespace cxlkv::internal::spill
