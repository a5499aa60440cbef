// `cxlkv serve`: LMCache's lm:// remote protocol on a Store, so an unmodified LMCache with
// `remote_url: lm://HOST:PORT` keeps its chunks in cxlkv tiers. Tiers and server settings
// come from --config FILE (TOML, see server/config.h) and/or flags; a flag given wins over
// the file. Runs until SIGINT or SIGTERM.
#include <CLI/CLI.hpp>

#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/store.h"
#include "options/option_schema.h"
#include "options/store_flags.h"
#include "options/store_schema.h"
#include "server/config.h"
#include "server/server.h"
#include "server/server_schema.h"
#include "tools/cxlkv/commands.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

struct ServeFlags {
  std::string config;
  std::vector<std::string> tiers;  // SPEC,CAPACITY[,ITEM...]
  std::string spill;               // PATH,CAPACITY[,KEY=VALUE...]
  std::vector<std::string> store;  // KEY=VALUE
  std::vector<std::string> chunk_sizes;
  bool print_options = false;
  // The [server] options, one flag each, generated from the schema: the text of each given
  // value-taking flag and the state of each boolean one, by key.
  std::map<std::string, std::string, std::less<>> server_values;
  std::map<std::string, bool, std::less<>> server_flags;
};

// A server option's flag: "--" and the key with dashes, or the name the schema keeps for it.
std::string FlagName(const options::OptionInfo& info) {
  if (!info.flag.empty()) return "--" + std::string(info.flag);
  std::string name = "--" + std::string(info.key);
  for (char& c : name) c = c == '_' ? '-' : c;
  return name;
}

// Without chunk sizes from the command line or the file: an exact slab class for every power
// of two from 256 KiB to 64 MiB. LMCache's chunk (256 tokens of K and V) is a power of two for
// most models (Llama 3 8B: 32 MiB); one that is not gets a geometric class (up to 25% waste)
// unless --chunk-size names it. Without exact classes a 2 MiB chunk took a 2.1 MiB slot, one
// per 4 MiB slab: a 1 GiB tier held 0.5 GiB.
std::vector<std::size_t> DefaultChunkSizes() {
  std::vector<std::size_t> sizes;
  for (std::size_t s = std::size_t{256} << 10; s <= (std::size_t{64} << 20); s *= 2) {
    sizes.push_back(s);
  }
  return sizes;
}

// The file's settings, then the flags given on the command line.
Result<serve::ServeConfig> Configure(const CLI::App& app, const ServeFlags& f) {
  serve::ServeConfig c;
  if (!f.config.empty()) {
    CXLKV_ASSIGN_OR_RETURN(c, serve::LoadServeConfig(f.config, std::move(c)));
  }
  std::vector<options::NamedValue> server;
  for (const options::OptionSpec<serve::ServerOptions>& o : serve::ServerSchema()) {
    const std::string flag = FlagName(o.info);
    if (app.count(flag) == 0) continue;
    const std::string key(o.info.key);
    if (o.info.type == options::OptionType::kBool) {
      server.push_back({key, {f.server_flags.find(key)->second}, flag});
    } else {
      server.push_back({key, {f.server_values.find(key)->second}, flag});
    }
  }
  CXLKV_RETURN_IF_ERROR(options::Apply(serve::ServerSchema(), server, "", c.server));
  for (const std::string& item : f.store) {
    CXLKV_RETURN_IF_ERROR(options::ApplyStoreFlag(item, c.store));
  }
  if (!f.chunk_sizes.empty()) {  // --store chunk_sizes=..., one size a flag
    std::vector<options::OptionValue> sizes;
    for (const std::string& size : f.chunk_sizes) sizes.push_back({size});
    const options::NamedValue nv{"chunk_sizes", {std::move(sizes)}, "--chunk-size"};
    CXLKV_RETURN_IF_ERROR(options::Apply(options::StoreSchema(), std::span(&nv, 1), "", c.store));
  }
  if (c.store.chunk_sizes.empty()) c.store.chunk_sizes = DefaultChunkSizes();
  if (!f.tiers.empty()) {
    c.store.tiers.clear();
    for (const std::string& t : f.tiers) {
      TierOptions tier;
      tier.name = t.substr(0, t.find_first_of(":,"));  // its kind: "dram", "numa", "file"
      CXLKV_RETURN_IF_ERROR(options::ApplyTierFlag(t, tier));
      c.store.tiers.push_back(std::move(tier));
    }
  }
  if (!f.spill.empty()) CXLKV_RETURN_IF_ERROR(options::ApplySpillFlag(f.spill, c.store));
  if (c.store.tiers.empty()) {  // one DRAM tier of 1 GiB
    TierOptions tier;
    tier.name = "dram";
    tier.source_spec = "dram";
    tier.capacity = std::size_t{1} << 30;
    c.store.tiers.push_back(std::move(tier));
  }
  return c;
}

