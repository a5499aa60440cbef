// `cxlkv demo`: the main job. The library's Store over two tiers (DRAM, and a file-backed pool
// in a temporary directory) replays the Mooncake conversation trace as LMCache would drive it:
// per request, the cached prefix of the prompt's chunks is read back and checked byte for
// byte, and the missing chunks are stored. It reports hit ratios per tier, bytes moved, and
// get/put throughput next to a memcpy measured in the same run.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/store.h"
#include "options/store_flags.h"
#include "tools/cxlkv/commands.h"
#include "tools/cxlkv/demo_chunks.h"
#include "tools/cxlkv/demo_replay.h"
#include "tools/cxlkv/demo_report.h"
#include "tools/cxlkv/demo_trace.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

// The first 20 requests of the Mooncake trace store 2.1 GiB of the default model's chunks,
// 1.7x what the default tiers hold, so the run fills DRAM, demotes into the file tier and
// drops from it, in 3 to 5 s on the 2-core development VM (Release; most of it the file
// tier's page faults and msync). Their reuse is low (3.3% of chunks): most of the trace's
// comes back minutes later, thousands of requests on.
constexpr std::uint32_t kDefaultRequests = 20;
// Far more than the real trace holds (12,031); bounds what the synthetic generator allocates.
constexpr std::uint32_t kMaxRequests = 1'000'000;

struct DemoOptions {
  std::string trace;
  bool synthetic = false;
  std::string model{kDefaultModel};
  std::uint32_t chunk_tokens = kDefaultChunkTokens;
  std::uint32_t requests = kDefaultRequests;
  std::string dram_capacity = "256M";
  std::string file_capacity = "1G";
  std::string eviction = "lru";
  // --tier SPEC,CAPACITY (repeatable, fastest first): replaces the DRAM and file tiers, e.g.
  // "numa:1,512M" puts a tier on a CXL expander's node, "devdax:/dev/dax0.0,1G" on a device.
  std::vector<std::string> tiers;
  std::string dir;  // parent of the scratch directory; $TMPDIR or /tmp when empty
  bool keep = false;
  std::uint64_t seed = 1;
  bool json = false;
  bool inject_corruption = false;
};

// A fresh directory holding the file tier's pool; removed with its contents unless kept.
class ScratchDir {
 public:
  static Result<std::unique_ptr<ScratchDir>> Create(std::string parent) {
    if (parent.empty()) {
      const char* tmpdir = std::getenv("TMPDIR");
      parent = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
    }
    std::string path = parent + "/cxlkv-demo-XXXXXX";
    if (mkdtemp(path.data()) == nullptr) {
      return Status::FromErrno("creating a directory in --dir " + parent, errno);
    }
    return std::unique_ptr<ScratchDir>(new ScratchDir(std::move(path)));
  }
  ~ScratchDir() {
    if (keep_) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  void Keep() { keep_ = true; }
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool keep_ = false;
};

// The store's default 4 MiB slabs, or larger ones when a chunk would need more than the 16
// slabs a slot may span (llama-3.1-70b's 80 MiB chunks).
std::size_t SlabSizeFor(std::size_t full_chunk) {
  std::size_t slab = std::size_t{4} << 20;
  while (slab < (std::size_t{32} << 20) && 16 * slab < full_chunk) slab *= 2;
  return slab;
}

// The largest chunk a tier of `capacity` can hold: a slot spans at most 16 slabs and never
// more than the tier (the store's rule).
std::size_t LargestSlot(std::size_t capacity, std::size_t slab) {
  return std::min(16 * slab, capacity / slab * slab);
}

Result<std::size_t> ParseTierCapacity(const std::string& flag, const std::string& text,
                                      std::size_t slab) {
  Result<std::uint64_t> bytes = ParseBytes(text);
  if (!bytes.ok()) return bytes.status().WithContext(flag);
  if (*bytes < slab) {
    return Status::InvalidArgument(flag + " " + text + " is below one slab (" +
                                   FormatBytes(slab) + ")");
  }
  return static_cast<std::size_t>(AlignUp(*bytes, 4096));  // whole pages: what sources map
}

// The requests to replay: --synthetic, --trace, or the first default path that exists, else
// the synthetic generator with a note saying where the trace was looked for.
Result<std::vector<TraceRequest>> PickTrace(const DemoOptions& options, DemoReport* report) {
  if (options.synthetic) return GenerateSyntheticTrace(options.seed, options.requests);
  if (!options.trace.empty()) {
    report->trace_path = options.trace;
    return LoadTrace(options.trace, options.requests);
  }
  const std::vector<std::string> paths = DefaultTracePaths();
  std::string tried;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      report->trace_path = path;
      return LoadTrace(path, options.requests);
    }
    tried += (tried.empty() ? "" : ", ") + path;
  }
  report->trace_note = "no trace found at " + tried +
                       ": replaying a synthetic Mooncake-like trace instead (name one with "
                       "--trace or $CXLKV_TRACE)";
  return GenerateSyntheticTrace(options.seed, options.requests);
}

