#include "tools/cxlkv/demo_report.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cxlkv/store_counters.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

std::string Printf(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

double Fraction(std::uint64_t part, std::uint64_t whole) {
  return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0;
}

std::string Percent(std::uint64_t part, std::uint64_t whole) {
  return Printf("%.1f%%", Fraction(part, whole) * 100.0);
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

// The gets' and the baseline's rates, and the one against the other, as medians over the
// copies: robust to the one preemption that would skew a total of a few milliseconds.
double GetGbps(const DemoReport& r) { return Median(r.replay.get_gbps_each); }
double MemcpyGbps(const DemoReport& r) { return Median(r.replay.memcpy_gbps_each); }
double GetVsMemcpy(const DemoReport& r) { return Median(r.replay.get_vs_memcpy_each); }

double GetGbpsTotal(const DemoReport& r) {
  return GigabytesPerSecond(r.replay.bytes_read, r.replay.get_seconds);
}

// Puts are totals: the demotions some of them run are their real cost, not noise.
double PutGbps(const DemoReport& r) {
  return GigabytesPerSecond(r.replay.bytes_written, r.replay.put_seconds);
}

double RequestsPerSecond(const DemoReport& r) {
  return r.replay.replay_seconds > 0
             ? static_cast<double>(r.replay.requests) / r.replay.replay_seconds
             : 0;
}

// JSON's ratio to the baseline: null when there was none (no get ran).
nlohmann::ordered_json RatioOrNull(double gbps, double baseline_gbps) {
  return baseline_gbps > 0 ? nlohmann::ordered_json(gbps / baseline_gbps)
                           : nlohmann::ordered_json();
}

std::string Indent(const std::string& lines) {
  std::string out;
  std::size_t start = 0;
  while (start < lines.size()) {
    std::size_t end = lines.find('\n', start);
    if (end == std::string::npos) end = lines.size();
    out += "  " + lines.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return out;
}

// json[key] = value for every row of Counters<Stats>().
template <typename Stats>
nlohmann::ordered_json AddCounters(nlohmann::ordered_json json, const Stats& stats) {
  VisitCounters(stats, [&](const CounterInfo& info, auto value) {
    json[std::string(info.key)] = value;
  });
  return json;
}

}  // namespace

nlohmann::ordered_json TierJson(const TierStats& t) {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  for (const TierLabel& label : TierLabels()) json[std::string(label.key)] = t.*label.field;
  return AddCounters(std::move(json), t);
}

nlohmann::ordered_json StoreJson(const StoreStats& st) {
  nlohmann::ordered_json json = AddCounters(nlohmann::ordered_json::object(), st);
  json["prefetch"] = AddCounters(nlohmann::ordered_json::object(), st.prefetch);
  for (const TimedOperation& op : TimedOperations()) {
    json[std::string(op.key)] = AddCounters(nlohmann::ordered_json::object(), st.*op.summary);
  }
  return json;
}

std::string FormatDemoReport(const DemoReport& r) {
  const ReplayResult& p = r.replay;
  std::string out = "cxlkv demo: ";
  out += r.trace_path.empty()
             ? "synthetic Mooncake-like trace (seed " + std::to_string(r.seed) + ")"
             : "trace " + r.trace_path;
  out += ", " + std::to_string(p.requests) + " requests (" +
         Printf("%.1f", p.first_timestamp_ms / 1000) + ".." +
         Printf("%.1f s of trace time", p.last_timestamp_ms / 1000) + ", replayed back to back)\n";
  if (!r.trace_note.empty()) out += r.trace_note + "\n";
  out += "model " + r.model + ": " + FormatBytes(r.bytes_per_token) + "/token, " +
         std::to_string(r.chunk_tokens) + "-token chunks of " + FormatBytes(r.full_chunk_bytes) +
         " (" + std::to_string(kTraceBlockTokens / r.chunk_tokens) + " per " +
         std::to_string(kTraceBlockTokens) + "-token trace block), keys vllm@" + r.model +
         "@1@0@<hash>\n";
  for (std::size_t i = 0; i < r.stats.tiers.size(); ++i) {
    const TierStats& t = r.stats.tiers[i];
    out += "tier " + std::to_string(i) + " " + t.name + ": " + t.source + ", " +
           FormatBytes(t.capacity) + ", " + t.eviction + "\n";
  }
  const double mean_prompt = Fraction(p.total_prompt_tokens, p.requests);
  out += "prompts " + std::to_string(p.min_prompt_tokens) + ".." +
         std::to_string(p.max_prompt_tokens) + " tokens (mean " + Printf("%.0f", mean_prompt) +
         "); chunks looked up " + std::to_string(p.lookups) + ", hit " + std::to_string(p.hits) +
         ", missed " + std::to_string(p.misses) + "\n";
  out += "hit ratio " + Percent(p.hits, p.lookups);
  for (std::size_t i = 0; i < r.stats.tiers.size(); ++i) {
    const TierStats& t = r.stats.tiers[i];
    out += (i == 0 ? ": " : ", ") + t.name + " " + Percent(t.hits, p.lookups);
  }
  out += " (a cache that never evicts: " + Percent(p.unbounded_hits, p.lookups) + ")\n";
  out += "read " + FormatBytes(p.bytes_read) + ", every byte checked: " +
         std::to_string(p.verified) + "/" + std::to_string(p.hits) + " chunks verified";
  out += p.failed == 0 ? "" : ", " + std::to_string(p.failed) + " FAILED";
  out += "; wrote " + FormatBytes(p.bytes_written) + " (" + std::to_string(p.chunks_written) +
         " chunks";
  if (p.already_stored > 0) {
    out += "; " + std::to_string(p.already_stored) +
           " misses were still stored past an evicted prefix chunk, not rewritten";
  }
  out += ")\n";
  // The baseline copies what the gets read: without a hit there is nothing to compare with.
  const double memcpy_gbps = MemcpyGbps(r);
  auto vs_memcpy = [&](double gbps) {
    return memcpy_gbps > 0 ? Printf("%.2fx memcpy", gbps / memcpy_gbps) : "no baseline";
  };
  if (p.bytes_read == 0) {
    out += "get - (no hits)";
  } else {
    out += "get " + Printf("%.2f GB/s (", GetGbps(r)) + Printf("%.2fx memcpy", GetVsMemcpy(r));
    for (std::size_t i = 0; i < p.tier_reads.size() && i < r.stats.tiers.size(); ++i) {
      const TierReads& reads = p.tier_reads[i];
      out += (i == 0 ? "; " : ", ") + r.stats.tiers[i].name + " " +
             (reads.chunks == 0 ? "-" : Printf("%.2f", Median(reads.gbps_each)));
    }
    out += "; medians per chunk)";
  }
  out += ", put " + Printf("%.2f GB/s (", PutGbps(r)) + vs_memcpy(PutGbps(r)) +
         ", total with the demotions it ran), " +
         Printf("%.1f requests/s\n", RequestsPerSecond(r));
  out += "memcpy baseline " +
         (memcpy_gbps > 0 ? Printf("%.2f GB/s (", memcpy_gbps) + FormatBytes(p.memcpy_bytes) +
                                ", a copy of each get's bytes right after it; medians)"
                          : std::string("- (no gets to copy alongside)")) +
         "; replay " + Printf("%.2f s", p.replay_seconds) + "\n";
  out += "store stats:\n" + Indent(r.stats.ToString());
  out += (r.kept ? "kept " : "removed ") + r.dir + "\n";
  out += "elapsed " + Printf("%.2f s", r.elapsed_seconds) + "\n";
  return out;
}

nlohmann::ordered_json DemoReportToJson(const DemoReport& r) {
  const ReplayResult& p = r.replay;
  nlohmann::ordered_json tiers = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < r.stats.tiers.size(); ++i) {
    const TierStats& t = r.stats.tiers[i];
    const TierReads reads = i < p.tier_reads.size() ? p.tier_reads[i] : TierReads{};
    nlohmann::ordered_json tier = TierJson(t);
    tier["hit_ratio"] = Fraction(t.hits, p.lookups);
    tier["get_chunks"] = reads.chunks;
    tier["get_bytes"] = reads.bytes;
    tier["get_gbps"] = Median(reads.gbps_each);
    tier["get_gbps_total"] = GigabytesPerSecond(reads.bytes, reads.seconds);
    tiers.push_back(std::move(tier));
  }
  nlohmann::ordered_json store = StoreJson(r.stats);
  store["text"] = r.stats.ToString();
  return {
      {"trace", {{"path", r.trace_path.empty() ? nullptr : nlohmann::ordered_json(r.trace_path)},
                 {"synthetic", r.trace_path.empty()},
                 {"note", r.trace_note},
                 {"seed", r.seed},
                 {"first_timestamp_ms", p.first_timestamp_ms},
                 {"last_timestamp_ms", p.last_timestamp_ms}}},
      {"model", {{"name", r.model},
                 {"bytes_per_token", r.bytes_per_token},
                 {"chunk_tokens", r.chunk_tokens},
                 {"full_chunk_bytes", r.full_chunk_bytes}}},
      {"tiers", tiers},
      {"requests", p.requests},
      {"prompt_tokens", {{"min", p.min_prompt_tokens},
                         {"max", p.max_prompt_tokens},
                         {"total", p.total_prompt_tokens}}},
      {"lookups", p.lookups},
      {"hits", p.hits},
      {"misses", p.misses},
      {"hit_ratio", Fraction(p.hits, p.lookups)},
      {"unbounded_hit_ratio", Fraction(p.unbounded_hits, p.lookups)},
      {"verified", p.verified},
      {"failed", p.failed},
      {"bytes_read", p.bytes_read},
      {"chunks_written", p.chunks_written},
      {"bytes_written", p.bytes_written},
      {"already_stored", p.already_stored},
      {"get_gbps", GetGbps(r)},
      {"get_gbps_total", GetGbpsTotal(r)},
      {"put_gbps", PutGbps(r)},
      {"memcpy_gbps", MemcpyGbps(r)},
      {"memcpy_bytes", r.replay.memcpy_bytes},
      {"get_vs_memcpy", p.get_vs_memcpy_each.empty()
                            ? nlohmann::ordered_json()
                            : nlohmann::ordered_json(GetVsMemcpy(r))},
      {"put_vs_memcpy", RatioOrNull(PutGbps(r), MemcpyGbps(r))},
      {"replay_seconds", p.replay_seconds},
      {"requests_per_second", RequestsPerSecond(r)},
      {"store", std::move(store)},
      {"dir", r.dir},
      {"kept", r.kept},
      {"elapsed_seconds", r.elapsed_seconds},
  };
}

}  // namespace cxlkv::cli
