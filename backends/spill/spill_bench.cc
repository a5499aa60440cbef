// bench_spill: the spill log's appends and batched reads against raw io_uring O_DIRECT I/O of
// the same bytes on the same file, measured in the same run.
//
// A file system writes into space in two ways that cost differently, and a log meets both:
//   fresh      space allocated (fallocate) but never written: ext4 and xfs keep it as
//              "unwritten" extents, and each completed write converts its range to written
//              (extent tree and journal work). A new log, or one still filling its file.
//   recycled   space written before: an overwrite changes no metadata. A log in steady state,
//              reusing the segments it evicted.
// Each regime is compared with its own raw baseline; mixing them (a fresh log against raw
// overwrites) measures the file system, not the log: on this VM's ext4, fio's own sequential
// write ran 1.35-1.65 GB/s into a new file and 2.46-3.58 GB/s over the same file again.
//
// For each chunk size (2 MiB, 128 KiB) and each of --repeats rounds:
//   raw read    a file of its own written once (not timed), then one read per chunk in a
//               shuffled order at each queue depth 1, 4, 16, 32 through io_uring with O_DIRECT
//               into 4 KiB-aligned buffers, in turns with the log's reads (below); the
//               baseline is the best depth's median
//   append      SegmentLog opened with `format` on a file (so it starts empty: fresh
//               space), one Append per chunk from the same 4 KiB-aligned sources (as a
//               demotion from a 4 KiB-aligned slab slot; THP-advised memory, as the DRAM
//               tier's, unless --huge-pages 0): XXH3 over the data, then the record written in
//               whole 64 KiB units of the disk (write_unit: the unit shared with the next record,
//               with its header block, copied into staging, the rest straight from the source),
//               segment headers and summaries; Append returns once its record is written
//   batched     the same chunks into a new log on a file of its own through AppendBatch,
//               batched as the store's background demotion batches them
//               (UnmappedTier::kAppendBatchChunks chunks or kAppendBatchBytes a call, whichever
//               is fewer; --append-batch N overrides): the records' writes overlap and the call
//               waits once (fresh space); in turns with
//   raw fresh   one write per chunk at each queue depth, each depth on a file of its own
//               (allocated with fallocate, never written: fresh space), from the same sources
//               (no copy, no checksum): these, the log, "as records" and "hashed" below take
//               turns batch by batch, each first in every seventh batch, so the device's drift
//               falls on all alike
//   recycled    then every segment of that log evicted (timed: a 4 KiB header write each) and
//               the same chunks appended again into the segments it freed (recycled space), in
//               turns with
//   raw over    the same writes again over each depth's written file
//   as records  and a sixth in those turns: the chunks written raw in the log records' shape
//               (a 4 KiB block, then the chunk, in one writev; laid end to end) at the log's
//               queue depth, fresh then over: against the raw best, what the shape costs; the
//               log against it, what the log's own work costs (hashing, segments, summaries)
//   hashed      and a seventh: raw writes at queue depth 32, each chunk hashed (XXH3, as the
//               log checksums a record) before its write is queued, fresh then over; likewise
//               raw reads at depth 32 among the reads' turns, each chunk hashed once it lands.
//               What any log that checksums its records could reach here: on this VM the
//               hash's reads of memory slow the device's own (docs/benchmarks.md)
//   read        ReadBatch of --batch chunks at a time (a request's chunks) in the same
//               shuffled order (io_uring at the log's queue depth, checksum and key verified),
//               with read_bytes_in_flight at 1 and 4 records (that many records at the
//               device, the next issued as one completes), at the default (16 MiB) and at 0
//               (none: the queue depth alone); the best of these against the best raw depth,
//               as the raw side is taken at its best, and the default beside it
//   raw as log  the same reads done raw, in turns with the log's, batch by batch: each
//               record's whole extent in the same order, batches and depth, unchecked, into one
//               buffer, and split as the log reads it (header block apart, one readv); the log
//               against the split reads is what its own work costs; the thread's CPU time
//               per GB of both is printed too (the log's checks and hashing show there even
//               where the device hides them in wall time); the split reads again with each
//               record's data hashed as it lands (the log against these: its own work beside
//               a checksummed read of the very same bytes); and the chunks' data alone, read
//               where the log put them (against the raw best, beside the whole records: what
//               the header blocks cost, and what the log's file costs, apart)
// The sources are 128 MiB of distinct chunks per size, cycled, so that the hash and copies
// read them from memory, as a demotion reads a chunk stored long before, not from cache.
// Each cell is the median of the rounds. Ratios are log/raw. Neither side calls fdatasync:
// both measure what reaches the device with O_DIRECT. Where fio is installed it runs too, on a
// new file in the same directory (io_uring, O_DIRECT, the chunk as block size, queue depth 32:
// fresh space), and its write and random-read figures are printed beside ours.
//
// Usage: bench_spill [--dir DIR] [--mib N] [--repeats N] [--batch N] [--append-batch N]
//                    [--segment-mib N] [--queue-depth N] [--io-kib N] [--no-uring 1]
//                    [--huge-pages 0|1] [--write-unit-kib N]
// --no-uring 1 runs the log on its synchronous pread/pwrite fallback: what io_uring adds or
// costs, apart from the log's own work (copy, checksum, padding, summaries).
#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backends/spill/chunk_record.h"
#include "backends/spill/segment_log.h"
#include "backends/spill/uring.h"
#include "alloc/os_memory.h"
#include "backends/tier_backend.h"
#include "util/cpu.h"
#include "util/format.h"
#include "util/xxh3.h"

namespace {

using cxlkv::FormatBytes;
using cxlkv::ThreadCpuSeconds;
using cxlkv::internal::ChunkRead;
using cxlkv::internal::SegmentLog;
using cxlkv::internal::SegmentLogOptions;
using cxlkv::internal::spill::IoRing;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
// Distinct source bytes per chunk size, cycled: more than a last-level cache holds, so that a
// source is read from memory, as a demotion reads a chunk stored long before. (With 8 sources
// cycled, a 128 KiB chunk's hash and copies read a megabyte kept in cache.)
constexpr std::size_t kSourceBytes = 128 << 20;

struct Options {
  std::string dir;
  std::size_t mib = 256;  // bytes of chunks per size
  int repeats = 3;
  std::size_t batch = 32;         // chunks per ReadBatch
  std::size_t append_batch = 0;   // chunks per AppendBatch; 0: as the store's demotion
  std::size_t segment_mib = 64;
  unsigned queue_depth = 32;
  std::size_t io_kib = 256;
  bool use_io_uring = true;
  bool huge_pages = true;  // sources and destinations in THP-advised memory, as the DRAM tier's
  std::size_t write_unit_kib = 64;  // SegmentLogOptions::write_unit; 0: records as they lie
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "bench_spill: %s\n", what.c_str());
  std::exit(1);
}

