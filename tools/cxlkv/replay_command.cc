// `cxlkv replay`: a request trace in Mooncake's format against cxlkv tiers, to measure what a
// KV-cache tier is worth: its prefix hit ratio for the bytes it holds. Simulated mode keeps
// chunk ids and sizes only (capacity sweeps in seconds); real mode stores and reads every
// byte through a cxlkv::Store. `cxlkv replay sweep` runs every policy over a range of
// capacities and writes a CSV (tools/replay_plot.py draws it).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/store.h"
#include "tools/cxlkv/commands.h"
#include "tools/cxlkv/demo_chunks.h"
#include "tools/cxlkv/demo_replay.h"
#include "tools/cxlkv/demo_trace.h"
#include "tools/cxlkv/replay_policy.h"
#include "tools/cxlkv/replay_sim.h"
#include "tools/cxlkv/replay_store_policy.h"
#include "tools/cxlkv/replay_synthetic.h"
#include "tools/cxlkv/replay_workload.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

struct ReplayCommandOptions {
  std::string trace;
  std::string synthetic;  // "", "sessions" (the held-out generator) or "mooncake" (the demo's)
  std::uint64_t seed = 1;
  std::size_t requests = SIZE_MAX;
  bool skip_bad_lines = false;
  std::uint32_t chunk_tokens = kDefaultChunkTokens;
  std::string model = "llama-3.1-8b";
  std::uint64_t bytes_per_token = 0;  // overrides --model when set
  std::string capacity = "5%";
  std::string policy = "lru";
  std::string tier1_capacity;  // empty: one tier
  std::string tier1_policy = "lru";
  std::string tier1_admission = "always";
  std::string mode = "sim";
  double timestamp_speed = 0;
  bool json = false;
  // sweep
  std::string policies = "lru,fifo,lfu,s3fifo,lru-admit2,prefix-chains,prefix,prefix-hazard,belady";
  std::string fractions = "1,2,5,10,20,50";
  std::string csv;
};

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

std::string Percent(double ratio) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f%%", 100 * ratio);
  return text;
}

struct LoadedWorkload {
  std::string source;  // the path, or "synthetic ... (seed N)"
  std::vector<TraceRequest> requests;
  std::size_t skipped_lines = 0;
  std::vector<std::string> skipped_messages;
};

Result<LoadedWorkload> LoadRequests(const ReplayCommandOptions& o) {
  LoadedWorkload loaded;
  if (!o.synthetic.empty()) {
    const std::size_t n = o.requests == SIZE_MAX ? 12'000 : o.requests;
    loaded.source = "synthetic " + o.synthetic + " trace (seed " + std::to_string(o.seed) + ")";
    loaded.requests = o.synthetic == "sessions" ? GenerateSessionTrace(o.seed, n)
                                                : GenerateSyntheticTrace(o.seed, n);
    return loaded;
  }
  std::string path = o.trace;
  if (path.empty()) {
    for (const std::string& candidate : DefaultTracePaths()) {
      std::error_code ec;
      if (std::filesystem::exists(candidate, ec)) {
        path = candidate;
        break;
      }
    }
    if (path.empty()) {
      return Status::NotFound("no trace found ($CXLKV_TRACE, ../shared/traces/): name one with "
                              "--trace or use --synthetic sessions");
    }
  }
  TraceLoadOptions load;
  load.max_requests = o.requests;
  load.skip_bad_lines = o.skip_bad_lines;
  CXLKV_ASSIGN_OR_RETURN(LoadedTrace trace, LoadTraceWith(path, load));
  loaded.source = path;
  loaded.requests = std::move(trace.requests);
  loaded.skipped_lines = trace.skipped_lines;
  loaded.skipped_messages = std::move(trace.skipped_messages);
  return loaded;
}

// "5%" of the unique bytes, or a size ("64G").
Result<std::uint64_t> ParseCapacityOrPercent(const std::string& flag,
                                             const std::string& text,
                                             std::uint64_t unique_bytes) {
  if (!text.empty() && text.back() == '%') {
    char* end = nullptr;
    const std::string number = text.substr(0, text.size() - 1);
    const double percent = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !(percent > 0) ||
        percent > 1000) {
      return Status::InvalidArgument(flag + ": '" + text + "' is not a percentage in (0, 1000]");
    }
    return static_cast<std::uint64_t>(std::llround(percent / 100 * static_cast<double>(unique_bytes)));
  }
  Result<std::uint64_t> bytes = ParseBytes(text);
  if (!bytes.ok()) return bytes.status().WithContext(flag);
  if (*bytes == 0) return Status::InvalidArgument(flag + " is 0");
  return *bytes;
}

