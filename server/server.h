// Server: `cxlkv serve`'s engine. Listens for LMCache's lm:// protocol on TCP (127.0.0.1 by
// default) and/or a Unix domain socket, and serves every connection from a few event-loop
// threads (epoll, level-triggered; whichever loop the kernel wakes accepts from the shared
// listening sockets and hands each connection to the loop holding the fewest), all on one
// Store. Optionally serves Prometheus metrics over HTTP.
//
// What one client can make the server hold or wait for is bounded by the budgets below
// (docs/security.md, "Clients"); log lines never block a loop (ServerLog).
//
// Thread-safety: Start, Stop and the accessors may be called from any one thread; Stop (or
// the destructor) joins every thread. The Store must outlive the Server.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cxlkv/status.h"
#include "cxlkv/store.h"
#include "server/budget.h"
#include "server/chunk_store.h"
#include "server/connection_limits.h"
#include "server/key_list.h"
#include "server/listener.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/metrics_endpoint.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"
#include "util/unique_fd.h"

namespace cxlkv::serve {

// The receive window a connection gets by default: on this 2-core loopback, 8 connections'
// 2 MiB PUTs ran 0.84-0.87x a plain stream with it and 0.71-0.81x with autotuning, which
// starts each new connection's window at tcp_rmem's default and grows it as the loop reads
// (bench_serve, CXLKV_BENCH_RCVBUF; docs/serve.md).
inline constexpr int kDefaultReceiveBuffer = 4 << 20;

struct ServerOptions {
  std::string host = "127.0.0.1";  // TCP address to bind; "" for no TCP listener
  int port = 0;                    // 0: a free port, chosen by the kernel
  std::string unix_path;           // a Unix domain socket to listen on as well, when set
  int metrics_port = -1;           // HTTP port for Prometheus metrics; -1 none, 0 any free
  std::string metrics_host = "127.0.0.1";
  std::size_t max_payload = std::size_t{1} << 30;  // the largest PUT accepted
  unsigned threads = 2;            // event loops
  int send_buffer = 0;             // SO_SNDBUF of connections; 0 leaves the kernel's autotuning
  // SO_RCVBUF of connections: a fixed receive window. -1: kDefaultReceiveBuffer where
  // net.core.rmem_max allows it, else the kernel's autotuning; 0: autotuning; more: that many
  // bytes (autotuning, with a warning, when rmem_max is smaller: the kernel would cap it).
  int receive_buffer = -1;
  std::size_t receive_low_water = 0;  // SO_RCVLOWAT during PUT payloads; 0 leaves it at 1
  bool quiet = false;              // log only bad input and cut connections

  // --- budgets: what clients can make the server hold or wait for (0: see each) ---
  // A request's header and PUT payload must arrive within this of its first byte; a reply
  // must be read within reply_timeout of its first byte. 0: no deadline.
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds reply_timeout{30000};
  // After its first second, a PUT payload or a reply must average at least this many bytes/s
  // (a client that trickles cannot hold a slot or a pin for the whole deadline). 0: none.
  std::size_t min_transfer_rate = std::size_t{4} << 20;
  // A connection idle between requests this long is closed. 0 (the default): never, since
  // LMCache keeps one connection for its lifetime and its older connectors do not reconnect;
  // at max_connections idle connections are replaced instead (see below).
  std::chrono::milliseconds idle_timeout{0};
  // Slot bytes reserved at once by PUTs being received; a PUT over it is read and dropped.
  // 0: a quarter of the first tier's capacity.
  std::size_t max_reserved_bytes = 0;
  // Bytes held at once by replies not yet read (pinned chunks, LIST copies); a GET over it is
  // answered as a miss. 0: a quarter of the first tier's capacity.
  std::size_t max_reply_bytes = 0;
  // lm:// connections open at once. At the limit a new connection takes the place of its
  // event loop's longest-idle connection if that has been idle for kReplaceIdleAfter, else it
  // is closed at once. Start raises the soft RLIMIT_NOFILE toward the hard limit when this
  // needs it, and lowers the limit (with a log line) when it cannot.
  unsigned max_connections = 1024;
  unsigned max_connections_per_peer = 0;  // per client address or Unix uid; 0: no limit
  std::size_t max_list_bytes = std::size_t{1} << 20;  // LIST replies are cut at this size
  double log_lines_per_second = 100;  // log rate; lines over it are dropped and counted

  static constexpr auto kReplaceIdleAfter = std::chrono::seconds(1);
};

class Server {
 public:
  // Binds every listener and starts the threads. Errors name the address that failed; a Unix
  // socket path that a running server holds is Busy.
  static Result<std::unique_ptr<Server>> Start(Store& store, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }                  // the TCP port bound; -1 without TCP
  int metrics_port() const { return metrics_port_; }  // -1 without metrics
  const ServerMetrics& metrics() const { return metrics_; }
  ServerGauges gauges() const;
  // The options in force: budgets of 0 resolved, max_connections as lowered to fit.
  const ServerOptions& options() const { return options_; }
  // Connections each event loop holds (open, or handed to it and not yet taken in). Accepted
  // connections go to the loop holding the fewest, so these differ by at most one while
  // connections only open.
  std::vector<std::size_t> ConnectionsPerLoop() const;
  void Stop();

 private:
  struct Loop;
  // A GET's pin that may wait for I/O (its chunk is in the spill tier), for a reader thread.
  struct PinJob {
    std::size_t loop = 0;
    int fd = -1;
    std::uint64_t serial = 0;  // the connection's: a result for one since closed is dropped
    std::string key;
  };
  explicit Server(Store& store);  // in server.cc, where Loop is complete
  void LoopMain(std::size_t index);
  void ReaderMain();
  void StopReaders();
  // The loop that takes the next accepted connection: the one with the fewest, `self` on a tie.
  std::size_t PickLoop(std::size_t self) const;

  Store& store_;
  ServerOptions options_;
  std::unique_ptr<ServerLog> log_;  // first in, last out: every thread logs through it
  std::unique_ptr<ChunkStore> chunks_;
  std::unique_ptr<ByteBudget> reserved_;
  std::unique_ptr<ByteBudget> replies_;
  std::unique_ptr<ConnectionLimits> limits_;
  KeyList keys_;
  ServerMetrics metrics_;
  UniqueFd tcp_;
  UnixListener unix_;
  UniqueFd stop_event_;  // an eventfd every thread polls; written once by Stop
  int port_ = -1;
  int metrics_port_ = -1;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
  // Reader threads, as many as event loops: they make the pins that wait for the spill tier's
  // reads, so that a loop's other connections do not wait with them.
  internal::Mutex jobs_mu_;
  internal::CondVar jobs_cv_;
  std::deque<PinJob> jobs_ GUARDED_BY(jobs_mu_);
  bool readers_stop_ GUARDED_BY(jobs_mu_) = false;
  std::vector<std::thread> readers_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  std::atomic<bool> stopped_{false};
};

}  // namespace cxlkv::serve