int RunServe(const CLI::App& app, const ServeFlags& flags) {
  // Block the stop signals before any thread starts (the store's own included), so that
  // only the sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr) != 0) {
    return UsageError("serve", "cannot block SIGINT/SIGTERM");
  }
  Result<serve::ServeConfig> config = Configure(app, flags);
  if (!config.ok()) return UsageError("serve", config.status().ToString());
  if (flags.print_options) {
    std::printf("%s", serve::DescribeServeConfig(*config).c_str());
    return kExitOk;
  }
  std::string tiers;
  for (const TierOptions& t : config->store.tiers) {
    tiers += (tiers.empty() ? "" : ", ") + t.source_spec + " " + FormatBytes(t.capacity) + " " +
             t.eviction + (t.durability == "volatile" ? "" : " " + t.durability);
  }
  const std::string spill = config->store.spill.path;
  Result<std::unique_ptr<Store>> store = Store::Open(std::move(config->store));
  if (!store.ok()) return UsageError("serve", store.status().ToString());
  Result<std::unique_ptr<serve::Server>> server =
      serve::Server::Start(**store, config->server);
  if (!server.ok()) return UsageError("serve", server.status().ToString());
  const serve::ServerOptions& o = config->server;
  std::printf("cxlkv serve: tiers %s%s\n", tiers.c_str(),
              spill.empty() ? "" : (", spill " + spill).c_str());
  // A warm restart says what came back.
  for (const TierStats& t : (*store)->Stats().tiers) {
    if (t.durability == "volatile" && t.recovered == 0) continue;
    const std::string kind = t.durability.empty() ? "log" : t.durability;  // the spill tier
    std::printf("cxlkv serve: %s (%s): %llu chunks recovered in %.0f ms%s\n", t.name.c_str(),
                kind.c_str(), static_cast<unsigned long long>(t.recovered),
                t.recovery_seconds * 1e3,
                t.recovered_from_snapshot ? " from the snapshot of a clean close" : "");
  }
  if ((*server)->port() >= 0) {
    const bool v6 = o.host.find(':') != std::string::npos;
    std::printf("cxlkv serve: listening on lm://%s%s%s:%d\n", v6 ? "[" : "", o.host.c_str(),
                v6 ? "]" : "", (*server)->port());
  }
  if (!o.unix_path.empty()) std::printf("cxlkv serve: listening on unix:%s\n", o.unix_path.c_str());
  if ((*server)->metrics_port() >= 0) {
    std::printf("cxlkv serve: metrics on http://%s:%d/metrics\n", o.metrics_host.c_str(),
                (*server)->metrics_port());
  }
  std::fflush(stdout);
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  (*server)->Stop();
  std::printf("cxlkv serve: stopped by signal %d\n%s%s", sig,
              (*server)->metrics().Snapshot((*server)->gauges()).ToString().c_str(),
              (*store)->Stats().ToString().c_str());
  return kExitOk;
}

}  // namespace

Command AddServeCommand(CLI::App& root) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* app = root.add_subcommand(
      "serve", "Serve LMCache's lm:// remote protocol (remote_url: lm://HOST:PORT) from cxlkv tiers");
  app->add_option("--config", flags->config, "TOML file: [server], [store], [[tier]], [spill]");
  app->add_option("--tier", flags->tiers,
                  "A tier, fastest first: SPEC,CAPACITY[,EVICTION][,DURABILITY][,KEY=VALUE...] "
                  "with [[tier]] keys, e.g. dram,1G,lru or file:/pool,8G,persist-on-put (a pool "
                  "that keeps its chunks across restarts; default: dram,1G)");
  app->add_option("--spill", flags->spill,
                  "NVMe spill tier below the memory tiers: PATH,CAPACITY[,KEY=VALUE...] with "
                  "[spill] keys");
  app->add_option("--store", flags->store, "A [store] option, KEY=VALUE (repeatable)");
  app->add_option("--chunk-size", flags->chunk_sizes,
                  "A chunk size to give an exact slot class (repeatable): LMCache's chunk is "
                  "chunk_size (256) tokens x layers x 2 x KV heads x head dim x dtype bytes, "
                  "e.g. 32M for Llama 3 8B in bf16. Default: every power of two from 256K to "
                  "64M; another size gets a slot up to 25% larger unless named here");
  app->add_flag("--print-options", flags->print_options,
                "Print the options the file and flags give, as a TOML file, and exit");
  // The [server] options, from the schema: the flags and the file take the same keys.
  const serve::ServerOptions defaults;
  for (const options::OptionSpec<serve::ServerOptions>& o : serve::ServerSchema()) {
    std::string names = FlagName(o.info);
    if (!o.info.flag.empty()) {  // also the key's own name
      std::string own = std::string(o.info.key);
      for (char& c : own) c = c == '_' ? '-' : c;
      names += ",--" + own;
    }
    std::string doc(o.info.doc);
    if (const std::optional<options::OptionValue> d = o.get(defaults)) {
      doc += " (default " + options::ToToml(*d) + ")";
    }
    doc[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(doc[0])));
    const std::string key(o.info.key);
    switch (o.info.type) {
      case options::OptionType::kBool:
        app->add_flag(names, flags->server_flags[key], doc);
        break;
      case options::OptionType::kInteger:
        app->add_option(names, flags->server_values[key], doc)->type_name("INT");
        break;
      case options::OptionType::kBytes:
        app->add_option(names, flags->server_values[key], doc)->type_name("SIZE");
        break;
      default:
        app->add_option(names, flags->server_values[key], doc);
        break;
    }
  }
  app->footer(
      "Keys of the --config file's tables, --tier and --spill KEY=VALUE items and --store:\n" +
      options::StoreOptionsHelp());
  return {app, [app, flags] { return RunServe(*app, *flags); }};
}

}  // namespace cxlkv::cli
