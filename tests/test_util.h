// Fixtures shared by the test suites: temporary directories and deterministic data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cxlkv::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  // Under `base` (e.g. /dev/shm) when it is a writable directory, else as TempDir().
  explicit TempDir(const std::string& base);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Fills dst with bytes derived from `seed`; CheckPattern finds the first mismatch (or -1).
void FillPattern(void* dst, std::size_t len, std::uint64_t seed);
long long FirstPatternMismatch(const void* src, std::size_t len, std::uint64_t seed);

// Set when the environment names real hardware to test (UMF-style):
// CXLKV_TEST_DEVDAX=/dev/dax0.0, CXLKV_TEST_NUMA_NODE=1. Empty / -1 when unset.
std::string EnvDevDaxPath();
int EnvNumaNode();
// CXLKV_TEST_FAIL_ON_SKIP=1 turns a hardware skip into a failure (for CI that has the device).
bool FailOnSkip();

}  // namespace cxlkv::testing

// Skips the test with a one-line reason, or fails it where CXLKV_TEST_FAIL_ON_SKIP=1.
#define CXLKV_SKIP_NO_HARDWARE(reason)                                  \
  do {                                                                  \
    if (::cxlkv::testing::FailOnSkip()) {                               \
      FAIL() << "hardware required (CXLKV_TEST_FAIL_ON_SKIP=1): " << (reason); \
    }                                                                   \
    GTEST_SKIP() << (reason);                                           \
  } while (0)
