// Small text helpers shared by the library, the CLI and the benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv {

// "512 B", "4.0 KiB", "1.5 GiB": binary units, one decimal.
std::string FormatBytes(std::uint64_t bytes);

// Parses "4096", "64K", "64KiB", "2M", "1.5G", "1GiB" (binary units, case-insensitive, an
// optional trailing "B"). InvalidArgument naming the text when it is not a size or overflows.
Result<std::uint64_t> ParseBytes(std::string_view text);

// Sorted ids as ranges, the form sysfs and numactl use: {0,1,2,3,8,10,11} -> "0-3,8,10-11";
// "" for none.
std::string FormatRangeList(const std::vector<int>& sorted_ids);

inline bool IsPowerOfTwo(std::uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }
inline std::uint64_t AlignUp(std::uint64_t x, std::uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;
}

}  // namespace cxlkv
