// bench_serve --hostile: a well-behaved client's latency while each attack of issue 18 runs,
// against the same server, in the same run.
//
// One process: a Store with one 256 MiB DRAM tier behind a Server with its default budgets
// (docs/security.md), on loopback. The good client, on a connection of its own, repeats:
// PUT a new 2 MiB chunk then EXIST it (the "put" latency: the payload is stored when the
// reply comes), GET it back and compare every byte (the "get" latency); every tenth round it
// scrapes /metrics on a new connection ("scrape"). Each phase runs one attack (or none) for
// 1.2 s to set it up, then measures the good client for 4 s while it goes on.
// All phases are run 5 times in turn (1 with --quick); each ratio is the median, over the
// rounds, of the phase's p99 over the p99 of that round's phase without attack.
// Goal: every ratio <= 2x. stderr is a pipe nobody reads while it runs (the server's log).
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench/serve_bench_util.h"
#include "cxlkv/store.h"
#include "server/protocol.h"
#include "server/server.h"

namespace cxlkv::bench_serve {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kGoodChunk = 2 * kMiB;
constexpr std::size_t kBigChunk = 32 * kMiB;
constexpr int kBigChunks = 6;

// Headers as LMCache describes a byte buffer: BINARY_BUFFER, dtype None, [length, 0, 0, 0].
std::array<std::byte, serve::kRequestHeaderSize> Header(serve::Command c, std::size_t length,
                                                        const std::string& key) {
  const auto n = static_cast<std::int32_t>(length);
  return serve::wire::Header(c, n, key, {serve::kFormatBinaryBuffer, serve::kDtypeNone, {n, 0, 0, 0}});
}

void SendHeader(int fd, serve::Command c, std::size_t length, const std::string& key) {
  const auto h = Header(c, length, key);
  SendAll(fd, h.data(), h.size());
}

// An attacker's sends: the server may well have closed the connection (that is the point).
bool TrySend(int fd, const void* p, std::size_t n) { return serve::wire::SendAll(fd, p, n); }

bool TrySendHeader(int fd, serve::Command c, std::size_t length, const std::string& key) {
  const auto h = Header(c, length, key);
  return TrySend(fd, h.data(), h.size());
}

// Waits until the server closes fd, or stop; drains what arrives (unless `unread`).
void WaitClosed(int fd, const std::atomic<bool>& stop, bool unread) {
  char buf[65536];
  while (!stop.load()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    if (unread) {
      // Peek only: the reply stays unread, and a close shows as a 0-byte peek or an error.
      const ssize_t k = ::recv(fd, buf, 1, MSG_PEEK | MSG_DONTWAIT);
      if (k <= 0 && !(k < 0 && errno == EAGAIN)) return;
      if ((p.revents & (POLLHUP | POLLERR)) != 0) return;
      ::usleep(50000);
      continue;
    }
    if (::recv(fd, buf, sizeof(buf), 0) <= 0) return;
  }
}

std::vector<std::byte> Pattern(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> b(size);
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t v = (seed + i) * 0x9E3779B97F4A7C15ull;
    std::memcpy(b.data() + i, &v, std::min<std::size_t>(8, size - i));
  }
  return b;
}

struct Env {
  Store* store;
  int port;
  int metrics_port;
};

struct Attack {
  const char* name;
  int threads;
  std::function<void(const Env&, int, const std::atomic<bool>&)> run;  // thread index, stop
};

// A new connection, an unknown command (the server logs a line and closes it).
void BadFrame(int port, const std::atomic<bool>& stop) {
  UniqueFd fd = Connect(port);
  TrySendHeader(fd.get(), serve::Command(9), 0, "bad");
  WaitClosed(fd.get(), stop, false);
}

