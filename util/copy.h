// CopyBytes: the one place that copies chunk bytes, with a choice of how.
//
// kMemcpy is the C library's memcpy. (glibc on x86-64 switches to non-temporal stores by itself
// only above a threshold derived from the cache sizes; on the development VM, which reports a
// 480 MiB L3, it does not for any chunk size measured.) kNonTemporal copies with streaming
// stores (MOVNTDQ, or VMOVNTDQ where the CPU has AVX2) that bypass the caches, for large copies
// into memory that the copying thread will not read back soon: a chunk written to a CXL/NUMA,
// devdax or file tier, or demoted there. They neither evict the hot working set nor read the
// destination lines first (no read-for-ownership), which saves up to a third of the memory
// traffic of a write. Whether that wins depends on the memory behind the destination, so the
// store picks per tier kind by measurement (bench_store's copy table; docs/benchmarks.md).
//
// Both methods are correct for any alignment of dst and src and any n; the ranges must not
// overlap (as for memcpy). n == 0 is a no-op, and then dst and src may be null.
//
// Thread-safety: stateless; call from any thread. The non-temporal path ends with an SFENCE, so
// its stores are ordered before any store the calling thread makes afterwards (a flag that
// publishes the chunk, say) like ordinary stores are.
#pragma once

#include <cstddef>
#include <string_view>

#include "cxlkv/status.h"

namespace cxlkv {

enum class CopyMethod : unsigned char {
  kMemcpy,       // std::memcpy
  kNonTemporal,  // streaming stores from kNonTemporalMinBytes up, memcpy below
};

// Below this many bytes kNonTemporal uses memcpy (copy.cc says why).
inline constexpr std::size_t kNonTemporalMinBytes = std::size_t{256} << 10;

void CopyBytes(void* dst, const void* src, std::size_t n, CopyMethod method);

// The streaming-store copy itself, at every size (no threshold): for benchmarks and tests.
// Falls back to memcpy on targets without SSE2 streaming stores (non-x86).
void CopyNonTemporal(void* dst, const void* src, std::size_t n);

namespace internal {
// CopyNonTemporal with the SSE2 kernel even where AVX2 is there: lets tests cover both kernels.
void CopyNonTemporalSse2(void* dst, const void* src, std::size_t n);
}  // namespace internal

// "memcpy", "nt".
const char* CopyMethodName(CopyMethod method);
// Parses "memcpy" or "nt"; InvalidArgument naming the text and the accepted names otherwise.
Result<CopyMethod> ParseCopyMethod(std::string_view name);

// Whether this build and CPU stream with AVX2 (32-byte) stores rather than SSE2 (16-byte)
// ones; for reports. False on non-x86 targets.
bool NonTemporalUsesAvx2();

}  // namespace cxlkv
