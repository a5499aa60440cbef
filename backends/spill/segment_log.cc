#include "backends/spill/segment_log.h"

#include <sys/random.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "backends/spill/chunk_record.h"
#include "backends/spill/log_device.h"
#include "backends/spill/uring.h"
#include "util/log.h"

namespace cxlkv::internal {
namespace {

using spill::BlocksFor;
using spill::ChunkLocation;
using spill::IoRing;
using spill::kBlockSize;
using spill::kDataOffset;
using spill::LogDevice;
using spill::RecordHeader;
using spill::RoundUpToBlock;
using spill::SegmentHeader;
using spill::SegmentTrailer;
using spill::SummaryEntry;
using spill::Superblock;

constexpr std::uint64_t kMinSegmentSize = 64 * 1024;
constexpr std::uint64_t kMaxSegmentSize = ChunkLocation::kMaxBlocksPerSegment * kBlockSize;
constexpr std::uint32_t kMaxIoSize = 64u << 20;
constexpr unsigned kMaxQueueDepth = 4096;
// Copy and hash alternate in strides of this size, so the hash reads bytes the copy has just
// brought into cache.
constexpr std::size_t kHashStride = 64 * 1024;
// Recovery reads segment header and trailer blocks for this many segments at a time, and scans
// an unsealed segment through a window of this many bytes.
constexpr std::size_t kRecoveryBatch = 256;
constexpr std::size_t kScanWindow = 4u << 20;

std::string Hex(std::uint64_t v) {
  char buf[19];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::uint64_t RandomLogId() {
  std::uint64_t id = 0;
  if (getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id) || id == 0) {
    // getrandom cannot fail for 8 bytes once the pool is initialised; a clock-derived id is a
    // fine stand-in (it only needs to differ from the previous log on the same path).
    id = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) *
             0x9e3779b97f4a7c15ULL |
         1;
  }
  return id;
}

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

// One io_uring and its staging memory, cut into `slots` slots of `slot_size` bytes: a slot is
// the buffer of one I/O in flight. Used by one thread at a time (the log's mutexes).
struct Channel {
  std::unique_ptr<IoRing> ring;
  os::AnonymousMapping staging;  // staging for O_DIRECT: page-aligned
  std::uint32_t slot_size = 0;
  std::uint32_t slots = 0;
  Hasher hasher;
  std::byte* slot(std::uint32_t i) const { return staging.data() + std::size_t{i} * slot_size; }
};

// Writes through a channel's slots: Acquire a slot, fill it, Submit it; Finish waits for
// everything. The destructor drains what is still in flight, so no I/O outlives the writer and
// no slot is reused while the kernel may still read it.
class SlotWriter {
 public:
  SlotWriter(Channel& ch, const std::string& path) : ch_(ch), path_(path), ops_(ch.slots) {
    free_.reserve(ch.slots);
    for (std::uint32_t i = ch.slots; i > 0; --i) free_.push_back(i - 1);
  }
  ~SlotWriter() { static_cast<void>(Finish()); }
  SlotWriter(const SlotWriter&) = delete;
  SlotWriter& operator=(const SlotWriter&) = delete;

  Result<std::uint32_t> Acquire() {
    while (free_.empty()) {
      if (ch_.ring->in_flight() == 0) return Status::InvalidArgument("no staging slot free");
      CXLKV_RETURN_IF_ERROR(ReapOne());
    }
    const std::uint32_t slot = free_.back();
    free_.pop_back();
    return slot;
  }

  // Writes slot[0, len) at dev_offset; len is a multiple of 4 KiB. Pieces go to the kernel
  // kSubmitBytes at a time: together, so that the block layer can merge neighbours into
  // large requests, and early, so that the device writes them while the caller copies the
  // next ones (held back until the slots ran out, a batch's first pieces waited for all of its
  // copies; handed over one by one, 2 MiB records lost the merging).
  Status Submit(std::uint32_t slot, std::uint32_t len, std::uint64_t dev_offset) {
    ops_[slot] = Op{dev_offset, len};
    const Status s = ch_.ring->QueueWrite(ch_.slot(slot), len, dev_offset, slot);
    if (!s.ok()) {
      free_.push_back(slot);
      return s;
    }
    unsubmitted_bytes_ += len;
    if (unsubmitted_bytes_ < kSubmitBytes) return Status::Ok();
    unsubmitted_bytes_ = 0;
    return ch_.ring->Submit();  // on failure the ring is broken: Finish reports it
  }

  // Waits for every write in flight; the first failure, if any.
  Status Finish() {
    unsubmitted_bytes_ = 0;  // WaitOne hands them over
    while (ch_.ring->in_flight() > 0 && !ch_.ring->broken()) {
      if (!ReapOne().ok()) break;
    }
    return first_error_;
  }

  std::uint64_t bytes_written() const { return bytes_; }

 private:
  struct Op {
    std::uint64_t offset = 0;
    std::uint32_t len = 0;
  };

  // Reaps one completion. A short write is not resumed: on a file it means the file system
  // had room for only part of it (the rest would fail with ENOSPC, or with EINVAL under
  // O_DIRECT at an unaligned offset), so it is NoSpace at once.
  Status ReapOne() {
    auto c = ch_.ring->WaitOne();
    if (!c.ok()) {
      if (first_error_.ok()) first_error_ = c.status();
      return c.status();
    }
    const auto slot = static_cast<std::uint32_t>(c->user_data);
    const Op& op = ops_[slot];
    const std::int32_t res = c->result;
    if (res > 0) bytes_ += static_cast<std::uint64_t>(res);
    if ((res < 0 || static_cast<std::uint32_t>(res) < op.len) && first_error_.ok()) {
      const std::string what = "writing " + std::to_string(op.len) + " bytes at offset " +
                               std::to_string(op.offset) + " of " + path_;
      first_error_ = res < 0 ? Status::FromErrno(what, -res)
                             : Status::NoSpace(what + ": only " + std::to_string(res) +
                                               " bytes written (file system full?)");
    }
    free_.push_back(slot);
    return Status::Ok();
  }

  static constexpr std::uint64_t kSubmitBytes = std::uint64_t{1} << 20;