// The --tier flags, in the options schema's syntax (options/store_flags.h):
// SPEC,CAPACITY[,EVICTION][,DURABILITY][,KEY=VALUE...]. The demo names a tier by its spec
// ("numa:1"; a path-bearing one by its kind: "file", "devdax"), gives it --eviction unless the
// flag names a policy, and checks its capacity as --dram-capacity's (a slab at least, whole pages).
Result<std::vector<TierOptions>> ParseTierFlags(const std::vector<std::string>& flags,
                                                std::size_t slab, const std::string& eviction) {
  std::vector<TierOptions> out;
  for (const std::string& flag : flags) {
    const std::string spec = flag.substr(0, flag.find(','));
    TierOptions tier;
    tier.name = spec.find('/') == std::string::npos ? spec : spec.substr(0, spec.find(':'));
    tier.eviction = eviction;
    CXLKV_RETURN_IF_ERROR(options::ApplyTierFlag(flag, tier));
    if (tier.capacity < slab) {
      return Status::InvalidArgument("--tier " + flag + ": capacity is below one slab (" +
                                     FormatBytes(slab) + ")");
    }
    tier.capacity = static_cast<std::size_t>(AlignUp(tier.capacity, 4096));
    out.push_back(std::move(tier));
  }
  return out;
}

Result<std::unique_ptr<Store>> OpenStore(const DemoOptions& options, std::size_t dram_capacity,
                                         std::size_t file_capacity, std::size_t full_chunk,
                                         std::size_t slab, const std::string& dir,
                                         std::vector<TierOptions> tiers) {
  StoreOptions store;
  store.chunk_sizes = {full_chunk};  // full chunks waste no byte; tails get geometric classes
  store.slab_size = slab;
  if (!tiers.empty()) {
    store.tiers = std::move(tiers);
    return Store::Open(std::move(store));
  }

  TierOptions dram;
  dram.name = "dram";
  DramOptions dram_source;
  dram_source.populate = true;  // a serving engine's pool is faulted in before traffic comes
  dram.source = MemorySource::Dram(dram_source);
  dram.capacity = dram_capacity;
  dram.eviction = options.eviction;
  store.tiers.push_back(std::move(dram));

  TierOptions file;
  file.name = "file";
  FileOptions file_source;
  file_source.path = dir + "/tier1.pool";
  file.source = MemorySource::File(file_source);
  file.capacity = file_capacity;
  file.eviction = options.eviction;
  store.tiers.push_back(std::move(file));
  return Store::Open(std::move(store));
}