std::uint64_t BytesPerToken(const ReplayCommandOptions& o) {
  if (o.bytes_per_token != 0) return o.bytes_per_token;
  return FindModelPreset(o.model)->BytesPerToken();
}

void PrintHeader(const LoadedWorkload& loaded, const Workload& w, const ReplayCommandOptions& o,
                 std::uint64_t bytes_per_token) {
  std::printf("cxlkv replay: %s, %zu requests", loaded.source.c_str(), w.requests());
  if (w.requests() > 0) {
    std::printf(" (%.1f..%.1f s of trace time)", w.timestamp_ms.front() / 1000,
                w.timestamp_ms.back() / 1000);
  }
  std::printf("\n");
  if (loaded.skipped_lines > 0) {
    std::printf("skipped %zu bad lines, first: %s\n", loaded.skipped_lines,
                loaded.skipped_messages.front().c_str());
  }
  std::printf("%u-token chunks, %s a token (%s): %zu distinct chunks, %s unique, %s of prompts; "
              "a cache that never evicts hits %s\n",
              o.chunk_tokens, FormatBytes(bytes_per_token).c_str(),
              o.bytes_per_token != 0 ? "--bytes-per-token" : o.model.c_str(), w.chunks(),
              FormatBytes(w.unique_tokens * bytes_per_token).c_str(),
              FormatBytes(w.prompt_tokens * bytes_per_token).c_str(),
              Percent(UnboundedHitRatio(w)).c_str());
}

Result<SimOptions> SimTiers(const ReplayCommandOptions& o, const Workload& w,
                               std::uint64_t bytes_per_token) {
  const std::uint64_t unique_bytes = w.unique_tokens * bytes_per_token;
  SimOptions sim;
  sim.bytes_per_token = bytes_per_token;
  SimTier t0;
  t0.name = "tier0";
  CXLKV_ASSIGN_OR_RETURN(t0.capacity_bytes,
                         ParseCapacityOrPercent("--capacity", o.capacity, unique_bytes));
  t0.policy = o.policy;
  sim.tiers.push_back(t0);
  if (!o.tier1_capacity.empty()) {
    SimTier t1;
    t1.name = "tier1";
    CXLKV_ASSIGN_OR_RETURN(t1.capacity_bytes,
                           ParseCapacityOrPercent("--tier1-capacity", o.tier1_capacity,
                                                  unique_bytes));
    t1.policy = o.tier1_policy;
    t1.admission = o.tier1_admission == "second" ? DemotionAdmission::kSecond
                                                 : DemotionAdmission::kAlways;
    sim.tiers.push_back(t1);
  }
  return sim;
}