std::vector<Attack> Attacks() {
  using serve::Command;
  return {
      {"none", 0, nullptr},
      {"stalled PUTs: 3 x 64 MiB header + 1 byte", 3,
       [](const Env& e, int, const std::atomic<bool>& stop) {
         while (!stop.load()) {
           UniqueFd fd = Connect(e.port);
           TrySendHeader(fd.get(), Command::kPut, 64 * kMiB, "stalled-" + std::to_string(fd.get()));
           TrySend(fd.get(), "x", 1);
           WaitClosed(fd.get(), stop, false);
         }
       }},
      {"trickled PUTs: 4 x 1 KiB per 100 ms", 4,
       [](const Env& e, int, const std::atomic<bool>& stop) {
         std::vector<char> piece(1024, 't');
         while (!stop.load()) {
           UniqueFd fd = Connect(e.port);
           TrySendHeader(fd.get(), Command::kPut, 16 * kMiB, "trickle-" + std::to_string(fd.get()));
           while (!stop.load() &&
                  ::send(fd.get(), piece.data(), piece.size(), MSG_NOSIGNAL) > 0) {
             ::usleep(100000);
           }
         }
       }},
      {"unread GETs: 6 x 32 MiB", 6,
       [](const Env& e, int i, const std::atomic<bool>& stop) {
         while (!stop.load()) {
           UniqueFd fd = Connect(e.port, 4096);
           TrySendHeader(fd.get(), Command::kGet, 0, "big-" + std::to_string(i % kBigChunks));
           WaitClosed(fd.get(), stop, true);
         }
       }},
      {"unread LISTs: 40 connections", 1,
       [](const Env& e, int, const std::atomic<bool>& stop) {
         std::vector<UniqueFd> fds;
         for (int i = 0; i < 40; ++i) {
           fds.push_back(Connect(e.port, 4096));
           TrySendHeader(fds.back().get(), Command::kList, 0, "");
         }
         while (!stop.load()) ::usleep(50000);
       }},
      {"duplicate PUTs dropped: 200 connections x 256 KiB", 1,
       [](const Env& e, int, const std::atomic<bool>& stop) {
         const std::vector<std::byte> dup = Pattern(256 << 10, 7);
         std::vector<UniqueFd> fds;
         for (int i = 0; i < 200 && !stop.load(); ++i) {
           fds.push_back(Connect(e.port));
           TrySendHeader(fds.back().get(), Command::kPut, dup.size(), "big-0");
           TrySend(fds.back().get(), dup.data(), dup.size());
         }
         while (!stop.load()) ::usleep(50000);
       }},
      {"idle connections: 1,100 (limit 1,024)", 1,
       [](const Env& e, int, const std::atomic<bool>& stop) {
         std::vector<UniqueFd> fds;
         for (int i = 0; i < 1100 && !stop.load(); ++i) fds.push_back(Connect(e.port));
         while (!stop.load()) ::usleep(50000);
       }},
      {"bad frames: 1,000/s, each logged (stderr unread)", 2,
       [](const Env& e, int, const std::atomic<bool>& stop) {
         auto next = Clock::now();
         while (!stop.load()) {
           BadFrame(e.port, stop);
           next += std::chrono::microseconds(2000);  // 500 a second per thread
           std::this_thread::sleep_until(next);
         }
       }},
      {"bad frames: as fast as 2 threads can", 2,
       [](const Env& e, int, const std::atomic<bool>& stop) {
         while (!stop.load()) BadFrame(e.port, stop);
       }},
      {"slow metrics clients: 8 x 1 byte per 1.5 s", 8,
       [](const Env& e, int, const std::atomic<bool>& stop) {
         while (!stop.load()) {
           UniqueFd fd = Connect(e.metrics_port);
           for (const char* p = "GET /metrics"; *p != '\0' && !stop.load(); ++p) {
             if (::send(fd.get(), p, 1, MSG_NOSIGNAL) <= 0) break;
             for (int i = 0; i < 15 && !stop.load(); ++i) ::usleep(100000);
           }
         }
       }},
  };
}

struct Sample {
  std::vector<double> put_ms, get_ms, scrape_ms;
  std::size_t rounds = 0, stored = 0, hits = 0, reconnects = 0;
};

double P(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double Scrape(int port) {
  const auto t0 = Clock::now();
  UniqueFd fd = Connect(port);
  const std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
  SendAll(fd.get(), req.data(), req.size());
  char buf[65536];
  std::size_t got = 0;
  for (ssize_t k; (k = ::recv(fd.get(), buf, sizeof(buf), 0)) > 0;) got += static_cast<std::size_t>(k);
  if (got == 0) Die("a metrics scrape got nothing");
  return Ms(t0, Clock::now());
}

// The good client for `seconds`: every byte it reads back is compared.
Sample Measure(const Env& e, double seconds, std::uint64_t& next_key) {
  Sample s;
  UniqueFd fd = Connect(e.port);
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::byte> got(kGoodChunk);
  while (Clock::now() < end) {
    const std::uint64_t n = next_key++;
    const std::string key = "good-" + std::to_string(n);
    const std::vector<std::byte> chunk = Pattern(kGoodChunk, n);
    const auto t0 = Clock::now();
    SendHeader(fd.get(), serve::Command::kPut, chunk.size(), key);
    SendAll(fd.get(), chunk.data(), chunk.size());
    SendHeader(fd.get(), serve::Command::kExist, 0, key);
    std::int32_t reply[9];
    if (!RecvAll(fd.get(), reply, sizeof(reply))) Die("the good client's EXIST got no reply");
    const auto t1 = Clock::now();
    s.stored += reply[0] == serve::kReplySuccess;
    SendHeader(fd.get(), serve::Command::kGet, 0, key);
    if (!RecvAll(fd.get(), reply, sizeof(reply))) Die("the good client's GET got no reply");
    if (reply[0] == serve::kReplySuccess) {
      if (static_cast<std::size_t>(reply[1]) != kGoodChunk ||
          !RecvAll(fd.get(), got.data(), got.size()) || got != chunk) {
        Die("the good client read back wrong bytes for " + key);
      }
      ++s.hits;
    }
    const auto t2 = Clock::now();
    s.put_ms.push_back(Ms(t0, t1));
    s.get_ms.push_back(Ms(t1, t2));
    if (++s.rounds % 10 == 0) s.scrape_ms.push_back(Scrape(e.metrics_port));
  }
  return s;
}

}  // namespace