  Channel& ch_;
  const std::string& path_;
  std::uint64_t unsubmitted_bytes_ = 0;
  std::vector<Op> ops_;
  std::vector<std::uint32_t> free_;
  Status first_error_;
  std::uint64_t bytes_ = 0;
};

// Reads `n` jobs through a channel, up to one I/O per slot in flight, issued job by job in
// order. `extent(j)` gives job j's device range (offset, length: multiples of 4 KiB; length 0
// skips the job). `consume(j, offset_in_job, bytes, len)` sees every piece of every job in
// order (job by job, piece by piece), whatever order the device completes them in, so it may
// hash as it goes. `fail(j, status)` reports a failed I/O; consume is still called for the
// job's later pieces, and must ignore them. Bytes past the end of a file read as zeros.
// Returns an error only when the ring itself fails; every unfinished job is then failed too.
template <typename Extent, typename Consume, typename Fail>
Status PipelinedRead(Channel& ch, const std::string& path, std::size_t n, Extent extent,
                     Consume consume, Fail fail, std::uint64_t* bytes_read) {
  struct Piece {
    std::size_t job = 0;
    std::uint64_t dev_offset = 0;  // of the piece's first byte
    std::uint64_t job_offset = 0;
    std::uint32_t len = 0;
    bool complete = false;
  };
  std::vector<Piece> pieces(ch.slots);
  std::vector<std::uint32_t> free_slots;
  for (std::uint32_t i = ch.slots; i > 0; --i) free_slots.push_back(i - 1);
  std::deque<std::uint32_t> order;  // slots in issue order

  std::size_t job = 0;
  std::uint64_t job_offset = 0;  // of the next piece to issue within `job`
  std::pair<std::uint64_t, std::uint64_t> ext{0, 0};
  if (n > 0) ext = extent(0);
  Status ring_error;

  while (true) {
    // Issue pieces while slots are free.
    while (ring_error.ok() && !free_slots.empty() && job < n) {
      if (job_offset >= ext.second) {
        ++job;
        job_offset = 0;
        if (job < n) ext = extent(job);
        continue;
      }
      const std::uint32_t slot = free_slots.back();
      const auto len = static_cast<std::uint32_t>(
          std::min<std::uint64_t>(ch.slot_size, ext.second - job_offset));
      pieces[slot] = Piece{job, ext.first + job_offset, job_offset, len, false};
      const Status s = ch.ring->QueueRead(ch.slot(slot), len, ext.first + job_offset, slot);
      if (!s.ok()) {
        ring_error = s;
        break;
      }
      free_slots.pop_back();
      order.push_back(slot);
      job_offset += len;
    }
    // Hand completed pieces to the consumer, in issue order.
    bool progressed = false;
    while (!order.empty() && pieces[order.front()].complete) {
      const std::uint32_t slot = order.front();
      const Piece& p = pieces[slot];
      consume(p.job, p.job_offset, ch.slot(slot), p.len);
      order.pop_front();
      free_slots.push_back(slot);
      progressed = true;
    }
    if (order.empty() && (job >= n || !ring_error.ok())) break;
    if (progressed && ring_error.ok()) continue;
    if (!ring_error.ok()) break;

    auto c = ch.ring->WaitOne();
    if (!c.ok()) {
      ring_error = c.status();
      break;
    }
    const auto slot = static_cast<std::uint32_t>(c->user_data);
    Piece& p = pieces[slot];
    const std::int32_t res = c->result;
    const std::uint32_t want = p.len;
    if (res < 0) {
      fail(p.job, Status::FromErrno("reading " + std::to_string(want) + " bytes at offset " +
                                        std::to_string(p.dev_offset) + " of " + path,
                                    -res));
      p.complete = true;
    } else if (static_cast<std::uint32_t>(res) < want) {
      // Short: the end of the file (or device). The rest reads as zeros, as a never-written
      // region would. It is not re-read: under O_DIRECT the remainder's unaligned offset is
      // EINVAL on some file systems. Checksums reject whatever the zeros cut short.
      *bytes_read += static_cast<std::uint64_t>(res);
      std::memset(ch.slot(slot) + res, 0, want - static_cast<std::uint32_t>(res));
      p.complete = true;
    } else {
      *bytes_read += static_cast<std::uint64_t>(res);
      p.complete = true;
    }
  }
  if (!ring_error.ok()) {
    // The ring is broken: what it still holds is abandoned (it refuses all further work, and
    // its staging memory stays mapped until the log is closed).
    for (std::size_t j = 0; j < n; ++j) fail(j, ring_error);
  }
  return ring_error;
}

// A device range read into memory.
struct RangeRead {
  std::uint64_t dev_offset = 0;
  std::uint64_t length = 0;  // a multiple of 4 KiB
  std::byte* dst = nullptr;
  Status status;
};

// One record to read and verify.
struct RecordJob {
  ChunkLocation loc;
  std::uint64_t dev_offset = 0;
  std::uint64_t seq = 0;
  std::string_view expected_key;  // empty: any key (recovery scan)
  std::span<std::byte> dst;       // data destination; empty with verify_only
  std::span<std::byte> meta_dst;
  bool verify_only = false;
  // Results.
  Status status;
  RecordHeader header;
  std::string key;  // filled when verify_only (the scan needs it)
  std::array<std::byte, spill::kMaxMetaSize> meta{};
};

struct Segment {
  enum class State : std::uint8_t { kFree, kOpen, kSealed };
  State state = State::kFree;
  std::uint64_t seq = 0;
  std::vector<SegmentChunk> chunks;
  std::uint64_t data_bytes = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

class SegmentLog::Impl {
 public:
  Impl(SegmentLogOptions options, LogDevice dev)
      : options_(std::move(options)), dev_(std::move(dev)) {}

  Status Init(const RecoveryCallback& on_recovered);

  Status AppendBatch(std::span<SegmentLog::AppendItem> items);
  Status ReadBatch(std::span<ChunkRead> reads);
  Status Sync() { return dev_.Sync(); }
  void Touch(std::uint64_t location);
  std::optional<std::uint32_t> OldestSegment() const;
  Result<std::vector<SegmentChunk>> SegmentChunks(std::uint32_t segment) const;
  Result<std::vector<SegmentChunk>> EvictSegment(std::uint32_t segment);
  Result<std::vector<SegmentChunk>> EvictOldestSegment();
  SegmentLogStats GetStats() const;
  std::uint64_t MaxChunkSize(std::size_t key_size, std::size_t meta_size) const;

 private:
  struct ScannedRecord {
    SummaryEntry entry;  // its key and meta views are set once the vector stops growing
    std::string key;
    std::array<std::byte, spill::kMaxMetaSize> meta{};
    std::size_t meta_size = 0;
  };

  std::uint64_t SegmentOffset(std::uint32_t segment) const {
    return kDataOffset + std::uint64_t{segment} * sb_.segment_size;
  }
  std::uint32_t SegmentBlocks() const {
    return static_cast<std::uint32_t>(sb_.segment_size / kBlockSize);
  }
  std::optional<std::uint32_t> OldestSegmentLocked() const;

  // What Open has already warned about, so each fallback is one line however many rings.
  struct Warned {
    bool uring = false;
    bool registration = false;
  };
  Result<std::unique_ptr<Channel>> MakeChannel(Warned* warned);
  Status OpenSuperblock();
  Status Recover(const RecoveryCallback& on_recovered);
  Status ScanSegment(std::uint32_t index, std::uint64_t seq, std::vector<ScannedRecord>* out);
  void ReportRecovered(std::uint32_t index, const std::vector<SummaryEntry>& entries,
                       const RecoveryCallback& on_recovered);

  // I/O helpers; the caller holds the mutex of the channel it passes.
  Status ReadRanges(Channel& ch, std::span<RangeRead> ranges);
  Status WriteRange(Channel& ch, std::uint64_t dev_offset, std::span<const std::byte> bytes);
  void ReadRecords(Channel& ch, std::span<RecordJob> jobs);
  void ConsumeRecordPiece(RecordJob& job, std::uint64_t offset, const std::byte* bytes,
                          std::uint32_t len, Hasher& hasher);
  // Queues the record's writes on w (the caller waits with w.Finish()).
  Status WriteRecord(RecordHeader& header, std::string_view key, std::span<const std::byte> meta,
                     std::span<const iovec> parts, SlotWriter& w);

  // Writer-side segment changes; the caller holds write_mu_.
  bool OpenSegmentFits(std::uint32_t record_blocks, std::size_t entry_size) const;
  Status OpenNewSegment();
  Status SealOpenSegment();

  const SegmentLogOptions options_;
  LogDevice dev_;
  Superblock sb_;
  std::uint64_t seq_base_ = 0;  // epoch << 32

  // Appends, seals and evictions: one at a time, on the write channel.
  std::mutex write_mu_;
  std::unique_ptr<Channel> writer_;
  std::uint32_t open_next_block_ = 0;    // next free block of the open segment
  std::vector<std::byte> open_summary_;  // its summary entries so far
  std::uint32_t open_chunks_ = 0;        // and how many there are
  std::uint32_t next_seq_ = 0;           // the low half of the next sequence number

  // Reads: one batch at a time, on the read channel.
  std::mutex read_mu_;
  std::unique_ptr<Channel> reader_;

  // The segment table. Lock order: write_mu_ or read_mu_, then mu_.
  mutable std::mutex mu_;
  std::vector<Segment> segments_;
  std::map<std::uint64_t, std::uint32_t> sealed_by_seq_;  // FIFO order
  std::optional<std::uint32_t> open_;
  std::uint64_t live_chunks_ = 0;
  std::uint64_t live_bytes_ = 0;

