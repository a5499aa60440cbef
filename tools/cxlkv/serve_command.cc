// `cxlkv serve`: LMCache's lm:// remote protocol on a Store, so an unmodified LMCache with
// `remote_url: lm://HOST:PORT` keeps its chunks in cxlkv tiers. Tiers and server settings
// come from --config FILE (TOML, see server/config.h) and/or flags; a flag given wins over
// the file. Runs until SIGINT or SIGTERM.
#include <CLI/CLI.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/store.h"
#include "server/config.h"
#include "server/server.h"
#include "tools/cxlkv/commands.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

struct ServeFlags {
  std::string config;
  std::string host;
  int port = 0;
  std::string unix_path;
  std::vector<std::string> tiers;  // SPEC,CAPACITY[,EVICTION]
  std::string spill;               // PATH,CAPACITY
  unsigned threads = 2;
  std::string max_payload;
  int metrics_port = -1;
  bool quiet = false;
  std::vector<std::string> chunk_sizes;
  // Budgets (ServerOptions; docs/security.md). Empty or -1: not given.
  std::int64_t request_timeout_ms = -1, reply_timeout_ms = -1, idle_timeout_ms = -1;
  std::string min_transfer_rate, max_reserved, max_reply_bytes, max_list_bytes;
  std::int64_t max_connections = -1, max_connections_per_peer = -1;
  double log_rate = -1;
};

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

