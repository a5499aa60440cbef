#include "backends/gpu/host_ranges.h"

#include <algorithm>
#include <string>

#include "util/format.h"

namespace cxlkv::internal {

Result<std::vector<HostPiece>> PlanRegistration(std::byte* base, std::size_t size,
                                                std::size_t max_piece, std::size_t page) {
  if (page == 0 || (page & (page - 1)) != 0) {
    return Status::InvalidArgument("page size " + std::to_string(page) +
                                   " is not a power of two");
  }
  if (size == 0) return Status::InvalidArgument("cannot register an empty region");
  if (max_piece < page) {
    return Status::InvalidArgument("registration piece of " + FormatBytes(max_piece) +
                                   " is smaller than a page of " + FormatBytes(page));
  }
  const std::size_t piece = max_piece / page * page;
  const std::uintptr_t begin = reinterpret_cast<std::uintptr_t>(base) / page * page;
  const std::uintptr_t end =
      (reinterpret_cast<std::uintptr_t>(base) + size + page - 1) / page * page;
  std::vector<HostPiece> pieces;
  for (std::uintptr_t p = begin; p < end; p += piece) {
    pieces.push_back({reinterpret_cast<std::byte*>(p), std::min<std::size_t>(piece, end - p)});
  }
  return pieces;
}

void HostRangeMap::Add(const HostPiece& piece, bool registered) {
  const auto begin = reinterpret_cast<std::uintptr_t>(piece.base);
  entries_.push_back({begin, begin + piece.size, registered});
}

void HostRangeMap::Finish() {
  std::sort(entries_.begin(), entries_.end(),
            [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
}

std::vector<HostSegment> HostRangeMap::Split(const std::byte* p, std::size_t len) const {
  std::vector<HostSegment> out;
  const auto start = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t stop = start + len;
  auto emit = [&out](std::size_t offset, std::size_t length, bool registered) {
    if (length == 0) return;
    // Staged neighbours merge (the staging copy does not care where pieces end); registered
    // ones do not (one DMA must stay within one registration).
    if (!registered && !out.empty() && !out.back().registered &&
        out.back().offset + out.back().length == offset) {
      out.back().length += length;
      return;
    }
    out.push_back({offset, length, registered});
  };
  // The first piece that ends after start.
  auto it = std::upper_bound(entries_.begin(), entries_.end(), start,
                             [](std::uintptr_t a, const Entry& e) { return a < e.end; });
  std::uintptr_t at = start;
  for (; at < stop && it != entries_.end(); ++it) {
    if (it->begin >= stop) break;
    if (it->begin > at) {  // a gap before this piece: not registered
      emit(at - start, it->begin - at, false);
      at = it->begin;
    }
    const std::uintptr_t end = std::min(stop, it->end);
    emit(at - start, end - at, it->registered);
    at = end;
  }
  emit(at - start, stop - at, false);
  return out;
}

}  // namespace cxlkv::internal