void Check(const cxlkv::Status& s, const std::string& what) {
  if (!s.ok()) Fail(what + ": " + s.ToString());
}

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Room for a chunk's whole record (header block, data, padding to a block), read unsplit.
std::size_t ReadBufferSize(std::size_t chunk) { return chunk + 4 * 4096; }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<std::byte, AlignedFree>;

AlignedBytes Aligned(std::size_t size) {
  void* p = std::aligned_alloc(4096, (size + 4095) / 4096 * 4096);
  if (p == nullptr) Fail("out of memory for " + FormatBytes(size));
  std::memset(p, 0, size);
  return AlignedBytes(static_cast<std::byte*>(p));
}

// The chunks' sources and the reads' destinations, carved one after another (4 KiB-aligned)
// from one anonymous mapping, as a tier's slab slots are. With huge pages the mapping is
// 2 MiB-aligned and given MADV_HUGEPAGE, as the store's DRAM tier is (where THP is on): a
// direct write or read of a chunk then covers physically contiguous memory, a few segments for
// the block layer, where 4 KiB pages give one segment per page. On this VM's virtio disk
// (max_segments 254) that alone moved raw 2 MiB writes from 2.9 to 6.0 GB/s.
class Arena {
 public:
  Arena(std::size_t bytes, bool huge_pages) {
    auto m = cxlkv::os::MapAnonymous(bytes, huge_pages ? cxlkv::os::kHugePageSize : 0, false);
    if (!m.ok()) Fail("mapping " + FormatBytes(bytes) + ": " + m.status().ToString());
    map_ = std::move(*m);
    if (huge_pages) {
      // Best effort, as the tier's: with THP off the region keeps 4 KiB pages.
      static_cast<void>(cxlkv::os::AdviseHugePages(map_.data(), map_.length()));
    }
    const cxlkv::Status s =
        cxlkv::os::Populate(map_.data(), map_.length(), cxlkv::os::BasePageSize());
    if (!s.ok()) Fail("faulting in " + FormatBytes(bytes) + ": " + s.ToString());
  }
  std::byte* Take(std::size_t size) {
    const std::size_t rounded = (size + 4095) / 4096 * 4096;
    if (used_ + rounded > map_.length()) Fail("bench arena too small");
    std::byte* p = map_.data() + used_;
    used_ += rounded;
    return p;
  }
  // Bytes of the mapping backed by huge pages, from /proc/self/smaps (0 where unreadable).
  std::size_t HugeBytes() const;

 private:
  cxlkv::os::AnonymousMapping map_;
  std::size_t used_ = 0;
};

std::size_t Arena::HugeBytes() const {
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return 0;
  const auto start = reinterpret_cast<std::uintptr_t>(map_.data());
  bool in_range = false;
  std::size_t kib = 0;
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      in_range = lo >= start && hi <= start + map_.length();
    } else if (in_range) {
      std::size_t v = 0;
      if (std::sscanf(line, "AnonHugePages: %zu kB", &v) == 1) kib += v;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

std::string FsName(const std::string& dir) {
  struct statfs st {};
  if (statfs(dir.c_str(), &st) != 0) return "?";
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "fs 0x%lx", static_cast<unsigned long>(st.f_type));
      return buf;
    }
  }
}

constexpr unsigned kRawDepths[] = {1, 4, 16, 32};
// Where the hashed raw I/O's hashes go, so that none is computed for nothing.
volatile std::uint64_t g_hash_sink = 0;
constexpr std::size_t kDepthCount = std::size(kRawDepths);
// The log's read caps (read_bytes_in_flight) the reads take turns at, as many as the raw
// depths: 1 and 4 records at the device, SegmentLogOptions' default, and none.
constexpr std::size_t kReadCapDefault = 2, kReadCapNone = 3;
static_assert(kDepthCount == 4);
std::uint64_t ReadCap(std::size_t k, std::uint64_t record) {
  switch (k) {
    case 0: return record;
    case 1: return 4 * record;
    case kReadCapDefault: return SegmentLogOptions{}.read_bytes_in_flight;
    default: return 0;
  }
}
std::string ReadCapName(std::size_t k) {
  switch (k) {
    case 0: return "cap 1 record";
    case 1: return "cap 4 records";
    case kReadCapDefault: return "default cap";
    default: return "no cap";
  }
}

struct Cell {
  // GB/s per round.
  std::vector<double> raw_fresh[kDepthCount], raw_over[kDepthCount], raw_read[kDepthCount];
  std::vector<double> append, append_batch, append_recycled;
  // Raw writes shaped as the log's records (a 4 KiB block, then the chunk, one writev, laid end
  // to end) at the log's queue depth, in turns with the appends: fresh, then over.
  std::vector<double> raw_split_fresh, raw_split_over;
  // Raw I/O at the deepest raw depth that also hashes every chunk (XXH3, as the log does): each
  // write's source before it is queued, each read's destination once it lands. What a log that
  // checksums its records could reach at best on this machine: the hash's reads of memory
  // share it with the device's.
  std::vector<double> raw_hashed_fresh, raw_hashed_over, raw_hashed_read;
  // Batched reads at each of kReadCaps.
  std::vector<double> read[kDepthCount];
  // Raw reads of the log's records in `read`'s order, batches and depth: into one buffer each,
  // and split as the log reads them (header block apart, data straight into dst).
  std::vector<double> raw_as_log, raw_as_log_split;
  // The split reads with each record's data hashed once it lands, as the log checks it: what a
  // checksummed log could reach on this file. And the chunks' data alone, read where the log
  // put them (a record's blocks after its header's): what the header blocks cost, apart from
  // the file the log's records are in.
  std::vector<double> raw_as_log_hashed, raw_data_in_place;
  // This thread's CPU milliseconds per GB read: the log's reads and the split raw reads.
  std::vector<double> read_cpu_ms_per_gb, raw_split_cpu_ms_per_gb;
  // Likewise for the batched appends (fresh and recycled) and the raw writes as records.
  std::vector<double> append_cpu_ms_per_gb, raw_split_append_cpu_ms_per_gb;
  double write_amplification = 0;
  std::string io_mode;
  double direct_share = 0;  // of the log's device bytes, written straight from the sources
  std::uint64_t direct_fallbacks = 0;
};

// A new file of `bytes`, allocated and never written (fresh space), opened with O_DIRECT.
int CreateAllocated(const std::string& path, std::uint64_t bytes) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
  if (fd < 0 || fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0) {
    Fail("preparing " + path + " (O_DIRECT, " + FormatBytes(bytes) + "): " +
         std::strerror(errno));
  }
  return fd;
}

// One 4 KiB buffer per I/O slot: where the split raw I/Os put or take a record's header block.
std::vector<AlignedBytes> HeadBuffers(unsigned count) {
  std::vector<AlignedBytes> heads;
  for (unsigned d = 0; d < count; ++d) heads.push_back(Aligned(cxlkv::internal::spill::kBlockSize));
  return heads;
}