int RunSimulated(const ReplayCommandOptions& o, const LoadedWorkload& loaded, const Workload& w) {
  const std::uint64_t bpt = BytesPerToken(o);
  Result<SimOptions> sim = SimTiers(o, w, bpt);
  if (!sim.ok()) return UsageError("replay", sim.status().message());
  Result<SimResult> result = Simulate(w, *sim);
  if (!result.ok()) return UsageError("replay", result.status().message());
  const SimResult& r = *result;
  const std::uint64_t unique_bytes = w.unique_tokens * bpt;
  if (o.json) {
    std::printf("{\"trace\": \"%s\", \"requests\": %llu, \"skipped_lines\": %zu, "
                "\"prompt_tokens\": %llu, \"hit_tokens\": %llu, \"hit_ratio\": %.6f, "
                "\"unbounded_hit_ratio\": %.6f, \"lookups\": %llu, \"hit_chunks\": %llu, "
                "\"not_admitted\": %llu, \"dropped_orphans\": %llu, \"unique_bytes\": %llu, "
                "\"seconds\": %.3f, \"tiers\": [",
                loaded.source.c_str(), static_cast<unsigned long long>(r.requests),
                loaded.skipped_lines, static_cast<unsigned long long>(r.prompt_tokens),
                static_cast<unsigned long long>(r.hit_tokens), r.HitRatio(), UnboundedHitRatio(w),
                static_cast<unsigned long long>(r.lookups),
                static_cast<unsigned long long>(r.hit_chunks),
                static_cast<unsigned long long>(r.not_admitted),
                static_cast<unsigned long long>(r.dropped_orphans),
                static_cast<unsigned long long>(unique_bytes), r.seconds);
    for (std::size_t t = 0; t < r.tiers.size(); ++t) {
      const SimTierResult& tr = r.tiers[t];
      std::printf("%s{\"name\": \"%s\", \"policy\": \"%s\", \"capacity_bytes\": %llu, "
                  "\"hit_tokens\": %llu, \"hit_chunks\": %llu, \"bytes_read\": %llu, "
                  "\"bytes_written\": %llu, \"evictions\": %llu}",
                  t == 0 ? "" : ", ", sim->tiers[t].name.c_str(), sim->tiers[t].policy.c_str(),
                  static_cast<unsigned long long>(sim->tiers[t].capacity_bytes),
                  static_cast<unsigned long long>(tr.hit_tokens),
                  static_cast<unsigned long long>(tr.hit_chunks),
                  static_cast<unsigned long long>(tr.bytes_read),
                  static_cast<unsigned long long>(tr.bytes_written),
                  static_cast<unsigned long long>(tr.evictions));
    }
    std::printf("]}\n");
    return kExitOk;
  }
  PrintHeader(loaded, w, o, bpt);
  std::printf("simulated: index and policies only, no bytes; replay %.2f s\n", r.seconds);
  std::printf("prefix hit ratio %s of prompt tokens (%llu of %llu tokens: the prefill saved)\n",
              Percent(r.HitRatio()).c_str(), static_cast<unsigned long long>(r.hit_tokens),
              static_cast<unsigned long long>(r.prompt_tokens));
  for (std::size_t t = 0; t < r.tiers.size(); ++t) {
    const SimTierResult& tr = r.tiers[t];
    const SimTier& cfg = sim->tiers[t];
    std::printf("  %s: %s (%s of unique), %s: hit %s, read %s, written %s, evictions %llu\n",
                cfg.name.c_str(), FormatBytes(cfg.capacity_bytes).c_str(),
                Percent(static_cast<double>(cfg.capacity_bytes) / static_cast<double>(unique_bytes))
                    .c_str(),
                cfg.policy.c_str(),
                Percent(static_cast<double>(tr.hit_tokens) / static_cast<double>(r.prompt_tokens))
                    .c_str(),
                FormatBytes(tr.bytes_read).c_str(), FormatBytes(tr.bytes_written).c_str(),
                static_cast<unsigned long long>(tr.evictions));
  }
  std::printf("chunks not stored by choice %llu, dropped behind an evicted predecessor %llu\n",
              static_cast<unsigned long long>(r.not_admitted),
              static_cast<unsigned long long>(r.dropped_orphans));
  return kExitOk;
}

