// Shared pieces of bench_store: options, error exits, timing, temporary directories and the
// report (terminal lines are printed by each section; every measurement is also one CSV row).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/status.h"

namespace cxlkv::bench {

using Clock = std::chrono::steady_clock;
inline constexpr std::size_t kKiB = 1024;
inline constexpr std::size_t kMiB = kKiB * kKiB;

inline double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Options {
  bool quick = false;
  int repeats = 3;                         // repetitions per cell; the median is reported
  std::size_t total = 512 * kMiB;          // put/get: bytes of distinct chunks per size
  std::size_t fixed_chunks = 50000;        // fixed cost: 64-byte chunks
  std::size_t index_chunks = 1000000;      // fixed cost, index at scale: 64-byte chunks
  std::size_t demote_chunks = 128;         // demotion: 2 MiB chunks put, then demoted
  std::size_t copy_region = 256 * kMiB;    // copy table: bytes copied per cell
  std::size_t persist_region = 64 * kMiB;  // copy table: bytes per cell for persisting copies
  int numa_node = 0;                       // copy table: the NUMA kind's node
  std::string devdax;                      // copy table: a /dev/dax path, when given
  std::string csv = "bench_store.csv";
  std::string dir;                         // parent of temporary directories; $TMPDIR or /tmp
};

// Prints "bench_store: <what>" to stderr, removes the temporary directories and exits 1.
[[noreturn]] void Fail(const std::string& what);
void Check(const Status& s, const std::string& what);
template <typename T>
T Unwrap(Result<T> r, const std::string& what) {
  Check(r.status(), what);
  return std::move(r).value();
}

double Median(std::vector<double> v);

// An LMCache-style key (74 bytes), distinct per (i, space).
std::string Key(std::size_t i, std::size_t space = 0);

// The process's resident set (VmRSS of /proc/self/status), in bytes.
std::size_t ResidentBytes();

// A pre-faulted DRAM buffer (THP where the kernel allows), for sources and destinations.
std::unique_ptr<MemoryRegion> DramBuffer(std::size_t bytes, const std::string& what);

// A fresh directory under Options::dir, removed with its files by the destructor and by Fail.
class TempDir {
 public:
  explicit TempDir(const std::string& parent);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};
void RemoveFile(const std::string& path);  // Fail()s unless removed or already absent

// One measurement: a CSV row. `baseline` <= 0 means none (ratio left empty). `met` is -1 where
// there is no goal, else 0 or 1.
struct Row {
  std::string section;
  int threads = 1;
  std::size_t chunk_bytes = 0;
  std::string unit;        // "GB/s", "ns/op", "M/s", "B/chunk", "x"
  double ours = 0;
  double baseline = 0;
  std::string goal;        // ">=0.90x", "<1000", "" when none
  int met = -1;
  std::string note;        // free text without commas
};

class Csv {
 public:
  explicit Csv(const std::string& path);  // Fail()s when the file cannot be created
  ~Csv();
  Csv(const Csv&) = delete;
  Csv& operator=(const Csv&) = delete;
  void Add(const Row& row);
  void Close();  // Fail()s when a write failed
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

inline const char* MetText(int met) { return met < 0 ? "" : met ? "met" : "NOT met"; }
std::string SizeName(std::size_t bytes);  // "128KiB", "2MiB", "64B"

// Sections, each in its own file.
void RunPutGet(const Options& o, Csv& csv);         // store_bench.cc
void RunBatchGet(const Options& o, Csv& csv);       // store_bench_batch.cc
void RunFixedCost(const Options& o, Csv& csv);      // store_bench.cc
void RunDemotion(const Options& o, Csv& csv);       // store_bench_demote.cc
void RunCopyMethods(const Options& o, Csv& csv);    // store_bench_copy.cc

}  // namespace cxlkv::bench