  // LRU clock, lock-free.
  std::unique_ptr<std::atomic<std::uint64_t>[]> last_use_;
  std::atomic<std::uint64_t> clock_{0};

  // Counters (relaxed: statistics only).
  std::atomic<std::uint64_t> chunks_appended_{0}, bytes_appended_{0}, device_written_{0};
  std::atomic<std::uint64_t> chunks_read_{0}, bytes_read_{0}, device_read_{0}, read_errors_{0};
  std::atomic<std::uint64_t> segments_sealed_{0}, segments_evicted_{0}, recovered_{0};
  std::atomic<std::uint64_t> recovery_skipped_{0};
};

// ---- opening ----

Result<std::unique_ptr<Channel>> SegmentLog::Impl::MakeChannel(Warned* warned) {
  auto ch = std::make_unique<Channel>();
  CXLKV_ASSIGN_OR_RETURN(ch->ring,
                         IoRing::Create(dev_.fd(), options_.queue_depth, options_.use_io_uring));
  ch->slots = options_.queue_depth;
  ch->slot_size = options_.io_size;
  CXLKV_ASSIGN_OR_RETURN(ch->staging, os::MapAnonymous(std::size_t{ch->slots} * ch->slot_size, 0, false));
  if (!ch->hasher.valid()) return Status::NoSpace("allocating an XXH3 state");
  if (!ch->ring->uses_io_uring()) {
    if (options_.use_io_uring && !warned->uring) {
      internal::LogF("cxlkv: %s: %s; using synchronous pread/pwrite", options_.path.c_str(),
                     ch->ring->fallback_reason().c_str());
      warned->uring = true;
    }
    return ch;
  }
  if (const Status s = ch->ring->RegisterBuffer(ch->staging.data(), ch->staging.length());
      !s.ok() && !warned->registration) {
    // Pinning is charged to RLIMIT_MEMLOCK for unprivileged users; unregistered buffers cost a
    // page pinning per I/O and nothing else.
    internal::LogF("cxlkv: %s: %s; using unregistered staging buffers",
                   options_.path.c_str(), s.ToString().c_str());
    warned->registration = true;
  }
  return ch;
}

Status SegmentLog::Impl::Init(const RecoveryCallback& on_recovered) {
  Warned warned;
  CXLKV_ASSIGN_OR_RETURN(writer_, MakeChannel(&warned));
  CXLKV_ASSIGN_OR_RETURN(reader_, MakeChannel(&warned));
  CXLKV_RETURN_IF_ERROR(OpenSuperblock());
  segments_.resize(sb_.segment_count);
  last_use_ = std::make_unique<std::atomic<std::uint64_t>[]>(sb_.segment_count);
  return Recover(on_recovered);
}

Status SegmentLog::Impl::OpenSuperblock() {
  const std::string& path = options_.path;
  std::array<std::byte, 2 * kBlockSize> blocks{};
  {
    RangeRead r{0, blocks.size(), blocks.data(), {}};
    CXLKV_RETURN_IF_ERROR(ReadRanges(*reader_, {&r, 1}));
    CXLKV_RETURN_IF_ERROR(r.status);
  }
  CXLKV_ASSIGN_OR_RETURN(const std::uint64_t device_size, dev_.Size());

  std::array<Result<Superblock>, 2> copies = {
      spill::DecodeSuperblock(std::span(blocks).first(kBlockSize)),
      spill::DecodeSuperblock(std::span(blocks).subspan(kBlockSize))};
  const bool fresh = AllZero(blocks);
  if (options_.format || fresh) {
    // A new log. Its geometry comes from the options (and the device).
    std::uint64_t capacity = options_.capacity;
    if (dev_.is_block_device()) {
      if (capacity == 0) capacity = device_size;
      if (capacity > device_size) {
        return Status::InvalidArgument("capacity " + std::to_string(capacity) +
                                       " exceeds the size of " + path + " (" +
                                       std::to_string(device_size) + " bytes)");
      }
    } else if (capacity == 0) {
      return Status::InvalidArgument("creating a spill log in " + path + " needs a capacity");
    }
    const std::uint64_t segment_size =
        options_.segment_size != 0 ? options_.segment_size : kDefaultSegmentSize;
    if (capacity < kDataOffset + segment_size) {
      return Status::InvalidArgument("capacity " + std::to_string(capacity) +
                                     " holds no segment of " + std::to_string(segment_size) +
                                     " bytes after the " + std::to_string(kDataOffset) +
                                     "-byte superblock area");
    }
    const std::uint64_t count = (capacity - kDataOffset) / segment_size;
    if (count > ChunkLocation::kMaxSegments) {
      return Status::InvalidArgument(std::to_string(count) + " segments of " +
                                     std::to_string(segment_size) + " bytes exceed the limit of " +
                                     std::to_string(ChunkLocation::kMaxSegments) +
                                     ": use larger segments");
    }
    if (options_.format) CXLKV_RETURN_IF_ERROR(dev_.Truncate());
    sb_ = Superblock{RandomLogId(), capacity, segment_size, count, 1};
    // Copy 0 gets the new superblock; copy 1 is zeroed so a stale superblock of an earlier
    // log on a reused device can never outrank it.
    blocks.fill(std::byte{0});
    spill::EncodeSuperblock(sb_, std::span(blocks).first(kBlockSize));
    CXLKV_RETURN_IF_ERROR(WriteRange(*writer_, 0, blocks));
    CXLKV_RETURN_IF_ERROR(dev_.Sync());
    seq_base_ = sb_.epoch << 32;
    return Status::Ok();
  }

  // An existing log: take the newest valid copy.
  int best = -1;
  for (int i = 0; i < 2; ++i) {
    if (copies[i].ok() && (best < 0 || copies[i]->epoch > copies[best]->epoch)) best = i;
  }
  if (best < 0) {
    return Status::Corruption(path + " holds no valid cxlkv spill log superblock (copy 0: " +
                              copies[0].status().message() +
                              "; copy 1: " + copies[1].status().message() +
                              "); set `format` to overwrite it with a new log");
  }
  sb_ = *copies[best];
  if (options_.capacity != 0 && options_.capacity != sb_.capacity) {
    return Status::InvalidArgument("the log in " + path + " has a capacity of " +
                                   std::to_string(sb_.capacity) + " bytes, not " +
                                   std::to_string(options_.capacity));
  }
  if (options_.segment_size != 0 && options_.segment_size != sb_.segment_size) {
    return Status::InvalidArgument("the log in " + path + " has segments of " +
                                   std::to_string(sb_.segment_size) + " bytes, not " +
                                   std::to_string(options_.segment_size));
  }
  if (dev_.is_block_device() && device_size < sb_.capacity) {
    return Status::InvalidArgument(path + " (" + std::to_string(device_size) +
                                   " bytes) is smaller than its log's capacity (" +
                                   std::to_string(sb_.capacity) + " bytes)");
  }
  // The new epoch goes into the other copy. When that copy is damaged, it may have held an
  // epoch one higher than the survivor (a bit flip after it was synced), so skip past it.
  const int other = 1 - best;
  sb_.epoch += copies[other].ok() ? 1 : 2;
  if (sb_.epoch >= (std::uint64_t{1} << 32)) {
    return Status::Corruption(path + ": superblock epoch out of range");
  }
  std::array<std::byte, kBlockSize> block{};
  spill::EncodeSuperblock(sb_, block);
  CXLKV_RETURN_IF_ERROR(WriteRange(*writer_, std::uint64_t(other) * kBlockSize, block));
  CXLKV_RETURN_IF_ERROR(dev_.Sync());
  seq_base_ = sb_.epoch << 32;
  return Status::Ok();
}

Status SegmentLog::Impl::Recover(const RecoveryCallback& on_recovered) {
  const std::string& path = options_.path;
  const std::uint32_t count = static_cast<std::uint32_t>(sb_.segment_count);
  std::uint64_t file_size = UINT64_MAX;
  if (!dev_.is_block_device()) {
    CXLKV_ASSIGN_OR_RETURN(file_size, dev_.Size());
  }

  // 1. Header and trailer block of every segment the file reaches.
  struct Found {
    std::uint32_t index = 0;
    std::uint64_t seq = 0;
    std::optional<SegmentTrailer> trailer;
  };
  std::vector<Found> in_use;
  std::vector<std::byte> buf(kRecoveryBatch * 2 * kBlockSize);
  for (std::uint32_t first = 0; first < count; first += kRecoveryBatch) {
    const std::uint32_t n = std::min<std::uint32_t>(kRecoveryBatch, count - first);
    std::vector<RangeRead> ranges;
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint64_t off = SegmentOffset(first + i);
      if (off >= file_size) break;  // never written: free
      ranges.push_back({off, kBlockSize, buf.data() + 2 * i * kBlockSize, {}});
      ranges.push_back({off + sb_.segment_size - kBlockSize,
                        kBlockSize,
                        buf.data() + (2 * i + 1) * kBlockSize,
                        {}});
    }
    CXLKV_RETURN_IF_ERROR(ReadRanges(*reader_, ranges));
    for (std::size_t r = 0; r < ranges.size(); r += 2) {
      CXLKV_RETURN_IF_ERROR(ranges[r].status);
      CXLKV_RETURN_IF_ERROR(ranges[r + 1].status);
      const auto index = static_cast<std::uint32_t>(first + r / 2);
      auto header = spill::DecodeSegmentHeader({ranges[r].dst, kBlockSize});
      if (!header.ok() || header->log_id != sb_.log_id || header->index != index ||
          header->segment_size != sb_.segment_size || (header->seq >> 32) >= sb_.epoch) {
        continue;  // free: zeroed by eviction, never used, or from an earlier log
      }
      Found f{index, header->seq, std::nullopt};
      auto t = spill::DecodeSegmentTrailer({ranges[r + 1].dst, kBlockSize});
      if (t.ok() && t->log_id == sb_.log_id && t->seq == f.seq && t->index == index &&
          spill::TrailerFitsSegment(*t, sb_.segment_size)) {
        f.trailer = *t;
      }
      in_use.push_back(f);
    }
  }
  std::sort(in_use.begin(), in_use.end(),
            [](const Found& a, const Found& b) { return a.seq < b.seq; });