std::unique_ptr<IoRing> RawRing(int fd, unsigned depth) {
  auto ring = IoRing::Create(fd, depth, /*use_io_uring=*/true);
  Check(ring.status(), "creating an io_uring of depth " + std::to_string(depth));
  if (!(*ring)->uses_io_uring()) Fail("io_uring unavailable: " + (*ring)->fallback_reason());
  return std::move(*ring);
}

// One chunk per I/O on `ring` (of at least `depth` entries), at most `depth` in flight: queue
// until full, then reap one and queue the next. Returns seconds for all of `order`.
// `extents`, when given, holds each chunk's offset and length instead of (i * chunk, chunk);
// the dsts must hold the longest. Reads land in the dsts in turn, the k-th read of `order` in
// dsts[k % dsts.size()] (at least `depth` of them), as a batch's chunks land each in its own
// destination: at depth 1 through one buffer, 2 MiB random reads ran at 1.36-2.21 GB/s here,
// and at 1.03-1.20 GB/s through a batch's 32 (what the log reads into), so the raw side read
// faster only for reusing its buffer (raw reads are not checked: should completions come out
// of order and two reads in flight share a buffer, nothing is lost). With `heads` (depth
// 4 KiB buffers), each read takes its first block into a head buffer and the rest into its
// dst, in one readv, as the log reads a record (header block apart, data straight into the
// caller's memory); a write likewise sends a head buffer's block and then the source, in one
// writev, as the log writes a record (`extents` then give each record's place and length).
double RawIoOn(IoRing& ring, bool write, unsigned depth, std::size_t chunk,
               std::span<const std::size_t> order, const std::vector<std::byte*>& sources,
               std::vector<std::byte*>& dsts,
               const std::vector<std::pair<std::uint64_t, std::uint32_t>>* extents = nullptr,
               const std::vector<AlignedBytes>* heads = nullptr, bool hash = false) {
  // I/O slots: each in-flight I/O owns one (its buffers and iovecs) until it completes.
  std::vector<iovec> iovs(2 * depth);
  std::vector<const std::byte*> slot_dst(depth);  // where each slot's read lands (to hash it)
  std::vector<std::uint32_t> free_slots(depth);
  std::iota(free_slots.begin(), free_slots.end(), 0u);
  const auto start = Clock::now();
  std::size_t next = 0, done = 0;
  while (done < order.size()) {
    while (next < order.size() && ring.in_flight() < depth) {
      const std::size_t i = order[next];
      const auto offset = extents ? (*extents)[i].first : static_cast<std::uint64_t>(i * chunk);
      const auto len = extents ? (*extents)[i].second : static_cast<std::uint32_t>(chunk);
      const std::uint32_t slot = free_slots.back();
      free_slots.pop_back();
      // user_data: the slot, and the length to check the transfer against.
      const std::uint64_t tag = (std::uint64_t{slot} << 32) | len;
      cxlkv::Status queued;
      if (write && heads != nullptr) {
        iovec* v = &iovs[2 * slot];
        v[0] = {(*heads)[slot].get(), cxlkv::internal::spill::kBlockSize};
        v[1] = {sources[next % sources.size()], len - cxlkv::internal::spill::kBlockSize};
        queued = ring.QueueWritev(v, 2, offset, tag);
      } else if (write) {
        if (hash) g_hash_sink = g_hash_sink ^ XXH3_64bits(sources[next % sources.size()], len);
        queued = ring.QueueWrite(sources[next % sources.size()], len, offset, tag);
      } else if (heads != nullptr) {
        iovec* v = &iovs[2 * slot];
        v[0] = {(*heads)[slot].get(), cxlkv::internal::spill::kBlockSize};
        v[1] = {dsts[next % dsts.size()], len - cxlkv::internal::spill::kBlockSize};
        slot_dst[slot] = dsts[next % dsts.size()];
        queued = ring.QueueReadv(v, 2, offset, tag);
      } else {
        slot_dst[slot] = dsts[next % dsts.size()];
        queued = ring.QueueRead(dsts[next % dsts.size()], len, offset, tag);
      }
      Check(queued, "queueing a raw I/O");
      ++next;
    }
    auto c = ring.WaitOne();
    Check(c.status(), "raw io_uring");
    const auto slot = static_cast<std::uint32_t>(c->user_data >> 32);
    free_slots.push_back(slot);
    if (c->result != static_cast<std::int32_t>(c->user_data & 0xffffffffu)) {
      Fail(std::string("raw ") + (write ? "write" : "read") + ": " +
           (c->result < 0 ? std::strerror(-c->result) : "short transfer"));
    }
    if (hash && !write) {
      // A split read hashes what landed in its dst: the record's blocks after the header's.
      const std::uint32_t head = heads != nullptr ? cxlkv::internal::spill::kBlockSize : 0;
      g_hash_sink = g_hash_sink ^ XXH3_64bits(slot_dst[slot], (c->user_data & 0xffffffffu) - head);
    }
    ++done;
  }
  return Seconds(start);
}

// RawIoOn on a ring of its own.
double RawIo(int fd, bool write, unsigned depth, std::size_t chunk,
             const std::vector<std::size_t>& order, const std::vector<std::byte*>& sources,
             std::vector<std::byte*>& dsts) {
  auto ring = RawRing(fd, depth);
  return RawIoOn(*ring, write, depth, chunk, order, sources, dsts);
}

// The file the raw reads read (LogRound, in turns with the log's reads): every chunk written
// once, in order, at the deepest raw depth.
void WriteRawReadFile(const std::string& path, std::size_t chunk, std::size_t n,
                      const std::vector<std::byte*>& sources, std::vector<std::byte*>& dsts) {
  const int fd = CreateAllocated(path, chunk * n);
  std::vector<std::size_t> in_order(n);
  std::iota(in_order.begin(), in_order.end(), 0);
  RawIo(fd, true, kRawDepths[kDepthCount - 1], chunk, in_order, sources, dsts);
  if (close(fd) != 0) Fail("close " + path);
}

