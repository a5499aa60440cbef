#include "tools/cxlkv/demo_report.h"

#include <cstdio>
#include <string>

#include "tools/cxlkv/demo_workload.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

std::string Printf(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

std::string Percent(double fraction) { return Printf("%.1f%%", fraction * 100.0); }

// "6.12 GB/s (0.61x memcpy)", or "-" when the tier saw no such copy.
std::string Throughput(std::uint64_t bytes, double seconds, double memcpy_gbps) {
  const double gbps = GigabytesPerSecond(bytes, seconds);
  if (gbps <= 0) return "-";
  std::string out = Printf("%.2f GB/s", gbps);
  if (memcpy_gbps > 0) out += Printf(" (%.2fx memcpy)", gbps / memcpy_gbps);
  return out;
}

double Ratio(double gbps, double memcpy_gbps) { return memcpy_gbps > 0 ? gbps / memcpy_gbps : 0; }

std::size_t SlabsUsed(const SlabAllocatorStats& stats) {
  return stats.slabs_total - stats.slabs_free;
}

// Free slots inside slabs that size classes hold: room only chunks of those classes can use.
std::uint64_t FreeInUsedSlabs(const SlabAllocatorStats& stats) {
  std::uint64_t bytes = 0;
  for (const SizeClassStats& c : stats.classes) bytes += c.bytes_free;
  return bytes;
}

}  // namespace

double GigabytesPerSecond(std::uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0;
}

std::string FormatDemoReport(const DemoReport& r) {
  std::string out;
  out += "cxlkv demo: model " + r.model + " (" + FormatBytes(r.bytes_per_token) +
         "/token, " + FormatBytes(r.full_chunk_bytes) + " per " + std::to_string(kChunkTokens) +
         "-token chunk), seed " +
         std::to_string(r.seed) + "\n";
  const double mean_prompt =
      r.requests > 0 ? static_cast<double>(r.total_prompt_tokens) / static_cast<double>(r.requests)
                     : 0;
  out += "workload: " + std::to_string(r.requests) + " chat requests, prompts " +
         std::to_string(r.min_prompt_tokens) + ".." + std::to_string(r.max_prompt_tokens) +
         " tokens (mean " + Printf("%.0f", mean_prompt) + "), " + std::to_string(r.chunks) +
         " chunks\n\n";

  for (std::size_t i = 0; i < r.tiers.size(); ++i) {
    const TierReport& t = r.tiers[i];
    out += "tier " + std::to_string(i) + ": " + t.source + "\n";
    out += "  capacity " + FormatBytes(t.capacity_bytes) + ", " +
           std::to_string(SlabsUsed(t.slabs)) + "/" + std::to_string(t.slabs.slabs_total) +
           " slabs of " + FormatBytes(t.slabs.slab_size) + " used, " +
           FormatBytes(FreeInUsedSlabs(t.slabs)) + " of their slots free, internal fragmentation " +
           Percent(t.slabs.internal_fragmentation) + "\n";
    out += "  stored " + std::to_string(t.counters.chunks) + " chunks, " +
           FormatBytes(t.counters.bytes) + "\n";
    out += "  write " + Throughput(t.counters.bytes, t.counters.write_seconds, r.memcpy_gbps) +
           ", read " +
           Throughput(t.counters.read_bytes, t.counters.read_seconds, r.memcpy_gbps) + "\n";
    if (t.persistence == PersistGranularity::kPage) {
      // Otherwise a slow write looks like a slow tier rather than the price of durability.
      out += "  (writes include persisting each chunk: msync of its pages to the file system)\n";
    }
    out += "\n";
  }
  out += "memcpy baseline: " + Printf("%.2f GB/s", r.memcpy_gbps) + " (" +
         FormatBytes(r.full_chunk_bytes) + " DRAM-to-DRAM copies, measured in this run)\n";
  out += "stored " + std::to_string(r.stored) + " chunks (" + FormatBytes(r.stored_bytes) +
         "), dedup hits " + std::to_string(r.dedup_hits) +
         " (chunks of shared prefixes stored once), dropped " + std::to_string(r.dropped) + "\n";
  if (r.dropped > 0) {
    out += "  dropped " + FormatBytes(r.dropped_bytes) +
           " because both tiers were full: no eviction yet (the tiered store with eviction is "
           "a later issue)\n";
  }
  out += "verified " + std::to_string(r.verified) + "/" + std::to_string(r.stored) +
         " stored chunks read back in request order (XXH3-64)";
  out += r.mismatches == 0 ? "\n" : ", " + std::to_string(r.mismatches) + " MISMATCHED\n";
  if (r.kept) {
    out += "kept " + r.dir + "\n";
  } else {
    out += "removed " + r.dir + "\n";
  }
  out += "elapsed " + Printf("%.2f s", r.elapsed_seconds) + "\n";
  return out;
}

nlohmann::ordered_json DemoReportToJson(const DemoReport& r) {
  nlohmann::ordered_json tiers = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < r.tiers.size(); ++i) {
    const TierReport& t = r.tiers[i];
    const double write_gbps = GigabytesPerSecond(t.counters.bytes, t.counters.write_seconds);
    const double read_gbps = GigabytesPerSecond(t.counters.read_bytes, t.counters.read_seconds);
    tiers.push_back({
        {"tier", i},
        {"source", t.source},
        {"capacity_bytes", t.capacity_bytes},
        {"chunks", t.counters.chunks},
        {"bytes", t.counters.bytes},
        {"slab_size", t.slabs.slab_size},
        {"slabs_total", t.slabs.slabs_total},
        {"slabs_used", SlabsUsed(t.slabs)},
        {"free_slot_bytes", FreeInUsedSlabs(t.slabs)},
        {"internal_fragmentation", t.slabs.internal_fragmentation},
        {"write_gbps", write_gbps},
        {"read_gbps", read_gbps},
        {"write_vs_memcpy", Ratio(write_gbps, r.memcpy_gbps)},
        {"read_vs_memcpy", Ratio(read_gbps, r.memcpy_gbps)},
    });
  }
  return {
      {"model", {{"name", r.model},
                 {"bytes_per_token", r.bytes_per_token},
                 {"chunk_tokens", kChunkTokens},
                 {"full_chunk_bytes", r.full_chunk_bytes}}},
      {"seed", r.seed},
      {"requests", r.requests},
      {"prompt_tokens", {{"min", r.min_prompt_tokens},
                         {"max", r.max_prompt_tokens},
                         {"total", r.total_prompt_tokens}}},
      {"chunks", r.chunks},
      {"stored", r.stored},
      {"stored_bytes", r.stored_bytes},
      {"dedup_hits", r.dedup_hits},
      {"dropped", r.dropped},
      {"dropped_bytes", r.dropped_bytes},
      {"verified", r.verified},
      {"mismatches", r.mismatches},
      {"memcpy_gbps", r.memcpy_gbps},
      {"tiers", tiers},
      {"dir", r.dir},
      {"kept", r.kept},
      {"elapsed_seconds", r.elapsed_seconds},
  };
}

}  // namespace cxlkv::cli