  // 2. Oldest first: sealed segments from their summaries (read a batch at a time), the rest
  // by scanning their records, then sealing them.
  for (std::size_t first = 0; first < in_use.size(); first += kRecoveryBatch) {
    const std::size_t n = std::min(kRecoveryBatch, in_use.size() - first);
    std::vector<std::vector<std::byte>> summaries(n);
    std::vector<RangeRead> ranges;
    std::vector<std::size_t> range_of(n, SIZE_MAX);
    for (std::size_t i = 0; i < n; ++i) {
      const Found& f = in_use[first + i];
      if (!f.trailer || f.trailer->summary_size == 0) continue;
      summaries[i].resize(RoundUpToBlock(f.trailer->summary_size));
      range_of[i] = ranges.size();
      ranges.push_back({SegmentOffset(f.index) + f.trailer->summary_offset,
                        summaries[i].size(),
                        summaries[i].data(),
                        {}});
    }
    CXLKV_RETURN_IF_ERROR(ReadRanges(*reader_, ranges));

    for (std::size_t i = 0; i < n; ++i) {
      const Found& f = in_use[first + i];
      std::vector<SummaryEntry> entries;
      std::string why;
      if (f.trailer) {
        const SegmentTrailer& t = *f.trailer;
        const std::span<const std::byte> summary =
            std::span<const std::byte>(summaries[i]).first(t.summary_size);
        if (range_of[i] != SIZE_MAX && !ranges[range_of[i]].status.ok()) {
          why = ranges[range_of[i]].status.ToString();
        } else {
          auto decoded = spill::DecodeSummary(summary, t);
          if (decoded.ok()) {
            entries = std::move(decoded).value();
          } else {
            why = decoded.status().message();
          }
        }
        if (!why.empty()) {
          internal::LogF("cxlkv: %s: segment %u: summary unusable (%s); scanning its records",
                         path.c_str(), f.index, why.c_str());
        }
      }

      Segment& seg = segments_[f.index];
      seg.seq = f.seq;
      if (f.trailer && why.empty()) {
        seg.state = Segment::State::kSealed;
        ReportRecovered(f.index, entries, on_recovered);
        continue;
      }

      // Unsealed (or its seal is unusable): scan, then seal what was found.
      std::vector<ScannedRecord> scanned;
      CXLKV_RETURN_IF_ERROR(ScanSegment(f.index, f.seq, &scanned));
      if (scanned.empty()) {
        seg = Segment{};  // nothing in it: free (its header is rewritten when it is reused)
        continue;
      }
      entries.clear();
      for (const ScannedRecord& r : scanned) entries.push_back(r.entry);
      {
        // Seal it as if it had been open: rebuild its summary and write it.
        std::lock_guard<std::mutex> lock(write_mu_);
        open_summary_.clear();
        open_chunks_ = static_cast<std::uint32_t>(entries.size());
        for (const SummaryEntry& e : entries) {
          const std::size_t at = open_summary_.size();
          open_summary_.resize(at + spill::SummaryEntrySize(e.key.size(), e.meta.size()));
          spill::EncodeSummaryEntry(e, std::span(open_summary_).subspan(at));
        }
        const SummaryEntry& last = entries.back();
        open_next_block_ = last.block + last.blocks;
        seg.state = Segment::State::kOpen;
        open_ = f.index;
        Status s = dev_.Allocate(SegmentOffset(f.index), sb_.segment_size);
        if (s.ok()) s = SealOpenSegment();
        if (!s.ok()) {
          // Its chunks stay readable; the next Open scans it again.
          internal::LogF("cxlkv: %s: segment %u: sealing after recovery failed (%s)",
                         path.c_str(), f.index, s.ToString().c_str());
          seg.state = Segment::State::kSealed;
          sealed_by_seq_[seg.seq] = f.index;
          open_.reset();
        }
      }
      ReportRecovered(f.index, entries, on_recovered);
    }
  }
  return Status::Ok();
}

void SegmentLog::Impl::ReportRecovered(std::uint32_t index,
                                       const std::vector<SummaryEntry>& entries,
                                       const RecoveryCallback& on_recovered) {
  Segment& seg = segments_[index];
  seg.chunks.clear();
  seg.data_bytes = 0;
  for (const SummaryEntry& e : entries) {
    const std::uint64_t location = ChunkLocation{index, e.block, e.blocks}.Pack();
    seg.chunks.push_back(SegmentChunk{e.key_hash, location, e.data_size});
    seg.data_bytes += e.data_size;
    if (on_recovered)
      on_recovered(RecoveredChunk{e.key, e.key_hash, e.data_size, e.meta, location});
  }
  if (seg.state == Segment::State::kSealed) sealed_by_seq_[seg.seq] = index;
  last_use_[index].store(clock_.fetch_add(1, std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
  live_chunks_ += seg.chunks.size();
  live_bytes_ += seg.data_bytes;
  recovered_.fetch_add(seg.chunks.size(), std::memory_order_relaxed);
}

Status SegmentLog::Impl::ScanSegment(std::uint32_t index, std::uint64_t seq,
                                     std::vector<ScannedRecord>* out) {
  // Find candidate headers through a window over the segment; verify each candidate by reading
  // its whole record. Anything that is not a verified record of this segment's sequence number
  // is stepped over one block at a time.
  const std::uint32_t blocks = SegmentBlocks();
  const std::uint32_t end = blocks - 1;  // the last block is the trailer's
  const std::uint64_t base = SegmentOffset(index);
  std::vector<std::byte> window(std::min<std::uint64_t>(kScanWindow, sb_.segment_size));
  const auto window_blocks = static_cast<std::uint32_t>(window.size() / kBlockSize);
  std::uint32_t window_first = 0, window_count = 0;

  for (std::uint32_t b = 1; b < end;) {
    if (b < window_first || b >= window_first + window_count) {
      window_first = b;
      window_count = std::min(window_blocks, end - b);
      RangeRead r{base + std::uint64_t{b} * kBlockSize,
                  std::uint64_t{window_count} * kBlockSize,
                  window.data(),
                  {}};
      CXLKV_RETURN_IF_ERROR(ReadRanges(*reader_, {&r, 1}));
      CXLKV_RETURN_IF_ERROR(r.status);
    }
    const std::span<const std::byte> block(
        window.data() + std::size_t{b - window_first} * kBlockSize, kBlockSize);
    auto h = spill::DecodeRecordHeader(block);
    if (!h.ok() || h->log_id != sb_.log_id || h->seq != seq || h->segment != index ||
        h->block != b || std::uint64_t{b} + h->blocks > end) {
      ++b;
      continue;
    }
    RecordJob job;
    job.loc = ChunkLocation{index, b, h->blocks};
    job.dev_offset = base + std::uint64_t{b} * kBlockSize;
    job.seq = seq;
    job.verify_only = true;
    ReadRecords(*reader_, {&job, 1});
    if (!job.status.ok()) {
      ++b;
      continue;
    }
    // Records are back to back from block 1: anything stepped over before this one was a
    // record that is not whole any more.
    const std::uint32_t expected = out->empty() ? 1 : out->back().entry.block + out->back().entry.blocks;
    if (b != expected) recovery_skipped_.fetch_add(1, std::memory_order_relaxed);
    ScannedRecord& r = out->emplace_back();
    r.key = std::move(job.key);
    r.meta = job.meta;
    r.meta_size = h->meta_size;
    r.entry = SummaryEntry{b, h->blocks, h->data_size, h->key_hash, {}, {}};
    b += h->blocks;
  }
  for (ScannedRecord& r : *out) {
    r.entry.key = r.key;
    r.entry.meta = std::span<const std::byte>(r.meta.data(), r.meta_size);
  }
  return Status::Ok();
}

// ---- I/O helpers ----

Status SegmentLog::Impl::ReadRanges(Channel& ch, std::span<RangeRead> ranges) {
  std::uint64_t bytes = 0;
  const Status s = PipelinedRead(
      ch, options_.path, ranges.size(),
      [&](std::size_t j) {
        return std::pair{ranges[j].dev_offset, ranges[j].length};
      },
      [&](std::size_t j, std::uint64_t off, const std::byte* p, std::uint32_t len) {
        if (ranges[j].status.ok()) std::memcpy(ranges[j].dst + off, p, len);
      },
      [&](std::size_t j, const Status& st) {
        if (ranges[j].status.ok()) ranges[j].status = st;
      },
      &bytes);
  device_read_.fetch_add(bytes, std::memory_order_relaxed);
  return s;
}

Status SegmentLog::Impl::WriteRange(Channel& ch, std::uint64_t dev_offset,
                                    std::span<const std::byte> bytes) {
  SlotWriter w(ch, options_.path);
  for (std::size_t done = 0; done < bytes.size();) {
    const std::size_t len = std::min<std::size_t>(ch.slot_size, bytes.size() - done);
    CXLKV_ASSIGN_OR_RETURN(const std::uint32_t slot, w.Acquire());
    std::memcpy(ch.slot(slot), bytes.data() + done, len);
    CXLKV_RETURN_IF_ERROR(w.Submit(slot, static_cast<std::uint32_t>(len), dev_offset + done));
    done += len;
  }
  const Status s = w.Finish();
  device_written_.fetch_add(w.bytes_written(), std::memory_order_relaxed);
  return s;
}

void SegmentLog::Impl::ReadRecords(Channel& ch, std::span<RecordJob> jobs) {
  std::uint64_t bytes = 0;
  const Status ring = PipelinedRead(
      ch, options_.path, jobs.size(),
      [&](std::size_t j) {
        const RecordJob& job = jobs[j];
        return std::pair{job.dev_offset,
                         job.status.ok() ? std::uint64_t{job.loc.blocks} * kBlockSize : 0};
      },
      [&](std::size_t j, std::uint64_t off, const std::byte* p, std::uint32_t len) {
        ConsumeRecordPiece(jobs[j], off, p, len, ch.hasher);
      },
      [&](std::size_t j, const Status& st) {
        if (jobs[j].status.ok()) jobs[j].status = st;
      },
      &bytes);
  static_cast<void>(ring);  // already recorded in every unfinished job's status
  device_read_.fetch_add(bytes, std::memory_order_relaxed);
}

void SegmentLog::Impl::ConsumeRecordPiece(RecordJob& job, std::uint64_t offset,
                                          const std::byte* bytes, std::uint32_t len,
                                          Hasher& hasher) {
  if (!job.status.ok()) return;
  auto corrupt = [&](const std::string& why) {
    job.status = Status::Corruption("chunk at segment " + std::to_string(job.loc.segment) +
                                    " block " + std::to_string(job.loc.block) + " (location " +
                                    Hex(job.loc.Pack()) + ") of " + options_.path + ": " + why);
  };
  RecordHeader& h = job.header;
  if (offset == 0) {
    // The first piece holds the header, the key and the meta (80 + 150 + 64 < 4 KiB).
    auto decoded = spill::DecodeRecordHeader({bytes, len});
    if (!decoded.ok()) return corrupt(decoded.status().message());
    h = *decoded;
    if (h.log_id != sb_.log_id) return corrupt("record of another log");
    if (h.seq != job.seq || h.segment != job.loc.segment || h.block != job.loc.block) {
      return corrupt("record of segment " + std::to_string(h.segment) + " block " +
                     std::to_string(h.block) + " sequence " + Hex(h.seq) +
                     " found (stale or misplaced)");
    }
    if (h.blocks != job.loc.blocks) {
      return corrupt("record of " + std::to_string(h.blocks) + " blocks, location says " +
                     std::to_string(job.loc.blocks));
    }
    const std::string_view key(reinterpret_cast<const char*>(bytes) + RecordHeader::kEncodedSize,
                               h.key_size);
    if (!job.verify_only) {
      if (key != job.expected_key || h.key_hash != HashKey(job.expected_key)) {
        return corrupt("record holds another key");
      }
      if (h.data_size > job.dst.size()) {
        job.status = Status::InvalidArgument("chunk of " + std::to_string(h.data_size) +
                                             " bytes does not fit a " +
                                             std::to_string(job.dst.size()) + "-byte buffer");
        return;
      }
    } else {
      job.key.assign(key);
    }
    std::memcpy(job.meta.data(), bytes + RecordHeader::kEncodedSize + h.key_size, h.meta_size);
    hasher.Reset();
  }
  // This piece's share of the payload [80, payload_end): hash all of it, copy the data part.
  const std::uint64_t payload_end = spill::RecordPayloadEnd(h.key_size, h.meta_size, h.data_size);
  const std::uint64_t data_start = payload_end - h.data_size;
  const std::uint64_t from = std::max<std::uint64_t>(offset, RecordHeader::kEncodedSize);
  const std::uint64_t to = std::min<std::uint64_t>(offset + len, payload_end);
  if (from < to) hasher.Update(bytes + (from - offset), to - from);
  const std::uint64_t copy_from = std::max(from, data_start);
  if (!job.verify_only && copy_from < to) {
    std::memcpy(job.dst.data() + (copy_from - data_start), bytes + (copy_from - offset),
                to - copy_from);
  }
  if (offset + len == std::uint64_t{job.loc.blocks} * kBlockSize) {
    auto digest = hasher.Digest();
    if (!digest.ok()) {
      job.status = digest.status();
    } else if (*digest != h.payload_checksum) {
      corrupt("payload checksum mismatch");
    }
  }
}

Status SegmentLog::Impl::WriteRecord(RecordHeader& h, std::string_view key,
                                     std::span<const std::byte> meta,
                                     std::span<const iovec> parts, SlotWriter& w) {
  // The record goes out in slot-sized pieces. The first piece, which holds the header, is
  // submitted last: the header carries the payload checksum, known only once every byte has
  // been copied (and hashed while still in cache). Pieces are submitted as they fill, so the
  // copy of one overlaps the device's write of the previous (and of the records before it in
  // a batch).
  Channel& ch = *writer_;
  const std::uint64_t dev_offset = SegmentOffset(h.segment) + std::uint64_t{h.block} * kBlockSize;
  Hasher& hasher = ch.hasher;
  hasher.Reset();

  CXLKV_ASSIGN_OR_RETURN(const std::uint32_t first, w.Acquire());
  std::uint32_t slot = first;
  std::byte* base = ch.slot(slot);
  std::uint64_t piece_start = 0;  // record offset of the current slot's first byte
  std::size_t fill = RecordHeader::kEncodedSize;

  auto emit = [&](const std::byte* src, std::size_t n) -> Status {
    while (n > 0) {
      if (fill == ch.slot_size) {
        if (slot != first)
          CXLKV_RETURN_IF_ERROR(w.Submit(slot, ch.slot_size, dev_offset + piece_start));
        piece_start += fill;
        CXLKV_ASSIGN_OR_RETURN(slot, w.Acquire());
        base = ch.slot(slot);
        fill = 0;
      }
      const std::size_t m = std::min({n, std::size_t{ch.slot_size} - fill, kHashStride});
      std::memcpy(base + fill, src, m);
      hasher.Update(base + fill, m);
      fill += m;
      src += m;
      n -= m;
    }
    return Status::Ok();
  };
  CXLKV_RETURN_IF_ERROR(emit(reinterpret_cast<const std::byte*>(key.data()), key.size()));
  CXLKV_RETURN_IF_ERROR(emit(meta.data(), meta.size()));
  for (const iovec& part : parts) {
    CXLKV_RETURN_IF_ERROR(emit(static_cast<const std::byte*>(part.iov_base), part.iov_len));
  }
  const auto last_len = static_cast<std::uint32_t>(RoundUpToBlock(fill));
  std::memset(base + fill, 0, last_len - fill);
  if (slot != first) CXLKV_RETURN_IF_ERROR(w.Submit(slot, last_len, dev_offset + piece_start));

  CXLKV_ASSIGN_OR_RETURN(h.payload_checksum, hasher.Digest());
  spill::EncodeRecordHeader(h, {ch.slot(first), RecordHeader::kEncodedSize});
  return w.Submit(first, slot == first ? last_len : ch.slot_size, dev_offset);
}

// ---- appends and segments ----

bool SegmentLog::Impl::OpenSegmentFits(std::uint32_t record_blocks, std::size_t entry_size) const {
  const std::uint64_t summary = RoundUpToBlock(open_summary_.size() + entry_size);
  return (std::uint64_t{open_next_block_} + record_blocks) * kBlockSize + summary + kBlockSize <=
         sb_.segment_size;
}

Status SegmentLog::Impl::OpenNewSegment() {
  std::uint32_t index = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find_if(segments_.begin(), segments_.end(),
                           [](const Segment& s) { return s.state == Segment::State::kFree; });
    if (it == segments_.end()) {
      return Status::NoSpace("no free segment in " + options_.path + " (" +
                             std::to_string(sb_.segment_count) + " segments of " +
                             std::to_string(sb_.segment_size) + " bytes): evict one");
    }
    index = static_cast<std::uint32_t>(it - segments_.begin());
  }
  if (next_seq_ == UINT32_MAX) {
    return Status::NoSpace("segment sequence numbers exhausted for this open; reopen the log");
  }
  // Space first: a full file system fails here, before anything is written.
  CXLKV_RETURN_IF_ERROR(dev_.Allocate(SegmentOffset(index), sb_.segment_size));
  const std::uint64_t seq = seq_base_ | ++next_seq_;
  std::array<std::byte, kBlockSize> block{};
  spill::EncodeSegmentHeader(SegmentHeader{sb_.log_id, seq, index, sb_.segment_size}, block);
  CXLKV_RETURN_IF_ERROR(WriteRange(*writer_, SegmentOffset(index), block));

  std::lock_guard<std::mutex> lock(mu_);
  Segment& seg = segments_[index];
  seg = Segment{Segment::State::kOpen, seq, {}, 0};
  open_ = index;
  open_next_block_ = 1;
  open_summary_.clear();
  open_chunks_ = 0;
  last_use_[index].store(clock_.fetch_add(1, std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
  return Status::Ok();
}

Status SegmentLog::Impl::SealOpenSegment() {
  const std::uint32_t index = *open_;
  std::uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = segments_[index].seq;
  }
  const std::uint64_t summary_blocks_bytes = RoundUpToBlock(open_summary_.size());
  const std::uint64_t records_end = std::uint64_t{open_next_block_} * kBlockSize;
  if (records_end + summary_blocks_bytes + kBlockSize > sb_.segment_size) {
    // Appends reserve room for the summary, so only a damaged recovery could get here; never
    // write a summary over records.
    return Status::Corruption("segment " + std::to_string(index) + " of " + options_.path +
                              " has no room left for its summary");
  }
  std::vector<std::byte> tail(summary_blocks_bytes + kBlockSize);
  std::copy(open_summary_.begin(), open_summary_.end(), tail.begin());
  SegmentTrailer t;
  t.log_id = sb_.log_id;
  t.seq = seq;
  t.index = index;
  t.chunk_count = open_chunks_;
  t.records_end = records_end;
  t.summary_offset = sb_.segment_size - kBlockSize - summary_blocks_bytes;
  t.summary_size = open_summary_.size();
  t.summary_checksum = spill::Checksum(open_summary_);
  spill::EncodeSegmentTrailer(t, std::span(tail).subspan(summary_blocks_bytes));
  CXLKV_RETURN_IF_ERROR(WriteRange(*writer_, SegmentOffset(index) + t.summary_offset, tail));

  std::lock_guard<std::mutex> lock(mu_);
  segments_[index].state = Segment::State::kSealed;
  sealed_by_seq_[seq] = index;
  open_.reset();
  open_summary_.clear();
  open_chunks_ = 0;
  last_use_[index].store(clock_.fetch_add(1, std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
  segments_sealed_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Status SegmentLog::Impl::AppendBatch(std::span<SegmentLog::AppendItem> items) {
  // Checked before the lock: what does not fit fails alone.
  struct Planned {
    std::size_t item;
    std::uint64_t data_size;
    std::uint32_t blocks;
    std::size_t entry_size;
  };
  std::vector<Planned> plan;
  plan.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    SegmentLog::AppendItem& it = items[i];
    it.status = ValidateKey(it.key);
    if (!it.status.ok()) continue;
    if (it.meta.size() > spill::kMaxMetaSize) {
      it.status = Status::InvalidArgument("chunk metadata of " + std::to_string(it.meta.size()) +
                                          " bytes exceeds " +
                                          std::to_string(spill::kMaxMetaSize));
      continue;
    }
    std::uint64_t data_size = 0;
    for (const iovec& part : it.parts) {
      if (part.iov_len != 0 && part.iov_base == nullptr) {
        it.status = Status::InvalidArgument("a chunk part with a null base");
        break;
      }
      data_size += part.iov_len;
    }
    if (!it.status.ok()) continue;
    if (data_size > MaxChunkSize(it.key.size(), it.meta.size())) {
      it.status = Status::InvalidArgument("chunk of " + std::to_string(data_size) +
                                          " bytes does not fit in a segment of " +
                                          std::to_string(sb_.segment_size) + " bytes");
      continue;
    }
    const auto blocks = static_cast<std::uint32_t>(
        BlocksFor(spill::RecordPayloadEnd(it.key.size(), it.meta.size(), data_size)));
    plan.push_back({i, data_size, blocks, spill::SummaryEntrySize(it.key.size(), it.meta.size())});
  }

  std::lock_guard<std::mutex> write_lock(write_mu_);
  SlotWriter w(*writer_, options_.path);
  std::uint64_t counted = 0;  // of w.bytes_written(), already in device_written_
  // Records queued and not yet known to be on the device, all in the open segment. Their blocks
  // and summary entries are taken as they are queued (the next record goes after them); their
  // chunks become the segment's, and their items OK, only once every write has completed.
  struct Queued {
    std::size_t item;
    ChunkLocation loc;
    KeyHash key_hash;
    std::uint64_t data_size;
  };
  std::vector<Queued> queued;
  std::uint32_t queued_first_block = 0;
  std::size_t queued_summary_size = 0;
  auto complete = [&]() -> Status {
    const Status s = w.Finish();
    device_written_.fetch_add(w.bytes_written() - counted, std::memory_order_relaxed);
    counted = w.bytes_written();
    if (queued.empty()) return s;
    if (!s.ok()) {  // nothing of the group counts; the next records go over its blocks
      for (const Queued& q : queued) items[q.item].status = s;
      open_next_block_ = queued_first_block;
      open_summary_.resize(queued_summary_size);
      open_chunks_ -= static_cast<std::uint32_t>(queued.size());
      queued.clear();
      return s;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      Segment& seg = segments_[queued.front().loc.segment];
      for (const Queued& q : queued) {
        seg.chunks.push_back(SegmentChunk{q.key_hash, q.loc.Pack(), q.data_size});
        seg.data_bytes += q.data_size;
        ++live_chunks_;
        live_bytes_ += q.data_size;
      }
    }
    for (const Queued& q : queued) {
      items[q.item].location = q.loc.Pack();
      chunks_appended_.fetch_add(1, std::memory_order_relaxed);
      bytes_appended_.fetch_add(q.data_size, std::memory_order_relaxed);
    }
    queued.clear();
    return Status::Ok();
  };

  for (std::size_t p = 0; p < plan.size(); ++p) {
    const Planned& pl = plan[p];
    SegmentLog::AppendItem& it = items[pl.item];
    Status s;
    if (open_ && !OpenSegmentFits(pl.blocks, pl.entry_size)) {
      // A summary lists records that are on the device: the queued ones first.
      s = complete();
      if (s.ok()) s = SealOpenSegment();
    }
    if (s.ok() && !open_) s = OpenNewSegment();
    if (!s.ok()) {  // this and every later item (no segment to put them in, or a failed seal)
      for (std::size_t rest = p; rest < plan.size(); ++rest) items[plan[rest].item].status = s;
      break;
    }
    if (queued.empty()) {
      queued_first_block = open_next_block_;
      queued_summary_size = open_summary_.size();
    }
    const std::uint32_t index = *open_;
    RecordHeader h;
    h.log_id = sb_.log_id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      h.seq = segments_[index].seq;
    }
    h.segment = index;
    h.block = open_next_block_;
    h.blocks = pl.blocks;
    h.key_size = static_cast<std::uint16_t>(it.key.size());
    h.meta_size = static_cast<std::uint16_t>(it.meta.size());
    h.data_size = pl.data_size;
    h.key_hash = HashKey(it.key);
    s = WriteRecord(h, it.key, it.meta, it.parts, w);
    if (!s.ok()) {
      // Part of it may be in flight: wait, then it fails (with the group, if the wait fails).
      static_cast<void>(complete());
      it.status = s;
      continue;
    }
    const ChunkLocation loc{index, h.block, pl.blocks};
    const std::size_t at = open_summary_.size();
    open_summary_.resize(at + pl.entry_size);
    spill::EncodeSummaryEntry(
        SummaryEntry{h.block, pl.blocks, pl.data_size, h.key_hash, it.key, it.meta},
        std::span(open_summary_).subspan(at));
    open_next_block_ += pl.blocks;
    ++open_chunks_;
    queued.push_back({pl.item, loc, h.key_hash, pl.data_size});
  }
  static_cast<void>(complete());
  for (const SegmentLog::AppendItem& it : items) {
    if (!it.status.ok()) return it.status;
  }
  return Status::Ok();
}

std::uint64_t SegmentLog::Impl::MaxChunkSize(std::size_t key_size, std::size_t meta_size) const {
  // One record alone in a segment: header block and trailer block, the summary's blocks.
  const std::uint64_t summary = RoundUpToBlock(spill::SummaryEntrySize(key_size, meta_size));
  const std::uint64_t room = sb_.segment_size - 2 * kBlockSize - summary;
  const std::uint64_t overhead = spill::RecordPayloadEnd(key_size, meta_size, 0);
  return room > overhead ? room - overhead : 0;
}

// ---- reads ----

Status SegmentLog::Impl::ReadBatch(std::span<ChunkRead> reads) {
  std::vector<RecordJob> jobs(reads.size());
  const std::uint32_t seg_blocks = SegmentBlocks();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < reads.size(); ++i) {
      const ChunkRead& r = reads[i];
      RecordJob& job = jobs[i];
      job.loc = ChunkLocation::Unpack(r.location);
      job.expected_key = r.key;
      job.dst = r.dst;
      job.meta_dst = r.meta_dst;
      if (job.loc.segment >= sb_.segment_count || job.loc.block == 0 || job.loc.blocks == 0 ||
          std::uint64_t{job.loc.block} + job.loc.blocks >= seg_blocks) {
        job.status = Status::InvalidArgument("location " + Hex(r.location) + " is not in the log");
        continue;
      }
      if (r.key.empty()) {
        job.status = Status::InvalidArgument("reading a chunk needs its key");
        continue;
      }
      const Segment& seg = segments_[job.loc.segment];
      if (seg.state == Segment::State::kFree) {
        job.status = Status::NotFound("location " + Hex(r.location) + ": segment " +
                                      std::to_string(job.loc.segment) + " is free (evicted)");
        continue;
      }
      job.seq = seg.seq;
      job.dev_offset = SegmentOffset(job.loc.segment) + std::uint64_t{job.loc.block} * kBlockSize;
    }
  }
  {
    std::lock_guard<std::mutex> lock(read_mu_);
    ReadRecords(*reader_, jobs);
  }
  Status first;
  std::uint64_t ok_count = 0, ok_bytes = 0;
  for (std::size_t i = 0; i < reads.size(); ++i) {
    ChunkRead& r = reads[i];
    RecordJob& job = jobs[i];
    r.status = job.status;
    if (!job.status.ok()) {
      r.size = 0;
      r.meta_size = 0;
      read_errors_.fetch_add(1, std::memory_order_relaxed);
      if (first.ok()) first = job.status;
      continue;
    }
    r.size = job.header.data_size;
    r.meta_size = job.header.meta_size;
    if (!r.meta_dst.empty()) {
      std::memcpy(r.meta_dst.data(), job.meta.data(), std::min(r.meta_dst.size(), r.meta_size));
    }
    ++ok_count;
    ok_bytes += r.size;
    if (options_.eviction == SegmentEviction::kLru) Touch(r.location);
  }
  chunks_read_.fetch_add(ok_count, std::memory_order_relaxed);
  bytes_read_.fetch_add(ok_bytes, std::memory_order_relaxed);
  return first;
}

void SegmentLog::Impl::Touch(std::uint64_t location) {
  if (options_.eviction != SegmentEviction::kLru) return;
  const std::uint32_t segment = ChunkLocation::Unpack(location).segment;
  if (segment >= sb_.segment_count) return;
  last_use_[segment].store(clock_.fetch_add(1, std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
}

// ---- eviction ----

std::optional<std::uint32_t> SegmentLog::Impl::OldestSegmentLocked() const {
  if (!sealed_by_seq_.empty()) {
    if (options_.eviction == SegmentEviction::kFifo) return sealed_by_seq_.begin()->second;
    std::optional<std::uint32_t> best;
    std::uint64_t best_use = UINT64_MAX;
    for (const auto& [seq, index] : sealed_by_seq_) {
      const std::uint64_t use = last_use_[index].load(std::memory_order_relaxed);
      if (use < best_use) {
        best_use = use;
        best = index;
      }
    }
    return best;
  }
  return open_;
}

std::optional<std::uint32_t> SegmentLog::Impl::OldestSegment() const {
  std::lock_guard<std::mutex> lock(mu_);
  return OldestSegmentLocked();
}

Result<std::vector<SegmentChunk>> SegmentLog::Impl::SegmentChunks(std::uint32_t segment) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (segment >= segments_.size() || segments_[segment].state == Segment::State::kFree) {
    return Status::NotFound("segment " + std::to_string(segment) + " of " + options_.path +
                            " is free");
  }
  return segments_[segment].chunks;
}

Result<std::vector<SegmentChunk>> SegmentLog::Impl::EvictSegment(std::uint32_t segment) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (segment >= segments_.size() || segments_[segment].state == Segment::State::kFree) {
      return Status::NotFound("segment " + std::to_string(segment) + " of " + options_.path +
                              " is free");
    }
  }
  // Zero the header: the segment is free from now on, also for the next Open.
  const std::array<std::byte, kBlockSize> zeros{};
  CXLKV_RETURN_IF_ERROR(WriteRange(*writer_, SegmentOffset(segment), zeros));

  std::lock_guard<std::mutex> lock(mu_);
  Segment& seg = segments_[segment];
  std::vector<SegmentChunk> chunks = std::move(seg.chunks);
  live_chunks_ -= chunks.size();
  live_bytes_ -= seg.data_bytes;
  sealed_by_seq_.erase(seg.seq);
  if (open_ == segment) {
    open_.reset();
    open_summary_.clear();
    open_chunks_ = 0;
  }
  seg = Segment{};
  segments_evicted_.fetch_add(1, std::memory_order_relaxed);
  return chunks;
}

Result<std::vector<SegmentChunk>> SegmentLog::Impl::EvictOldestSegment() {
  // OldestSegment and EvictSegment lock separately; under write_mu_ nothing else can seal,
  // open or evict in between, so the choice stays valid.
  std::optional<std::uint32_t> victim;
  {
    std::lock_guard<std::mutex> lock(mu_);
    victim = OldestSegmentLocked();
  }
  if (!victim) return Status::NotFound("every segment of " + options_.path + " is free");
  return EvictSegment(*victim);
}

SegmentLogStats SegmentLog::Impl::GetStats() const {
  SegmentLogStats s;
  s.capacity = sb_.capacity;
  s.segment_size = sb_.segment_size;
  s.segments = static_cast<std::uint32_t>(sb_.segment_count);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Segment& seg : segments_) {
      if (seg.state == Segment::State::kFree) ++s.free_segments;
      if (seg.state == Segment::State::kSealed) ++s.sealed_segments;
    }
    s.open_segment = open_.has_value();
    s.live_chunks = live_chunks_;
    s.live_bytes = live_bytes_;
  }
  constexpr auto r = std::memory_order_relaxed;
  s.chunks_appended = chunks_appended_.load(r);
  s.bytes_appended = bytes_appended_.load(r);
  s.device_bytes_written = device_written_.load(r);
  s.chunks_read = chunks_read_.load(r);
  s.bytes_read = bytes_read_.load(r);
  s.device_bytes_read = device_read_.load(r);
  s.read_errors = read_errors_.load(r);
  s.segments_sealed = segments_sealed_.load(r);
  s.segments_evicted = segments_evicted_.load(r);
  s.recovered_chunks = recovered_.load(r);
  s.recovery_skipped_records = recovery_skipped_.load(r);
  s.direct_io = dev_.direct_io();
  s.io_uring = writer_->ring->uses_io_uring();
  s.fixed_buffers = writer_->ring->fixed_buffer() && reader_->ring->fixed_buffer();
  s.fixed_file = writer_->ring->fixed_file() && reader_->ring->fixed_file();
  return s;
}

