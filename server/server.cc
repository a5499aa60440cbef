#include "server/server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "server/connection.h"
#include "server/listener.h"

namespace cxlkv::serve {
namespace {

constexpr int kMaxEvents = 64;

Status AddToEpoll(int epoll_fd, int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return Status::FromErrno("epoll_ctl add", errno);
  }
  return Status::Ok();
}

// Sends all of data on a blocking socket; false when the peer went away.
bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(Store& store, ServerOptions options) {
  if (options.threads == 0 || options.threads > 64) {
    return Status::InvalidArgument("server threads must be 1 to 64, not " +
                                   std::to_string(options.threads));
  }
  if (options.max_payload == 0 || options.max_payload > static_cast<std::size_t>(INT32_MAX)) {
    return Status::InvalidArgument("max payload must be 1 byte to 2 GiB - 1 (the protocol's "
                                   "int32 length)");
  }
  if (options.host.empty() && options.unix_path.empty()) {
    return Status::InvalidArgument("the server needs a TCP host or a unix socket path");
  }
  std::unique_ptr<Server> s(new Server(store));
  s->options_ = options;
  if (!options.host.empty()) {
    CXLKV_ASSIGN_OR_RETURN(s->tcp_, ListenTcp(options.host, options.port));
    CXLKV_ASSIGN_OR_RETURN(s->port_, BoundPort(s->tcp_.get()));
  }
  if (!options.unix_path.empty()) {
    CXLKV_ASSIGN_OR_RETURN(s->unix_, ListenUnix(options.unix_path));
  }
  if (options.metrics_port >= 0) {
    CXLKV_ASSIGN_OR_RETURN(s->metrics_listener_,
                           ListenTcp(options.metrics_host, options.metrics_port));
    CXLKV_ASSIGN_OR_RETURN(s->metrics_port_, BoundPort(s->metrics_listener_.get()));
  }
  s->stop_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (s->stop_event_.get() < 0) return Status::FromErrno("eventfd", errno);
  for (unsigned i = 0; i < options.threads; ++i) {
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (ep.get() < 0) return Status::FromErrno("epoll_create1", errno);
    // Every loop waits on the listeners; EPOLLEXCLUSIVE wakes one of them per connection.
    for (const UniqueFd* l : {&s->tcp_, &s->unix_}) {
      if (l->get() >= 0) CXLKV_RETURN_IF_ERROR(AddToEpoll(ep.get(), l->get(), EPOLLIN | EPOLLEXCLUSIVE));
    }
    CXLKV_RETURN_IF_ERROR(AddToEpoll(ep.get(), s->stop_event_.get(), EPOLLIN));
    s->epolls_.push_back(std::move(ep));
  }
  for (const UniqueFd& ep : s->epolls_) {
    s->threads_.emplace_back([srv = s.get(), fd = ep.get()] { srv->LoopMain(fd); });
  }
  if (s->metrics_listener_.get() >= 0) {
    s->threads_.emplace_back([srv = s.get()] { srv->MetricsMain(); });
  }
  return s;
}

Server::~Server() { Stop(); }

void Server::Stop() {
  if (stopped_.exchange(true)) return;
  const std::uint64_t one = 1;
  if (::write(stop_event_.get(), &one, sizeof(one)) != sizeof(one)) {
    std::fprintf(stderr, "cxlkv serve: cannot signal the event loops to stop: %s\n",
                 std::strerror(errno));
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  if (!options_.unix_path.empty() && unix_.get() >= 0) ::unlink(options_.unix_path.c_str());
}

void Server::LoopMain(int epoll_fd) {
  ServeContext ctx;
  ctx.store = &store_;
  ctx.keys = &keys_;
  ctx.metrics = &metrics_;
  ctx.max_payload = options_.max_payload;
  ctx.receive_low_water = options_.receive_low_water;
  ctx.quiet = options_.quiet;
  struct Entry {
    std::unique_ptr<Connection> conn;
    bool watching_out = false;  // registered for EPOLLOUT (a reply in flight) or EPOLLIN
  };
  std::unordered_map<int, Entry> conns;
  epoll_event events[kMaxEvents];
  for (;;) {
    const int n = ::epoll_wait(epoll_fd, events, kMaxEvents, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "cxlkv serve: epoll_wait failed: %s\n", std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_event_.get()) return;  // connections close with the map
      if (fd == tcp_.get() || fd == unix_.get()) {
        for (;;) {
          UniqueFd c(::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
          if (c.get() < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
              std::fprintf(stderr, "cxlkv serve: accept failed: %s\n", std::strerror(errno));
              // Out of descriptors: the listener stays readable, so back off rather than spin.
              if (errno == EMFILE || errno == ENFILE) ::usleep(10000);
            }
            break;
          }
          if (fd == tcp_.get()) {
            const int one = 1;  // small replies must not wait for Nagle
            if (::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
              std::fprintf(stderr, "cxlkv serve: TCP_NODELAY: %s\n", std::strerror(errno));
            }
          }
          if (options_.send_buffer > 0) {
            // A send buffer that holds a whole chunk lets one sendmsg queue a GET's reply,
            // instead of a wake-up per partial send (the kernel caps it at wmem_max).
            const int bytes = options_.send_buffer;
            ::setsockopt(c.get(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
          }
          const int cfd = c.get();
          if (!AddToEpoll(epoll_fd, cfd, EPOLLIN).ok()) {
            std::fprintf(stderr, "cxlkv serve: cannot watch a new connection: %s\n",
                         std::strerror(errno));
            continue;  // c closes it
          }
          std::string peer = PeerName(cfd);
          conns[cfd] = Entry{std::make_unique<Connection>(std::move(c), std::move(peer), ctx),
                             false};
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Entry& e = it->second;
      const Connection::Step step =
          e.conn->sending() ? e.conn->OnWritable() : e.conn->OnReadable();
      if (step == Connection::Step::kClose) {
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
        conns.erase(it);  // closes the socket, aborts a partial PUT, ends a lease
        continue;
      }
      if (e.conn->sending() != e.watching_out) {
        e.watching_out = e.conn->sending();
        epoll_event ev{};
        ev.events = e.watching_out ? EPOLLOUT : EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0) {
          std::fprintf(stderr, "cxlkv serve: epoll_ctl: %s; closing a connection\n",
                       std::strerror(errno));
          ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
          conns.erase(it);
        }
      }
    }
  }
}

// A minimal HTTP/1.0 responder: one request per connection, GET /metrics (or /) only.
void Server::MetricsMain() {
  pollfd fds[2] = {{metrics_listener_.get(), POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "cxlkv serve: metrics poll failed: %s\n", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    UniqueFd c(::accept4(metrics_listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (c.get() < 0) continue;
    // A slow or silent client must not stall the endpoint for long.
    const timeval timeout{2, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    std::string request;
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos &&
           request.find("\n\n") == std::string::npos && request.size() < 8192) {
      const ssize_t n = ::recv(c.get(), buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      request.append(buf, static_cast<std::size_t>(n));
    }
    const bool metrics = request.rfind("GET /metrics ", 0) == 0 || request.rfind("GET / ", 0) == 0;
    std::string body = metrics ? metrics_.RenderPrometheus(store_) : "not found: try /metrics\n";
    std::string head = std::string(metrics ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.0 404 Not Found\r\n") +
                       "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                       "Content-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n";
    if (SendAll(c.get(), head)) SendAll(c.get(), body);
  }
}

}  // namespace cxlkv::serve