// Real mode: the demo's replay (every byte stored, read back and checked) against a Store of
// DRAM tiers with the given capacities.
int RunReal(const ReplayCommandOptions& o, const LoadedWorkload& loaded, const Workload& w) {
  const ModelPreset* model = FindModelPreset(o.model);
  if (o.bytes_per_token != 0) {
    return UsageError("replay", "--mode real stores real bytes: use a --model preset, not "
                      "--bytes-per-token");
  }
  for (const std::string& p : {o.policy, o.tier1_policy}) {
    if (p == "lru-admit2" || p == "belady") {
      return UsageError("replay", "--mode real: the store evicts with lru, fifo, lfu, s3fifo, "
                        "prefix-chains, prefix or prefix-hazard, not " + p);
    }
  }
  const std::uint64_t bpt = model->BytesPerToken();
  Result<SimOptions> tiers = SimTiers(o, w, bpt);
  if (!tiers.ok()) return UsageError("replay", tiers.status().message());
  const std::size_t full_chunk = std::size_t{o.chunk_tokens} * bpt;
  std::size_t slab = std::size_t{4} << 20;
  while (slab < (std::size_t{32} << 20) && 16 * slab < full_chunk) slab *= 2;

  // The store's clock shows the current request's trace time, as the simulator's policies see
  // it (the prefix policies learn from it); declared before the store, which reads it.
  std::chrono::nanoseconds trace_now{0};
  StoreOptions store;
  store.clock = [&trace_now] { return trace_now; };
  store.chunk_sizes = {full_chunk};
  store.slab_size = slab;
  for (const SimTier& t : tiers->tiers) {
    cxlkv::TierOptions tier;
    tier.name = t.name;
    DramOptions dram;
    tier.source = MemorySource::Dram(dram);
    tier.capacity = static_cast<std::size_t>(AlignUp(std::max<std::uint64_t>(t.capacity_bytes, slab), slab));
    tier.eviction = t.policy;
    store.tiers.push_back(std::move(tier));
  }
  Result<std::unique_ptr<Store>> opened = Store::Open(std::move(store));
  if (!opened.ok()) return UsageError("replay", opened.status().ToString());
  ReplayOptions replay;
  replay.model = model;
  replay.chunk_tokens = o.chunk_tokens;
  replay.timestamp_speed = o.timestamp_speed;
  replay.before_request = [&trace_now](double ms) { trace_now = TraceClock(ms); };
  Result<ReplayResult> result = Replay(**opened, loaded.requests, replay);
  if (!result.ok()) {
    std::fprintf(stderr, "cxlkv replay: %s\n", result.status().ToString().c_str());
    return kExitFailure;
  }
  const ReplayResult& r = *result;
  const StoreStats stats = (*opened)->Stats();
  PrintHeader(loaded, w, o, bpt);
  std::printf("real: a cxlkv::Store of DRAM tiers, every byte stored and read back%s; replay %.2f s\n",
              o.timestamp_speed > 0 ? ", at trace timestamps" : "", r.replay_seconds);
  std::printf("prefix hit ratio %s of chunks (%llu of %llu); %llu of %llu chunks verified\n",
              Percent(r.lookups ? static_cast<double>(r.hits) / static_cast<double>(r.lookups) : 0)
                  .c_str(),
              static_cast<unsigned long long>(r.hits), static_cast<unsigned long long>(r.lookups),
              static_cast<unsigned long long>(r.verified), static_cast<unsigned long long>(r.hits));
  for (std::size_t t = 0; t < stats.tiers.size() && t < r.tier_reads.size(); ++t) {
    std::printf("  %s: %s, %s: hit %s, read %s at %.2f GB/s, written %s, evictions %llu\n",
                tiers->tiers[t].name.c_str(), FormatBytes(stats.tiers[t].capacity).c_str(),
                tiers->tiers[t].policy.c_str(),
                Percent(r.lookups ? static_cast<double>(r.tier_reads[t].chunks) /
                                        static_cast<double>(r.lookups)
                                  : 0)
                    .c_str(),
                FormatBytes(r.tier_reads[t].bytes).c_str(),
                GigabytesPerSecond(r.tier_reads[t].bytes, r.tier_reads[t].seconds),
                FormatBytes(stats.tiers[t].bytes_in).c_str(),
                static_cast<unsigned long long>(stats.tiers[t].evictions));
  }
  std::printf("put %.2f GB/s (%s)\n", GigabytesPerSecond(r.bytes_written, r.put_seconds),
              FormatBytes(r.bytes_written).c_str());
  return r.failed == 0 ? kExitOk : kExitFailure;
}