// fio's sequential write and random read of `mib` MiB in `chunk` blocks (io_uring, O_DIRECT,
// queue depth 32) on `file`, which it creates and this removes: GB/s, or {0, 0} with *note
// saying why when fio is not installed or fails.
std::pair<double, double> Fio(const std::string& file, std::size_t chunk, std::size_t mib,
                              std::string* note) {
  if (std::system("command -v fio >/dev/null 2>&1") != 0) {
    *note = "not installed (tools/setup.sh installs it); no fio figures";
    return {0, 0};
  }
  auto run = [&](const char* rw) -> double {
    const std::string cmd = "fio --name=cxlkv --filename=" + file + " --rw=" + rw +
                            " --bs=" + std::to_string(chunk) + " --size=" +
                            std::to_string(mib) + "M --direct=1 --ioengine=io_uring "
                            "--iodepth=32 --output-format=terse --terse-version=3 2>/dev/null";
    std::FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return 0;
    std::string out;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    if (pclose(p) != 0) return 0;
    // Terse v3: field 7 is the read bandwidth and field 48 the write bandwidth, in KiB/s.
    std::vector<std::string> fields;
    std::size_t at = 0;
    for (std::size_t semi; (semi = out.find(';', at)) != std::string::npos; at = semi + 1) {
      fields.push_back(out.substr(at, semi - at));
    }
    const std::size_t field = std::string(rw) == "write" ? 47 : 6;
    if (fields.size() <= field) return 0;
    return std::strtod(fields[field].c_str(), nullptr) * 1024 / 1e9;
  };
  const double write = run("write");
  const double read = write > 0 ? run("randread") : 0;
  unlink(file.c_str());
  if (write <= 0 || read <= 0) {
    *note = "fio ran but gave no figure (see `fio --version`); no fio figures";
    return {0, 0};
  }
  return {write, read};
}

// A freshly formatted log on `path` with room for n chunks.
SegmentLogOptions LogOptions(const Options& opt, const std::string& path, std::size_t chunk,
                             std::size_t n) {
  SegmentLogOptions o;
  o.path = path;
  o.segment_size = opt.segment_mib * kMiB;
  // Enough segments for every chunk with its padding and the summaries, plus one.
  o.capacity = cxlkv::internal::spill::kDataOffset +
               (chunk * n / o.segment_size + 2 + n / 64) * o.segment_size;
  o.queue_depth = opt.queue_depth;
  o.io_size = static_cast<std::uint32_t>(opt.io_kib * kKiB);
  o.write_unit = static_cast<std::uint32_t>(opt.write_unit_kib * kKiB);
  o.format = true;
  o.use_io_uring = opt.use_io_uring;
  return o;
}

std::vector<std::string> Keys(std::size_t n) {
  std::vector<std::string> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    keys[i] = "vllm@llama-3.1-8b@1@0@" + std::to_string(i) + "@" + std::string(40, 'h');
  }
  return keys;
}

void LogRound(const Options& opt, int round, const std::string& path,
              const std::string& raw_read_path, std::size_t chunk,
              std::size_t n, const std::vector<std::byte*>& sources,
              const std::vector<std::size_t>& order, std::vector<std::byte*>& dst, Cell* cell) {
  const SegmentLogOptions o = LogOptions(opt, path, chunk, n);
  auto log_or = SegmentLog::Open(o);
  Check(log_or.status(), "opening the log on " + path);
  SegmentLog& log = **log_or;

  const std::vector<std::string> keys = Keys(n);
  std::vector<std::uint64_t> locs(n);
  const double gb = static_cast<double>(chunk * n) / 1e9;
  auto start = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    auto loc = log.Append(keys[i], std::span<const std::byte>(sources[i % sources.size()], chunk));
    Check(loc.status(), "append " + std::to_string(i));
    locs[i] = *loc;
  }
  cell->append.push_back(gb / Seconds(start));

  const std::size_t batch = std::max<std::size_t>(1, opt.batch);
  std::vector<ChunkRead> reads(batch);
  // The same reads done raw: each record's whole extent (header block, data, padding) in the
  // same order, batches and queue depth; once into one aligned buffer, once split as the log
  // reads it (a readv: header block into a 4 KiB buffer, the rest into the destination),
  // unchecked, and once split with the data hashed as it lands. Against the split raw reads,
  // the log's reads at the default cap show what its own work costs (checks, hashing,
  // bookkeeping), against the hashed ones what it costs beyond the hash; against the raw reads
  // above, the first shows what its batches and header blocks cost (the raw reads at each
  // depth, of a file of their own, are the read baseline), and the chunks' data read alone
  // where the log put them tells the header blocks from the file. The thirteen (the log at
  // each of its four read caps, the four raw reads of its records, the raw reads at each depth
  // and hashed at the deepest) take turns batch by batch, each first in every thirteenth
  // batch, so that the device's drift over the run, and whatever a host below a VM caches of
  // what was just read, fall on all alike. The turns go on from round to round: with few
  // batches in a round (2 MiB chunks: 128 MiB is two batches of 32), starting every round
  // alike would put the same one first every time.
  // Each record's extent, and its data's (the blocks after its header block).
  std::vector<std::pair<std::uint64_t, std::uint32_t>> extents(n), data_extents(n);
  std::uint32_t longest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto l = cxlkv::internal::spill::ChunkLocation::Unpack(locs[i]);
    extents[i] = {cxlkv::internal::spill::kDataOffset + l.segment * o.segment_size +
                      std::uint64_t{l.block} * cxlkv::internal::spill::kBlockSize,
                  l.blocks * cxlkv::internal::spill::kBlockSize};
    data_extents[i] = {extents[i].first + cxlkv::internal::spill::kRecordDataOffset,
                       extents[i].second - cxlkv::internal::spill::kRecordDataOffset};
    longest = std::max(longest, extents[i].second);
  }
  double raw_data_seconds = 0, raw_split_hashed_seconds = 0;
  const int raw_fd = open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (raw_fd < 0) Fail("open " + path + " O_DIRECT: " + std::strerror(errno));
  auto raw_ring = RawRing(raw_fd, opt.queue_depth);
  // The raw random reads at each depth, of WriteRawReadFile's file: the read baseline.
  const int raw_read_fd = open(raw_read_path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (raw_read_fd < 0) Fail("open " + raw_read_path + " O_DIRECT: " + std::strerror(errno));
  std::vector<std::unique_ptr<IoRing>> raw_read_rings;
  for (unsigned depth : kRawDepths) raw_read_rings.push_back(RawRing(raw_read_fd, depth));
  double raw_read_seconds[kDepthCount] = {}, raw_hashed_read_seconds = 0;
  if (longest > ReadBufferSize(chunk)) Fail("a record longer than the read buffers");
  const std::vector<AlignedBytes> raw_heads = HeadBuffers(opt.queue_depth);
  std::uint64_t caps[kDepthCount];
  for (std::size_t k = 0; k < kDepthCount; ++k) caps[k] = ReadCap(k, longest);
  double log_seconds[kDepthCount] = {}, raw_seconds = 0, raw_split_seconds = 0;
  double log_cpu = 0, raw_split_cpu = 0;
  std::size_t turn = static_cast<std::size_t>(round) * ((n + batch - 1) / batch);
  for (std::size_t first = 0; first < n; first += batch, ++turn) {
    const std::size_t m = std::min(batch, n - first);
    const auto log_batch = [&](std::size_t cap) {
      log.SetReadBytesInFlight(caps[cap]);
      for (std::size_t k = 0; k < m; ++k) {
        const std::size_t i = order[first + k];
        reads[k] = ChunkRead{};
        reads[k].location = locs[i];
        reads[k].key = keys[i];
        reads[k].dst = std::span<std::byte>(dst[k], chunk);
      }
      const auto t = Clock::now();
      const double cpu = ThreadCpuSeconds();
      Check(log.ReadBatch(std::span(reads).first(m)), "read batch");
      if (cap == kReadCapDefault) log_cpu += ThreadCpuSeconds() - cpu;
      log_seconds[cap] += Seconds(t);
      // Checked at once: the raw reads that follow use the same buffers.
      if (std::memcmp(dst[0], sources[order[first] % sources.size()], chunk) != 0) {
        Fail("read back wrong bytes");
      }
    };
    // The batch read raw from the log's file, at the log's depth: seconds.
    const auto raw_of_log = [&](const std::vector<std::pair<std::uint64_t, std::uint32_t>>& at,
                                const std::vector<AlignedBytes>* heads, bool hash) {
      return RawIoOn(*raw_ring, false, opt.queue_depth, chunk, std::span(order).subspan(first, m),
                     {}, dst, &at, heads, hash);
    };
    const auto raw_batch = [&] { raw_seconds += raw_of_log(extents, nullptr, false); };
    const auto raw_split_batch = [&] {
      const double cpu = ThreadCpuSeconds();
      raw_split_seconds += raw_of_log(extents, &raw_heads, false);
      raw_split_cpu += ThreadCpuSeconds() - cpu;
    };
    // Each of the thirteen first in turn: the log at each cap, the raw reads of its records
    // (whole, split, split and hashed, data alone), the raw reads at each depth, and at the
    // deepest with each chunk hashed.
    constexpr std::size_t kTurns = 2 * kDepthCount + 5;
    for (std::size_t t = 0; t < kTurns; ++t) {
      const std::size_t which = (turn + t) % kTurns;
      if (which == kTurns - 3) {
        raw_split_hashed_seconds += raw_of_log(extents, &raw_heads, /*hash=*/true);
      } else if (which == kTurns - 2) {
        raw_data_seconds += raw_of_log(data_extents, nullptr, false);
      } else if (which == kTurns - 1) {
        raw_hashed_read_seconds +=
            RawIoOn(*raw_read_rings[kDepthCount - 1], false, kRawDepths[kDepthCount - 1], chunk,
                    std::span(order).subspan(first, m), {}, dst, nullptr, nullptr,
                    /*hash=*/true);
      } else if (which < kDepthCount) {
        log_batch(which);
      } else if (which == kDepthCount) {
        raw_batch();
      } else if (which == kDepthCount + 1) {
        raw_split_batch();
      } else {
        const std::size_t k = which - kDepthCount - 2;
        raw_read_seconds[k] += RawIoOn(*raw_read_rings[k], false, kRawDepths[k], chunk,
                                       std::span(order).subspan(first, m), {}, dst);
      }
    }
  }
  for (std::size_t k = 0; k < kDepthCount; ++k) cell->read[k].push_back(gb / log_seconds[k]);
  cell->raw_as_log.push_back(gb / raw_seconds);
  cell->raw_hashed_read.push_back(gb / raw_hashed_read_seconds);
  cell->raw_as_log_split.push_back(gb / raw_split_seconds);
  cell->raw_as_log_hashed.push_back(gb / raw_split_hashed_seconds);
  cell->raw_data_in_place.push_back(gb / raw_data_seconds);
  cell->read_cpu_ms_per_gb.push_back(1e3 * log_cpu / gb);
  cell->raw_split_cpu_ms_per_gb.push_back(1e3 * raw_split_cpu / gb);
  for (std::size_t k = 0; k < kDepthCount; ++k) {
    cell->raw_read[k].push_back(gb / raw_read_seconds[k]);
  }
  raw_ring.reset();
  raw_read_rings.clear();
  if (close(raw_fd) != 0) Fail("close " + path);
  if (close(raw_read_fd) != 0) Fail("close " + raw_read_path);

  const auto st = log.GetStats();
  cell->write_amplification = st.write_amplification();
  cell->direct_share = st.device_bytes_written == 0
                           ? 0
                           : static_cast<double>(st.direct_bytes_written) /
                                 static_cast<double>(st.device_bytes_written);
  cell->direct_fallbacks = st.direct_fallbacks;
  cell->io_mode = std::string(st.direct_io ? "O_DIRECT" : "buffered") + ", " +
                  (st.io_uring ? "io_uring" : "pread/pwrite") +
                  (st.fixed_buffers ? ", fixed buffers" : "") +
                  (st.fixed_file ? ", fixed file" : "");
}

