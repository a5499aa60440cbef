// What is common to every memory source: names, descriptions, the volatile persistence
// primitives, and parsing of source specs.
#include "cxlkv/memory_source.h"

#include <charconv>
#include <memory>
#include <string>
#include <utility>
#include <cstring>

#include "util/format.h"

namespace cxlkv {

std::string_view MemoryKindName(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kDram: return "dram";
    case MemoryKind::kNumaNode: return "numa";
    case MemoryKind::kFile: return "file";
    case MemoryKind::kDevDax: return "devdax";
    case MemoryKind::kEmulatedCxlSsd: return "cxlssd";
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
  if (transparent_huge_pages) out += " (THP advised)";
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

namespace {

constexpr const char* kSpecForms = "dram, numa:N, file:PATH or devdax:PATH";

Status BadSpec(std::string_view spec, std::string_view why) {
  return Status::InvalidArgument("memory source '" + std::string(spec) + "': " +
                                 std::string(why) + " (expected " + kSpecForms + ")");
}

}  // namespace

Result<std::unique_ptr<MemorySource>> MemorySource::Parse(std::string_view spec) {
  if (spec == "dram") return Dram();
  const std::size_t colon = spec.find(':');
  if (colon == std::string_view::npos) {
    return BadSpec(spec, spec.empty() ? "empty spec" : "unknown kind");
  }
  const std::string_view kind = spec.substr(0, colon);
  const std::string_view arg = spec.substr(colon + 1);
  if (kind == "numa") {
    int node = -1;
    const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), node);
    if (arg.empty() || ec != std::errc() || end != arg.data() + arg.size() || node < 0) {
      return BadSpec(spec, "the NUMA node must be a number >= 0");
    }
    NumaOptions options;
    options.node = node;
    return NumaNode(options);
  }
  if (kind == "file" || kind == "devdax") {
    if (arg.empty()) return BadSpec(spec, "the path is empty");
    if (kind == "file") {
      FileOptions options;
      options.path = std::string(arg);
      return File(std::move(options));
    }
    DevDaxOptions options;
    options.path = std::string(arg);
    return DevDax(std::move(options));
  }
  if (kind == "dram") return BadSpec(spec, "dram takes no argument");
  return BadSpec(spec, "unknown kind '" + std::string(kind) + "'");
}

}  // namespace cxlkv