int RunSweep(const ReplayCommandOptions& o, const LoadedWorkload& loaded, const Workload& w) {
  const std::uint64_t bpt = BytesPerToken(o);
  const std::uint64_t unique_bytes = w.unique_tokens * bpt;
  std::vector<std::string> policies = SplitList(o.policies);
  for (const std::string& p : policies) {
    const auto names = SimPolicyNames();
    if (std::find(names.begin(), names.end(), p) == names.end()) {
      return UsageError("replay", "--policies: unknown policy " + p);
    }
  }
  // The gap needs both ends.
  for (const char* end : {"lru", "belady"}) {
    if (std::find(policies.begin(), policies.end(), end) == policies.end()) policies.push_back(end);
  }
  std::vector<double> fractions;
  for (const std::string& f : SplitList(o.fractions)) {
    char* stop = nullptr;
    const double v = std::strtod(f.c_str(), &stop);
    if (stop != f.c_str() + f.size() || !(v > 0) || v > 1000) {
      return UsageError("replay", "--fractions: '" + f + "' is not a percentage in (0, 1000]");
    }
    fractions.push_back(v);
  }
  if (fractions.empty()) return UsageError("replay", "--fractions is empty");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> csv(nullptr, &std::fclose);
  if (!o.csv.empty()) {
    csv.reset(std::fopen(o.csv.c_str(), "w"));
    if (csv == nullptr) {
      return UsageError("replay", Status::FromErrno("opening --csv " + o.csv, errno).ToString());
    }
    std::fprintf(csv.get(), "trace,policy,capacity_percent,capacity_bytes,hit_ratio,lru_hit_ratio,"
                            "belady_hit_ratio,gap_closed,unbounded_hit_ratio,bytes_written,"
                            "bytes_read,seconds\n");
  }
  PrintHeader(loaded, w, o, bpt);
  std::printf("hit ratio (prefix tokens) by capacity as %% of unique bytes; in brackets the share "
              "of the LRU-to-Belady gap closed\n%-14s", "policy");
  for (const double f : fractions) std::printf(" %14g%%", f);
  std::printf("\n");
  // results[p][f]
  std::vector<std::vector<SimResult>> results(policies.size());
  double slowest = 0;
  for (std::size_t p = 0; p < policies.size(); ++p) {
    for (const double f : fractions) {
      SimOptions sim;
      sim.bytes_per_token = bpt;
      SimTier tier;
      tier.name = "tier0";
      tier.policy = policies[p];
      tier.capacity_bytes =
          static_cast<std::uint64_t>(std::llround(f / 100 * static_cast<double>(unique_bytes)));
      sim.tiers.push_back(tier);
      Result<SimResult> r = Simulate(w, sim);
      if (!r.ok()) return UsageError("replay", r.status().message());
      slowest = std::max(slowest, r->seconds);
      results[p].push_back(std::move(r).value());
    }
  }
  const auto index = [&](const char* name) {
    return static_cast<std::size_t>(std::find(policies.begin(), policies.end(), name) -
                                    policies.begin());
  };
  const std::size_t lru = index("lru");
  const std::size_t belady = index("belady");
  const std::string trace_name = std::filesystem::path(loaded.source).filename().string();
  for (std::size_t p = 0; p < policies.size(); ++p) {
    std::printf("%-14s", policies[p].c_str());
    for (std::size_t i = 0; i < fractions.size(); ++i) {
      const double h = results[p][i].HitRatio();
      const double l = results[lru][i].HitRatio();
      const double b = results[belady][i].HitRatio();
      const double gap = b - l > 1e-12 ? (h - l) / (b - l) : 0;
      std::printf(" %6.2f%% (%+4.0f%%)", 100 * h, 100 * gap);
      if (csv != nullptr) {
        std::fprintf(csv.get(), "%s,%s,%g,%llu,%.6f,%.6f,%.6f,%.4f,%.6f,%llu,%llu,%.3f\n",
                     trace_name.c_str(), policies[p].c_str(), fractions[i],
                     static_cast<unsigned long long>(
                         std::llround(fractions[i] / 100 * static_cast<double>(unique_bytes))),
                     h, l, b, gap, UnboundedHitRatio(w),
                     static_cast<unsigned long long>(results[p][i].tiers[0].bytes_written),
                     static_cast<unsigned long long>(results[p][i].tiers[0].bytes_read),
                     results[p][i].seconds);
      }
    }
    std::printf("\n");
  }
  std::printf("slowest point %.2f s\n", slowest);
  if (csv != nullptr && std::fflush(csv.get()) != 0) {
    return UsageError("replay", Status::FromErrno("writing --csv " + o.csv, errno).ToString());
  }
  return kExitOk;
}

int RunReplay(const ReplayCommandOptions& o, bool sweep) {
  if (o.bytes_per_token == 0 && FindModelPreset(o.model) == nullptr) {
    return UsageError("replay", "unknown --model " + o.model);
  }
  if (o.requests == 0) return UsageError("replay", "--requests must be at least 1");
  Result<LoadedWorkload> loaded = LoadRequests(o);
  if (!loaded.ok()) return UsageError("replay", loaded.status().ToString());
  for (const std::string& message : loaded->skipped_messages) {
    std::fprintf(stderr, "cxlkv replay: skipped %s\n", message.c_str());
  }
  const Workload w = BuildWorkload(loaded->requests, o.chunk_tokens);
  if (sweep) return RunSweep(o, *loaded, w);
  if (o.mode == "real") return RunReal(o, *loaded, w);
  return RunSimulated(o, *loaded, w);
}