int RunDemo(const DemoOptions& options) {
  const auto run_start = std::chrono::steady_clock::now();
  const ModelPreset* model = FindModelPreset(options.model);
  if (model == nullptr) return UsageError("demo", "unknown --model " + options.model);
  if (options.requests == 0) return UsageError("demo", "--requests must be at least 1");
  if (options.requests > kMaxRequests) {
    return UsageError("demo", "--requests " + std::to_string(options.requests) + " is above " +
                      std::to_string(kMaxRequests));
  }
  const std::size_t full_chunk = options.chunk_tokens * model->BytesPerToken();
  const std::size_t slab = SlabSizeFor(full_chunk);
  const Result<std::size_t> dram_capacity =
      ParseTierCapacity("--dram-capacity", options.dram_capacity, slab);
  if (!dram_capacity.ok()) return UsageError("demo", dram_capacity.status().message());
  const Result<std::size_t> file_capacity =
      ParseTierCapacity("--file-capacity", options.file_capacity, slab);
  if (!file_capacity.ok()) return UsageError("demo", file_capacity.status().message());
  Result<std::vector<TierOptions>> tier_flags =
      ParseTierFlags(options.tiers, slab, options.eviction);
  if (!tier_flags.ok()) return UsageError("demo", tier_flags.status().message());
  std::size_t largest = std::max(LargestSlot(*dram_capacity, slab), LargestSlot(*file_capacity, slab));
  if (!tier_flags->empty()) {
    largest = 0;
    for (const TierOptions& t : *tier_flags) {
      largest = std::max(largest, LargestSlot(t.capacity, slab));
    }
  }
  if (largest < full_chunk) {
    return UsageError("demo", "a " + std::to_string(options.chunk_tokens) + "-token chunk of " +
                      options.model + " is " + FormatBytes(full_chunk) +
                      ", more than either tier can hold (--dram-capacity " +
                      options.dram_capacity + ", --file-capacity " + options.file_capacity + ")");
  }

  DemoReport report;
  report.seed = options.seed;
  report.model = std::string(model->name);
  report.bytes_per_token = model->BytesPerToken();
  report.chunk_tokens = options.chunk_tokens;
  report.full_chunk_bytes = full_chunk;
  report.eviction = options.eviction;
  Result<std::vector<TraceRequest>> trace = PickTrace(options, &report);
  if (!trace.ok()) return UsageError("demo", trace.status().ToString());

  Result<std::unique_ptr<ScratchDir>> scratch = ScratchDir::Create(options.dir);
  if (!scratch.ok()) return UsageError("demo", scratch.status().ToString());
  if (options.keep) (*scratch)->Keep();
  report.dir = (*scratch)->path();
  report.kept = options.keep;
  {
    Result<std::unique_ptr<Store>> store = OpenStore(options, *dram_capacity, *file_capacity,
                                                     full_chunk, slab, (*scratch)->path(),
                                                     std::move(tier_flags).value());
    if (!store.ok()) return UsageError("demo", store.status().ToString());

    ReplayOptions replay;
    replay.model = model;
    replay.chunk_tokens = options.chunk_tokens;
    replay.corrupt_first_read = options.inject_corruption;
    Result<ReplayResult> result = Replay(**store, *trace, replay);
    if (!result.ok()) {
      std::fprintf(stderr, "cxlkv demo: %s\n", result.status().ToString().c_str());
      return kExitFailure;
    }
    report.replay = *result;
    report.stats = (*store)->Stats();
  }  // the store unmaps the tiers here, before the scratch directory goes
  scratch->reset();

  report.elapsed_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  if (options.json) {
    std::printf("%s\n", DemoReportToJson(report).dump(2).c_str());
  } else {
    std::fputs(FormatDemoReport(report).c_str(), stdout);
  }
  return report.replay.failed == 0 ? kExitOk : kExitFailure;
}

std::string ModelHelp() {
  std::string help =
      "KV geometry of the model whose chunks are stored. The default, small, keeps the "
      "default run to a few seconds on two cores; llama-3.1-8b's chunks are 16x larger, so "
      "the same tiers hold 16x fewer of them. Presets:";
  for (const ModelPreset& preset : ModelPresets()) {
    help += "\n  " + std::string(preset.name) + ": " + std::string(preset.note);
  }
  return help;
}

}  // namespace