int UsageError(const std::string& message) {
  std::fprintf(stderr, "cxlkv serve: %s\n", message.c_str());
  return kExitUsage;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// The file's settings, then the flags given on the command line.
Result<serve::ServeConfig> Configure(const CLI::App& app, const ServeFlags& f) {
  serve::ServeConfig c;
  if (!f.config.empty()) {
    CXLKV_ASSIGN_OR_RETURN(c, serve::LoadServeConfig(f.config, std::move(c)));
  }
  if (app.count("--host") != 0) c.server.host = f.host;
  if (app.count("--port") != 0) c.server.port = f.port;
  if (app.count("--unix") != 0) c.server.unix_path = f.unix_path;
  if (app.count("--threads") != 0) c.server.threads = f.threads;
  if (app.count("--metrics-port") != 0) c.server.metrics_port = f.metrics_port;
  if (app.count("--quiet") != 0) c.server.quiet = f.quiet;
  auto bytes_flag = [](const std::string& text, const char* flag, std::size_t& out) -> Status {
    if (text.empty()) return Status::Ok();
    Result<std::uint64_t> bytes = ParseBytes(text);
    if (!bytes.ok()) return bytes.status().WithContext(flag);
    out = static_cast<std::size_t>(*bytes);
    return Status::Ok();
  };
  if (f.request_timeout_ms >= 0) c.server.request_timeout = std::chrono::milliseconds(f.request_timeout_ms);
  if (f.reply_timeout_ms >= 0) c.server.reply_timeout = std::chrono::milliseconds(f.reply_timeout_ms);
  if (f.idle_timeout_ms >= 0) c.server.idle_timeout = std::chrono::milliseconds(f.idle_timeout_ms);
  CXLKV_RETURN_IF_ERROR(bytes_flag(f.min_transfer_rate, "--min-transfer-rate", c.server.min_transfer_rate));
  CXLKV_RETURN_IF_ERROR(bytes_flag(f.max_reserved, "--max-reserved", c.server.max_reserved_bytes));
  CXLKV_RETURN_IF_ERROR(bytes_flag(f.max_reply_bytes, "--max-reply-bytes", c.server.max_reply_bytes));
  CXLKV_RETURN_IF_ERROR(bytes_flag(f.max_list_bytes, "--max-list-bytes", c.server.max_list_bytes));
  if (f.max_connections >= 0) c.server.max_connections = static_cast<unsigned>(f.max_connections);
  if (f.max_connections_per_peer >= 0) {
    c.server.max_connections_per_peer = static_cast<unsigned>(f.max_connections_per_peer);
  }
  if (f.log_rate >= 0) c.server.log_lines_per_second = f.log_rate;
  if (!f.chunk_sizes.empty()) {
    c.store.chunk_sizes.clear();
    for (const std::string& size : f.chunk_sizes) {
      Result<std::uint64_t> bytes = ParseBytes(size);
      if (!bytes.ok()) return bytes.status().WithContext("--chunk-size " + size);
      c.store.chunk_sizes.push_back(static_cast<std::size_t>(*bytes));
    }
  }
  if (c.store.chunk_sizes.empty()) c.store.chunk_sizes = DefaultChunkSizes();
  if (!f.max_payload.empty()) {
    Result<std::uint64_t> bytes = ParseBytes(f.max_payload);
    if (!bytes.ok()) return bytes.status().WithContext("--max-payload");
    c.server.max_payload = static_cast<std::size_t>(*bytes);
  }
  if (!f.tiers.empty()) {
    c.store.tiers.clear();
    for (const std::string& t : f.tiers) {
      const std::vector<std::string> parts = SplitCommas(t);
      if (parts.size() < 2 || parts.size() > 4) {
        return Status::InvalidArgument("--tier " + t +
                                       ": expected SPEC,CAPACITY[,EVICTION][,DURABILITY]");
      }
      TierOptions tier;
      tier.source_spec = parts[0];
      tier.name = parts[0].substr(0, parts[0].find(':'));
      Result<std::uint64_t> cap = ParseBytes(parts[1]);
      if (!cap.ok()) return cap.status().WithContext("--tier " + t);
      tier.capacity = static_cast<std::size_t>(*cap);
      // The options after the capacity, in any order: a durability mode or an eviction policy
      // (the store refuses an unknown policy by name).
      for (std::size_t i = 2; i < parts.size(); ++i) {
        const std::string& o = parts[i];
        if (o == "volatile" || o == "persist-on-put" || o == "background") {
          tier.durability = o;
        } else {
          tier.eviction = o;
        }
      }
      c.store.tiers.push_back(std::move(tier));
    }
  }
  if (!f.spill.empty()) {
    const std::vector<std::string> parts = SplitCommas(f.spill);
    if (parts.size() != 2) return Status::InvalidArgument("--spill " + f.spill + ": expected PATH,CAPACITY");
    c.store.spill.path = parts[0];
    Result<std::uint64_t> cap = ParseBytes(parts[1]);
    if (!cap.ok()) return cap.status().WithContext("--spill");
    c.store.spill.capacity = *cap;
  }
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
    return UsageError("cannot block SIGINT/SIGTERM");
  }
  Result<serve::ServeConfig> config = Configure(app, flags);
  if (!config.ok()) return UsageError(config.status().ToString());
  std::string tiers;
  for (const TierOptions& t : config->store.tiers) {
    tiers += (tiers.empty() ? "" : ", ") + t.source_spec + " " + FormatBytes(t.capacity) + " " +
             t.eviction + (t.durability == "volatile" ? "" : " " + t.durability);
  }
  const std::string spill = config->store.spill.path;
  Result<std::unique_ptr<Store>> store = Store::Open(std::move(config->store));
  if (!store.ok()) return UsageError(store.status().ToString());
  Result<std::unique_ptr<serve::Server>> server =
      serve::Server::Start(**store, config->server);
  if (!server.ok()) return UsageError(server.status().ToString());
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
  app->add_option("--host", flags->host, "TCP address to bind (default 127.0.0.1; \"\" for none)");
  app->add_option("--port", flags->port, "TCP port (default 0: a free one, printed)")
      ->check(CLI::Range(0, 65535));
  app->add_option("--unix", flags->unix_path, "Also listen on this Unix domain socket");
  app->add_option("--tier", flags->tiers,
                  "A tier, fastest first: SPEC,CAPACITY[,EVICTION][,DURABILITY], e.g. dram,1G,lru "
                  "or file:/pool,8G,persist-on-put (a pool that keeps its chunks across "
                  "restarts; default: dram,1G)");
  app->add_option("--spill", flags->spill, "NVMe spill tier below the memory tiers: PATH,CAPACITY");
  app->add_option("--threads", flags->threads, "Event-loop threads (default 2)")
      ->check(CLI::Range(1, 64));
  app->add_option("--max-payload", flags->max_payload, "Largest PUT accepted (default 1G)");
  app->add_option("--metrics-port", flags->metrics_port,
                  "Serve Prometheus metrics over HTTP on this port (0: a free one)")
      ->check(CLI::Range(0, 65535));
  app->add_flag("--quiet", flags->quiet, "Log only bad input and cut connections");
  app->add_option("--chunk-size", flags->chunk_sizes,
                  "A chunk size to give an exact slot class (repeatable): LMCache's chunk is "
                  "chunk_size (256) tokens x layers x 2 x KV heads x head dim x dtype bytes, "
                  "e.g. 32M for Llama 3 8B in bf16. Default: every power of two from 256K to "
                  "64M; another size gets a slot up to 25% larger unless named here");
  app->add_option("--request-timeout-ms", flags->request_timeout_ms,
                  "A request's header and PUT payload must arrive within this (default 30000; "
                  "0: no deadline); a stalled PUT is aborted and its slot freed")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  app->add_option("--reply-timeout-ms", flags->reply_timeout_ms,
                  "A reply must be read within this (default 30000; 0: no deadline); else its "
                  "chunk is unpinned and the connection closed")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  app->add_option("--min-transfer-rate", flags->min_transfer_rate,
                  "Bytes/s a PUT payload or a reply must average after its first second "
                  "(default 4M; 0: none)");
  app->add_option("--idle-timeout-ms", flags->idle_timeout_ms,
                  "Close connections idle this long between requests (default 0: never; "
                  "LMCache keeps its connection open)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  app->add_option("--max-reserved", flags->max_reserved,
                  "Slot bytes that PUTs being received may reserve at once; a PUT over it is "
                  "dropped (default: a quarter of the first tier; past half of it, only for "
                  "connections that have already moved half as many bytes)");
  app->add_option("--max-reply-bytes", flags->max_reply_bytes,
                  "Bytes that unread replies (pinned chunks, LIST copies) may hold at once; a "
                  "GET over it is answered as a miss (default: a quarter of the first tier; "
                  "past half of it, as for --max-reserved)");
  app->add_option("--max-connections", flags->max_connections,
                  "lm:// connections at once (default 1024, lowered to fit ulimit -n); at the "
                  "limit a new one replaces one idle for over 1 s, else is closed")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  app->add_option("--max-connections-per-peer", flags->max_connections_per_peer,
                  "lm:// connections per client address or Unix uid (default 0: no limit)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
  app->add_option("--max-list-bytes", flags->max_list_bytes,
                  "LIST replies are cut at this size (default 1M)");
  app->add_option("--log-rate", flags->log_rate,
                  "Log lines per second; more are dropped and counted (default 100; 0: no limit)")
      ->check(CLI::Range(0.0, 1e6));
  return {app, [app, flags] { return RunServe(*app, *flags); }};
}

}  // namespace cxlkv::cli
