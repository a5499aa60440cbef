#include "util/copy.h"

#include <cstdint>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define CXLKV_COPY_X86 1
#else
#define CXLKV_COPY_X86 0
#endif

namespace cxlkv {
namespace {

// Why kNonTemporal copies below kNonTemporalMinBytes with memcpy:
//  - A small chunk fits in the caches and is the likeliest to be read again soon (a Get right
//    after the Put, a partial tail chunk of the prompt being extended); streaming stores push it
//    out to memory and that read then misses. bench_store's copy table never rereads what it
//    wrote, so it cannot show this cost: there, streaming wins at 128 KiB too (1.15x memcpy on
//    the development VM).
//  - The SFENCE and the head/tail handling are a fixed cost that a copy of a few KiB does not
//    amortise.
// 256 KiB keeps the CXL-SSD study's 128 KiB chunks, tails and anything smaller on memcpy while
// 2 MiB and larger chunks stream. A caller that knows better calls CopyNonTemporal directly.

constexpr std::size_t kLine = 64;  // streaming stores fill whole lines: align dst to one

#if CXLKV_COPY_X86
// dst is 64-byte aligned and n a multiple of 64. Loads are unaligned (src may be anywhere).
void StreamSse2(std::byte* dst, const std::byte* src, std::size_t n) {
  for (std::size_t i = 0; i < n; i += kLine) {
    const auto* s = reinterpret_cast<const __m128i*>(src + i);
    auto* d = reinterpret_cast<__m128i*>(dst + i);
    const __m128i a = _mm_loadu_si128(s);
    const __m128i b = _mm_loadu_si128(s + 1);
    const __m128i c = _mm_loadu_si128(s + 2);
    const __m128i e = _mm_loadu_si128(s + 3);
    _mm_stream_si128(d, a);
    _mm_stream_si128(d + 1, b);
    _mm_stream_si128(d + 2, c);
    _mm_stream_si128(d + 3, e);
  }
}

// The same with 32-byte stores: two lines per iteration, then a last line when n/64 is odd.
__attribute__((target("avx2"))) void StreamAvx2(std::byte* dst, const std::byte* src,
                                               std::size_t n) {
  std::size_t i = 0;
  for (; i + 2 * kLine <= n; i += 2 * kLine) {
    const auto* s = reinterpret_cast<const __m256i*>(src + i);
    auto* d = reinterpret_cast<__m256i*>(dst + i);
    const __m256i a = _mm256_loadu_si256(s);
    const __m256i b = _mm256_loadu_si256(s + 1);
    const __m256i c = _mm256_loadu_si256(s + 2);
    const __m256i e = _mm256_loadu_si256(s + 3);
    _mm256_stream_si256(d, a);
    _mm256_stream_si256(d + 1, b);
    _mm256_stream_si256(d + 2, c);
    _mm256_stream_si256(d + 3, e);
  }
  if (i < n) {  // one line left
    const auto* s = reinterpret_cast<const __m256i*>(src + i);
    auto* d = reinterpret_cast<__m256i*>(dst + i);
    const __m256i a = _mm256_loadu_si256(s);
    const __m256i b = _mm256_loadu_si256(s + 1);
    _mm256_stream_si256(d, a);
    _mm256_stream_si256(d + 1, b);
  }
}

bool HasAvx2() {
  // Evaluated once, on first use. __builtin_cpu_init makes the check safe even from a static
  // initialiser that runs before libgcc's own.
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}
#endif

}  // namespace

#if CXLKV_COPY_X86
namespace {

using StreamFn = void (*)(std::byte*, const std::byte*, std::size_t);

// Head and tail with memcpy, the whole lines in between with `stream`, then the fence.
void CopyAround(void* dst, const void* src, std::size_t n, StreamFn stream) {
  if (n == 0) return;
  auto* d = static_cast<std::byte*>(dst);
  const auto* s = static_cast<const std::byte*>(src);
  // Head: up to the first line boundary of dst, with memcpy (ordinary stores to a partial
  // line; a partly streamed line leaves the write-combining buffer as several partial writes).
  const auto addr = reinterpret_cast<std::uintptr_t>(d);
  std::size_t head = (kLine - addr % kLine) % kLine;
  if (head > n) head = n;
  if (head != 0) std::memcpy(d, s, head);
  d += head;
  s += head;
  n -= head;
  const std::size_t body = n - n % kLine;
  if (body != 0) stream(d, s, body);
  // Tail: the last partial line.
  if (n != body) std::memcpy(d + body, s + body, n - body);
  // Streaming stores are weakly ordered: fence so that they are globally visible before any
  // later store of this thread (the caller publishing the chunk).
  _mm_sfence();
}

}  // namespace
#endif

void CopyNonTemporal(void* dst, const void* src, std::size_t n) {
#if CXLKV_COPY_X86
  CopyAround(dst, src, n, HasAvx2() ? StreamAvx2 : StreamSse2);
#else
  if (n != 0) std::memcpy(dst, src, n);
#endif
}

namespace internal {
void CopyNonTemporalSse2(void* dst, const void* src, std::size_t n) {
#if CXLKV_COPY_X86
  CopyAround(dst, src, n, StreamSse2);
#else
  if (n != 0) std::memcpy(dst, src, n);
#endif
}
}  // namespace internal

void CopyBytes(void* dst, const void* src, std::size_t n, CopyMethod method) {
  if (n == 0) return;  // memcpy with a null pointer is undefined even for 0 bytes
  if (method == CopyMethod::kNonTemporal && n >= kNonTemporalMinBytes) {
    CopyNonTemporal(dst, src, n);
    return;
  }
  std::memcpy(dst, src, n);
}

bool NonTemporalUsesAvx2() {
#if CXLKV_COPY_X86
  return HasAvx2();
#else
  return false;
#endif
}

const char* CopyMethodName(CopyMethod method) {
  switch (method) {
    case CopyMethod::kMemcpy: return "memcpy";
    case CopyMethod::kNonTemporal: return "nt";
  }
  return "unknown";
}

Result<CopyMethod> ParseCopyMethod(std::string_view name) {
  if (name == "memcpy") return CopyMethod::kMemcpy;
  if (name == "nt") return CopyMethod::kNonTemporal;
  return Status::InvalidArgument("unknown copy method '" + std::string(name) +
                                 "' (expected memcpy or nt)");
}

}  // namespace cxlkv
