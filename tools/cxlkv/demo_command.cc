// `cxlkv demo`: the quick start. Two tiers on any machine (DRAM, and a file-backed pool in a
// temporary directory), each carved by a SlabAllocator, fed the KV chunks of a synthetic chat
// workload, then read back and verified. It shows what cxlkv's lower layers do today, with
// throughput next to a memcpy baseline taken in the same run.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "cxlkv/memory_source.h"
#include "tools/cxlkv/commands.h"
#include "tools/cxlkv/demo_report.h"
#include "tools/cxlkv/demo_store.h"
#include "tools/cxlkv/demo_tier.h"
#include "tools/cxlkv/demo_workload.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

// 150 requests of the default model write about 0.9 GiB of unique chunks: enough to fill the
// DRAM tier and spill into the file tier, but not to drop, with the default capacities.
constexpr std::uint32_t kDefaultRequests = 150;

struct DemoOptions {
  std::string model{kDefaultModel};
  std::uint32_t requests = kDefaultRequests;
  std::string dram_capacity = "256M";
  std::string file_capacity = "1G";
  std::string dir;  // parent of the scratch directory; $TMPDIR or /tmp when empty
  bool keep = false;
  std::uint64_t seed = 1;
  bool json = false;
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

int UsageError(const std::string& message) {
  std::fprintf(stderr, "cxlkv demo: %s\n", message.c_str());
  return kExitUsage;
}

// Keeps the compiler from proving a copy's destination dead and dropping the copy.
void DoNotOptimize(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

// DRAM-to-DRAM memcpy of chunk-sized blocks into a ring larger than any last-level cache,
// touched first so that page faults are not measured: what a tier at DRAM speed would reach.
double MeasureMemcpyGbps(std::size_t copy_bytes) {
  constexpr std::size_t kMinRing = std::size_t{64} << 20;
  constexpr std::size_t kMinTotal = std::size_t{512} << 20;
  const std::size_t slots = std::max<std::size_t>(2, (kMinRing + copy_bytes - 1) / copy_bytes);
  std::vector<std::byte> source(copy_bytes);
  FillChunkBytes("memcpy baseline", source);
  std::vector<std::byte> ring(slots * copy_bytes, std::byte{1});

  std::size_t copied = 0;
  std::size_t slot = 0;
  const auto start = std::chrono::steady_clock::now();
  while (copied < kMinTotal) {
    std::memcpy(ring.data() + slot * copy_bytes, source.data(), copy_bytes);
    DoNotOptimize(ring.data());
    copied += copy_bytes;
    slot = (slot + 1) % slots;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return GigabytesPerSecond(copied, seconds);
}

Result<std::size_t> ParseCapacity(const std::string& flag, const std::string& text) {
  Result<std::uint64_t> bytes = ParseBytes(text);
  if (!bytes.ok()) return bytes.status().WithContext(flag);
  if (*bytes < kDemoSlabSize) {
    return Status::InvalidArgument(flag + " " + text + " is below one slab (" +
                                   FormatBytes(kDemoSlabSize) + ")");
  }
  // Whole 4 KiB pages: what every memory source maps.
  return static_cast<std::size_t>(AlignUp(*bytes, 4096));
}

// Tier 0: DRAM, populated up front as a serving engine's pool would be. Tier 1: a file.
Result<std::vector<std::unique_ptr<DemoTier>>> OpenTiers(std::size_t dram_capacity,
                                                        std::size_t file_capacity,
                                                        const std::string& dir,
                                                        std::size_t full_chunk) {
  std::vector<std::unique_ptr<DemoTier>> tiers;
  DramOptions dram;
  dram.populate = true;
  Result<std::unique_ptr<DemoTier>> tier0 =
      DemoTier::Open(MemorySource::Dram(dram), dram_capacity, full_chunk);
  if (!tier0.ok()) return tier0.status().WithContext("tier 0 (DRAM)");
  tiers.push_back(std::move(tier0).value());

  FileOptions file;
  file.path = dir + "/tier1.pool";
  Result<std::unique_ptr<DemoTier>> tier1 =
      DemoTier::Open(MemorySource::File(file), file_capacity, full_chunk);
  if (!tier1.ok()) return tier1.status().WithContext("tier 1 (file)");
  tiers.push_back(std::move(tier1).value());
  return tiers;
}

void CountPrompts(const std::vector<ChatRequest>& requests, DemoReport* report) {
  report->requests = requests.size();
  report->min_prompt_tokens = requests.empty() ? 0 : UINT64_MAX;
  for (const ChatRequest& request : requests) {
    report->min_prompt_tokens =
        std::min<std::uint64_t>(report->min_prompt_tokens, request.prompt_tokens);
    report->max_prompt_tokens =
        std::max<std::uint64_t>(report->max_prompt_tokens, request.prompt_tokens);
    report->total_prompt_tokens += request.prompt_tokens;
  }
}

// Write pass: every chunk of every request, in request order. A chunk an earlier request
// stored (a shared prefix) is a dedup hit and is neither generated nor written again; a chunk
// no tier has room for is dropped before it is generated.
Status StoreWorkload(const std::vector<ChatRequest>& requests, const ModelPreset& model,
                     DemoStore* store, DemoReport* report) {
  std::vector<std::byte> staging(model.FullChunkBytes());
  for (const ChatRequest& request : requests) {
    for (const ChunkRef& chunk : request.chunks) {
      ++report->chunks;
      const std::string key = ChunkKey(model.name, chunk.hash);
      if (store->Contains(key)) {
        ++report->dedup_hits;
        continue;
      }
      const std::size_t size = chunk.tokens * model.BytesPerToken();
      CXLKV_ASSIGN_OR_RETURN(const std::optional<DemoStore::Slot> slot, store->Reserve(size));
      if (!slot) {
        ++report->dropped;
        report->dropped_bytes += size;
        continue;
      }
      const std::span<std::byte> bytes(staging.data(), size);
      FillChunkBytes(key, bytes);
      store->Commit(key, *slot, bytes);
      ++report->stored;
      report->stored_bytes += size;
    }
  }
  return Status::Ok();
}

int RunDemo(const DemoOptions& options) {
  const auto run_start = std::chrono::steady_clock::now();
  const ModelPreset* model = FindModelPreset(options.model);
  if (model == nullptr) return UsageError("unknown --model " + options.model);
  if (options.requests == 0) return UsageError("--requests must be at least 1");
  const Result<std::size_t> dram_capacity =
      ParseCapacity("--dram-capacity", options.dram_capacity);
  if (!dram_capacity.ok()) return UsageError(dram_capacity.status().message());
  const Result<std::size_t> file_capacity =
      ParseCapacity("--file-capacity", options.file_capacity);
  if (!file_capacity.ok()) return UsageError(file_capacity.status().message());

  Result<std::unique_ptr<ScratchDir>> scratch = ScratchDir::Create(options.dir);
  if (!scratch.ok()) return UsageError(scratch.status().ToString());
  if (options.keep) (*scratch)->Keep();

  DemoReport report;
  report.model = std::string(model->name);
  report.bytes_per_token = model->BytesPerToken();
  report.full_chunk_bytes = model->FullChunkBytes();
  report.seed = options.seed;
  report.dir = (*scratch)->path();
  report.kept = options.keep;
  {
    Result<std::vector<std::unique_ptr<DemoTier>>> tiers =
        OpenTiers(*dram_capacity, *file_capacity, (*scratch)->path(), model->FullChunkBytes());
    if (!tiers.ok()) return UsageError(tiers.status().ToString());
    DemoStore store(std::move(tiers).value());

    ChatWorkloadOptions workload;
    workload.seed = options.seed;
    workload.requests = options.requests;
    const std::vector<ChatRequest> requests = GenerateChatWorkload(workload);
    CountPrompts(requests, &report);

    report.memcpy_gbps = MeasureMemcpyGbps(model->FullChunkBytes());
    if (Status status = StoreWorkload(requests, *model, &store, &report); !status.ok()) {
      std::fprintf(stderr, "cxlkv demo: %s\n", status.ToString().c_str());
      return kExitFailure;
    }

    std::vector<std::byte> readback(model->FullChunkBytes());
    const DemoStore::Verification verification = store.VerifyAll(readback);
    report.verified = verification.verified;
    report.mismatches = verification.mismatched.size();
    for (const std::string& what : verification.mismatched) {
      std::fprintf(stderr, "cxlkv demo: checksum mismatch: %s\n", what.c_str());
    }

    report.tiers = store.TierReports();
    if (Status status = store.ReleaseAll(); !status.ok()) {
      std::fprintf(stderr, "cxlkv demo: %s\n", status.ToString().c_str());
      return kExitFailure;
    }
  }  // the store unmaps the tiers here, before the scratch directory goes
  scratch->reset();

  report.elapsed_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  if (options.json) {
    std::printf("%s\n", DemoReportToJson(report).dump(2).c_str());
  } else {
    std::fputs(FormatDemoReport(report).c_str(), stdout);
  }
  return report.mismatches == 0 ? kExitOk : kExitFailure;
}

std::string ModelHelp() {
  std::string help =
      "KV geometry of the model whose chunks are stored. The default, small, makes chunks "
      "small enough that the default tiers (256 MiB + 1 GiB) hold ~640 of them, so the run "
      "exercises placement, dedup and both tiers in a few seconds on two cores while writing "
      "at most 1.25 GiB; llama-3.1-8b's 32 MiB chunks would fill the same tiers with 40. Presets:";
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
      "Store the KV chunks of a synthetic chat workload in a DRAM tier and a file-backed tier "
      "(each carved by a slab allocator), read them back and verify them");
  app->footer(
      "Chunks are 256 tokens (LMCache's default) with LMCache-style keys "
      "vllm@<model>@1@0@<prefix hash>; requests sharing a system prompt share its chunks, "
      "which are stored once. Exit status: 0 all verified, 1 a chunk failed verification or "
      "a tier failed, 2 bad options or tiers that could not be set up.");
  std::vector<std::string> model_names;
  for (const ModelPreset& preset : ModelPresets()) model_names.emplace_back(preset.name);
  app->add_option("--model", options->model, ModelHelp())
      ->check(CLI::IsMember(model_names))
      ->capture_default_str();
  app->add_option("--requests", options->requests, "Chat requests to generate")
      ->capture_default_str();
  app->add_option("--dram-capacity", options->dram_capacity,
                  "Size of tier 0, anonymous DRAM (e.g. 256M, 1G)")
      ->capture_default_str();
  app->add_option("--file-capacity", options->file_capacity,
                  "Size of tier 1, a file-backed pool (e.g. 1G)")
      ->capture_default_str();
  app->add_option("--dir", options->dir,
                  "Directory in which a fresh cxlkv-demo-XXXXXX directory holds tier 1's pool "
                  "file (default $TMPDIR or /tmp)");
  app->add_flag("--keep", options->keep, "Keep the pool file and its directory afterwards");
  app->add_option("--seed", options->seed, "Seed of the synthetic workload")
      ->capture_default_str();
  app->add_flag("--json", options->json, "Print a machine-readable summary instead of text");
  return {app, [options] { return RunDemo(*options); }};
}

}  // namespace cxlkv::cli
