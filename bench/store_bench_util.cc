// bench_store's shared helpers: errors, temporary directories, CSV, keys, buffers.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "bench/store_bench.h"

namespace cxlkv::bench {
namespace {

// Live temporary directories, so that Fail() can remove them before exiting. Only the main
// thread creates, removes or fails (worker threads hand their Status back).
std::vector<std::string>& LiveTempDirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) std::fprintf(stderr, "bench_store: cannot remove %s: %s\n", path.c_str(),
                       ec.message().c_str());
}

}  // namespace

void Fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "bench_store: %s\n", what.c_str());
  for (const std::string& d : LiveTempDirs()) RemoveTree(d);
  LiveTempDirs().clear();
  std::exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Fail(what + ": " + s.ToString());
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string Key(std::size_t i, std::size_t space) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "vllm@meta-llama/Llama-3.1-8B@1@%zu@%016llx%016zx", space % 10,
                static_cast<unsigned long long>(i) * 0x9e3779b97f4a7c15ULL, i);
  return buf;
}

std::size_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) {
    const int err = errno;
    Fail(std::string("cannot open /proc/self/status: ") + std::strerror(err));
  }
  char line[256];
  unsigned long long kib = 0;
  bool found = false;
  while (!found && std::fgets(line, sizeof(line), f) != nullptr) {
    found = std::sscanf(line, "VmRSS: %llu kB", &kib) == 1;
  }
  std::fclose(f);
  if (!found) Fail("/proc/self/status has no VmRSS line");
  return static_cast<std::size_t>(kib) * kKiB;
}

std::unique_ptr<MemoryRegion> DramBuffer(std::size_t bytes, const std::string& what) {
  auto source = MemorySource::Dram(DramOptions{HugePages::kTransparent, /*populate=*/true});
  return Unwrap(source->Map(bytes), "mapping a DRAM buffer for " + what);
}

TempDir::TempDir(const std::string& parent) {
  std::string tmpl = parent + "/cxlkv-bench-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    const int err = errno;
    Fail("cannot create a temporary directory under " + parent + ": " + std::strerror(err));
  }
  path_ = buf.data();
  LiveTempDirs().push_back(path_);
}

TempDir::~TempDir() {
  RemoveTree(path_);
  auto& dirs = LiveTempDirs();
  dirs.erase(std::remove(dirs.begin(), dirs.end(), path_), dirs.end());
}

void RemoveFile(const std::string& path) {
  if (std::remove(path.c_str()) != 0 && errno != ENOENT) {
    const int err = errno;
    Fail("cannot remove " + path + ": " + std::strerror(err));
  }
}

std::string SizeName(std::size_t bytes) {
  if (bytes >= kMiB && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "MiB";
  if (bytes >= kKiB && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + "KiB";
  return std::to_string(bytes) + "B";
}

Csv::Csv(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "w");
  if (f_ == nullptr) {
    const int err = errno;
    Fail("cannot create the CSV file " + path + ": " + std::strerror(err));
  }
  std::fprintf(f_, "section,threads,chunk_bytes,unit,ours,baseline,ratio,goal,met,note\n");
}

Csv::~Csv() {
  if (f_ != nullptr) std::fclose(f_);
}

void Csv::Add(const Row& r) {
  std::string baseline, ratio;
  if (r.baseline > 0) {
    char b[64];
    std::snprintf(b, sizeof(b), "%.4g", r.baseline);
    baseline = b;
    std::snprintf(b, sizeof(b), "%.4f", r.ours / r.baseline);
    ratio = b;
  }
  const char* met = r.met < 0 ? "" : r.met ? "yes" : "no";
  std::fprintf(f_, "%s,%d,%zu,%s,%.4g,%s,%s,%s,%s,%s\n", r.section.c_str(), r.threads,
               r.chunk_bytes, r.unit.c_str(), r.ours, baseline.c_str(), ratio.c_str(),
               r.goal.c_str(), met, r.note.c_str());
  std::fflush(f_);  // a later failure still leaves the rows measured so far
}

void Csv::Close() {
  if (f_ == nullptr) return;
  const bool write_error = std::ferror(f_) != 0;
  const int rc = std::fclose(f_);
  f_ = nullptr;
  if (write_error || rc != 0) Fail("writing the CSV file " + path_ + " failed");
}

}  // namespace cxlkv::bench
