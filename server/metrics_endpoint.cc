#include "server/metrics_endpoint.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>
#include <unordered_map>

namespace cxlkv::serve {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxRequest = 8192;
constexpr int kTickMs = 100;  // how often deadlines are checked

struct Client {
  UniqueFd fd;
  Clock::time_point deadline;
  std::string request;
  std::string reply;   // empty until the request is complete
  std::size_t sent = 0;
};

bool RequestComplete(const std::string& r) {
  return r.find("\r\n\r\n") != std::string::npos || r.find("\n\n") != std::string::npos;
}

std::string Reply(const std::string& request, const std::function<std::string()>& render) {
  const bool metrics = request.rfind("GET /metrics ", 0) == 0 || request.rfind("GET / ", 0) == 0;
  const std::string body = metrics ? render() : "not found: try /metrics\n";
  return std::string(metrics ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.0 404 Not Found\r\n") +
         "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
         "Content-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    UniqueFd listener, std::function<std::string()> render, std::atomic<std::uint64_t>* dropped,
    ServerLog* log) {
  std::unique_ptr<MetricsEndpoint> e(new MetricsEndpoint());
  e->listener_ = std::move(listener);
  e->render_ = std::move(render);
  e->dropped_ = dropped;
  e->log_ = log;
  e->epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (e->epoll_.get() < 0) return Status::FromErrno("metrics epoll_create1", errno);
  e->stop_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (e->stop_event_.get() < 0) return Status::FromErrno("metrics eventfd", errno);
  for (int fd : {e->listener_.get(), e->stop_event_.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(e->epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return Status::FromErrno("metrics epoll_ctl", errno);
    }
  }
  e->thread_ = std::thread([ep = e.get()] { ep->Main(); });
  return e;
}

MetricsEndpoint::~MetricsEndpoint() {
  const std::uint64_t one = 1;
  if (::write(stop_event_.get(), &one, sizeof(one)) != sizeof(one) && log_ != nullptr) {
    log_->Line("cannot signal the metrics endpoint to stop: " + std::string(std::strerror(errno)));
  }
  if (thread_.joinable()) thread_.join();
}

void MetricsEndpoint::Main() {
  std::unordered_map<int, Client> clients;
  // Oldest first, for replacing at kMaxClients (accept order, by a sequence number).
  std::map<std::uint64_t, int> by_age;
  std::unordered_map<int, std::uint64_t> age_of;
  std::uint64_t next_age = 0;
  auto drop = [&](int fd, bool unanswered) {
    if (unanswered) dropped_->fetch_add(1, std::memory_order_relaxed);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    by_age.erase(age_of[fd]);
    age_of.erase(fd);
    clients.erase(fd);  // closes it
  };
  bool accept_paused = false;
  Clock::time_point accept_resume;
  epoll_event events[64];
  for (;;) {
    if (accept_paused && Clock::now() >= accept_resume) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = listener_.get();
      accept_paused = ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &ev) != 0;
    }
    const int n = ::epoll_wait(epoll_.get(), events, 64, kTickMs);
    if (n < 0 && errno != EINTR) {
      if (log_ != nullptr) log_->Line("metrics epoll_wait failed: " + std::string(std::strerror(errno)));
      return;
    }
    const Clock::time_point now = Clock::now();
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_event_.get()) return;
      if (fd == listener_.get()) {
        for (;;) {
          UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
          if (c.get() < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
              // Out of descriptors, say: the listener stays readable, so it leaves the epoll
              // set for a tick instead of spinning.
              if (log_ != nullptr) log_->Line("metrics accept failed: " + std::string(std::strerror(errno)));
              ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener_.get(), nullptr);
              accept_paused = true;
              accept_resume = now + std::chrono::milliseconds(kTickMs);
            }
            break;
          }
          if (clients.size() >= kMaxClients) drop(by_age.begin()->second, true);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = c.get();
          if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c.get(), &ev) != 0) continue;
          const int cfd = c.get();
          clients[cfd] = Client{std::move(c), now + kTimeout, {}, {}, 0};
          by_age[next_age] = cfd;
          age_of[cfd] = next_age++;
        }
        continue;
      }
      auto it = clients.find(fd);
      if (it == clients.end()) continue;
      Client& c = it->second;
      if (c.reply.empty()) {
        char buf[1024];
        const ssize_t k = ::recv(fd, buf, sizeof(buf), 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (k <= 0) {
          drop(fd, true);
          continue;
        }
        c.request.append(buf, static_cast<std::size_t>(k));
        if (!RequestComplete(c.request) && c.request.size() < kMaxRequest) continue;
        c.reply = Reply(c.request, render_);
        epoll_event ev{};
        ev.events = EPOLLOUT;
        ev.data.fd = fd;
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
          drop(fd, true);
          continue;
        }
      }
      while (c.sent < c.reply.size()) {
        const ssize_t k = ::send(fd, c.reply.data() + c.sent, c.reply.size() - c.sent,
                                 MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        c.sent += static_cast<std::size_t>(k);
      }
      if (c.sent == c.reply.size()) {
        drop(fd, false);
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        drop(fd, true);  // the client went away
      }
    }
    std::vector<int> late;
    for (const auto& [fd, c] : clients) {
      if (now > c.deadline) late.push_back(fd);
    }
    for (int fd : late) drop(fd, true);
  }
}

}  // namespace cxlkv::serve
