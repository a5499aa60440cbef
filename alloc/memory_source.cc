// What is common to every memory source: names, descriptions, the volatile persistence
// primitives, and parsing of source specs.
#include "cxlkv/memory_source.h"

#include <cstring>

#include "util/format.h"

namespace cxlkv {

std::string_view MemoryKindName(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kDram: return "dram";
    case MemoryKind::kNumaNode: return "numa";
    case MemoryKind::kFile: return "file";
    case MemoryKind::kDevDax: return "devdax";
  }
  return "unknown";
}

std::string_view PersistGranularityName(PersistGranularity g) {
  switch (g) {
    case PersistGranularity::kNone: return "none";
    case PersistGranularity::kByte: return "byte";
    case PersistGranularity::kCacheLine: return "cache-line";
    case PersistGranularity::kPage: return "page";
  }
  return "unknown";
}

std::string RegionInfo::ToString() const {
  std::string out(MemoryKindName(kind));
  if (!path.empty()) out += " " + path;
  out += " page " + FormatBytes(page_size);
  if (transparent_huge_pages) out += " (THP)";
  out += " persist=" + std::string(PersistGranularityName(persistence));
  out += " node " + std::to_string(numa_node);
  return out;
}

// Volatile memory: a copy is a memcpy and there is nothing to flush.
void MemoryRegion::Flush(const void* /*addr*/, std::size_t /*len*/) const {}
void MemoryRegion::Drain() const {}
void MemoryRegion::CopyAndPersist(void* dst, const void* src, std::size_t len) const {
  std::memcpy(dst, src, len);
}
void MemoryRegion::CopyNoDrain(void* dst, const void* src, std::size_t len) const {
  std::memcpy(dst, src, len);
}

}  // namespace cxlkv
