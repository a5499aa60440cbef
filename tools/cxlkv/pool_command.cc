// `cxlkv format` and `cxlkv fsck`: create or reset a durable pool, and check (and repair) one.
//
// format opens a store with one durable tier on the pool and format set, then closes it
// cleanly, so the pool's geometry is exactly the one `Store::Open` computes for the same
// options (a later open with them finds it; other options are refused). It refuses a path that
// already holds a pool, valid or damaged, unless --force.
#include <CLI/CLI.hpp>
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/pool.h"
#include "cxlkv/store.h"
#include "tools/cxlkv/commands.h"
#include "util/cpu.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

// "file:P" and "devdax:P" as given; a bare path is a devdax device under /dev/dax, else a file.
std::string SourceSpec(const std::string& pool) {
  if (pool.rfind("file:", 0) == 0 || pool.rfind("devdax:", 0) == 0) return pool;
  return (pool.rfind("/dev/dax", 0) == 0 ? "devdax:" : "file:") + pool;
}

// Maps all of an existing pool (a file's size; a device's capacity).
Result<std::unique_ptr<MemoryRegion>> MapExisting(const std::string& spec) {
  if (spec.rfind("file:", 0) == 0) {
    const std::string path = spec.substr(5);
    struct stat st{};
    if (stat(path.c_str(), &st) != 0) return Status::FromErrno("stat " + path, errno);
    if (st.st_size == 0) return Status::InvalidArgument(path + " is empty: not a pool");
    FileOptions fo;
    fo.path = path;
    fo.create = false;
    return MemorySource::File(fo)->Map(static_cast<std::size_t>(st.st_size));
  }
  CXLKV_ASSIGN_OR_RETURN(auto source, MemorySource::Parse(spec));
  return source->Map(0);
}

}  // namespace

Command AddFormatCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "format", "Create or reset a durable pool (a file or /dev/dax) for a durable store tier");
  struct Options {
    std::string pool;
    std::string capacity;
    std::string slab_size = "4M";
    std::vector<std::string> chunk_sizes;
    std::string durability = "persist-on-put";
    bool force = false;
  };
  auto o = std::make_shared<Options>();
  app->add_option("pool", o->pool, "file path, /dev/daxX.Y, or a file:/devdax: spec")->required();
  app->add_option("--capacity", o->capacity,
                  "bytes of the pool, as the store tier will map them (e.g. 64G)")->required();
  app->add_option("--slab-size", o->slab_size, "slab size, as the store's slab_size (4M)");
  app->add_option("--chunk-size", o->chunk_sizes,
                  "a chunk size with an exact class, as the store's chunk_sizes (repeatable)");
  app->add_option("--durability", o->durability, "persist-on-put or background");
  app->add_flag("--force", o->force, "erase a pool that is already there");
  return {app, [o]() -> int {
            const std::string spec = SourceSpec(o->pool);
            StoreOptions so;
            TierOptions t;
            t.name = "pool";
            t.source_spec = spec;
            Result<std::size_t> capacity = ParseBytes(o->capacity);
            Result<std::size_t> slab = ParseBytes(o->slab_size);
            if (!capacity.ok() || !slab.ok()) {
              std::fprintf(stderr, "cxlkv format: %s\n",
                           (!capacity.ok() ? capacity.status() : slab.status()).ToString().c_str());
              return kExitUsage;
            }
            for (const std::string& c : o->chunk_sizes) {
              Result<std::size_t> v = ParseBytes(c);
              if (!v.ok()) {
                std::fprintf(stderr, "cxlkv format: --chunk-size: %s\n",
                             v.status().ToString().c_str());
                return kExitUsage;
              }
              so.chunk_sizes.push_back(*v);
            }
            if (o->durability == "volatile") {
              std::fprintf(stderr, "cxlkv format: a volatile tier has no pool to format\n");
              return kExitUsage;
            }
            // An existing pool is kept unless --force: a damaged one too (fsck may save it).
            Result<std::unique_ptr<MemoryRegion>> existing = MapExisting(spec);
            if (existing.ok() && !o->force) {
              Result<PoolIdentity> sbs = IdentifyPool(std::span<const std::byte>(
                  (*existing)->data(), (*existing)->size()));
              if (sbs.ok()) {
                std::fprintf(stderr,
                             "cxlkv format: %s holds cxlkv pool %s (%s); --force erases it\n",
                             o->pool.c_str(), sbs->uuid.c_str(),
                             FormatBytes(sbs->region_size).c_str());
                return kExitUsage;
              }
              if (!sbs.status().IsNotFound()) {
                std::fprintf(stderr,
                             "cxlkv format: %s looks like a damaged or newer cxlkv pool (%s); "
                             "`cxlkv fsck` it, or --force to erase it\n",
                             o->pool.c_str(), sbs.status().ToString().c_str());
                return kExitUsage;
              }
            }
            existing = Status::Ok();  // unmapped before the store maps it
            t.capacity = *capacity;
            t.durability = o->durability;
            t.format = true;
            so.tiers.push_back(std::move(t));
            so.slab_size = *slab;
            so.background_thread = false;
            so.copy_threads = 1;
            auto store = Store::Open(std::move(so));
            if (!store.ok()) {
              std::fprintf(stderr, "cxlkv format: %s\n", store.status().ToString().c_str());
              return kExitUsage;
            }
            store->reset();  // the clean close writes the empty snapshot
            std::printf("formatted %s: %s, slab %s, durability %s\n", o->pool.c_str(),
                        FormatBytes(*capacity).c_str(), FormatBytes(*slab).c_str(),
                        o->durability.c_str());
            return kExitOk;
          }};
}

Command AddFsckCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "fsck", "Check a durable pool as a reopen reads it, then every chunk's bytes: list every "
              "chunk a reopen would drop and every damaged structure (exit 1 if any); --repair "
              "frees what fails");
  struct Options {
    std::string pool;
    bool repair = false;
    bool json = false;
    unsigned threads = 0;
  };
  auto o = std::make_shared<Options>();
  app->add_option("pool", o->pool, "file path, /dev/daxX.Y, or a file:/devdax: spec")->required();
  app->add_flag("--repair", o->repair,
                "free the headers of corrupt chunks and conflict losers, clear bad slab "
                "records, mark the pool not clean (run on a pool no store has open)");
  app->add_flag("--json", o->json, "one JSON object instead of text");
  app->add_option("--threads", o->threads, "checksum threads (default: the allowed CPUs)");
  return {app, [o]() -> int {
            Result<std::unique_ptr<MemoryRegion>> region = MapExisting(SourceSpec(o->pool));
            if (!region.ok()) {
              std::fprintf(stderr, "cxlkv fsck: %s\n", region.status().ToString().c_str());
              return kExitUsage;
            }
            const unsigned threads =
                o->threads != 0 ? o->threads : static_cast<unsigned>(AllowedCpus().size());
            Result<PoolCheckReport> report = CheckPool(**region, o->repair, threads);
            if (!report.ok()) {
              std::fprintf(stderr, "cxlkv fsck: %s: %s\n", o->pool.c_str(),
                           report.status().ToString().c_str());
              return report.status().IsCorruption() ? kExitFailure : kExitUsage;
            }
            if (o->json) {
              std::printf("%s\n", report->json.c_str());
            } else {
              std::printf("%s", report->text.c_str());
            }
            // Non-zero whenever a reopen would drop something, repaired or not.
            return report->clean ? kExitOk : kExitFailure;
          }};
}

}  // namespace cxlkv::cli
