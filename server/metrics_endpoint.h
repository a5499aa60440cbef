// MetricsEndpoint: the Prometheus endpoint, a minimal HTTP/1.0 responder (GET /metrics or /,
// one request per connection) on a thread of its own. Its connections are non-blocking and
// served together from one epoll loop, so a client that sends slowly or never reads delays
// nobody: each connection has kTimeout to send its request and read the reply, at most
// kMaxClients are open at once (at the limit a new one replaces the oldest), and a request
// may be at most 8 KiB.
//
// Thread-safety: Start and the destructor from one thread; render is called on the
// endpoint's thread and must be thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "cxlkv/status.h"
#include "server/log.h"
#include "server/metrics.h"
#include "util/unique_fd.h"

namespace cxlkv::serve {

class MetricsEndpoint {
 public:
  static constexpr auto kTimeout = std::chrono::seconds(2);
  static constexpr std::size_t kMaxClients = 64;

  // Serves the listening socket (non-blocking) until destroyed. `dropped` counts connections
  // closed unanswered; `log` (may be null) gets a line for failures of the loop itself.
  static Result<std::unique_ptr<MetricsEndpoint>> Start(UniqueFd listener,
                                                        std::function<std::string()> render,
                                                        std::atomic<std::uint64_t>* dropped,
                                                        ServerLog* log);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

 private:
  MetricsEndpoint() = default;
  void Main();

  UniqueFd listener_;
  UniqueFd epoll_;
  UniqueFd stop_event_;
  std::function<std::string()> render_;
  std::atomic<std::uint64_t>* dropped_ = nullptr;
  ServerLog* log_ = nullptr;
  std::thread thread_;
};

}  // namespace cxlkv::serve
