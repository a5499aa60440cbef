// CPUs, threads and the monotonic clock: the one place that asks the kernel which CPUs this
// process may run on, pins or names a thread, or reads CLOCK_MONOTONIC for the emulator's and
// prefetcher's timing.
//
// Thread-safety: the functions are thread-safe.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace cxlkv {

// The CPUs in this process's affinity mask, ascending; empty if the kernel will not say.
std::vector<int> AllowedCpus();

// Pins the calling thread to `cpu`; false when the kernel refuses.
bool PinThisThread(int cpu);

// Names the calling thread (as `top -H`, `perf` and /proc/<pid>/task/*/comm show it): the first
// 15 bytes of `name`. Best effort: a refusal leaves the name the thread had.
void NameThisThread(std::string_view name);

// CLOCK_MONOTONIC in nanoseconds (a vDSO read, ~20 ns here).
std::uint64_t MonotonicNs();

// CPU time in seconds (user and system) of the calling thread, and of the whole process: what
// the benchmarks charge per byte. 0 where the kernel refuses the clock (it does not on Linux).
double ThreadCpuSeconds();
double ProcessCpuSeconds();

}  // namespace cxlkv
