#include "tests/test_util.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <unistd.h>

namespace cxlkv::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cxlkv-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  }
  path_ = tmpl;
}

TempDir::TempDir(const std::string& base) {
  std::string tmpl = base + "/cxlkv-test-XXXXXX";
  if (access(base.c_str(), W_OK) == 0 && mkdtemp(tmpl.data()) != nullptr) {
    path_ = tmpl;
    return;
  }
  const char* env = std::getenv("TMPDIR");
  tmpl = std::string(env && *env ? env : "/tmp") + "/cxlkv-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {
// splitmix64: a cheap, well-mixed sequence so every 8-byte word of a chunk differs.
std::uint64_t Mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

void FillPattern(void* dst, std::size_t len, std::uint64_t seed) {
  auto* out = static_cast<unsigned char*>(dst);
  for (std::size_t i = 0; i < len; i += 8) {
    const std::uint64_t word = Mix(seed ^ (i / 8));
    std::memcpy(out + i, &word, len - i < 8 ? len - i : 8);
  }
}

long long FirstPatternMismatch(const void* src, std::size_t len, std::uint64_t seed) {
  const auto* in = static_cast<const unsigned char*>(src);
  for (std::size_t i = 0; i < len; i += 8) {
    const std::uint64_t word = Mix(seed ^ (i / 8));
    const std::size_t n = len - i < 8 ? len - i : 8;
    if (std::memcmp(in + i, &word, n) != 0) {
      for (std::size_t j = 0; j < n; ++j) {
        if (in[i + j] != reinterpret_cast<const unsigned char*>(&word)[j]) {
          return static_cast<long long>(i + j);
        }
      }
    }
  }
  return -1;
}

std::string EnvDevDaxPath() {
  const char* v = std::getenv("CXLKV_TEST_DEVDAX");
  return v ? v : "";
}

int EnvNumaNode() {
  const char* v = std::getenv("CXLKV_TEST_NUMA_NODE");
  return v && *v ? std::atoi(v) : -1;
}

bool FailOnSkip() {
  const char* v = std::getenv("CXLKV_TEST_FAIL_ON_SKIP");
  return v && std::strcmp(v, "1") == 0;
}

}  // namespace cxlkv::testing
