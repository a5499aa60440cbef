// SegmentLog: the NVMe spill tier's on-disk engine. Chunks are appended into large segments
// written sequentially with O_DIRECT through io_uring; space is reclaimed by evicting whole
// segments, so the device sees only large sequential writes and its write amplification stays
// near 1. The store owns the index; the log hands it a 64-bit location per chunk, reads chunks
// back verified, tells it which chunks leave with an evicted segment, and on reopen reports
// every chunk it still holds so the index can be rebuilt.
//
// ---- Layout (all integers little-endian; chunk_record.h has the exact encodings) ----
//
//   byte 0        superblock copy 0 (4 KiB)  } magic, format version, log id (random, set at
//   byte 4 KiB    superblock copy 1 (4 KiB)  } format), capacity, segment size and count, and
//                                              an epoch: the number of opens. Each open
//                                              writes the copy not holding the newest valid
//                                              one, so a torn write leaves the other.
//   byte 64 KiB   segment 0, segment 1, ... segment N-1, each segment_size bytes
//
// A segment is a sequence of 4 KiB blocks:
//
//   block 0                 segment header: log id, sequence number, index, checksum.
//                           Zeroed when the segment is evicted (it is then free).
//   blocks 1..              chunk records, back to back, each a whole number of blocks. A
//                           record's first block holds its header (80 B: log id, sequence
//                           number, segment, block, length, key/meta/data sizes, key hash =
//                           XXH3-128 of the key, XXH3-64 of key+meta+data, XXH3-64 of the
//                           header), key and meta, zero-padded; its data starts on the next
//                           block and is zero-padded to a whole block (format version 2), so
//                           block-aligned chunks go to the device straight from the caller's
//                           memory. The header block is written last (see Append).
//   (free space)
//   last blocks             summary: one entry per record (block, length, data size, key hash,
//                           key, meta), then the trailer as the segment's very last block
//                           (sequence number, chunk count, summary offset, size and checksum).
//                           Written once, when the segment is sealed.
//
// A chunk's location is 64 bits: segment index (24 bits) | first block of its record within
// the segment (20) | record length in blocks (20); so segments of up to 4 GiB, up to 16 Mi of
// them, and a read is one I/O of the whole record. 0 is never a location.
//
// Sequence numbers are (epoch << 32 | n): every open bumps the epoch in the superblock and
// syncs it before writing anything else, so a sequence number is never reused, and a record or
// trailer left over from an earlier use of a segment never matches the segment's current one.
//
// ---- Recovery (Open) ----
// Reads every segment's header and trailer block. A segment whose trailer matches its header
// (same log, sequence number and index) and whose summary checksum holds is sealed: its
// chunks are listed from the summary alone, without reading data. Any other segment with a
// valid header (the one open at a crash, or one whose seal was torn) is scanned record by
// record from block 1: a record counts when its header and payload checksums hold and it
// belongs to this segment's sequence number; the scan steps over anything else block by block,
// so it cuts a torn or truncated last record and skips a damaged one. A scanned segment is then
// sealed at once (its free tail stays unused until it is evicted), so recovery scans each
// segment at most once. on_recovered is called for every chunk found, oldest segment first.
//
// ---- Durability contract ----
//  * When Append returns OK, its record (and the segment header before it) has been written to
//    the device with O_DIRECT and completed: the chunk survives kill -9 of the process and is
//    found by the next Open. (With the buffered fallback, the record is in the kernel's page
//    cache: the same holds for a process crash.)
//  * It survives power loss or a kernel crash only once Sync() (fdatasync, which also flushes a
//    device's volatile write cache) has returned after it. Before that, a power loss may lose
//    any unsynced writes, in any order; recovery then still returns no wrong bytes: a chunk may
//    be missing, or (after an unsynced eviction and reuse of its segment) be reported and then
//    fail to read with Corruption.
//  * Evictions are not synced either: after a crash an evicted segment may come back whole.
//  * Nothing is ever returned unverified: every read checks the record header (checksum, log,
//    segment, sequence number, position, length), the key and the payload checksum; any
//    mismatch is Corruption, never bytes. The destination may hold partial data on error.
//    Recovery lists a sealed segment's chunks from its summary without reading them, so a
//    chunk damaged on the medium is still reported, and its read then fails with Corruption:
//    the store should drop the index entry of a chunk whose read says Corruption.
//  * NoSpace (no free segment, or the file system full: ENOSPC, EDQUOT, EFBIG) leaves every
//    chunk already stored intact; the failed Append stored nothing.
//
// ---- Backing store ----
// A regular file (created when missing, grown one segment at a time with fallocate, so that
// running out of space is NoSpace at segment open rather than a failed write), or a raw block
// device (/dev/nvme0n1, a loop device), opened O_EXCL and sized with BLKGETSIZE64. Where the
// file system refuses O_DIRECT the log falls back to buffered I/O with a one-line warning on
// stderr; where io_uring is unavailable, to synchronous pread/pwrite, likewise.
//
// Thread-safety: every SegmentLog member function is thread-safe. Appends and evictions are
// serialised (one writer at a time, on one ring); reads are serialised among themselves on a
// second ring and run concurrently with appends. Touch is lock-free. The caller keeps a
// location's segment from being evicted while it reads it; if it does not, the read fails
// (NotFound or Corruption), it never returns another chunk's bytes.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/key.h"
#include "cxlkv/status.h"

