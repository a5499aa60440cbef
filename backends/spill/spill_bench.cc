// bench_spill: the spill log's appends and batched reads against raw O_DIRECT pwrite/pread
// loops of the same bytes on the same file, measured in the same run.
//
// For each chunk size (2 MiB, 128 KiB) and each of --repeats rounds, on one file:
//   raw write   ftruncate + fallocate, then one pwrite per chunk, back to back (O_DIRECT, from
//               4 KiB-aligned sources: no copy, no checksum)
//   raw read    one pread per chunk, in a shuffled order (O_DIRECT, into an aligned buffer)
//   append      SegmentLog opened with `format` on the same file (so it starts empty), one
//               Append per chunk (copy into registered staging, XXH3, io_uring, 4 KiB padding,
//               segment headers and summaries)
//   read        ReadBatch of --batch chunks at a time in the same shuffled order (io_uring at
//               the log's queue depth, checksum and key verified, copied out)
// Each cell is the median of the rounds. Ratios are log/raw. Neither side calls fdatasync:
// both measure what reaches the device with O_DIRECT.
//
// Usage: bench_spill [--dir DIR] [--mib N] [--repeats N] [--batch N] [--segment-mib N]
//                    [--queue-depth N] [--io-kib N] [--no-uring 1]
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
#include "util/format.h"

namespace {

using cxlkv::FormatBytes;
using cxlkv::internal::ChunkRead;
using cxlkv::internal::SegmentLog;
using cxlkv::internal::SegmentLogOptions;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kSources = 8;  // distinct source buffers, cycled

struct Options {
  std::string dir;
  std::size_t mib = 256;  // bytes of chunks per size
  int repeats = 3;
  std::size_t batch = 32;
  std::size_t segment_mib = 64;
  unsigned queue_depth = 32;
  std::size_t io_kib = 256;
  bool use_io_uring = true;
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

struct Cell {
  std::vector<double> raw_write, raw_read, append, read;  // GB/s per round
  double write_amplification = 0;
  std::string io_mode;
};

void RawRound(const std::string& path, std::size_t chunk, std::size_t n,
              const std::vector<AlignedBytes>& sources, const std::vector<std::size_t>& order,
              Cell* cell) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  if (fd < 0) Fail("open " + path + " O_DIRECT: " + std::strerror(errno));
  if (ftruncate(fd, 0) != 0 || fallocate(fd, 0, 0, static_cast<off_t>(chunk * n)) != 0) {
    Fail("preparing " + path + ": " + std::strerror(errno));
  }
  const double gb = static_cast<double>(chunk * n) / 1e9;
  auto start = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    if (pwrite(fd, sources[i % kSources].get(), chunk, static_cast<off_t>(i * chunk)) !=
        static_cast<ssize_t>(chunk)) {
      Fail("raw pwrite: " + std::string(std::strerror(errno)));
    }
  }
  cell->raw_write.push_back(gb / Seconds(start));
  AlignedBytes dst = Aligned(chunk);
  start = Clock::now();
  for (std::size_t i : order) {
    if (pread(fd, dst.get(), chunk, static_cast<off_t>(i * chunk)) != static_cast<ssize_t>(chunk)) {
      Fail("raw pread: " + std::string(std::strerror(errno)));
    }
  }
  cell->raw_read.push_back(gb / Seconds(start));
  if (close(fd) != 0) Fail("close " + path);
}