// ---------------------------------------------------------------------------------------------

SegmentLog::SegmentLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SegmentLog::~SegmentLog() = default;

Result<std::unique_ptr<SegmentLog>> SegmentLog::Open(SegmentLogOptions options,
                                                     const RecoveryCallback& on_recovered) {
  if (options.queue_depth < 2 || options.queue_depth > kMaxQueueDepth) {
    return Status::InvalidArgument("queue depth " + std::to_string(options.queue_depth) +
                                   " is outside 2.." + std::to_string(kMaxQueueDepth));
  }
  if (options.io_size < kBlockSize || options.io_size % kBlockSize != 0 ||
      options.io_size > kMaxIoSize) {
    return Status::InvalidArgument("I/O size " + std::to_string(options.io_size) +
                                   " is not a multiple of 4 KiB up to 64 MiB");
  }
  if (options.segment_size != 0 &&
      (options.segment_size % kBlockSize != 0 || options.segment_size < kMinSegmentSize ||
       options.segment_size > kMaxSegmentSize)) {
    return Status::InvalidArgument("segment size " + std::to_string(options.segment_size) +
                                   " is not a multiple of 4 KiB from 64 KiB to 4 GiB");
  }
  CXLKV_ASSIGN_OR_RETURN(LogDevice dev,
                         LogDevice::Open({options.path, options.direct_io, /*create=*/true}));
  auto impl = std::make_unique<Impl>(std::move(options), std::move(dev));
  CXLKV_RETURN_IF_ERROR(impl->Init(on_recovered));
  return std::unique_ptr<SegmentLog>(new SegmentLog(std::move(impl)));
}