namespace cxlkv::internal {

// Which sealed segment EvictOldestSegment picks.
enum class SegmentEviction : std::uint8_t {
  kFifo,  // the oldest written
  kLru,   // the least recently read or touched (Touch, Read, ReadBatch); sealing counts as use
};

struct SegmentLogOptions {
  std::string path;  // a regular file (created if missing) or a block device
  // Bytes of the file or device the log may use, superblock included. 0: the device's size for
  // a block device, the recorded capacity when reopening; required to create a file.
  std::uint64_t capacity = 0;
  // A multiple of 4 KiB, 64 KiB .. 4 GiB. 0: 64 MiB for a new log, the recorded size when
  // reopening. A non-zero value that differs from the recorded one is InvalidArgument.
  std::uint64_t segment_size = 0;
  unsigned queue_depth = 32;  // I/Os in flight per ring (one ring for appends, one for reads)
  // Bytes of batched reads the device holds at once; 0: queue_depth alone limits them. A read
  // leaves the count when it completes, so the next one starts while it is checked. 16 MiB by
  // default: on this VM's virtual disk 2 MiB chunks read 0.82-0.89x of the best raw depth with
  // 12-16 MiB at the device, 0.63-0.68x with queue_depth's 64 MiB (docs/benchmarks.md), and
  // 16 MiB is several times what an NVMe device needs in flight (7 GB/s at 0.5 ms: 3.5 MB).
  // Chunks of 256 KiB or less at queue_depth 32 never reach it.
  std::uint64_t read_bytes_in_flight = 16 << 20;
  std::uint32_t io_size = 256 * 1024;  // bytes per I/O and per staging slot; a multiple of 4 KiB
  // Appended records are written so that every buffer of every write covers whole units of
  // this many bytes of the disk below (the units where one record ends and the next begins are
  // copied into staging; the rest goes from the caller's memory): a disk that writes in larger
  // units than 4 KiB (this VM's virtual disk: 64 KiB; QLC SSDs with 16-64 KiB indirection
  // units) is not made to write parts of them. A power of two from 4 KiB up to io_size; 0: no
  // units, each record's header block and data written as they lie. The format is the same.
  std::uint32_t write_unit = 64 * 1024;
  bool direct_io = true;               // O_DIRECT; refused by the file system -> buffered + warning
  bool use_io_uring = true;            // false: synchronous pread/pwrite (tests, comparisons)
  // Overwrite whatever the path holds with a new, empty log. Without it, a path whose first
  // blocks are neither zeros nor a valid superblock is refused (Corruption), so a device with a
  // file system on it is not overwritten by mistake.
  bool format = false;
  SegmentEviction eviction = SegmentEviction::kFifo;
};

inline constexpr std::uint64_t kDefaultSegmentSize = std::uint64_t{64} << 20;

// A chunk found by Open. The views are valid during the callback only. Chunks come oldest
// segment first, in append order within a segment; a key can come more than once (a chunk the
// store re-appended before evicting its old segment): the later report is the newer copy.
struct RecoveredChunk {
  std::string_view key;
  KeyHash key_hash;
  std::uint64_t size = 0;           // data bytes
  std::span<const std::byte> meta;  // at most 64 bytes
  std::uint64_t location = 0;
};

// A chunk held by a segment: what eviction returns, so the store can drop its index entries.
struct SegmentChunk {
  KeyHash key_hash;
  std::uint64_t location = 0;
  std::uint64_t size = 0;  // data bytes
};

// One read of a ReadBatch: inputs, then what the read produced.
struct ChunkRead {
  std::uint64_t location = 0;
  std::string_view key;           // the record's key must equal it, byte for byte
  std::span<std::byte> dst;       // at least the chunk's size (the caller knows it)
  std::span<std::byte> meta_dst;  // optional: receives the metadata (64 bytes suffice)
  // Filled in:
  Status status;              // OK, or why this read failed (the others are unaffected)
  std::uint64_t size = 0;     // data bytes written to dst[0, size)
  std::size_t meta_size = 0;  // metadata bytes (written to meta_dst when it is large enough)
};

// Segment counts and live totals are one consistent snapshot; the running counters are read
// one by one and may be a moment apart from it and from each other.
struct SegmentLogStats {
  std::uint64_t capacity = 0;
  std::uint64_t segment_size = 0;
  std::uint32_t segments = 0;  // in the log
  std::uint32_t free_segments = 0;
  std::uint32_t sealed_segments = 0;
  bool open_segment = false;               // a segment is taking appends
  std::uint64_t live_chunks = 0;           // chunks in unevicted segments
  std::uint64_t live_bytes = 0;            // their data bytes
  std::uint64_t chunks_appended = 0;       // since Open
  std::uint64_t bytes_appended = 0;        // chunk data bytes appended since Open
  std::uint64_t device_bytes_written = 0;  // every byte written: records with padding, segment
                                           // headers, summaries, superblocks, evictions
  std::uint64_t direct_bytes_written = 0;  // of which straight from the caller's memory
  std::uint64_t direct_fallbacks = 0;      // direct writes refused and staged instead
  std::uint64_t chunks_read = 0;
  std::uint64_t bytes_read = 0;  // chunk data bytes returned
  std::uint64_t device_bytes_read = 0;
  std::uint64_t read_errors = 0;  // reads that failed (Corruption, NotFound, ...)
  std::uint64_t segments_sealed = 0;
  std::uint64_t segments_evicted = 0;
  std::uint64_t recovered_chunks = 0;  // found by Open
  // Places where Open's scan of an unsealed segment stepped over blocks that held no whole
  // record of it before finding one that does: a damaged record, or one a power loss lost
  // before a Sync (a torn last record is neither: nothing follows it).
  std::uint64_t recovery_skipped_records = 0;
  bool direct_io = false;
  bool io_uring = false;
  bool fixed_buffers = false;  // staging registered with io_uring
  bool fixed_file = false;
  std::uint64_t read_bytes_in_flight = 0;  // the cap batched reads run under now; 0: none
  // Device bytes written per chunk data byte appended since Open (0 before any append).
  double write_amplification() const {
    return bytes_appended == 0
               ? 0.0
               : static_cast<double>(device_bytes_written) / static_cast<double>(bytes_appended);
  }
};

class SegmentLog {
 public:
  using RecoveryCallback = std::function<void(const RecoveredChunk&)>;