void AddSourceOptions(CLI::App* app, ReplayCommandOptions* o) {
  app->add_option("--trace", o->trace,
                  "Mooncake-format trace (default: $CXLKV_TRACE, then "
                  "../shared/traces/mooncake_conversation_trace.jsonl)");
  app->add_option("--synthetic", o->synthetic,
                  "Replay a generated trace instead: sessions (the held-out one: shared system "
                  "prompts and documents, multi-turn sessions, one-off documents) or mooncake "
                  "(the demo's Mooncake-like one)")
      ->check(CLI::IsMember({"sessions", "mooncake"}))
      ->excludes(app->get_option("--trace"));
  app->add_option("--seed", o->seed, "Seed of the synthetic trace")->capture_default_str();
  app->add_option("--requests", o->requests, "Replay the first N requests");
  app->add_flag("--skip-bad-lines", o->skip_bad_lines,
                "Skip trace lines that are not requests (each is reported with its line number) "
                "instead of stopping at the first");
  app->add_option("--chunk-tokens", o->chunk_tokens,
                  "Tokens per chunk (LMCache's chunk size); each 512-token block becomes 512/N "
                  "chunks")
      ->check(CLI::IsMember({64, 128, 256, 512}))
      ->capture_default_str();
  std::vector<std::string> models;
  for (const ModelPreset& preset : ModelPresets()) models.emplace_back(preset.name);
  app->add_option("--model", o->model, "KV geometry that sizes the chunks")
      ->check(CLI::IsMember(models))
      ->capture_default_str();
  app->add_option("--bytes-per-token", o->bytes_per_token, "KV bytes per token (instead of --model)");
}

}  // namespace

Command AddReplayCommand(CLI::App& root) {
  auto o = std::make_shared<ReplayCommandOptions>();
  CLI::App* app = root.add_subcommand(
      "replay",
      "Replay a Mooncake-format request trace against cxlkv tiers: prefix hit ratio (tokens), "
      "per tier hits and bytes, prefill tokens saved; simulated (index and policies only) or "
      "real (a Store, every byte)");
  app->footer("Exit status: 0 done, 1 a chunk read back wrong in real mode, 2 bad options or a "
              "bad trace line (see --skip-bad-lines).");
  AddSourceOptions(app, o.get());
  app->add_option("--capacity", o->capacity,
                  "Tier 0 capacity: a size (64G) or a share of the trace's unique bytes (5%)")
      ->capture_default_str();
  app->add_option("--policy", o->policy, "Tier 0 eviction policy")
      ->check(CLI::IsMember({"lru", "fifo", "lfu", "s3fifo", "lru-admit2", "prefix-chains", "prefix",
                             "prefix-hazard", "belady"}))
      ->capture_default_str();
  app->add_option("--tier1-capacity", o->tier1_capacity,
                  "Add tier 1 (the spill tier) of this capacity, which takes tier 0's evictions");
  app->add_option("--tier1-policy", o->tier1_policy, "Tier 1 eviction policy")
      ->check(CLI::IsMember({"lru", "fifo", "lfu", "s3fifo", "prefix-chains", "prefix",
                             "prefix-hazard", "belady"}))
      ->capture_default_str();
  app->add_option("--tier1-admission", o->tier1_admission,
                  "Which of tier 0's evictions tier 1 takes: always, or second (a chunk evicted "
                  "for the second time: frequency admission)")
      ->check(CLI::IsMember({"always", "second"}))
      ->capture_default_str();
  app->add_option("--mode", o->mode,
                  "sim: index and policies only, no bytes (fast sweeps); real: a cxlkv::Store of "
                  "DRAM tiers stores and reads every byte (throughput)")
      ->check(CLI::IsMember({"sim", "real"}))
      ->capture_default_str();
  app->add_option("--timestamps", o->timestamp_speed,
                  "Real mode: replay at the trace's timestamps sped up N times (default: as fast "
                  "as possible); the simulated mode's results do not depend on time")
      ->check(CLI::PositiveNumber);
  app->add_flag("--json", o->json, "Simulated mode: one JSON object instead of text");

  CLI::App* sweep = app->add_subcommand(
      "sweep", "Every policy over a range of tier 0 capacities (simulated), as a table of hit "
               "ratio and share of the LRU-to-Belady gap closed, and optionally a CSV");
  sweep->fallthrough();
  sweep->add_option("--policies", o->policies, "Comma-separated policies (lru and belady are "
                                               "always added: the gap needs them)")
      ->capture_default_str();
  sweep->add_option("--fractions", o->fractions,
                    "Comma-separated capacities, in % of the trace's unique bytes")
      ->capture_default_str();
  sweep->add_option("--csv", o->csv, "Write the results here (tools/replay_plot.py draws them)");
  return {app, [o, sweep] { return RunReplay(*o, sweep->parsed()); }};
}

}  // namespace cxlkv::cli