// The batched appends against the raw writes, in turns: the log (AppendBatch, batched as the
// store's background demotion batches), the raw writes at each depth, in the records' shape
// and hashed, each on a file of its own in the same directory, take turns batch by batch (each
// first in every seventh batch, the turns going on from round to round), so that the device's
// drift over the run falls on all alike. Measured one after another (log, then raw),
// ten runs' 2 MiB fresh ratios spread 0.81-0.93 and 128 KiB ones 0.80-1.00; in turns, 24 and
// 21 runs spread 0.82-0.96 and 0.75-1.05 (this VM's disk, docs/benchmarks.md). First into
// fresh space (a new log; raw files allocated, never written), then the same chunks again over
// what each wrote (recycled): the log with every segment evicted first (timed with it), the
// raw files overwritten. One chunk is read back from the log and compared at the end.
void AppendRound(const Options& opt, int round, const std::string& dir, std::size_t chunk,
                 std::size_t n, const std::vector<std::byte*>& sources,
                 std::vector<std::byte*>& dst, Cell* cell) {
  const std::string log_path = dir + "/append.log";
  unlink(log_path.c_str());  // a new file: fresh space
  auto log_or = SegmentLog::Open(LogOptions(opt, log_path, chunk, n));
  Check(log_or.status(), "opening a log on " + log_path + " for batched appends");
  SegmentLog& log = **log_or;
  struct RawFile {
    std::string path;
    int fd = -1;
    std::unique_ptr<IoRing> ring;
  };
  std::vector<RawFile> raw(kDepthCount);
  for (std::size_t k = 0; k < kDepthCount; ++k) {
    raw[k].path = dir + "/raw-qd" + std::to_string(kRawDepths[k]) + ".data";
    raw[k].fd = CreateAllocated(raw[k].path, chunk * n);
    raw[k].ring = RawRing(raw[k].fd, kRawDepths[k]);
  }
  // The records' shape written raw: each chunk behind a 4 KiB block, end to end.
  RawFile split;
  split.path = dir + "/raw-split.data";
  const std::uint64_t record = chunk + cxlkv::internal::spill::kBlockSize;
  split.fd = CreateAllocated(split.path, record * n);
  split.ring = RawRing(split.fd, opt.queue_depth);
  std::vector<std::pair<std::uint64_t, std::uint32_t>> split_extents(n);
  for (std::size_t i = 0; i < n; ++i) {
    split_extents[i] = {i * record, static_cast<std::uint32_t>(record)};
  }
  const std::vector<AlignedBytes> split_heads = HeadBuffers(opt.queue_depth);
  // Raw writes at the deepest depth, each chunk hashed before it is queued.
  RawFile hashed;
  hashed.path = dir + "/raw-hashed.data";
  hashed.fd = CreateAllocated(hashed.path, chunk * n);
  hashed.ring = RawRing(hashed.fd, kRawDepths[kDepthCount - 1]);

  const std::vector<std::string> keys = Keys(n);
  std::vector<iovec> parts(n);
  for (std::size_t i = 0; i < n; ++i) parts[i] = {sources[i % sources.size()], chunk};
  std::vector<std::size_t> in_order(n);
  std::iota(in_order.begin(), in_order.end(), 0);
  const std::size_t append_batch =
      opt.append_batch != 0
          ? opt.append_batch
          : std::max<std::size_t>(1, std::min(cxlkv::internal::UnmappedTier::kAppendBatchChunks,
                                              cxlkv::internal::UnmappedTier::kAppendBatchBytes /
                                                  chunk));
  std::vector<SegmentLog::AppendItem> items(append_batch);
  std::vector<std::uint64_t> locs(n);
  const double gb = static_cast<double>(chunk * n) / 1e9;
  const std::size_t batches = (n + append_batch - 1) / append_batch;
  std::size_t turn = static_cast<std::size_t>(round) * batches;
  for (const bool recycled : {false, true}) {
    double log_seconds = 0, raw_seconds[kDepthCount] = {}, split_seconds = 0, hashed_seconds = 0;
    double log_cpu = 0, split_cpu = 0;  // this thread's CPU seconds
    if (recycled) {
      const auto start = Clock::now();
      while (true) {
        auto evicted = log.EvictOldestSegment();
        if (evicted.status().code() == cxlkv::StatusCode::kNotFound) break;
        Check(evicted.status(), "evicting a segment");
      }
      log_seconds += Seconds(start);
    }
    for (std::size_t first = 0; first < n; first += append_batch, ++turn) {
      const std::size_t m = std::min(append_batch, n - first);
      // The raw depths, the records' shape raw, the log, then raw writes hashed.
      constexpr std::size_t kTurns = kDepthCount + 3;
      for (std::size_t t = 0; t < kTurns; ++t) {
        const std::size_t which = (turn + t) % kTurns;
        if (which == kTurns - 1) {
          hashed_seconds += RawIoOn(*hashed.ring, true, kRawDepths[kDepthCount - 1], chunk,
                                    std::span(in_order).subspan(first, m), sources, dst, nullptr,
                                    nullptr, /*hash=*/true);
          continue;
        }
        if (which < kDepthCount) {
          raw_seconds[which] += RawIoOn(*raw[which].ring, true, kRawDepths[which], chunk,
                                        std::span(in_order).subspan(first, m), sources, dst);
          continue;
        }
        if (which == kDepthCount) {
          const double cpu = ThreadCpuSeconds();
          split_seconds += RawIoOn(*split.ring, true, opt.queue_depth, chunk,
                                   std::span(in_order).subspan(first, m), sources, dst,
                                   &split_extents, &split_heads);
          split_cpu += ThreadCpuSeconds() - cpu;
          continue;
        }
        for (std::size_t k = 0; k < m; ++k) {
          items[k] = SegmentLog::AppendItem{};
          items[k].key = keys[first + k];
          items[k].parts = std::span(&parts[first + k], 1);
        }
        const auto start = Clock::now();
        const double cpu = ThreadCpuSeconds();
        Check(log.AppendBatch(std::span(items).first(m)),
              recycled ? "recycled batched append" : "batched append");
        log_seconds += Seconds(start);
        log_cpu += ThreadCpuSeconds() - cpu;
        for (std::size_t k = 0; k < m; ++k) locs[first + k] = items[k].location;
      }
    }
    cell->append_cpu_ms_per_gb.push_back(1e3 * log_cpu / gb);
    cell->raw_split_append_cpu_ms_per_gb.push_back(1e3 * split_cpu / gb);
    (recycled ? cell->append_recycled : cell->append_batch).push_back(gb / log_seconds);
    (recycled ? cell->raw_split_over : cell->raw_split_fresh).push_back(gb / split_seconds);
    (recycled ? cell->raw_hashed_over : cell->raw_hashed_fresh).push_back(gb / hashed_seconds);
    for (std::size_t k = 0; k < kDepthCount; ++k) {
      (recycled ? cell->raw_over : cell->raw_fresh)[k].push_back(gb / raw_seconds[k]);
    }
  }
  const std::size_t probe = n / 2;
  auto got = log.Read(locs[probe], keys[probe], std::span(dst[0], chunk));
  Check(got.status(), "reading back a batched append");
  if (std::memcmp(dst[0], sources[probe % sources.size()], chunk) != 0) {
    Fail("a batched append read back wrong bytes");
  }
  log_or->reset();
  raw.push_back(std::move(split));
  raw.push_back(std::move(hashed));
  for (RawFile& f : raw) {
    f.ring.reset();
    if (close(f.fd) != 0 || unlink(f.path.c_str()) != 0) Fail("closing " + f.path);
  }
  if (unlink(log_path.c_str()) != 0) Fail("removing " + log_path);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  const char* tmp = std::getenv("TMPDIR");
  opt.dir = tmp && *tmp ? tmp : "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) Fail("missing value after " + arg);
    const std::string v = argv[++i];
    const auto num = [&] {
      return static_cast<std::size_t>(std::strtoull(v.c_str(), nullptr, 10));
    };
    if (arg == "--dir")
      opt.dir = v;
    else if (arg == "--mib")
      opt.mib = num();
    else if (arg == "--repeats")
      opt.repeats = static_cast<int>(num());
    else if (arg == "--batch")
      opt.batch = num();
    else if (arg == "--append-batch")
      opt.append_batch = num();
    else if (arg == "--segment-mib")
      opt.segment_mib = num();
    else if (arg == "--queue-depth")
      opt.queue_depth = static_cast<unsigned>(num());
    else if (arg == "--io-kib")
      opt.io_kib = num();
    else if (arg == "--no-uring")
      opt.use_io_uring = num() == 0;
    else if (arg == "--huge-pages")
      opt.huge_pages = num() != 0;
    else if (arg == "--write-unit-kib")
      opt.write_unit_kib = num();
    else
      Fail("unknown option " + arg);
  }
  if (opt.repeats < 1 || opt.mib == 0) Fail("--repeats and --mib must be positive");

  std::string dir = opt.dir + "/cxlkv-spill-bench-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) Fail("mkdtemp " + dir + ": " + std::strerror(errno));
  const std::string path = dir + "/spill.log";
  const std::string raw_read_path = dir + "/raw-read.data";

  std::printf("bench_spill: %s (%s), %zu MiB of chunks per size, median of %d rounds\n",
              dir.c_str(), FsName(opt.dir).c_str(), opt.mib, opt.repeats);
  std::printf(
      "log: segments of %zu MiB, queue depth %u, I/O size %zu KiB, write unit %zu KiB, reads in "
      "batches of %zu (default cap: %s at the device), appends in batches of %s\n",
      opt.segment_mib, opt.queue_depth, opt.io_kib, opt.write_unit_kib, opt.batch,
      FormatBytes(SegmentLogOptions{}.read_bytes_in_flight).c_str(),
      opt.append_batch != 0
          ? std::to_string(opt.append_batch).c_str()
          : ("the store's (" +
             std::to_string(cxlkv::internal::UnmappedTier::kAppendBatchChunks) + " chunks or " +
             FormatBytes(cxlkv::internal::UnmappedTier::kAppendBatchBytes) + ")")
                .c_str());

  struct Row {
    std::size_t chunk;
    Cell cell;
    std::size_t huge_bytes = 0;  // of the sources' and destinations' memory
  };
  std::vector<Row> rows;
  for (std::size_t chunk : {2 * kMiB, 128 * kKiB}) {
    const std::size_t n = opt.mib * kMiB / chunk;
    const std::size_t buffers =
        std::max<std::size_t>({opt.batch, opt.queue_depth, kRawDepths[kDepthCount - 1]});
    const std::size_t source_count = std::max<std::size_t>(1, kSourceBytes / chunk);
    Arena arena(source_count * chunk + buffers * ReadBufferSize(chunk), opt.huge_pages);
    std::vector<std::byte*> sources;
    std::mt19937_64 rng(chunk);
    for (std::size_t s = 0; s < source_count; ++s) {
      sources.push_back(arena.Take(chunk));
      auto* words = reinterpret_cast<std::uint64_t*>(sources.back());
      for (std::size_t w = 0; w < chunk / 8; ++w) words[w] = rng();
    }
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    // Every read, raw or the log's, lands in these: on this VM the same reads ran up to 20%
    // slower into one set of buffers than into another allocated the same way, so comparing
    // reads into different memory measured the memory.
    std::vector<std::byte*> read_dst;
    for (std::size_t b = 0; b < buffers; ++b) read_dst.push_back(arena.Take(ReadBufferSize(chunk)));
    Row row{chunk, {}};
    row.huge_bytes = arena.HugeBytes();
    WriteRawReadFile(raw_read_path, chunk, n, sources, read_dst);  // only read from then on
    for (int r = 0; r < opt.repeats; ++r) {
      LogRound(opt, r, path, raw_read_path, chunk, n, sources, order, read_dst, &row.cell);
      AppendRound(opt, r, dir, chunk, n, sources, read_dst, &row.cell);
    }
    rows.push_back(std::move(row));
  }
  // fio on the same file system, when installed: a check on our own baseline.
  std::vector<std::pair<double, double>> fio;  // per row: write, random read GB/s (0: none)
  std::string fio_note;
  for (const Row& row : rows) fio.push_back(Fio(dir + "/fio.data", row.chunk, opt.mib, &fio_note));
  if (unlink(path.c_str()) != 0 || unlink(raw_read_path.c_str()) != 0 || rmdir(dir.c_str()) != 0) {
    std::fprintf(stderr, "bench_spill: removing %s: %s\n", dir.c_str(), std::strerror(errno));
  }

  std::printf("I/O: %s\n", rows.front().cell.io_mode.c_str());
  // fio's buffers get huge pages only where THP is "always": elsewhere its figures are of 4 KiB
  // pages, which on a virtual disk can move the device itself (see --huge-pages).
  const bool fio_pages_differ =
      opt.huge_pages && cxlkv::os::ReadThpMode() != cxlkv::os::ThpMode::kAlways;
  const char* fio_pages_note =
      "; fio's buffers in 4 KiB pages (THP not \"always\"): set it against --huge-pages 0";
  for (const Row& row : rows) {
    std::printf("log sources: 4 KiB-aligned (as a demotion from a 4 KiB-aligned slab slot), %s "
                "chunks: %.1f%% of the log's device bytes written straight from them, %llu "
                "refused and staged; sources and read buffers %s, %s of them in huge pages\n",
                FormatBytes(row.chunk).c_str(), 100 * row.cell.direct_share,
                static_cast<unsigned long long>(row.cell.direct_fallbacks),
                opt.huge_pages ? "THP-advised (as the DRAM tier's)" : "not THP-advised",
                FormatBytes(row.huge_bytes).c_str());
  }
  std::printf("raw io_uring O_DIRECT, GB/s by queue depth:\n");
  const auto print_depths = [](const char* what, const std::vector<double>(&cells)[kDepthCount]) {
    std::printf("  %-14s", what);
    for (std::size_t k = 0; k < kDepthCount; ++k) {
      std::printf(" qd%-2u %5.2f", kRawDepths[k], Median(cells[k]));
    }
  };
  for (const Row& row : rows) {
    std::printf("%8s ", FormatBytes(row.chunk).c_str());
    print_depths("write fresh", row.cell.raw_fresh);
    print_depths("| overwrite", row.cell.raw_over);
    print_depths("| random read", row.cell.raw_read);
    std::printf("\n");
  }
  // The best depth's median of a raw cell, and that depth.
  const auto best = [](const std::vector<double>(&cells)[kDepthCount]) {
    std::pair<double, unsigned> b{0, 0};
    for (std::size_t k = 0; k < kDepthCount; ++k) {
      if (Median(cells[k]) > b.first) b = {Median(cells[k]), kRawDepths[k]};
    }
    return b;
  };
  std::printf("%8s  %-30s %8s %14s %7s\n", "chunk", "log", "GB/s", "raw best GB/s", "log/raw");
  bool met = true;
  bool met_hashed = true;  // the same goals against the hashed raw I/O
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const Cell& c = rows[r].cell;
    const auto fresh = best(c.raw_fresh), over = best(c.raw_over), read = best(c.raw_read);
    const auto line = [&](const char* what, double log, std::pair<double, unsigned> raw,
                          bool goal) {
      std::printf("%8s  %-30s %8.2f %9.2f qd%-2u %6.2fx%s\n", FormatBytes(rows[r].chunk).c_str(),
                  what, log, raw.first, raw.second, log / raw.first,
                  goal ? (log / raw.first >= 0.9 ? "" : "  < 0.9x") : "  (no goal)");
      if (goal) met = met && log / raw.first >= 0.9;
    };
    line("append, one at a time (fresh)", Median(c.append), fresh, false);
    line("batched append (fresh)", Median(c.append_batch), fresh, true);
    line("batched append (recycled)", Median(c.append_recycled), over, true);
    // What the records' shape costs raw (a 4 KiB block before each chunk, one writev each),
    // and the log against it: its own work.
    for (const bool recycled : {false, true}) {
      const double split = Median(recycled ? c.raw_split_over : c.raw_split_fresh);
      const auto raw_best = recycled ? over : fresh;
      std::printf("%8s  %-30s %8.2f %9.2f qd%-2u %6.2fx  (the records' shape)\n",
                  FormatBytes(rows[r].chunk).c_str(),
                  recycled ? "raw writes as records, over" : "raw writes as records, fresh",
                  split, raw_best.first, raw_best.second, split / raw_best.first);
      std::printf("%8s  %-30s %8.2f %14s %6.2fx  (batched append / this: the log's own work)\n",
                  FormatBytes(rows[r].chunk).c_str(), "", split, "",
                  Median(recycled ? c.append_recycled : c.append_batch) / split);
    }
    // Raw I/O that hashes what it moves, as the log must: what a checksummed log could reach
    // here at best, and the log against it.
    const auto hashed_line = [&](const char* what, double hashed, std::pair<double, unsigned> raw,
                                 double log) {
      std::printf("%8s  %-30s %8.2f %9.2f qd%-2u %6.2fx  (each chunk XXH3-hashed at qd%u)\n",
                  FormatBytes(rows[r].chunk).c_str(), what, hashed, raw.first, raw.second,
                  hashed / raw.first, kRawDepths[kDepthCount - 1]);
      std::printf("%8s  %-30s %8.2f %14s %6.2fx%s\n", FormatBytes(rows[r].chunk).c_str(), "",
                  hashed, "", log / hashed,
                  log / hashed >= 0.9 ? "  (the log / this)" : "  (the log / this) < 0.9x");
      met_hashed = met_hashed && log / hashed >= 0.9;
    };
    hashed_line("raw writes hashed, fresh", Median(c.raw_hashed_fresh), fresh,
                Median(c.append_batch));
    hashed_line("raw writes hashed, over", Median(c.raw_hashed_over), over,
                Median(c.append_recycled));
    // The log at its best read cap, as the raw side at its best depth; and at the default.
    std::size_t best_cap = 0;
    for (std::size_t k = 1; k < kDepthCount; ++k) {
      if (Median(c.read[k]) > Median(c.read[best_cap])) best_cap = k;
    }
    const double log_read = Median(c.read[best_cap]);
    line(("batched read, " + ReadCapName(best_cap)).c_str(), log_read, read, true);
    hashed_line("raw reads hashed", Median(c.raw_hashed_read), read, log_read);
    const double read_default = Median(c.read[kReadCapDefault]);
    for (const std::size_t k : {kReadCapDefault, kReadCapNone}) {
      if (k == best_cap) continue;
      std::printf("%8s  %-30s %8.2f %9.2f qd%-2u %6.2fx  (no goal)\n",
                  FormatBytes(rows[r].chunk).c_str(), ("batched read, " + ReadCapName(k)).c_str(),
                  Median(c.read[k]), read.first, read.second, Median(c.read[k]) / read.first);
    }
    // What the gap is made of: the same reads done raw (their ratio: to the best raw depth),
    // and the log against them split as it reads (the log's own work).
    std::printf("%8s  %-30s %8.2f %9.2f qd%-2u %6.2fx  (its batches and header blocks)\n",
                FormatBytes(rows[r].chunk).c_str(), "raw reads of its records",
                Median(c.raw_as_log), read.first, read.second,
                Median(c.raw_as_log) / read.first);
    std::printf("%8s  %-30s %8.2f %9.2f qd%-2u %6.2fx  (the chunks alone, where the log put "
                "them)\n",
                FormatBytes(rows[r].chunk).c_str(), "  its data in place",
                Median(c.raw_data_in_place), read.first, read.second,
                Median(c.raw_data_in_place) / read.first);
    std::printf("%8s  %-30s %8.2f %14s %6.2fx  (default cap / this: the log's own work)\n",
                FormatBytes(rows[r].chunk).c_str(), "  the same, header apart",
                Median(c.raw_as_log_split), "", read_default / Median(c.raw_as_log_split));
    std::printf("%8s  %-30s %8.2f %14s %6.2fx  (default cap / this: the log against a checksummed "
                "read of the same bytes)\n",
                FormatBytes(rows[r].chunk).c_str(), "  the same, data hashed",
                Median(c.raw_as_log_hashed), "", read_default / Median(c.raw_as_log_hashed));
    // A device-bound read costs the thread little CPU; what the log adds to it (checks, hashing,
    // bookkeeping) shows here whether or not this run's device hid it.
    std::printf("%8s  CPU per GB read (this thread): log %.0f ms, split raw reads %.0f ms; wall "
                "per GB: log %.0f ms, split raw %.0f ms\n",
                "", Median(c.read_cpu_ms_per_gb), Median(c.raw_split_cpu_ms_per_gb),
                1e3 / read_default, 1e3 / Median(c.raw_as_log_split));
    // Likewise for writes: a raw write hands its work to the kernel (on ext4 into fresh space,
    // to io_uring's workers), the log also hashes every byte before its header goes out.
    std::printf("%8s  CPU per GB appended (this thread): log %.0f ms, raw writes as records %.0f "
                "ms\n",
                "", Median(c.append_cpu_ms_per_gb), Median(c.raw_split_append_cpu_ms_per_gb));
    std::printf("%8s  write amplification %.3f\n", "", c.write_amplification);
    if (fio[r].first > 0) {
      std::printf("%8s  fio: write into a new file %.2f GB/s (batched append, fresh: %.2fx), "
                  "random read %.2f GB/s (read, default cap: %.2fx)%s\n",
                  "", fio[r].first, Median(c.append_batch) / fio[r].first, fio[r].second,
                  read_default / fio[r].second, fio_pages_differ ? fio_pages_note : "");
    }
  }
  if (!fio_note.empty()) std::printf("fio: %s\n", fio_note.c_str());
  std::printf("goal: batched appends (fresh against raw fresh, recycled against raw overwrite) and "
              "reads >= 0.9x the best raw depth at both sizes: %s\n",
              met ? "met" : "NOT met");
  std::printf("the same against raw I/O that hashes each chunk it moves (XXH3, as the log "
              "checksums its records): %s\n",
              met_hashed ? "met" : "NOT met");
  std::printf(
      "(raw: one io_uring O_DIRECT write/read per chunk from/to aligned memory at queue depths "
      "1, 4, 16, 32, the best depth's median; read order shuffled, the same for both; the log's "
      "reads likewise at its best of read_bytes_in_flight = 1 and 4 records, the default and "
      "none)\n");
  return 0;
}