  // Opens or creates the log at options.path and reports every chunk it holds through
  // on_recovered (which must not call back into the log). Errors: InvalidArgument for bad
  // options or a geometry mismatch; Corruption when the path holds neither a log nor zeros
  // (see `format`) or both superblock copies are damaged; NoSpace when even the superblock
  // cannot be written; IOError and the errno codes of open/fallocate otherwise.
  static Result<std::unique_ptr<SegmentLog>> Open(SegmentLogOptions options,
                                                  const RecoveryCallback& on_recovered = {});
  ~SegmentLog();
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;

  // Appends a chunk: `parts` (its data, gathered in order), under `key` (1..150 bytes), with
  // `meta` (at most 64 bytes). Returns the chunk's location once the record is written (see the
  // durability contract). Block-aligned runs of `parts` (4 KiB-aligned address at a block
  // boundary of the data, whole blocks) are written with O_DIRECT straight from the caller's
  // memory, the rest through staging; every byte is hashed once, and the header block, which
  // holds the checksum, is written after them, so a torn record fails its checksum. `parts`
  // must not change until the call returns (it returns only after every write completed).
  // Memory the kernel cannot pin for O_DIRECT (EFAULT, EINVAL) is written through staging
  // instead (stats: direct_fallbacks). NoSpace when no segment is free (evict one and retry) or the file
  // system is full; InvalidArgument when the key or meta is malformed or the chunk cannot fit
  // in one segment. A failed Append stores nothing and loses nothing.
  Result<std::uint64_t> Append(std::string_view key, std::span<const iovec> parts,
                               std::span<const std::byte> meta = {});
  Result<std::uint64_t> Append(std::string_view key, std::span<const std::byte> data,
                               std::span<const std::byte> meta = {});