void LogRound(const Options& opt, const std::string& path, std::size_t chunk, std::size_t n,
              const std::vector<AlignedBytes>& sources, const std::vector<std::size_t>& order,
              Cell* cell) {
  SegmentLogOptions o;
  o.path = path;
  o.segment_size = opt.segment_mib * kMiB;
  // Enough segments for every chunk with its padding and the summaries, plus one.
  o.capacity = cxlkv::internal::spill::kDataOffset +
               (chunk * n / o.segment_size + 2 + n / 64) * o.segment_size;
  o.queue_depth = opt.queue_depth;
  o.io_size = static_cast<std::uint32_t>(opt.io_kib * kKiB);
  o.format = true;
  o.use_io_uring = opt.use_io_uring;
  auto log_or = SegmentLog::Open(o);
  Check(log_or.status(), "opening the log on " + path);
  SegmentLog& log = **log_or;

  std::vector<std::string> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    keys[i] = "vllm@llama-3.1-8b@1@0@" + std::to_string(i) + "@" + std::string(40, 'h');
  }
  std::vector<std::uint64_t> locs(n);
  const double gb = static_cast<double>(chunk * n) / 1e9;
  auto start = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    auto loc = log.Append(keys[i], std::span<const std::byte>(sources[i % kSources].get(), chunk));
    Check(loc.status(), "append " + std::to_string(i));
    locs[i] = *loc;
  }
  cell->append.push_back(gb / Seconds(start));

  const std::size_t batch = std::max<std::size_t>(1, opt.batch);
  std::vector<AlignedBytes> dst;
  for (std::size_t k = 0; k < batch; ++k) dst.push_back(Aligned(chunk));
  std::vector<ChunkRead> reads(batch);
  start = Clock::now();
  for (std::size_t first = 0; first < n; first += batch) {
    const std::size_t m = std::min(batch, n - first);
    for (std::size_t k = 0; k < m; ++k) {
      const std::size_t i = order[first + k];
      reads[k] = ChunkRead{};
      reads[k].location = locs[i];
      reads[k].key = keys[i];
      reads[k].dst = std::span<std::byte>(dst[k].get(), chunk);
    }
    Check(log.ReadBatch(std::span(reads).first(m)), "read batch");
  }
  cell->read.push_back(gb / Seconds(start));
  // The last round's reads verify content against a source.
  if (std::memcmp(dst[0].get(), sources[order[(n - 1) / batch * batch] % kSources].get(), chunk) !=
      0) {
    Fail("read back wrong bytes");
  }
  const auto st = log.GetStats();
  cell->write_amplification = st.write_amplification();
  cell->io_mode = std::string(st.direct_io ? "O_DIRECT" : "buffered") + ", " +
                  (st.io_uring ? "io_uring" : "pread/pwrite") +
                  (st.fixed_buffers ? ", fixed buffers" : "") +
                  (st.fixed_file ? ", fixed file" : "");
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
    else if (arg == "--segment-mib")
      opt.segment_mib = num();
    else if (arg == "--queue-depth")
      opt.queue_depth = static_cast<unsigned>(num());
    else if (arg == "--io-kib")
      opt.io_kib = num();
    else if (arg == "--no-uring")
      opt.use_io_uring = num() == 0;
    else
      Fail("unknown option " + arg);
  }
  if (opt.repeats < 1 || opt.mib == 0) Fail("--repeats and --mib must be positive");

  std::string dir = opt.dir + "/cxlkv-spill-bench-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) Fail("mkdtemp " + dir + ": " + std::strerror(errno));
  const std::string path = dir + "/spill.log";

  std::printf("bench_spill: %s (%s), %zu MiB of chunks per size, median of %d rounds\n",
              dir.c_str(), FsName(opt.dir).c_str(), opt.mib, opt.repeats);
  std::printf(
      "log: segments of %zu MiB, queue depth %u, I/O size %zu KiB, reads in batches of %zu\n",
      opt.segment_mib, opt.queue_depth, opt.io_kib, opt.batch);

  struct Row {
    std::size_t chunk;
    Cell cell;
  };
  std::vector<Row> rows;
  for (std::size_t chunk : {2 * kMiB, 128 * kKiB}) {
    const std::size_t n = opt.mib * kMiB / chunk;
    std::vector<AlignedBytes> sources;
    std::mt19937_64 rng(chunk);
    for (std::size_t s = 0; s < kSources; ++s) {
      sources.push_back(Aligned(chunk));
      auto* words = reinterpret_cast<std::uint64_t*>(sources.back().get());
      for (std::size_t w = 0; w < chunk / 8; ++w) words[w] = rng();
    }
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    Row row{chunk, {}};
    for (int r = 0; r < opt.repeats; ++r) {
      RawRound(path, chunk, n, sources, order, &row.cell);
      LogRound(opt, path, chunk, n, sources, order, &row.cell);
    }
    rows.push_back(std::move(row));
  }
  if (unlink(path.c_str()) != 0 || rmdir(dir.c_str()) != 0) {
    std::fprintf(stderr, "bench_spill: removing %s: %s\n", dir.c_str(), std::strerror(errno));
  }

  std::printf("I/O: %s\n", rows.front().cell.io_mode.c_str());
  std::printf("%8s %12s %12s %10s %12s %12s %10s %8s\n", "chunk", "append GB/s", "pwrite GB/s",
              "append/raw", "read GB/s", "pread GB/s", "read/raw", "WA");
  for (const Row& row : rows) {
    const Cell& c = row.cell;
    const double a = Median(c.append), w = Median(c.raw_write);
    const double rd = Median(c.read), pr = Median(c.raw_read);
    std::printf("%8s %12.2f %12.2f %9.2fx %12.2f %12.2f %9.2fx %8.3f\n",
                FormatBytes(row.chunk).c_str(), a, w, a / w, rd, pr, rd / pr,
                c.write_amplification);
  }
  std::printf(
      "(raw: one synchronous O_DIRECT pwrite/pread per chunk from/to aligned memory; "
      "read order shuffled, the same for both)\n");
  return 0;
}
