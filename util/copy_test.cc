#include "util/copy.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace cxlkv {
namespace {

constexpr std::size_t kGuard = 128;  // a multiple of 64: keeps the offsets below exact mod 64
constexpr unsigned char kFill = 0xA5;

// A buffer whose usable start is 64-byte aligned, so `base() + kGuard + off` sits at exactly
// `off` bytes past a cache-line boundary.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(std::size_t size) : storage_(size + 64) {
    const auto addr = reinterpret_cast<std::uintptr_t>(storage_.data());
    base_ = storage_.data() + (64 - addr % 64) % 64;
  }
  unsigned char* base() { return base_; }

 private:
  std::vector<unsigned char> storage_;
  unsigned char* base_;
};

using CopyFn = void (*)(void*, const void*, std::size_t);

struct Method {
  const char* name;
  CopyFn fn;
};

const std::vector<Method>& Methods() {
  static const std::vector<Method> methods = {
      {"CopyBytes(memcpy)",
       [](void* d, const void* s, std::size_t n) { CopyBytes(d, s, n, CopyMethod::kMemcpy); }},
      {"CopyBytes(nt)",
       [](void* d, const void* s, std::size_t n) {
         CopyBytes(d, s, n, CopyMethod::kNonTemporal);
       }},
      {"CopyNonTemporal", CopyNonTemporal},
      {"CopyNonTemporalSse2", internal::CopyNonTemporalSse2},
  };
  return methods;
}

std::vector<std::size_t> Sizes() {
  constexpr std::size_t t = kNonTemporalMinBytes;
  return {0,         1,         2,          3,          7,         8,        15,
          16,        17,        31,         32,         33,        63,       64,
          65,        127,       128,        129,        191,       255,      256,
          4095,      4096,      4097,       65536 + 5,  t - 1,     t,        t + 1,
          t + 63,    t + 65,    (1u << 20) + 3, 2u << 20, (5u << 20) + 37};
}

constexpr std::size_t kOffsets[] = {0, 1, 5, 17, 32, 63};

// Copies n bytes from src+src_off to dst+dst_off (offsets past a line boundary) and checks the
// copy against the source and the guard bytes on both sides of the destination.
void CheckCopy(const Method& m, std::size_t n, std::size_t src_off, std::size_t dst_off,
               AlignedBuffer& src_buf, AlignedBuffer& dst_buf) {
  SCOPED_TRACE(std::string(m.name) + " n=" + std::to_string(n) + " src_off=" +
               std::to_string(src_off) + " dst_off=" + std::to_string(dst_off));
  unsigned char* src = src_buf.base() + kGuard + src_off;
  testing::FillPattern(src, n, n * 131 + src_off * 7 + dst_off);
  unsigned char* dst_region = dst_buf.base();
  const std::size_t region = kGuard + dst_off + n + kGuard;
  std::memset(dst_region, kFill, region);
  unsigned char* dst = dst_region + kGuard + dst_off;

  m.fn(dst, src, n);

  ASSERT_EQ(std::memcmp(dst, src, n), 0) << "copied bytes differ from the source";
  for (std::size_t i = 0; i < kGuard + dst_off; ++i) {
    ASSERT_EQ(dst_region[i], kFill) << "byte " << (kGuard + dst_off - i) << " before dst written";
  }
  for (std::size_t i = kGuard + dst_off + n; i < region; ++i) {
    ASSERT_EQ(dst_region[i], kFill) << "byte " << (i - (kGuard + dst_off + n))
                                    << " after dst written";
  }
}

TEST(CopyTest, EveryMethodSizeAndAlignmentMatchesTheSource) {
  const std::size_t max = (5u << 20) + 37;
  AlignedBuffer src(max + 2 * kGuard + 64);
  AlignedBuffer dst(max + 2 * kGuard + 64);
  for (const Method& m : Methods()) {
    for (std::size_t n : Sizes()) {
      for (std::size_t src_off : kOffsets) {
        for (std::size_t dst_off : kOffsets) {
          CheckCopy(m, n, src_off, dst_off, src, dst);
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(CopyTest, ZeroBytesAcceptNullPointers) {
  CopyBytes(nullptr, nullptr, 0, CopyMethod::kMemcpy);
  CopyBytes(nullptr, nullptr, 0, CopyMethod::kNonTemporal);
  CopyNonTemporal(nullptr, nullptr, 0);
  internal::CopyNonTemporalSse2(nullptr, nullptr, 0);
}

TEST(CopyTest, NamesRoundTrip) {
  for (CopyMethod m : {CopyMethod::kMemcpy, CopyMethod::kNonTemporal}) {
    Result<CopyMethod> parsed = ParseCopyMethod(CopyMethodName(m));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_STREQ(CopyMethodName(CopyMethod::kMemcpy), "memcpy");
  EXPECT_STREQ(CopyMethodName(CopyMethod::kNonTemporal), "nt");
}

TEST(CopyTest, ParseRejectsUnknownNames) {
  for (const char* bad : {"", "NT", "memcpy ", "non-temporal", "avx2"}) {
    Result<CopyMethod> r = ParseCopyMethod(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(r.status().IsInvalidArgument()) << bad;
    EXPECT_NE(r.status().message().find("'" + std::string(bad) + "'"), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find("memcpy or nt"), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace cxlkv