  // One chunk of an AppendBatch: what Append takes, and what it returns.
  struct AppendItem {
    std::string_view key;
    std::span<const iovec> parts;
    std::span<const std::byte> meta;
    Status status;               // set by AppendBatch
    std::uint64_t location = 0;  // set when status is OK
  };
  // Appends several chunks with their writes overlapping: the records of a batch are copied and
  // queued one after another and the call waits for the device once (before a segment is
  // sealed, and at the end), where a loop of Append waits for each record in turn. Each item
  // gets Append's result and contract: OK and its location once its record is written; a
  // failed item stores nothing. After NoSpace (no free segment: evict one and append the rest
  // again) the items after it fail with NoSpace too; after an I/O error, the rest of the batch
  // fails. Returns OK when every item succeeded, else the first failure.
  Status AppendBatch(std::span<AppendItem> items);

  // Reads the chunk at `location` into dst[0, size) and returns its size. Corruption when the
  // record fails any check (including that its key is `key`); NotFound when its segment is
  // free; InvalidArgument when dst is too small or the location is malformed.
  Result<std::uint64_t> Read(std::uint64_t location, std::string_view key,
                             std::span<std::byte> dst);

  // Reads every entry of `reads`, keeping up to queue_depth I/Os in flight and issuing them in
  // the given order; returns when all are done. A 4 KiB-aligned dst gets the chunk's whole
  // blocks read straight into it (the checksum is verified over them after); other
  // destinations, and a last block that dst ends inside, are read through staging. Each entry gets its own status; the call
  // returns OK when all succeeded, else the first failure.
  Status ReadBatch(std::span<ChunkRead> reads);

  // fdatasync of the file or device: everything appended before the call survives power loss.
  Status Sync();

  // Marks the chunk's segment as used now (LRU eviction); a no-op under FIFO. Lock-free.
  void Touch(std::uint64_t location);
  // SegmentLogOptions::read_bytes_in_flight from the next ReadBatch on (a batch in progress
  // keeps the value it started with). Lock-free.
  void SetReadBytesInFlight(std::uint64_t bytes);

  // The segment EvictOldestSegment would evict (sealed segments first, in FIFO or LRU order;
  // the open segment only when nothing is sealed); nullopt when every segment is free.
  std::optional<std::uint32_t> OldestSegment() const;
  // The chunks a segment holds, in record order (NotFound when it is free). For the store to
  // re-append hot chunks before evicting their segment.
  Result<std::vector<SegmentChunk>> SegmentChunks(std::uint32_t segment) const;
  // Frees the segment (zeroes its header block) and returns the chunks it held: the store
  // drops their index entries. NotFound when it is already free.
  Result<std::vector<SegmentChunk>> EvictSegment(std::uint32_t segment);
  // EvictSegment(OldestSegment()); NotFound when every segment is free.
  Result<std::vector<SegmentChunk>> EvictOldestSegment();

  SegmentLogStats GetStats() const;

  // The segment a location belongs to.
  static std::uint32_t SegmentOf(std::uint64_t location);
  // The largest chunk (data bytes) that fits in one segment with the given key and meta sizes.
  std::uint64_t MaxChunkSize(std::size_t key_size, std::size_t meta_size) const;

 private:
  class Impl;
  explicit SegmentLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv::internal