Result<std::uint64_t> SegmentLog::Append(std::string_view key, std::span<const iovec> parts,
                                         std::span<const std::byte> meta) {
  AppendItem item{key, parts, meta, Status::Ok(), 0};
  CXLKV_RETURN_IF_ERROR(impl_->AppendBatch({&item, 1}));
  return item.location;
}

Result<std::uint64_t> SegmentLog::Append(std::string_view key, std::span<const std::byte> data,
                                         std::span<const std::byte> meta) {
  const iovec part{const_cast<std::byte*>(data.data()), data.size()};
  return Append(key, {&part, 1}, meta);
}

Status SegmentLog::AppendBatch(std::span<AppendItem> items) { return impl_->AppendBatch(items); }

Result<std::uint64_t> SegmentLog::Read(std::uint64_t location, std::string_view key,
                                       std::span<std::byte> dst) {
  ChunkRead r;
  r.location = location;
  r.key = key;
  r.dst = dst;
  CXLKV_RETURN_IF_ERROR(impl_->ReadBatch({&r, 1}));
  return r.size;
}

Status SegmentLog::ReadBatch(std::span<ChunkRead> reads) { return impl_->ReadBatch(reads); }
Status SegmentLog::Sync() { return impl_->Sync(); }
void SegmentLog::Touch(std::uint64_t location) { impl_->Touch(location); }
std::optional<std::uint32_t> SegmentLog::OldestSegment() const { return impl_->OldestSegment(); }
Result<std::vector<SegmentChunk>> SegmentLog::SegmentChunks(std::uint32_t segment) const {
  return impl_->SegmentChunks(segment);
}
Result<std::vector<SegmentChunk>> SegmentLog::EvictSegment(std::uint32_t segment) {
  return impl_->EvictSegment(segment);
}
Result<std::vector<SegmentChunk>> SegmentLog::EvictOldestSegment() {
  return impl_->EvictOldestSegment();
}
SegmentLogStats SegmentLog::GetStats() const { return impl_->GetStats(); }
std::uint32_t SegmentLog::SegmentOf(std::uint64_t location) {
  return ChunkLocation::Unpack(location).segment;
}
std::uint64_t SegmentLog::MaxChunkSize(std::size_t key_size, std::size_t meta_size) const {
  return impl_->MaxChunkSize(key_size, meta_size);
}

}  // namespace cxlkv::internal
