// Server: `cxlkv serve`'s engine. Listens for LMCache's lm:// protocol on TCP (127.0.0.1 by
// default) and/or a Unix domain socket, and serves every connection from a few event-loop
// threads (epoll, level-triggered; each loop accepts its own connections from the shared
// listening sockets), all on one Store. Optionally serves Prometheus metrics over HTTP.
//
// Thread-safety: Start, Stop and the accessors may be called from any one thread; Stop (or
// the destructor) joins every thread. The Store must outlive the Server.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cxlkv/status.h"
#include "cxlkv/store.h"
#include "server/key_list.h"
#include "server/metrics.h"
#include "util/unique_fd.h"

namespace cxlkv::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";  // TCP address to bind; "" for no TCP listener
  int port = 0;                    // 0: a free port, chosen by the kernel
  std::string unix_path;           // a Unix domain socket to listen on as well, when set
  int metrics_port = -1;           // HTTP port for Prometheus metrics; -1 none, 0 any free
  std::string metrics_host = "127.0.0.1";
  std::size_t max_payload = std::size_t{1} << 30;  // the largest PUT accepted
  unsigned threads = 2;            // event loops
  int send_buffer = 0;             // SO_SNDBUF of connections; 0 leaves the kernel's autotuning
  std::size_t receive_low_water = 0;  // SO_RCVLOWAT during PUT payloads; 0 leaves it at 1
  bool quiet = false;              // log only bad input, not refused PUTs and failed sends
};

class Server {
 public:
  // Binds every listener and starts the threads. Errors name the address that failed.
  static Result<std::unique_ptr<Server>> Start(Store& store, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }                  // the TCP port bound; -1 without TCP
  int metrics_port() const { return metrics_port_; }  // -1 without metrics
  const ServerMetrics& metrics() const { return metrics_; }
  void Stop();

 private:
  explicit Server(Store& store) : store_(store) {}
  void LoopMain(int epoll_fd);
  void MetricsMain();

  Store& store_;
  ServerOptions options_;
  KeyList keys_;
  ServerMetrics metrics_;
  UniqueFd tcp_;
  UniqueFd unix_;
  UniqueFd metrics_listener_;
  UniqueFd stop_event_;  // an eventfd every thread polls; written once by Stop
  int port_ = -1;
  int metrics_port_ = -1;
  std::vector<UniqueFd> epolls_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
};

}  // namespace cxlkv::serve