int RunHostile(bool quick) {
  // Room for the idle-connection flood on both ends of loopback, in this one process.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  // The server's log goes to a pipe nobody reads, as in the logging attack.
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) Die("pipe");
  ErrorFd() = ::dup(2);
  ::dup2(pipe_fds[1], 2);

  StoreOptions o;
  TierOptions t;
  t.name = "dram";
  t.source = MemorySource::Dram();
  t.capacity = 256 * kMiB;
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = {kGoodChunk, kBigChunk};
  auto store = Store::Open(std::move(o));
  if (!store.ok()) Die(store.status().ToString());
  serve::ServerOptions so;  // the default budgets
  so.quiet = true;
  so.metrics_port = 0;
  auto server = serve::Server::Start(**store, so);
  if (!server.ok()) Die(server.status().ToString());
  const Env env{store->get(), (*server)->port(), (*server)->metrics_port()};
  for (int i = 0; i < kBigChunks; ++i) {
    const std::vector<std::byte> big = Pattern(kBigChunk, 1000 + static_cast<std::uint64_t>(i));
    if (!(*store)->Put("big-" + std::to_string(i), big).ok()) Die("storing the big chunks");
  }

  const int rounds = quick ? 1 : 5;
  const double seconds = quick ? 0.5 : 4.0;
  const std::vector<Attack> attacks = Attacks();
  std::vector<std::vector<Sample>> samples(attacks.size());
  std::uint64_t next_key = 0;
  Measure(env, quick ? 0.2 : 1.0, next_key);  // warm-up: faults the tier in
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t a = 0; a < attacks.size(); ++a) {
      std::atomic<bool> stop{false};
      std::vector<std::thread> threads;
      for (int i = 0; i < attacks[a].threads; ++i) {
        threads.emplace_back([&, a, i] { attacks[a].run(env, i, stop); });
      }
      // The attack sets up; idle connections become replaceable after a second (--quick,
      // the ctest smoke run, waits that long only for the idle flood).
      const bool idle_flood = std::string(attacks[a].name).rfind("idle", 0) == 0;
      if (attacks[a].threads > 0) ::usleep(quick && !idle_flood ? 300000 : 1200000);
      samples[a].push_back(Measure(env, seconds, next_key));
      stop = true;
      for (std::thread& th : threads) th.join();
      ::usleep(quick ? 200000 : 1000000);  // what the attack left is cut or closed
    }
  }

  std::printf("a good client's latency beside each attack, one server with the default budgets "
              "(256 MiB DRAM tier), loopback, same run; %d round%s of %.1f s per phase\n",
              rounds, rounds == 1 ? "" : "s", seconds);
  std::printf("%-50s %8s %8s %6s %8s %6s %9s %6s %6s %6s\n", "attack", "put p50", "put p99",
              "ratio", "get p99", "ratio", "scrape p99", "ratio", "stored", "hits");
  double worst = 0;
  for (std::size_t a = 0; a < attacks.size(); ++a) {
    std::vector<double> put99, get99, scrape99, r_put, r_get, r_scrape, put50;
    double stored = 0, hits = 0, total = 0;
    for (int r = 0; r < rounds; ++r) {
      const Sample& s = samples[a][static_cast<std::size_t>(r)];
      const Sample& base = samples[0][static_cast<std::size_t>(r)];
      put50.push_back(P(s.put_ms, 0.5));
      put99.push_back(P(s.put_ms, 0.99));
      get99.push_back(P(s.get_ms, 0.99));
      scrape99.push_back(P(s.scrape_ms, 0.99));
      r_put.push_back(P(s.put_ms, 0.99) / P(base.put_ms, 0.99));
      r_get.push_back(P(s.get_ms, 0.99) / P(base.get_ms, 0.99));
      r_scrape.push_back(P(s.scrape_ms, 0.99) / std::max(P(base.scrape_ms, 0.99), 1e-3));
      stored += static_cast<double>(s.stored);
      hits += static_cast<double>(s.hits);
      total += static_cast<double>(s.rounds);
    }
    const double rp = Median(r_put), rg = Median(r_get), rs = Median(r_scrape);
    if (a > 0) worst = std::max({worst, rp, rg, rs});
    std::printf("%-50s %7.2fms %7.2fms %5.2fx %7.2fms %5.2fx %8.2fms %5.2fx %5.0f%% %5.0f%%\n",
                attacks[a].name, Median(put50), Median(put99), rp, Median(get99), rg,
                Median(scrape99), rs, 100 * stored / total, 100 * hits / total);
    std::fflush(stdout);
  }
  const serve::ServerGauges g = (*server)->gauges();
  std::printf("log lines dropped %llu; budgets: %zu MiB reserved by PUTs, %zu MiB held by "
              "replies at most\n",
              static_cast<unsigned long long>(g.log_lines_dropped), g.max_reserved_bytes >> 20,
              g.max_reply_bytes >> 20);
  std::printf("worst p99 ratio %.2fx (goal <= 2x): %s\n", worst, worst <= 2.0 ? "met" : "not met");
  std::fflush(stdout);
  server->reset();  // its log thread drops what the pipe did not take, within its grace
  ::dup2(ErrorFd(), 2);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  return 0;
}

}  // namespace cxlkv::bench_serve