Command AddDemoCommand(CLI::App& root) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* app = root.add_subcommand(
      "demo",
      "Replay a KV-cache request trace (Mooncake's conversation trace, or a synthetic one) "
      "against a Store with a DRAM tier and a file-backed tier: read back and verify each "
      "cached prefix, store the missing chunks, report hits and throughput per tier");
  app->footer(
      "Without --trace or --synthetic the demo reads $CXLKV_TRACE, then "
      "../shared/traces/mooncake_conversation_trace.jsonl or ../../shared/traces/... from the "
      "current directory, and falls back to a synthetic trace (saying so) when none exists. "
      "Each 512-token trace block becomes 512/--chunk-tokens chunks with LMCache-style keys "
      "vllm@<model>@1@0@<hash>. Exit status: 0 every chunk read back verified, 1 a chunk "
      "failed verification or the store failed, 2 bad options, a bad trace or tiers that "
      "could not be set up.");
  app->add_option("--trace", options->trace,
                  "Mooncake-format trace to replay: one JSON object a line with timestamp (ms), "
                  "input_length, output_length and hash_ids (one per 512-token block)");
  app->add_flag("--synthetic", options->synthetic,
                "Replay the built-in synthetic Mooncake-like trace (see --seed)")
      ->excludes(app->get_option("--trace"));
  std::vector<std::string> model_names;
  for (const ModelPreset& preset : ModelPresets()) model_names.emplace_back(preset.name);
  app->add_option("--model", options->model, ModelHelp())
      ->check(CLI::IsMember(model_names))
      ->capture_default_str();
  app->add_option("--chunk-tokens", options->chunk_tokens,
                  "Tokens per stored chunk (LMCache's chunk size); a 512-token trace block "
                  "becomes 512/N chunks")
      ->check(CLI::IsMember({64, 128, 256, 512}))
      ->capture_default_str();
  app->add_option("--requests", options->requests,
                  "Replay the first N requests of the trace (fewer if it is shorter)")
      ->capture_default_str();
  app->add_option("--dram-capacity", options->dram_capacity,
                  "Size of tier 0, anonymous DRAM (e.g. 256M, 1G)")
      ->capture_default_str();
  app->add_option("--file-capacity", options->file_capacity,
                  "Size of tier 1, a file-backed pool mapped through libpmem2 (e.g. 1G)")
      ->capture_default_str();
  app->add_option("--tier", options->tiers,
                  "SPEC,CAPACITY[,EVICTION][,DURABILITY][,KEY=VALUE...]: a tier, fastest "
                  "first; repeat it for more. Replaces the DRAM and file tiers. SPEC: dram, "
                  "numa:N (a CXL expander's node), file:PATH, devdax:/dev/daxX.Y (e.g. --tier "
                  "dram,64M --tier numa:1,256M); KEY=VALUE: the [[tier]] keys of `cxlkv serve "
                  "--help`")
      ->excludes(app->get_option("--dram-capacity"))
      ->excludes(app->get_option("--file-capacity"));
  app->add_option("--eviction", options->eviction, "Eviction policy of both tiers")
      ->check(CLI::IsMember({"lru", "fifo", "lfu", "s3fifo", "prefix-chains", "prefix",
                             "prefix-hazard"}))
      ->capture_default_str();
  app->add_option("--dir", options->dir,
                  "Directory in which a fresh cxlkv-demo-XXXXXX directory holds tier 1's pool "
                  "file (default $TMPDIR or /tmp)");
  app->add_flag("--keep", options->keep, "Keep the pool file and its directory afterwards");
  app->add_option("--seed", options->seed, "Seed of the synthetic trace")->capture_default_str();
  app->add_flag("--json", options->json, "Print a machine-readable summary instead of text");
  // For the CLI tests only: proves that a bad read fails the run.
  app->add_flag("--inject-corruption", options->inject_corruption)->group("");
  return {app, [options] { return RunDemo(*options); }};
}

}  // namespace cxlkv::cli
